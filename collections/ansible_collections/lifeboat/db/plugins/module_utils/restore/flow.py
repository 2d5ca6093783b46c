# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a backup set, whatever the mode: under the per-target lock, the set is found (and
downloaded from S3, every file checked), verified against its manifest, the server checked
(roles, extensions, disk), then restored by the mode's path - tables.restore_tables, or
database.restore_database - with its phase in a progress file for a task polling the async job.

Everything that can be checked is checked before anything changes: the files against the
manifest's sha256, the archive's table of contents, the pg_restore version.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import (
    database_exists, server_major, server_version_string)
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError, error_text
from ansible_collections.lifeboat.db.plugins.module_utils.restore.preflight import (
    GIB, check_extensions, check_space, local_data_directory, restore_size)
from ansible_collections.lifeboat.db.plugins.module_utils.restore.finish import missing_roles
from ansible_collections.lifeboat.db.plugins.module_utils.common.progress import Progress, size_of
from ansible_collections.lifeboat.db.plugins.module_utils.restore.sources import download_cache, resolve_source
from ansible_collections.lifeboat.db.plugins.module_utils.restore.swap import TARGET_LOCK_DB, lock_target
from ansible_collections.lifeboat.db.plugins.module_utils.restore.tables import restore_tables
from ansible_collections.lifeboat.db.plugins.module_utils.pg.toc import parse_toc
from ansible_collections.lifeboat.db.plugins.module_utils.storage.verification import (
    archive_path, check_backup, dump_major)
from ansible_collections.lifeboat.db.plugins.module_utils.restore.database import restore_database
from ansible_collections.lifeboat.db.plugins.module_utils.restore.request import phase, plan
from ansible_collections.lifeboat.db.plugins.module_utils.restore import container

RESTORE_PROGRESS_NAME = '.restore-progress.json'


def restore(ctx, request):
    """Restore as `request` says; while it runs (not in check mode), its phase is in
    `<repository>/<backup_db>/.restore-progress.json` for a task polling the async job."""
    if not ctx.check_mode:
        request.progress = _progress(ctx, request)
    try:
        result = _restore(ctx, request)
    except BaseException as exc:
        phase(request, 'failed', error=getattr(exc, 'msg', None) or str(exc))
        raise
    phase(request, 'done', backup_id=result.get('backup_id'))
    if request.warnings:
        result['warnings'] = request.warnings
    return result


def _progress(ctx, request):
    directory = ctx.repository.database_dir(request.backup_db)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
    except OSError:
        return None  # progress is a courtesy; the restore reports its own errors
    progress = Progress(directory, None, None, name=RESTORE_PROGRESS_NAME)
    progress.update(force=True, phase='starting', target_db=request.target_db, mode=request.mode)
    return progress


def _restore(ctx, request):
    """Under the per-target lock (swap.lock_target, held for the whole run): no second restore,
    and no backup of the target, while this one runs. Advisory locks belong to one database: the
    lock is always held in TARGET_LOCK_DB, where backups look for it, whatever maintenance_db is."""
    conn = ctx.options.connect(request.maintenance_db)
    holder = None
    try:
        if not ctx.check_mode:
            holder = conn if request.maintenance_db == TARGET_LOCK_DB else ctx.options.connect(TARGET_LOCK_DB)
            lock_target(holder, request.target_db)
        return _restore_locked(ctx, conn, request)
    finally:
        if holder is not None and holder is not conn:
            holder.close()
        conn.close()


def _restore_locked(ctx, conn, request):
    timings = {}
    clock = time.monotonic()
    downloaded = cache = None
    store, backup = resolve_source(ctx, request.backup, request.backup_db, request.kind)
    phase(request, 'verifying', backup_id=backup.backup_id)
    _refuse_delta(backup)
    repository = ctx.repository
    if store is not None:
        cache = repository = download_cache(ctx)
        size = sum(f['size'] for f in backup.manifest['files'])
        if ctx.check_mode:
            if backup.archived:
                raise LifeboatError('backup %s is in %s; it would have to be restored from there first (check mode '
                                    'starts nothing)' % (backup.backup_id, backup.storage[backup.archived[0]]))
            return dict(changed=True, backup_id=backup.backup_id, backup_path=backup.path, target_db=request.target_db,
                        mode=request.mode, expected_row_counts=backup.manifest['row_counts'],
                        actions=['Would download backup %s (%d bytes) from %s into %s, checking every file'
                                 % (backup.backup_id, size, store.url, cache.root)]
                        + ['Would %s' % step for step in plan(request, backup,
                                                               database_exists(conn, request.target_db))])
        store.ensure_readable(backup, glacier_restore=request.glacier_restore)
        check_space(cache.root, size, 'downloading backup %s' % backup.backup_id)
        remote = backup
        phase(request, 'downloading', bytes_total=size)
        backup, fresh = store.fetch(remote, cache)
        phase(request, 'verifying')
        downloaded = backup if fresh else None
        timings['download_seconds'] = round(time.monotonic() - clock, 3)
    if backup.manifest.get('external'):
        result = _restore_set(ctx, conn, request, backup, timings, clock)
    else:
        # Pinned while it is read: a retention run (keep_last) meanwhile leaves this set alone.
        with repository.pin(backup):
            result = _restore_set(ctx, conn, request, backup, timings, clock)
    if downloaded is not None:
        # The download served its purpose; the set stays in S3. Kept when the restore failed.
        # The restore has committed: whatever goes wrong from here is a warning, never a failure.
        result['backup_path'] = store.set_url(remote.database, backup.backup_id)
        result['actions'].insert(0, 'Downloaded backup %s from %s, every file checked against its manifest'
                                 % (backup.backup_id, store.url))
        _remove_download(cache, remote, downloaded, request, result['actions'])
    timings['total_seconds'] = round(time.monotonic() - clock, 3)
    return result


def _remove_download(cache, remote, downloaded, request, actions):
    try:
        with cache.lock(remote.database, 60, 'removing the download of %s' % downloaded.backup_id):
            removed = cache.delete(downloaded)
    except (LifeboatError, IOError, OSError) as exc:
        request.warnings.append('the restore is done, but lifeboat could not remove its download %s (%s); delete '
                                'it by hand' % (downloaded.path, error_text(exc)))
        return
    if removed:
        actions.append('Removed the download of backup %s from the cache' % downloaded.backup_id)
    else:
        actions.append('Kept the download of backup %s in the cache: another restore is reading it'
                       % downloaded.backup_id)


def _restore_set(ctx, conn, request, backup, timings, clock):
    """Check and restore the local (or downloaded) set `backup`; returns the task's result."""
    manifest = backup.manifest
    if container.in_container(ctx):
        verified = container.check_backup(ctx, backup, request.warnings)
    else:
        verified = check_backup(ctx, backup)
    timings['verify_seconds'] = round(time.monotonic() - clock, 3)
    if request.progress is not None and backup.toc is not None:
        request.progress.state['tables_total'] = len([e for e in parse_toc(backup.toc) if e.desc == 'TABLE DATA'])
    archive = archive_path(backup)
    plain = manifest.get('format') == 'plain'
    if plain and manifest['compression']['method'] not in ('gzip', 'none'):
        raise LifeboatError('backup %s is a plain dump compressed with %s, which lifeboat cannot feed to psql; '
                            'decompress it by hand or use custom or directory format backups'
                            % (backup.backup_id, manifest['compression']['method']))
    needed = max(server_major(conn), dump_major(manifest))
    why = 'the server is PostgreSQL %s and the backup was written by pg_dump %s' % (
        server_version_string(conn), manifest['pg_dump_version'])
    pg_restore = ctx.finder.find('psql' if plain else 'pg_restore', needed, why)
    exists = database_exists(conn, request.target_db)
    if request.mode == 'new' and exists:
        raise LifeboatError('database %r already exists and mode=new never overwrites; choose another db or use '
                            'mode=replace' % request.target_db)
    facts = dict(backup_id=backup.backup_id, backup_path=backup.path, target_db=request.target_db,
                 mode=request.mode, verified_files=verified, pg_restore=pg_restore.as_dict(),
                 backup_finished_at=manifest.get('finished_at'), expected_row_counts=manifest['row_counts'])
    if container.in_container(ctx):
        facts['container'] = ctx.container_facts()
    if manifest.get('external'):
        actions = ['Backup %s was not written by lifeboat: there is no manifest, so no checksums to check and no '
                   'row counts to compare; its table of contents reads back' % backup.path]
    else:
        actions = ['Verified %d file(s) of backup %s against its manifest' % (len(verified), backup.backup_id)]
    facts['preflight'] = _preflight(ctx, conn, request, backup, archive, exists, actions)
    if request.mode == 'tables':
        # mode=tables (tables.py) restores into the live database; in check mode it only plans.
        restore_tables(ctx, conn, request, backup, pg_restore, archive, facts, actions, timings)
        return dict(changed=True, timings=timings, actions=actions, **facts)
    if ctx.check_mode:
        return dict(changed=True, actions=actions + ['Would %s' % step for step in plan(request, backup, exists)],
                    **facts)
    restore_database(ctx, conn, request, backup, pg_restore, archive, exists, facts, actions, timings)
    return dict(changed=True, timings=timings, actions=actions, **facts)


def _preflight(ctx, conn, request, backup, archive, exists, actions):
    """Before anything changes: the extensions the backup needs exist on the server, and the
    server's disk has room for the restored database (when its data directory is on this host)."""
    label = 'the target server (PostgreSQL %s)' % server_version_string(conn)
    roles = missing_roles(conn, request.grants + ([dict(to=request.role)] if request.role else []))
    if roles:
        raise LifeboatError('role(s) %s named by role/grants do not exist on %s; create them (or fix the names) and '
                            'run again; nothing was changed' % (', '.join(roles), label))
    extensions = check_extensions(conn, backup, archive, label)
    if extensions:
        actions.append('Checked that %s has the extension(s) the backup needs: %s' % (label, ', '.join(extensions)))
    if request.mode == 'tables':
        # A few tables of the database: the whole database's size says nothing about them.
        return dict(extensions=extensions, disk_checked=False, disk_note='not checked for mode=tables')
    need, basis = restore_size(backup.manifest, size_of(archive))
    if request.mode == 'replace' and exists:
        # replace drops the current database before restoring, which frees its space first.
        current = conn.execute('SELECT pg_database_size(%s)', (request.target_db,)).fetchone()[0]
        need = max(need - current, 0)
    facts = dict(extensions=extensions, restore_bytes=need, restore_bytes_basis=basis, data_directory=None,
                 free_bytes=None, disk_checked=False)
    data_directory, why_not = local_data_directory(conn)
    if data_directory is None:
        facts['disk_note'] = 'free space not checked: %s' % why_not
        actions.append('Did not check free disk space: %s' % why_not)
        return facts
    facts.update(data_directory=data_directory, disk_checked=True,
                 free_bytes=check_space(data_directory, need, 'restoring backup %s into database %r'
                                        % (backup.backup_id, request.target_db)))
    actions.append('Checked free disk space: %.2f GiB free in %s for about %.2f GiB (%s)'
                   % (facts['free_bytes'] / GIB, data_directory, need / GIB, basis))
    return facts


def _refuse_delta(backup):
    if backup.manifest.get('format') == 'delta':
        raise LifeboatError('backup %s is a delta export, not a database backup; restore its base backup %s and '
                            'apply the deltas with lifeboat.db.delta (action: apply)'
                            % (backup.backup_id, (backup.manifest.get('delta') or {}).get('base_backup_id', '?')))
