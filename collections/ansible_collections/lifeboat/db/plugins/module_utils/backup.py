# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking a backup set: pg_dump into the repository, with a manifest that proves it.

The row counts in the manifest are taken in the very snapshot pg_dump reads (pg_export_snapshot
+ pg_dump --snapshot), so they describe exactly what the dump holds, even while writers run.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import socket
import time

from ansible_collections.lifeboat.db.plugins.module_utils.catalog import database_settings, exact_row_counts
from ansible_collections.lifeboat.db.plugins.module_utils.connection import (
    PassFile, psycopg, server_major, server_version_string)
from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.manifest import FORMAT_VERSION, describe_files
from ansible_collections.lifeboat.db.plugins.module_utils.repository import iso, new_backup_id, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.tools import run_tool


class BackupRequest(object):
    def __init__(self, database, kind='full', compress=6, keep_last=None):
        if keep_last is not None and keep_last < 1:
            raise LifeboatError('keep_last must be at least 1: lifeboat never deletes the newest backup')
        self.database = database
        self.kind = kind
        self.compress = compress
        self.keep_last = keep_last


def dump_file_name(database):
    return '%s.dump' % database


def take_backup(ctx, request):
    """Dump `request.database` into the repository; returns the module result facts.

    `ctx` carries the task's connection options, tool finder, repository, run_command,
    check_mode and tmpdir (see TaskContext in the modules).
    """
    started = utc_now()
    clock = time.monotonic()
    conn = ctx.options.connect(request.database, autocommit=False)
    try:
        version = server_version_string(conn)
        pg_dump = ctx.finder.find('pg_dump', server_major(conn), 'the server is PostgreSQL %s' % version)
        backup_id = new_backup_id(started)
        target_dir = os.path.join(ctx.repository.database_dir(request.database), backup_id)
        if ctx.check_mode:
            doomed = ctx.repository.retention_plan(request.database, request.kind, request.keep_last, incoming=1)
            return dict(changed=True, backup_id=backup_id, backup_path=target_dir, pg_dump=pg_dump.as_dict(),
                        deleted=[b.backup_id for b in doomed],
                        actions=['Would dump database %r with %s %s into %s' % (request.database, pg_dump.name,
                                                                                  pg_dump.version, target_dir)]
                        + ['Would delete backup %s (keep_last=%s)' % (b.backup_id, request.keep_last) for b in doomed])
        staging = ctx.repository.begin(request.database, backup_id)
        try:
            counts, settings = _dump_in_snapshot(ctx, conn, pg_dump, request, staging)
            finished = utc_now()
            files = describe_files(staging, sorted(os.listdir(staging)))
            manifest = dict(
                format_version=FORMAT_VERSION, backup_id=backup_id, kind=request.kind, database=request.database,
                format='custom', compression=dict(method='gzip', level=request.compress),
                server_version=version, pg_dump_version=pg_dump.version, pg_dump_path=pg_dump.path,
                host=socket.gethostname(), started_at=iso(started), finished_at=iso(finished),
                duration_seconds=round(time.monotonic() - clock, 3), files=files, row_counts=counts,
                total_rows=sum(counts.values()), database_settings=settings)
            final = ctx.repository.commit(request.database, staging, manifest)
        except BaseException:
            ctx.repository.abort(staging)
            raise
    finally:
        conn.close()
    deleted = []
    for old in ctx.repository.retention_plan(request.database, request.kind, request.keep_last):
        ctx.repository.delete(old)
        deleted.append(old.backup_id)
    dump = files[0]
    return dict(changed=True, backup_id=backup_id, backup_path=final, manifest=manifest, size=dump['size'],
                sha256=dump['sha256'], duration_seconds=manifest['duration_seconds'], row_counts=counts,
                deleted=deleted, pg_dump=pg_dump.as_dict(),
                actions=['Dumped database %r (%d rows in %d tables) with %s %s into %s'
                         % (request.database, manifest['total_rows'], len(counts), pg_dump.name, pg_dump.version, final)]
                + ['Deleted backup %s (keep_last=%s)' % (old_id, request.keep_last) for old_id in deleted])


def _dump_in_snapshot(ctx, conn, pg_dump, request, staging):
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    snapshot = conn.execute('SELECT pg_export_snapshot()').fetchone()[0]
    settings = database_settings(conn, request.database)
    argv = [pg_dump.path, '--format=custom', '--compress=%d' % request.compress, '--no-password',
            '--snapshot=%s' % snapshot, '--file=%s' % os.path.join(staging, dump_file_name(request.database))]
    old_umask = os.umask(0o077)
    try:
        with PassFile(ctx.options, ctx.tmpdir) as passfile:
            env = ctx.options.tool_environment(request.database, passfile)
            run_tool(ctx.run_command, argv, env, 'pg_dump of database %r' % request.database)
    finally:
        os.umask(old_umask)
    counts = exact_row_counts(conn)
    conn.rollback()
    return counts, settings
