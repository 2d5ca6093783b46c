# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking a backup set: pg_dump into the repository, with a manifest that proves it.

The row counts in the manifest are taken in the very snapshot pg_dump reads (pg_export_snapshot
+ pg_dump --snapshot), so they describe exactly what the dump holds, even while writers run.
One run at a time per database (the repository lock); leftovers of killed runs are removed
under that lock.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import socket
import time

from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import (
    data_tables, database_settings, database_size, exact_row_counts)
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import (
    PassFile, psycopg, server_major, server_version_string)
from ansible_collections.lifeboat.db.plugins.module_utils.backup.options import DumpOptions
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError, error_text
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import (
    FORMAT_VERSION, MANIFEST_NAME, describe_files, walk_files)
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import (
    dated_ahead, new_backup_id, selection_key, validate_retention)
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.common.progress import Progress, size_of
from ansible_collections.lifeboat.db.plugins.module_utils.pg.stream import (
    run_following_stderr, stream_to_file, stream_to_s3)
from ansible_collections.lifeboat.db.plugins.module_utils.restore.swap import TARGET_LOCK_DB, try_target_lock
from ansible_collections.lifeboat.db.plugins.module_utils.pg.toc import read_toc
from ansible_collections.lifeboat.db.plugins.module_utils.backup.offsite import copy_offsite
from ansible_collections.lifeboat.db.plugins.module_utils.container import archive as container_archive
from ansible_collections.lifeboat.db.plugins.module_utils.container import tools as container_tools
from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import LineTail
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import last_error_line

GLOBALS_NAME = 'globals.sql'
# A safety backup is taken by the restore that holds the per-target lock (swap.try_target_lock), of the
# database it is about to replace: it must not wait for that lock.
UNGUARDED_KINDS = ('pre-restore',)


class BackupRequest(object):
    def __init__(self, database, kind='full', options=None, keep_last=None, keep_days=None, with_globals=False,
                 lock_timeout=0, offsite=None, local=False, annotations=None):
        validate_retention(keep_last, keep_days)
        self.offsite = offsite
        # local: into the local repository (or cache) even when the task's repository is in S3.
        self.local = local
        self.database = database
        self.kind = kind
        self.options = options or DumpOptions()
        self.keep_last = keep_last
        self.keep_days = keep_days
        self.with_globals = with_globals
        self.lock_timeout = lock_timeout
        # Facts the caller records in the manifest besides the dump's own (e.g. a partition's bounds).
        self.annotations = annotations or {}
        self.restore_waited = 0.0
        # What went wrong beside the backup without spoiling it (a scratch folder left in a container).
        self.warnings = []


def take_backup(ctx, request):
    """Dump `request.database` into the repository; returns the module result facts.

    `ctx` carries the task's connection options, tool finder, repository, run_command,
    check_mode and tmpdir (see common/runner.TaskContext). With `ctx.store` (an s3:// repository) the
    dump streams straight to S3; `ctx.repository` is then the local cache, which holds the lock
    and the progress file.
    """
    started = utc_now()
    clock = time.monotonic()
    sink = _sink(ctx, request)
    conn = ctx.options.connect(request.database, autocommit=False)
    try:
        version = server_version_string(conn)
        pg_dump, pg_dumpall = _find_tools(ctx, request, conn, version)
        backup_id = new_backup_id(started)
        if ctx.check_mode:
            return _plan(ctx, request, sink, pg_dump, backup_id)
        guard, warnings = _restore_guard(ctx, request)
        try:
            with ctx.repository.lock(request.database, request.lock_timeout, 'a %s backup' % request.kind) as lock:
                facts = _locked_backup(ctx, request, conn, pg_dump, pg_dumpall, version, sink, backup_id, started,
                                       clock)
        finally:
            if guard is not None:
                guard.close()
    finally:
        conn.close()
    return _result(request, facts, pg_dump, lock, warnings)


def _sink(ctx, request):
    """Where the dump is written: S3 itself for an s3:// repository (unless request.local), else on disk.
    With container, an s3:// set is written into the cache first and uploaded when it is whole (StagedS3Sink)."""
    if ctx.store is not None and not request.local:
        if getattr(ctx, 'container', None) is not None:
            return StagedS3Sink(ctx.repository, ctx.store)
        sink = S3Sink(ctx.store)
    else:
        sink = LocalSink(ctx.repository)
    if sink.streams_only and request.options.format == 'directory':
        raise LifeboatError('format %s cannot be streamed to S3 (pg_dump writes it as a folder); use format custom '
                            'or plain, or a local repository with offsite_url' % request.options.format)
    return sink


def _find_tools(ctx, request, conn, version):
    """(pg_dump, pg_dumpall or None): at least as new as the server and the compression need."""
    opts = request.options
    needed = max(server_major(conn), opts.min_pg_dump_major)
    why = 'the server is PostgreSQL %s' % version
    if opts.min_pg_dump_major > server_major(conn):
        why += ' and compress_method %s needs pg_dump %d or newer' % (opts.compress_method, opts.min_pg_dump_major)
    pg_dump = ctx.finder.find('pg_dump', needed, why)
    pg_dumpall = ctx.finder.find('pg_dumpall', server_major(conn), why) if request.with_globals else None
    return pg_dump, pg_dumpall


def _plan(ctx, request, sink, pg_dump, backup_id):
    """Check mode: what a run would dump, copy and delete; nothing is written."""
    opts = request.options
    target = sink.location(request.database, backup_id)
    if ctx.store is not None and not request.local:
        ctx.store.check_bucket()
    doomed = sink.retention_plan(request.database, request.kind, request.keep_last, request.keep_days,
                                 incoming=1, incoming_group=selection_key(opts.selection()))
    result = dict(changed=True, backup_id=backup_id, backup_path=target, pg_dump=pg_dump.as_dict(),
                  deleted=[b.backup_id for b in doomed],
                  actions=['Would dump database %r (%s format) with %s %s into %s'
                           % (request.database, opts.format, pg_dump.name, pg_dump.version, target)]
                  + ['Would delete backup %s (retention)' % b.backup_id for b in doomed])
    if request.offsite:
        store = request.offsite.store
        store.check_bucket()
        remote = store.retention_plan(request.database, request.kind, request.offsite.keep_last,
                                      request.offsite.keep_days, incoming=1,
                                      incoming_group=selection_key(opts.selection()))
        result['offsite'] = dict(url=store.set_url(request.database, backup_id),
                                 deleted=[b.backup_id for b in remote])
        result['actions'] += (['Would copy it to %s' % result['offsite']['url']]
                              + ['Would delete backup %s from %s (retention)' % (b.backup_id, store.url)
                                 for b in remote])
    return result


def _restore_guard(ctx, request):
    """A backup of a database a restore is rebuilding would capture it half-restored (and then
    verify and become `latest`): wait up to lock_timeout for the restore's advisory lock, shared,
    on a connection held for the whole dump. Returns (that connection or None, warnings); the
    seconds waited are kept in request.restore_waited."""
    if request.kind in UNGUARDED_KINDS:
        return None, []
    try:
        guard = ctx.options.connect(TARGET_LOCK_DB)
    except LifeboatError as exc:
        return None, ['could not check whether a restore of database %r is running (%s); the backup went ahead'
                      % (request.database, exc.msg)]
    start = time.monotonic()
    try:
        while not try_target_lock(guard, request.database, shared=True):
            if time.monotonic() - start >= request.lock_timeout:
                raise LifeboatError('database %r is being restored by another run; a backup now would hold a '
                                    'half-restored database - wait for the restore to finish or raise lock_timeout '
                                    '(%ss); no backup was taken' % (request.database, request.lock_timeout))
            time.sleep(0.5)
    except BaseException:
        guard.close()
        raise
    request.restore_waited = round(time.monotonic() - start, 3)
    return guard, []


def _locked_backup(ctx, request, conn, pg_dump, pg_dumpall, version, sink, backup_id, started, clock):
    """Under the repository lock: sweep leftovers, dump, prove the archive, commit the set with its
    manifest; then retention and the offsite copy. Returns what _result reports."""
    opts = request.options
    leftovers = sink.remove_leftovers(request.database)
    sink.begin(request.database, backup_id)
    if sink.streams_only and opts.format == 'custom':
        sink.toc_reader = ctx.finder.find('pg_restore', pg_dump.major, 'reading back an archive of pg_dump %d'
                                          % pg_dump.major).path
    progress = Progress(ctx.repository.database_dir(request.database), backup_id, None)
    try:
        counts, settings = _dump_in_snapshot(ctx, conn, pg_dump, request, sink, progress)
        if pg_dumpall:
            progress.update(force=True, phase='dumping globals')
            _dump_globals(ctx, pg_dumpall, sink)
        progress.update(force=True, phase='verifying')
        verified_at = _verify_archive(ctx, opts, sink, request, pg_dump.major)
        finished = utc_now()
        files = sink.files()
        manifest = _manifest(ctx, request, conn, sink, pg_dump, version, backup_id, files, counts, settings,
                             dict(started=started, finished=finished, verified_at=verified_at, clock=clock))
        final = sink.commit(request.database, manifest)
        progress.update(force=True, phase='done', bytes=sum(f['size'] for f in files))
    except BaseException as exc:
        sink.abort()
        progress.update(force=True, phase='failed', error=getattr(exc, 'msg', None) or str(exc))
        raise
    # The set is committed: from here on, what goes wrong is reported beside its id.
    retention = _retention(sink, request, backup_id)
    offsite = copy_offsite(ctx, request, final, manifest, progress) if request.offsite else None
    return dict(backup_id=backup_id, final=final, manifest=manifest, files=files, counts=counts,
                leftovers=leftovers, retention=retention, offsite=offsite)


def _manifest(ctx, request, conn, sink, pg_dump, version, backup_id, files, counts, settings, times):
    """The set's manifest.json: what was dumped, how, when, and the proof (checksums, row counts)."""
    opts = request.options
    container = ctx.container_facts() if getattr(ctx, 'container', None) is not None else None
    if request.with_globals:
        for entry in files:
            entry['secret'] = entry['name'] == GLOBALS_NAME
    manifest = dict(
        format_version=FORMAT_VERSION, backup_id=backup_id, kind=request.kind, database=request.database,
        format=opts.format, archive=opts.archive_name(request.database),
        compression=dict(method=opts.compress_method, level=opts.compress), jobs=opts.jobs,
        selection=opts.selection(), globals=GLOBALS_NAME if request.with_globals else None,
        contains_secrets=bool(request.with_globals),
        server_version=version, pg_dump_version=pg_dump.version, pg_dump_path=pg_dump.path,
        host=socket.gethostname(), started_at=iso(times['started']), finished_at=iso(times['finished']),
        verified_at=times['verified_at'],
        checksums='streamed' if opts.streamed or sink.streams_only or container else 'after-write',
        duration_seconds=round(time.monotonic() - times['clock'], 3), files=files, row_counts=counts,
        total_rows=sum(counts.values()), database_settings=settings,
        database_size=database_size(conn, request.database))
    if container:
        # Which server's tools wrote it: the set restores anywhere, but the evidence names where it came from.
        manifest['container'] = container
    manifest.update(request.annotations)
    return manifest


def _retention(sink, request, backup_id):
    """Apply retention after a commit, never failing the task: what it could not do is returned
    (errors), with the sets dated beyond now that it left alone (ahead)."""
    errors, deleted, ahead = [], [], []
    if request.keep_last is None and request.keep_days is None:
        return dict(deleted=deleted, errors=errors, ahead=ahead)
    try:
        # The set just taken is protected: a set dated in the future never makes it "old".
        deleted = sink.apply_retention(request.database, request.kind, request.keep_last, request.keep_days,
                                       protect=(backup_id,), errors=errors)
        ahead = [b.backup_id for b in dated_ahead(sink.backups(request.database, request.kind))]
    except (LifeboatError, IOError, OSError) as exc:
        errors.append(error_text(exc))
    return dict(deleted=deleted, errors=errors, ahead=ahead)


def _result(request, facts, pg_dump, lock, warnings):
    opts = request.options
    backup_id, final, manifest, files, counts = (facts['backup_id'], facts['final'], facts['manifest'],
                                                facts['files'], facts['counts'])
    leftovers, offsite, retention = facts['leftovers'], facts['offsite'], facts['retention']
    deleted = retention['deleted']
    size = sum(f['size'] for f in files)
    archive = [f for f in files if f['name'] == manifest['archive']]
    result = dict(changed=True, backup_id=backup_id, backup_path=final, manifest=manifest, size=size,
                  sha256=archive[0]['sha256'] if archive else None, duration_seconds=manifest['duration_seconds'],
                  row_counts=counts, deleted=deleted, pg_dump=pg_dump.as_dict(), lock_waited_seconds=lock.waited,
                  restore_waited_seconds=request.restore_waited,
                  actions=['Removed %s left by an interrupted run' % name for name in leftovers]
                  + ['Dumped database %r (%d rows in %d tables, %s format, %d bytes) with %s %s into %s'
                     % (request.database, manifest['total_rows'], len(counts), opts.format, size, pg_dump.name,
                        pg_dump.version, final)]
                  + ['Deleted backup %s (retention)' % old_id for old_id in deleted])
    warnings = list(warnings) + request.warnings
    if retention['errors']:
        result['retention_errors'] = retention['errors']
        warnings.append('backup %s is complete at %s, but retention could not finish: %s'
                        % (backup_id, final, '; '.join(retention['errors'])))
    if retention['ahead']:
        result['dated_ahead'] = retention['ahead']
        warnings.append('backup set(s) %s of database %r are dated in the future (a clock ran ahead?); retention '
                        'keeps them and never counts them as the newest' % (', '.join(retention['ahead']),
                                                                            request.database))
    if offsite is not None:
        result['offsite'] = offsite
        result['actions'].extend(offsite.pop('actions'))
        if offsite.get('error'):
            warnings.append('backup %s is complete at %s but its offsite copy failed: %s'
                            % (backup_id, final, offsite['error']))
        if offsite.get('retention_errors'):
            warnings.append('backup %s was copied to %s, but retention there could not finish: %s'
                            % (backup_id, offsite['url'], '; '.join(offsite['retention_errors'])))
    if warnings:
        result['warnings'] = warnings
    return result


class LocalSink(object):
    """Writes a set into the local repository: staging folder, manifest last, rename."""

    streams_only = False

    def __init__(self, repository):
        self.repository = repository
        self.staging = None
        self.known = {}

    def location(self, database, backup_id):
        return os.path.join(self.repository.database_dir(database), backup_id)

    def remove_leftovers(self, database):
        return self.repository.remove_leftovers(database)

    def begin(self, database, backup_id):
        self.staging = self.repository.begin(database, backup_id)

    def path(self, name):
        return os.path.join(self.staging, name)

    def write_stream(self, argv, env, name, what, progress=None, execer=None):
        if execer is not None:
            # The tool runs in the container; its stdout comes here through the engine, hashed as it arrives.
            self.known[name] = container_tools.stream_to_file(execer, argv, env, self.path(name), what,
                                                              progress=progress)
            return
        self.known[name] = stream_to_file(argv, env, self.path(name), what, progress=progress)

    def copy_out_of(self, execer, source):
        """A folder in the container copied into the staging folder, every file hashed on the way."""
        for entry in container_archive.copy_out(execer, source, self.staging):
            self.known[entry['name']] = entry['sha256']

    def list_archive(self, ctx, pg_restore, name, what, warnings):
        if getattr(ctx, 'execer', None) is not None:
            if os.path.isdir(self.path(name)):
                container_tools.read_toc_dir(ctx.execer, pg_restore, self.path(name), what, warnings)
                return
            # The container's own pg_restore reads the archive here through its stdin: no copy in the container.
            container_tools.read_toc(ctx.execer, pg_restore, self.path(name), what)
            return
        read_toc(ctx, pg_restore, self.path(name), what)

    def files(self):
        return describe_files(self.staging, walk_files(self.staging), known=self.known)

    def commit(self, database, manifest):
        return self.repository.commit(database, self.staging, manifest)

    def abort(self):
        self.repository.abort(self.staging)

    def retention_plan(self, *args, **kwargs):
        return self.repository.retention_plan(*args, **kwargs)

    def apply_retention(self, *args, **kwargs):
        return self.repository.apply_retention(*args, **kwargs)

    def backups(self, database, kind):
        return self.repository.backups(database, kind=kind)


class S3Sets(object):
    """What the two sinks of an s3:// repository share: the set's URL, S3's retention and listing,
    and removing a set that was begun but never got its manifest (a set with its manifest is a
    backup and is never deleted here)."""

    def location(self, database, backup_id):
        return self.store.set_url(database, backup_id)

    def delete_uncommitted(self):
        if self.backup_id and not self.committed:
            try:
                self.store.delete_prefix(self.store.set_key(self.database, self.backup_id, ''))
            except LifeboatError:
                pass  # the next run sweeps sets without a manifest

    def retention_plan(self, *args, **kwargs):
        return self.store.retention_plan(*args, **kwargs)

    def apply_retention(self, *args, **kwargs):
        return self.store.apply_retention(*args, **kwargs)

    def backups(self, database, kind):
        return self.store.backups(database, kind=kind)


class StagedS3Sink(S3Sets, LocalSink):
    """An s3:// repository with container: the set is written as into a local repository - into the
    staging folder of the cache (O(cache_dir)), where the container's output arrives, a
    directory-format dump is copied out, and the archive is read back - then uploaded to S3 when it
    is whole (files, then the manifest last, as an offsite copy is), and the local copy removed.
    Retention and the listing of sets are S3's."""

    def __init__(self, repository, store):
        LocalSink.__init__(self, repository)
        self.store = store
        self.database = self.backup_id = None
        self.committed = False

    def remove_leftovers(self, database):
        return LocalSink.remove_leftovers(self, database) + self.store.remove_leftovers(database)

    def begin(self, database, backup_id):
        self.store.check_bucket()
        LocalSink.begin(self, database, backup_id)
        self.database, self.backup_id = database, backup_id

    def commit(self, database, manifest):
        self.store.upload_set(database, self.backup_id, self.staging, manifest)
        # In S3 with its manifest: the set is a backup - abort (a Ctrl-C before the task ends, a cache
        # copy that cannot be removed) must not delete it - and the cache's copy served its purpose.
        self.committed = True
        self.repository.abort(self.staging)
        return self.location(database, self.backup_id)

    def abort(self):
        LocalSink.abort(self)
        self.delete_uncommitted()


class S3Sink(S3Sets):
    """Streams a set straight into S3: each file uploaded as pg_dump writes it, manifest last.

    A custom archive written to a pipe has no data offsets, so pg_restore reads it sequentially
    (no parallel restore of that one file); its content is the same.
    """

    streams_only = True

    def __init__(self, store):
        self.store = store
        self.database = self.backup_id = None
        self.sent = []
        self.toc_reader = None  # a pg_restore that reads the archive's table of contents as it streams
        self.toc_errors = {}
        self.committed = False

    def remove_leftovers(self, database):
        return self.store.remove_leftovers(database)

    def begin(self, database, backup_id):
        self.database, self.backup_id = database, backup_id
        self.store.check_bucket()

    def write_stream(self, argv, env, name, what, progress=None):
        key = self.store.set_key(self.database, self.backup_id, name)
        reader = self.toc_reader if name.endswith('.dump') else None
        sent = stream_to_s3(argv, env, self.store, key, what, progress, toc_reader=reader)
        if reader:
            self.toc_errors[name] = sent['toc_error']
        self.sent.append(dict(name=name, size=sent['size'], sha256=sent['sha256'], s3_checksum=sent['checksum']))

    def list_archive(self, ctx, pg_restore, name, what, warnings):
        if name not in self.toc_errors:
            raise LifeboatError('%s: the archive was not read back while it streamed' % what)
        if self.toc_errors[name]:
            raise LifeboatError('%s failed: %s' % (what, self.toc_errors[name]))

    def files(self):
        return sorted(self.sent, key=lambda f: f['name'])

    def commit(self, database, manifest):
        self.store.confirm_set(database, self.backup_id, self.sent)
        self.store.put_json(self.store.set_key(database, self.backup_id, MANIFEST_NAME), manifest)
        # With its manifest the set is a backup: abort (a Ctrl-C before the task ends) must not delete it.
        self.committed = True
        return self.location(database, self.backup_id)

    def abort(self):
        self.delete_uncommitted()


def _dump_in_snapshot(ctx, conn, pg_dump, request, sink, progress):
    opts = request.options
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    snapshot = conn.execute('SELECT pg_export_snapshot()').fetchone()[0]
    settings = database_settings(conn, request.database)
    name = opts.archive_name(request.database)
    selected = [t for t in data_tables(conn) if opts.selects(*t)]
    progress.update(force=True, phase='dumping', tables_total=len(selected))
    old_umask = os.umask(0o077)
    execer = getattr(ctx, 'execer', None)
    try:
        if execer is not None:
            env = container_tools.container_tool_environment(ctx.options, request.database)
            if opts.format == 'directory':
                _dump_directory_in_container(execer, pg_dump, snapshot, env, request, sink, progress)
                return _counted(conn, opts, progress), settings
            # In the container, custom archives are streamed out too: written to a pipe, they have no data
            # offsets, so pg_restore finds each table's data by reading on (the content is the same).
            argv = opts.pg_dump_argv(pg_dump.path, snapshot, None)
            sink.write_stream(argv, env, name, 'pg_dump of database %r' % request.database,
                              progress=lambda written: progress.update(bytes=written), execer=execer)
            return _counted(conn, opts, progress), settings
        with PassFile(ctx.options, ctx.tmpdir) as passfile:
            env = ctx.options.tool_environment(request.database, passfile)
            what = 'pg_dump of database %r' % request.database
            if opts.streamed or sink.streams_only:
                argv = opts.pg_dump_argv(pg_dump.path, snapshot, None)
                sink.write_stream(argv, env, name, what, progress=lambda written: progress.update(bytes=written))
            else:
                # --verbose names each table as pg_dump starts on it: that is the progress we report.
                archive = sink.path(name)
                argv = opts.pg_dump_argv(pg_dump.path, snapshot, archive) + ['--verbose']
                run_following_stderr(argv, env, what, lambda line: progress.tool_line(line, archive))
    finally:
        os.umask(old_umask)
    return _counted(conn, opts, progress), settings


def _dump_directory_in_container(execer, pg_dump, snapshot, env, request, sink, progress):
    """A directory-format dump (pg_dump --jobs) in the container: written into a new private folder
    there (mktemp -d), copied out into the staging folder (get_archive; the engine's tar is checked
    member by member, each file written 0600 and hashed), and the folder removed in the container
    whatever happened. A failure leaves the staging folder to the caller, which removes it."""
    opts = request.options
    name = opts.archive_name(request.database)
    what = 'pg_dump of database %r' % request.database
    scratch = container_archive.scratch_dir(execer, what)
    try:
        inside = scratch + '/' + name
        # --verbose names each table as pg_dump starts on it: the progress file follows it.
        tail = LineTail(lambda line: progress.tool_line(line, sink.path(name)))
        result = execer.run(opts.pg_dump_argv(pg_dump.path, snapshot, inside) + ['--verbose'], environment=env,
                            on_stderr=tail.feed)
        tail.close()
        if result.exit_code != 0:
            if result.exit_code in (126, 127):
                raise LifeboatError(execer.failure(pg_dump.path, what, result))
            raise LifeboatError('%s failed in container %r (exit code %d): %s'
                                % (what, execer.container.name, result.exit_code,
                                   last_error_line('\n'.join(tail.lines), 'no error message')))
        progress.update(force=True, phase='copying out of the container')
        sink.copy_out_of(execer, inside)
        progress.update(force=True, bytes=size_of(sink.path(name)))
    finally:
        problem = container_archive.remove_in(execer, scratch)
        if problem:
            request.warnings.append('%s; remove it by hand (docker exec %s rm -rf %s)'
                                    % (problem, execer.container.name, scratch))


def _counted(conn, opts, progress):
    """The exact row counts in the snapshot pg_dump read (conn's transaction), which then ends."""
    progress.update(force=True, phase='counting rows')
    counts = exact_row_counts(conn, opts.selects)
    conn.rollback()
    return counts


def _dump_globals(ctx, pg_dumpall, sink):
    """Roles (with their password hashes) and tablespaces: secrets, so 0600 like every file."""
    old_umask = os.umask(0o077)
    try:
        if getattr(ctx, 'execer', None) is not None:
            env = container_tools.container_tool_environment(ctx.options, 'postgres')
            sink.write_stream([pg_dumpall.path, '--globals-only', '--no-password'], env, GLOBALS_NAME,
                              'pg_dumpall --globals-only', execer=ctx.execer)
            return
        with PassFile(ctx.options, ctx.tmpdir) as passfile:
            env = ctx.options.tool_environment('postgres', passfile)
            sink.write_stream([pg_dumpall.path, '--globals-only', '--no-password'], env, GLOBALS_NAME,
                              'pg_dumpall --globals-only')
    finally:
        os.umask(old_umask)


def _verify_archive(ctx, opts, sink, request, dump_major):
    """Prove the archive reads back before it becomes a backup: pg_restore --list for custom and
    directory archives (from S3 itself when streamed there). Plain dumps were checksummed while
    written."""
    if opts.format in ('custom', 'directory'):
        pg_restore = ctx.finder.find('pg_restore', dump_major, 'reading back an archive of pg_dump %d' % dump_major)
        sink.list_archive(ctx, pg_restore.path, opts.archive_name(request.database),
                          'reading back the new archive of database %r' % request.database, request.warnings)
    return iso(utc_now())
