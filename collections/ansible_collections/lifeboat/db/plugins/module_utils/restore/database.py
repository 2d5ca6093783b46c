# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a backup set into a database.

Everything that can be checked is checked before anything changes: the files against the
manifest's sha256, the archive's table of contents, the pg_restore version. `replace` first takes
a safety backup of the current database (kind `pre-restore`, as seed 003 does by hand), and if
the restore then fails it puts that safety backup back, so a failed replace loses nothing.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import os
import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.backup.pg_dump import BackupRequest, take_backup
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import (
    PassFile, database_exists, dbname_argument, first_line, psycopg, server_major, server_version_string, sql)
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.custom import FAILED, normalize_checks, run_check
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError, error_text
from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import exact_row_counts
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import compare_row_counts
from ansible_collections.lifeboat.db.plugins.module_utils.restore.preflight import (
    GIB, check_extensions, check_space, local_data_directory, restore_size)
from ansible_collections.lifeboat.db.plugins.module_utils.restore.finish import (
    apply_grants, missing_roles, normalize_grants, refresh_matviews, repair_sequences)
from ansible_collections.lifeboat.db.plugins.module_utils.common.progress import Progress, size_of
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.restore.sources import download_cache, resolve_source
from ansible_collections.lifeboat.db.plugins.module_utils.pg.stream import run_following_stderr, stream_from_file
from ansible_collections.lifeboat.db.plugins.module_utils.restore.swap import (
    TARGET_LOCK_DB, drop_previous, lock_target, mark, previous_name, probe_name, remove_stale_staging, staging_name,
    swap_in)
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import failure_line
from ansible_collections.lifeboat.db.plugins.module_utils.restore.tables import (
    display, parse_toc, restore_tables, table_keys)
from ansible_collections.lifeboat.db.plugins.module_utils.storage.verification import (
    archive_path, check_backup, dump_major)

MODES = ('swap', 'new', 'replace', 'tables')
# CREATE DATABASE's SQLSTATEs for a locale this server has not got (wrong_object_type) or an
# encoding and locale that disagree here (invalid_parameter_value).
LOCALE_UNAVAILABLE = ('42809', '22023', '0A000')
RESTORE_PROGRESS_NAME = '.restore-progress.json'
# pg_restore --verbose's line as it starts loading a table's rows.
RESTORE_TABLE_LINE = re.compile(r'processing data for table "([^"]+)"')


class RestoreRequest(object):
    def __init__(self, backup_db, backup, target_db, mode, jobs=1, no_owner=True, no_acl=True,
                 maintenance_db='postgres', analyze=True, safety_backup=True, glacier_restore=False,
                 grace_seconds=1.0, keep_previous=1, kind=None, tables=None, role=None, grants=None,
                 refresh_matviews=False, repair_sequences=True, checks=None, locale_fallback=False):
        if grace_seconds < 0:
            raise LifeboatError('grace_seconds must be 0 or more, got %s' % grace_seconds)
        if keep_previous < 0:
            raise LifeboatError('keep_previous must be 0 or more, got %d' % keep_previous)
        self.grace_seconds = grace_seconds
        self.kind = kind
        self.keep_previous = keep_previous
        if mode not in MODES:
            raise LifeboatError('mode must be one of %s, got %r' % (', '.join(MODES), mode))
        if jobs < 1:
            raise LifeboatError('jobs must be at least 1, got %d' % jobs)
        self.backup_db = backup_db
        self.backup = backup
        self.target_db = target_db
        self.mode = mode
        self.jobs = jobs
        self.no_owner = no_owner
        self.no_acl = no_acl
        self.maintenance_db = maintenance_db
        self.analyze = analyze
        self.safety_backup = safety_backup
        self.glacier_restore = glacier_restore
        # mode=tables: (schema, table) pairs (table_restore.py)
        self.tables = table_keys(mode, tables)
        self.role = role
        self.grants = normalize_grants(grants)
        self.refresh_matviews = refresh_matviews
        self.repair_sequences = repair_sequences
        self.checks = normalize_checks(checks)
        if mode == 'tables' and (self.grants or refresh_matviews or self.checks):
            raise LifeboatError('grants, refresh_matviews and checks apply to a restored database (modes swap, new, '
                                'replace), not to mode=tables; run them as separate tasks')
        # Create the database with this server's settings when the backup's locale is not here.
        self.locale_fallback = locale_fallback
        self.progress = None
        # Said by the task, which succeeded: what went wrong after the restore was committed.
        self.warnings = []


def restore(ctx, request):
    """Restore as `request` says; while it runs (not in check mode), its phase is in
    `<repository>/<backup_db>/.restore-progress.json` for a task polling the async job."""
    if not ctx.check_mode:
        request.progress = _progress(ctx, request)
    try:
        result = _restore(ctx, request)
    except BaseException as exc:
        _phase(request, 'failed', error=getattr(exc, 'msg', None) or str(exc))
        raise
    _phase(request, 'done', backup_id=result.get('backup_id'))
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


def _phase(request, phase, **facts):
    # Progress.update never fails: a full disk ends the reports, not the restore.
    if request.progress is not None:
        request.progress.update(force=True, phase=phase, **facts)


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
    _phase(request, 'verifying', backup_id=backup.backup_id)
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
                        + ['Would %s' % step for step in _plan(request, backup,
                                                               database_exists(conn, request.target_db))])
        store.ensure_readable(backup, glacier_restore=request.glacier_restore)
        check_space(cache.root, size, 'downloading backup %s' % backup.backup_id)
        remote = backup
        _phase(request, 'downloading', bytes_total=size)
        backup, fresh = store.fetch(remote, cache)
        _phase(request, 'verifying')
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
    if manifest.get('external'):
        actions = ['Backup %s was not written by lifeboat: there is no manifest, so no checksums to check and no '
                   'row counts to compare; its table of contents reads back' % backup.path]
    else:
        actions = ['Verified %d file(s) of backup %s against its manifest' % (len(verified), backup.backup_id)]
    facts['preflight'] = _preflight(ctx, conn, request, backup, archive, exists, actions)
    if request.mode == 'tables':
        # mode=tables (table_restore.py) restores into the live database; in check mode it only plans.
        restore_tables(ctx, conn, request, backup, pg_restore, archive, facts, actions, timings)
        return dict(changed=True, timings=timings, actions=actions, **facts)
    if ctx.check_mode:
        return dict(changed=True, actions=actions + ['Would %s' % step for step in _plan(request, backup, exists)],
                    **facts)
    owner = _owner(conn, request.target_db) if exists else request.role
    settings = _creatable_settings(conn, request, backup, owner, actions)
    if request.mode == 'swap':
        _swap_restore(ctx, conn, request, backup, pg_restore, archive, exists, owner, settings, facts, actions,
                      timings)
    else:
        _in_place_restore(ctx, conn, request, backup, pg_restore, archive, exists, owner, settings, facts, actions,
                          timings)
    return dict(changed=True, timings=timings, actions=actions, **facts)


def _in_place_restore(ctx, conn, request, backup, pg_restore, archive, exists, owner, settings, facts, actions,
                      timings):
    """`new` and `replace`: restore into the target database itself."""
    manifest = backup.manifest
    safety = None
    if exists and request.safety_backup:
        safety = take_backup(ctx, BackupRequest(request.target_db, kind='pre-restore', local=True))
        facts['safety_backup_id'] = safety['backup_id']
        timings['safety_backup_seconds'] = safety['duration_seconds']
        actions.append('Took safety backup %s of database %r' % (safety['backup_id'], request.target_db))
    step = time.monotonic()
    # What this run did so far: a failure undoes exactly that and nothing else.
    done = dict(dropped=False, created=False)
    try:
        if exists:
            _drop(conn, request.target_db)
            done['dropped'] = True
        _create(conn, request.target_db, settings, owner)
        done['created'] = True
        _phase(request, 'restoring')
        _pg_restore(ctx, pg_restore, archive, request, manifest)
        _finish(ctx, request.target_db, request, facts, actions)
        _run_checks(ctx, request.target_db, request, facts, actions)
    except (LifeboatError, psycopg.Error, IOError, OSError) as exc:
        raise _after_failure(ctx, conn, request, owner, safety, failure_line(exc), done)
    actions.append('%s database %r' % ('Dropped and recreated' if exists else 'Created', request.target_db))
    timings['restore_seconds'] = round(time.monotonic() - step, 3)
    actions.append('Restored backup %s into database %r with %s %s' % (backup.backup_id, request.target_db,
                                                                      pg_restore.name, pg_restore.version))
    if request.analyze:
        # The restore is committed: a failed ANALYZE is a warning, not a failed restore.
        step = time.monotonic()
        _phase(request, 'analyzing')
        try:
            _analyze(ctx, request.target_db)
        except (LifeboatError, psycopg.Error) as exc:
            request.warnings.append('database %r is restored, but ANALYZE failed (%s); run it by hand'
                                    % (request.target_db, failure_line(exc)))
            return
        timings['analyze_seconds'] = round(time.monotonic() - step, 3)
        actions.append('Analyzed database %r' % request.target_db)


def _swap_restore(ctx, conn, request, backup, pg_restore, archive, exists, owner, settings, facts, actions,
                  timings):
    """`swap`: restore and check under a staging name while the live database keeps serving,
    then swap it in (swap.swap_in). Anything failing before the swap drops staging only."""
    manifest = backup.manifest
    stale = remove_stale_staging(conn, request.target_db)
    actions.extend('Dropped staging database %r left by an interrupted restore' % name for name in stale)
    staging = staging_name(request.target_db)
    staged = RestoreRequest(request.backup_db, request.backup, staging, 'new', jobs=request.jobs,
                            no_owner=request.no_owner, no_acl=request.no_acl, role=request.role)
    staged.progress = request.progress
    step = time.monotonic()
    created = False
    try:
        _create(conn, staging, settings, owner)
        created = True
        # The mark is what lets a later run drop it as this target's staging (swap.remove_stale_staging).
        mark(conn, staging, 'staging', request.target_db)
        _phase(request, 'restoring', staging_db=staging)
        _pg_restore(ctx, pg_restore, archive, staged, manifest)
        timings['restore_seconds'] = round(time.monotonic() - step, 3)
        actions.append('Restored backup %s into staging database %r with %s %s'
                       % (backup.backup_id, staging, pg_restore.name, pg_restore.version))
        _phase(request, 'checking')
        check = _check_counts(ctx, staging, manifest)
        facts['row_count_check'] = check
        if check['status'] == 'failed':
            raise LifeboatError('the restored copy does not match backup %s: %s' % (backup.backup_id, check['summary']))
        actions.append('Checked staging database %r: %s' % (staging, check['summary']))
        _finish(ctx, staging, request, facts, actions)
        _run_checks(ctx, staging, request, facts, actions)
        if request.analyze:
            step = time.monotonic()
            _phase(request, 'analyzing')
            _analyze(ctx, staging)
            timings['analyze_seconds'] = round(time.monotonic() - step, 3)
            actions.append('Analyzed staging database %r' % staging)
        _phase(request, 'swapping')
        if exists:
            previous = previous_name(request.target_db, utc_now())
            facts['swap'] = swap_in(conn, request.target_db, staging, previous, request.grace_seconds)
        else:
            with conn.transaction():
                conn.execute(sql.SQL('ALTER DATABASE {} RENAME TO {}').format(sql.Identifier(staging),
                                                                             sql.Identifier(request.target_db)))
                conn.execute(sql.SQL('COMMENT ON DATABASE {} IS NULL').format(sql.Identifier(request.target_db)))
            facts['swap'] = dict(window_seconds=0.0, previous_db=None, sessions_terminated=0,
                                 grace_seconds=request.grace_seconds)
    except (LifeboatError, psycopg.Error, IOError, OSError) as exc:
        if not created:
            raise LifeboatError('%s; database %r was not touched' % (failure_line(exc), request.target_db))
        try:
            _drop(conn, staging)
        except psycopg.Error as second:
            raise LifeboatError('%s; database %r was not touched, but dropping staging database %r failed too (%s): '
                                'drop it by hand' % (failure_line(exc), request.target_db, staging, first_line(second)))
        raise LifeboatError('%s; database %r was not touched and staging database %r was dropped'
                            % (failure_line(exc), request.target_db, staging))
    if exists:
        actions.append('Swapped database %r in (unavailable for %.3f s, %d session(s) ended); the previous one is '
                       'kept as %r' % (request.target_db, facts['swap']['window_seconds'],
                                       facts['swap']['sessions_terminated'], facts['swap']['previous_db']))
        try:
            dropped = drop_previous(conn, request.target_db, request.keep_previous)
        except psycopg.Error as exc:
            # The swap is committed: previous copies left over are a warning.
            request.warnings.append('database %r is restored, but dropping its previous databases beyond '
                                    'keep_previous failed (%s); the next restore tries again'
                                    % (request.target_db, first_line(exc)))
            dropped = []
        facts['previous_dropped'] = dropped
        actions.extend('Dropped previous database %r (keep_previous: %d)' % (name, request.keep_previous)
                       for name in dropped)
    else:
        actions.append('Renamed staging database %r to %r' % (staging, request.target_db))


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


def _check_counts(ctx, dbname, manifest):
    if manifest.get('row_counts') is None:
        return dict(name='row_counts', severity='error', status='skipped', failures=0, tables=[],
                    summary='no row counts to compare: the backup was not written by lifeboat')
    check_conn = ctx.options.connect(dbname)
    try:
        actual = exact_row_counts(check_conn)
    finally:
        check_conn.close()
    return compare_row_counts(manifest['row_counts'], actual)


def _refuse_delta(backup):
    if backup.manifest.get('format') == 'delta':
        raise LifeboatError('backup %s is a delta export, not a database backup; restore its base backup %s and '
                            'apply the deltas with lifeboat.db.delta (action: apply)'
                            % (backup.backup_id, (backup.manifest.get('delta') or {}).get('base_backup_id', '?')))


def _plan(request, backup, exists):
    """The changes a restore makes, in order (reported by check mode)."""
    plan = []
    if request.mode == 'tables':
        return ['restore table(s) %s of backup %s into database %r'
                % (', '.join(display(key) for key in request.tables), backup.backup_id, request.target_db)]
    if request.mode == 'swap':
        plan.append('restore backup %s into a staging database and check its row counts against the manifest'
                    % backup.backup_id)
        if exists:
            plan.append('swap it in for database %r (new connections refused, sessions ended after %s s), keeping '
                        'the previous one as %s<time> (keep_previous: %d)'
                        % (request.target_db, request.grace_seconds, previous_name(request.target_db, utc_now())[:-14],
                           request.keep_previous))
        else:
            plan.append('rename it to %r' % request.target_db)
        return plan
    if exists:
        if request.safety_backup:
            plan.append('take a safety backup (kind pre-restore) of database %r' % request.target_db)
            plan.append('drop database %r WITH (FORCE)' % request.target_db)
        else:
            plan.append('drop database %r WITH (FORCE), with no safety backup: if the restore fails, what it holds '
                        'is lost' % request.target_db)
    plan.append('create database %r and restore backup %s into it with pg_restore' % (request.target_db, backup.backup_id))
    if request.analyze:
        plan.append('analyze database %r' % request.target_db)
    return plan


def _owner(conn, dbname):
    return conn.execute('SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s', (dbname,)).fetchone()[0]


def _drop(conn, dbname):
    conn.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(dbname)))


def _create(conn, dbname, settings, owner):
    """CREATE DATABASE from template0 with `settings` (encoding, lc_collate, lc_ctype, and an
    ICU or builtin locale with its provider)."""
    statement = sql.SQL('CREATE DATABASE {} TEMPLATE template0').format(sql.Identifier(dbname))
    if settings.get('encoding'):
        statement += sql.SQL(' ENCODING {}').format(sql.Literal(settings['encoding']))
    if settings.get('lc_collate') and settings.get('lc_ctype'):
        statement += sql.SQL(' LC_COLLATE {} LC_CTYPE {}').format(sql.Literal(settings['lc_collate']),
                                                                  sql.Literal(settings['lc_ctype']))
    provider = settings.get('locale_provider')
    if provider in ('icu', 'builtin') and settings.get('locale'):
        # The option names are keywords of the statement, chosen from these two, never from the manifest.
        statement += sql.SQL(' LOCALE_PROVIDER {} {} {}').format(
            sql.SQL(provider), sql.SQL('ICU_LOCALE' if provider == 'icu' else 'BUILTIN_LOCALE'),
            sql.Literal(settings['locale']))
    if owner:
        statement += sql.SQL(' OWNER {}').format(sql.Identifier(owner))
    conn.execute(statement)


SETTING_KEYS = ('encoding', 'lc_collate', 'lc_ctype', 'locale_provider', 'locale')


def _settings_text(settings):
    return ', '.join('%s %s' % (key, settings[key]) for key in SETTING_KEYS if settings.get(key)) or 'template0\'s'


def _probe(conn, target, settings, owner):
    """Create (and drop at once) a throwaway database exactly as the restore will create its
    own: None when that works, else the psycopg error. A CREATE DATABASE is the one check that
    knows what this server accepts (locales installed, encoding and locale agreeing, owner)."""
    name = probe_name(target)
    try:
        _create(conn, name, settings, owner)
    except psycopg.Error as exc:
        return exc
    _drop(conn, name)
    return None


def _seen_here(conn, settings, owner):
    """A database with these very settings is on this server already (the usual case: a backup
    of this server), template0 is here to copy, and the owner role exists: the create will work
    without a probe."""
    if sorted(settings) != sorted(('encoding', 'lc_collate', 'lc_ctype')):
        return False  # an ICU or builtin locale is proven by the probe
    return conn.execute(
        "SELECT EXISTS (SELECT FROM pg_database WHERE pg_encoding_to_char(encoding) = %s AND datcollate = %s "
        "AND datctype = %s) AND EXISTS (SELECT FROM pg_database WHERE datname = 'template0') "
        "AND (%s::text IS NULL OR EXISTS (SELECT FROM pg_roles WHERE rolname = %s))",
        (settings['encoding'], settings['lc_collate'], settings['lc_ctype'], owner, owner)).fetchone()[0]


def _creatable_settings(conn, request, backup, owner, actions):
    """The settings the restored database is created with, proven on this server before anything
    changes: the backup's database's, or - when this server cannot create those and the user
    allows it with locale_fallback - this server's own (template0's)."""
    recorded = backup.manifest.get('database_settings') or {}
    settings = dict((key, recorded[key]) for key in SETTING_KEYS if recorded.get(key))
    if _seen_here(conn, settings, owner):
        return settings
    error = _probe(conn, request.target_db, settings, owner)
    if error is None:
        return settings
    if not settings or error.sqlstate not in LOCALE_UNAVAILABLE:
        raise LifeboatError('this server cannot create database %r (%s) as the restore needs to: %s; nothing was '
                            'changed' % (request.target_db, _settings_text(settings), first_line(error)))
    here = conn.execute("SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
                        "WHERE datname = 'template0'").fetchone()
    own = dict(encoding=here[0], lc_collate=here[1], lc_ctype=here[2])
    if not request.locale_fallback:
        raise LifeboatError('backup %s comes from a database with %s, which this server cannot create (%s); install '
                            'that locale here, or set locale_fallback: true to create database %r with this server\'s '
                            '%s instead; nothing was changed'
                            % (backup.backup_id, _settings_text(settings), first_line(error), request.target_db,
                               _settings_text(own)))
    second = _probe(conn, request.target_db, {}, owner)
    if second is not None:
        raise LifeboatError('this server cannot create database %r: %s; nothing was changed'
                            % (request.target_db, first_line(second)))
    actions.append('Backup %s comes from a database with %s, which this server cannot create (%s): database %r is '
                   'created with this server\'s %s instead (locale_fallback: true)'
                   % (backup.backup_id, _settings_text(settings), first_line(error),
                      request.target_db, _settings_text(own)))
    return {}


def _pg_restore(ctx, tool, archive, request, manifest):
    """pg_restore a custom or directory archive, or feed a plain dump to psql."""
    if manifest.get('format') == 'plain':
        # No --dbname: psql would parse a name holding '=' as a connection string; PGDATABASE is
        # only ever a name.
        argv = [tool.path, '--no-password', '--quiet', '--no-psqlrc', '--set=ON_ERROR_STOP=1', '--single-transaction']
        decompress = gzip.open if manifest['compression']['method'] == 'gzip' else None
        with PassFile(ctx.options, ctx.tmpdir) as passfile:
            env = ctx.options.tool_environment(request.target_db, passfile)
            if request.role:
                # psql has no --role: the session starts as the role instead (spaces escaped for PGOPTIONS).
                env['PGOPTIONS'] = '-c role=%s' % request.role.replace('\\', '\\\\').replace(' ', '\\ ')
            stream_from_file(argv, env, archive, 'psql into database %r' % request.target_db, decompress)
        return
    # pg_restore only connects with --dbname, which it parses as a connection string: the name goes
    # in one, quoted (connection.dbname_argument).
    argv = [tool.path, '--no-password', '--exit-on-error', '--verbose', dbname_argument(request.target_db),
            '--jobs=%d' % request.jobs]
    if request.no_owner:
        argv.append('--no-owner')
    if request.no_acl:
        argv.append('--no-acl')
    if request.role:
        argv.append('--role=%s' % request.role)
    argv.append(archive)
    progress = request.progress

    def follow(line):
        # pg_restore --verbose names each table as it starts loading its rows.
        loading = RESTORE_TABLE_LINE.search(line) if progress is not None else None
        if loading:
            progress.state['tables_done'] = (progress.state.get('tables_done') or 0) + 1
            progress.update(current_table=loading.group(1))
    with PassFile(ctx.options, ctx.tmpdir) as passfile:
        env = ctx.options.tool_environment(request.target_db, passfile)
        run_following_stderr(argv, env, 'pg_restore into database %r' % request.target_db, follow)


def _run_checks(ctx, dbname, request, facts, actions):
    """The operator's own SQL checks on the restored database; any failure stops the restore."""
    if not request.checks:
        return
    _phase(request, 'checking')
    conn = ctx.options.connect(dbname)
    try:
        results = facts['custom_checks'] = [r for check in request.checks for r in run_check(conn, check)]
    finally:
        conn.close()
    failed = [r for r in results if r['status'] == FAILED and r['severity'] == 'error']
    if failed:
        raise LifeboatError('check(s) failed on the restored copy: %s'
                            % '; '.join('%s (%s)' % (r['name'], r['summary']) for r in failed))
    actions.append('Ran %d check(s) on database %r: all passed (%s)'
                   % (len(results), dbname, ', '.join(r['name'] for r in results)))


def _finish(ctx, dbname, request, facts, actions):
    """Grants, materialized views and sequences in the restored database (post_restore.py)."""
    if not (request.grants or request.refresh_matviews or request.repair_sequences):
        return
    _phase(request, 'finishing')
    conn = ctx.options.connect(dbname)
    try:
        if request.grants:
            facts['grants_applied'] = apply_grants(conn, request.grants)
            actions.extend('Ran %s in database %r' % (grant, dbname) for grant in facts['grants_applied'])
        if request.refresh_matviews:
            facts['matviews_refreshed'] = refresh_matviews(conn)
            actions.append('Refreshed %d materialized view(s) in database %r%s'
                           % (len(facts['matviews_refreshed']), dbname,
                              ': ' + ', '.join(facts['matviews_refreshed']) if facts['matviews_refreshed'] else ''))
        if request.repair_sequences:
            facts['sequences_repaired'] = repair_sequences(conn)
            actions.extend('Moved sequence %s from %s to %s, the largest %s' % (
                item['sequence'], item['last_value'], item['max_value'], item['column'])
                for item in facts['sequences_repaired'])
    finally:
        conn.close()


def _after_failure(ctx, conn, request, owner, safety, reason, done):
    """Undo what a failed `new` or `replace` did (`done`: dropped the database, created it), and
    nothing else: a database this run did not create is never dropped. Every step tolerates what
    already happened, and whatever fails here still ends in one line naming the cause and the
    safety backup."""
    target = request.target_db
    if not done['dropped'] and not done['created']:
        return LifeboatError('%s; database %r was not touched' % (reason, target))
    if safety is None:
        try:
            if done['created']:
                _drop(conn, target)
        except psycopg.Error as second:
            reason = '%s; dropping the half-restored database %r also failed (%s)' % (reason, target, first_line(second))
        else:
            reason = '%s; the half-restored database %r was dropped' % (reason, target)
        if done['dropped']:
            return LifeboatError('%s; with safety_backup: false there was no safety backup, so what database %r held '
                                 'before this restore is lost: restore a backup of it (mode=new)' % (reason, target))
        return LifeboatError(reason)
    try:
        if done['created']:
            _drop(conn, target)
        # The safety backup's own settings: those of the database that was here, so they work here.
        _create(conn, target, safety['manifest'].get('database_settings') or {}, owner)
        rollback = RestoreRequest(target, safety['backup_id'], target, 'replace',
                                  jobs=request.jobs, no_owner=False, no_acl=False)
        safety_archive = os.path.join(safety['backup_path'], safety['manifest']['archive'])
        tool = ctx.finder.find('pg_restore', dump_major(safety['manifest']),
                               'putting back safety backup %s' % safety['backup_id'])
        _pg_restore(ctx, tool, safety_archive, rollback, safety['manifest'])
    except (LifeboatError, psycopg.Error, IOError, OSError) as second:
        return LifeboatError('%s; putting back the previous contents also failed (%s): restore safety backup %s '
                             'by hand (mode=replace, backup: %s)' % (reason, failure_line(second), safety['backup_id'],
                                                                     safety['backup_id']),
                             safety_backup_id=safety['backup_id'])
    return LifeboatError('%s; database %r was put back as it was from safety backup %s'
                         % (reason, target, safety['backup_id']), safety_backup_id=safety['backup_id'])


def _analyze(ctx, dbname):
    conn = ctx.options.connect(dbname)
    try:
        conn.execute('ANALYZE')
    finally:
        conn.close()
