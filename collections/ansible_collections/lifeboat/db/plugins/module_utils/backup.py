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

from ansible_collections.lifeboat.db.plugins.module_utils.catalog import data_tables, database_settings, exact_row_counts
from ansible_collections.lifeboat.db.plugins.module_utils.connection import (
    PassFile, psycopg, server_major, server_version_string)
from ansible_collections.lifeboat.db.plugins.module_utils.dump_options import DumpOptions
from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.manifest import FORMAT_VERSION, describe_files, walk_files
from ansible_collections.lifeboat.db.plugins.module_utils.repository import (
    iso, new_backup_id, utc_now, validate_retention)
from ansible_collections.lifeboat.db.plugins.module_utils.progress import Progress
from ansible_collections.lifeboat.db.plugins.module_utils.stream import run_following_stderr, stream_to_file
from ansible_collections.lifeboat.db.plugins.module_utils.tools import run_tool

GLOBALS_NAME = 'globals.sql'


class BackupRequest(object):
    def __init__(self, database, kind='full', options=None, keep_last=None, keep_days=None, with_globals=False,
                 lock_timeout=0):
        validate_retention(keep_last, keep_days)
        self.database = database
        self.kind = kind
        self.options = options or DumpOptions()
        self.keep_last = keep_last
        self.keep_days = keep_days
        self.with_globals = with_globals
        self.lock_timeout = lock_timeout


def take_backup(ctx, request):
    """Dump `request.database` into the repository; returns the module result facts.

    `ctx` carries the task's connection options, tool finder, repository, run_command,
    check_mode and tmpdir (see task.TaskContext).
    """
    started = utc_now()
    clock = time.monotonic()
    opts = request.options
    conn = ctx.options.connect(request.database, autocommit=False)
    try:
        version = server_version_string(conn)
        needed = max(server_major(conn), opts.min_pg_dump_major)
        why = 'the server is PostgreSQL %s' % version
        if opts.min_pg_dump_major > server_major(conn):
            why += ' and compress_method %s needs pg_dump %d or newer' % (opts.compress_method, opts.min_pg_dump_major)
        pg_dump = ctx.finder.find('pg_dump', needed, why)
        pg_dumpall = ctx.finder.find('pg_dumpall', server_major(conn), why) if request.with_globals else None
        backup_id = new_backup_id(started)
        target_dir = os.path.join(ctx.repository.database_dir(request.database), backup_id)
        if ctx.check_mode:
            doomed = ctx.repository.retention_plan(request.database, request.kind, request.keep_last,
                                                   request.keep_days, incoming=1)
            return dict(changed=True, backup_id=backup_id, backup_path=target_dir, pg_dump=pg_dump.as_dict(),
                        deleted=[b.backup_id for b in doomed],
                        actions=['Would dump database %r (%s format) with %s %s into %s'
                                 % (request.database, opts.format, pg_dump.name, pg_dump.version, target_dir)]
                        + ['Would delete backup %s (retention)' % b.backup_id for b in doomed])
        with ctx.repository.lock(request.database, request.lock_timeout, 'a %s backup' % request.kind) as lock:
            leftovers = ctx.repository.remove_leftovers(request.database)
            staging = ctx.repository.begin(request.database, backup_id)
            progress = Progress(ctx.repository.database_dir(request.database), backup_id, None)
            try:
                counts, settings, streamed = _dump_in_snapshot(ctx, conn, pg_dump, request, staging, progress)
                if pg_dumpall:
                    progress.update(force=True, phase='dumping globals')
                    streamed.update(_dump_globals(ctx, pg_dumpall, staging))
                progress.update(force=True, phase='verifying')
                verified_at = _verify_archive(ctx, opts, staging, request.database, pg_dump.major)
                finished = utc_now()
                files = describe_files(staging, walk_files(staging), known=streamed)
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
                    host=socket.gethostname(), started_at=iso(started), finished_at=iso(finished),
                    verified_at=verified_at, checksums='streamed' if opts.streamed else 'after-write',
                    duration_seconds=round(time.monotonic() - clock, 3), files=files, row_counts=counts,
                    total_rows=sum(counts.values()), database_settings=settings)
                final = ctx.repository.commit(request.database, staging, manifest)
                progress.update(force=True, phase='done', bytes=sum(f['size'] for f in files))
            except BaseException as exc:
                ctx.repository.abort(staging)
                progress.update(force=True, phase='failed', error=getattr(exc, 'msg', None) or str(exc))
                raise
            deleted = ctx.repository.apply_retention(request.database, request.kind, request.keep_last,
                                                     request.keep_days)
    finally:
        conn.close()
    size = sum(f['size'] for f in files)
    archive = [f for f in files if f['name'] == manifest['archive']]
    return dict(changed=True, backup_id=backup_id, backup_path=final, manifest=manifest, size=size,
                sha256=archive[0]['sha256'] if archive else None, duration_seconds=manifest['duration_seconds'],
                row_counts=counts, deleted=deleted, pg_dump=pg_dump.as_dict(), lock_waited_seconds=lock.waited,
                actions=['Removed %s left by an interrupted run' % name for name in leftovers]
                + ['Dumped database %r (%d rows in %d tables, %s format, %d bytes) with %s %s into %s'
                   % (request.database, manifest['total_rows'], len(counts), opts.format, size, pg_dump.name,
                      pg_dump.version, final)]
                + ['Deleted backup %s (retention)' % old_id for old_id in deleted])


def _dump_in_snapshot(ctx, conn, pg_dump, request, staging, progress):
    opts = request.options
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    snapshot = conn.execute('SELECT pg_export_snapshot()').fetchone()[0]
    settings = database_settings(conn, request.database)
    archive = os.path.join(staging, opts.archive_name(request.database))
    selected = [t for t in data_tables(conn) if opts.selects(*t)]
    progress.update(force=True, phase='dumping', tables_total=len(selected))
    streamed = {}
    old_umask = os.umask(0o077)
    try:
        with PassFile(ctx.options, ctx.tmpdir) as passfile:
            env = ctx.options.tool_environment(request.database, passfile)
            what = 'pg_dump of database %r' % request.database
            if opts.streamed:
                argv = opts.pg_dump_argv(pg_dump.path, snapshot, None)
                streamed[opts.archive_name(request.database)] = stream_to_file(
                    argv, env, archive, what, progress=lambda written: progress.update(bytes=written))
            else:
                # --verbose names each table as pg_dump starts on it: that is the progress we report.
                argv = opts.pg_dump_argv(pg_dump.path, snapshot, archive) + ['--verbose']
                run_following_stderr(argv, env, what, lambda line: progress.tool_line(line, archive))
    finally:
        os.umask(old_umask)
    progress.update(force=True, phase='counting rows')
    counts = dict((name, rows) for name, rows in exact_row_counts(conn).items()
                  if opts.selects(*name.split('.', 1)))
    conn.rollback()
    return counts, settings, streamed


def _dump_globals(ctx, pg_dumpall, staging):
    """Roles (with their password hashes) and tablespaces: secrets, so 0600 like every file."""
    old_umask = os.umask(0o077)
    try:
        with PassFile(ctx.options, ctx.tmpdir) as passfile:
            env = ctx.options.tool_environment('postgres', passfile)
            digest = stream_to_file([pg_dumpall.path, '--globals-only', '--no-password'], env,
                                    os.path.join(staging, GLOBALS_NAME), 'pg_dumpall --globals-only')
    finally:
        os.umask(old_umask)
    return {GLOBALS_NAME: digest}


def _verify_archive(ctx, opts, staging, database, dump_major):
    """Prove the archive reads back before it becomes a backup: pg_restore --list for custom and
    directory archives. Plain dumps were checksummed while written."""
    if opts.format in ('custom', 'directory'):
        pg_restore = ctx.finder.find('pg_restore', dump_major, 'reading back an archive of pg_dump %d' % dump_major)
        run_tool(ctx.run_command, [pg_restore.path, '--list', os.path.join(staging, opts.archive_name(database))],
                 None, 'reading back the new archive of database %r' % database)
    return iso(utc_now())
