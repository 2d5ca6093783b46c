# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retiring old partitions without losing them: detach, archive into the backup repository as a
set of kind `partition-archive` (and to S3), prove the archive, and only then drop - and the way
back: an archived partition restored and attached again.

Each step can be interrupted and is finished by the next run: the partition is marked (a table
comment, partition.RetiredMark) before it is detached, the archive's id is added to the mark
once the set is committed, and the table is dropped only in a transaction that holds it locked
and finds exactly the rows the archive was proven to hold.

With `container` (issue 20) the container's own tools do it: its pg_dump writes the archive through
the Docker API into the repository here (backup/pg_dump.take_backup), and its pg_restore reads the
archive back through its standard input - the table of contents, the rows, the restore of a
partition - so the repository stays on the Docker host and no copy is left in the container.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.lifeboat.db.plugins.module_utils.backup.pg_dump import BackupRequest, take_backup
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import quoted_key, table_key
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import PassFile, first_line, psycopg, sql
from ansible_collections.lifeboat.db.plugins.module_utils.backup.options import DumpOptions
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.partition.bounds import Bounds, RetiredMark, qualified, shown
from ansible_collections.lifeboat.db.plugins.module_utils.partition.table import Detached
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.container import tools as container_tools
from ansible_collections.lifeboat.db.plugins.module_utils.container.feed import run_on_file
from ansible_collections.lifeboat.db.plugins.module_utils.restore import container as restore_container
from ansible_collections.lifeboat.db.plugins.module_utils.pg.stream import tool_output
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import run_tool
from ansible_collections.lifeboat.db.plugins.module_utils.storage.verification import (
    archive_path, check_backup, dump_major)

ARCHIVE_KIND = 'partition-archive'
COPY_START = re.compile(br'^COPY .* FROM stdin;$')


def retire(conn, table, part, actions):
    """Mark a partition, then detach it (CONCURRENTLY where PostgreSQL allows it)."""
    try:
        if part.owner not in table.trusted_owners:
            # Its mark would not be trusted once it is detached: refuse now, not after the detach.
            raise ValueError('%s; give it to one of them (ALTER TABLE ... OWNER TO) and run again'
                             % table.untrusted_owner(part.owner))
        bounds = Bounds.from_text(table.key_type, part.bound)
    except ValueError as exc:
        raise LifeboatError('cannot retire partition %s: %s' % (part.key, exc))
    comment = table_comment(conn, part.schema, part.name)
    previous = RetiredMark.parse(comment)  # an interrupted run's: the table's own comment is in it
    mark = RetiredMark(table.key, part.schema, part.name, part.oid, bounds.record(), iso(utc_now()),
                       previous.comment if previous else comment)
    mark.write(conn, part.schema, part.name)
    parent, child = qualified(table.schema, table.name), qualified(part.schema, part.name)
    if part.detach_pending:
        conn.execute(sql.SQL('ALTER TABLE {} DETACH PARTITION {} FINALIZE').format(parent, child))
        how = 'Finished detaching'
    elif table.major >= 14 and table.default is None:
        # Readers and writers of the parent go on while it detaches; not possible with a default partition.
        conn.execute(sql.SQL('ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY').format(parent, child))
        how = 'Detached (concurrently)'
    else:
        conn.execute(sql.SQL('ALTER TABLE {} DETACH PARTITION {}').format(parent, child))
        how = 'Detached'
    actions.append('%s partition %s (%s) from %s' % (how, part.key, part.bound, table.key))
    return Detached(part.schema, part.name, mark, bounds, part.oid)


def table_comment(conn, schema, name):
    return conn.execute("SELECT obj_description(%s::regclass, 'pg_class')", (quoted_key(schema, name),)).fetchone()[0]


def archive(ctx, table, detached, offsite, lock_timeout):
    """Dump one detached table into the repository as a partition-archive set (take_backup's result)."""
    return take_backup(ctx, BackupRequest(
        ctx.params['db'], kind=ARCHIVE_KIND, options=DumpOptions(tables=[quoted_key(detached.schema,
                                                                                        detached.name)]),
        lock_timeout=lock_timeout, offsite=offsite,
        annotations=dict(partition=dict(detached.bounds.record(), version=2, parent=table.key, schema=detached.schema,
                                        name=detached.name, oid=detached.oid, column=table.column,
                                        retired_at=detached.mark.retired_at))))


def find_archive(ctx, table, schema, name, backup_id=None, oid=None):
    """The newest partition-archive set of schema.name of this table (or the one named); with
    `oid`, not one its manifest says was taken of another table."""
    def partition(backup):
        recorded = backup.manifest.get('partition')
        return recorded if isinstance(recorded, dict) else {}
    found = [b for b in ctx.repository.backups(ctx.params['db'], kind=ARCHIVE_KIND)
             if (partition(b).get('parent'), partition(b).get('schema'), partition(b).get('name')) == (table.key, schema,
                                                                                                        name)
             and (backup_id is None or b.backup_id == backup_id)
             and (oid is None or partition(b).get('oid') in (None, oid))]
    return found[0] if found else None


def archived_bounds(table, backup, key):
    """The bounds a partition-archive's manifest records, read as values of the table's key."""
    recorded = backup.manifest['partition']
    try:
        if recorded.get('column', table.column) != table.column:
            raise ValueError('it records key column %s but %s is keyed on %s'
                             % (shown(recorded.get('column')), table.key, table.column))
        return Bounds.from_record(table.key_type, recorded)
    except ValueError as exc:
        raise LifeboatError('backup %s cannot be restored as partition %s: %s; nothing was restored'
                            % (backup.backup_id, key, exc))


def prove_archive(ctx, backup, schema, name):
    """Checksums, table of contents, and the rows in the archive itself counted against the
    manifest: the archive holds exactly what was counted in the dump's snapshot. Returns the rows."""
    if restore_container.in_container(ctx):
        restore_container.check_backup(ctx, backup)
    else:
        check_backup(ctx, backup)
    key = table_key(schema, name)
    counts = backup.manifest.get('row_counts')
    expected = counts.get(key) if isinstance(counts, dict) else None
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise LifeboatError('backup %s does not hold table %s; keep the table and check the repository'
                            % (backup.backup_id, key))
    counted = count_archived_rows(ctx, backup, schema, name)
    if counted != expected:
        raise LifeboatError('backup %s holds %d rows of %s but its manifest counted %d; the table is kept'
                            % (backup.backup_id, counted, key, expected))
    return counted


def count_archived_rows(ctx, backup, schema, name):
    """Rows of one table's COPY data in an archive, read back by pg_restore (one line per row:
    COPY text format escapes newlines inside values)."""
    pg_restore = ctx.finder.find('pg_restore', dump_major(backup.manifest), 'backup %s was written by pg_dump %s'
                                 % (backup.backup_id, backup.manifest['pg_dump_version']))
    argv = [pg_restore.path, '--data-only', '--schema=%s' % schema, '--table=%s' % name, '--file=-']
    what = 'reading the rows of %s back from backup %s' % (name, backup.backup_id)
    counter = _RowCounter()
    if restore_container.in_container(ctx):
        run_on_file(ctx.execer, argv, archive_path(backup), what, on_stdout=counter.feed)
    else:
        for block in tool_output(argv + [archive_path(backup)], {}, what):
            counter.feed(block)
    return counter.rows


class _RowCounter(object):
    """Counts the rows of the COPY blocks in pg_restore's output as it arrives."""

    def __init__(self):
        self.rows, self.inside, self.pending = 0, False, b''

    def feed(self, block):
        lines = (self.pending + block).split(b'\n')
        self.pending = lines.pop()
        for line in lines:
            if self.inside:
                if line == b'\\.':
                    self.inside = False
                else:
                    self.rows += 1
            elif COPY_START.match(line):
                self.inside = True


def drop_archived(conn, detached, rows, backup_id):
    """Drop a detached table only while it is locked and holds exactly the archived rows."""
    target = qualified(detached.schema, detached.name)
    with conn.transaction():
        conn.execute(sql.SQL('LOCK TABLE {} IN ACCESS EXCLUSIVE MODE').format(target))
        live = conn.execute(sql.SQL('SELECT count(*) FROM {}').format(target)).fetchone()[0]
        if live != rows:
            raise LifeboatError('%s holds %d rows but backup %s holds %d (rows were written to it after it was '
                                'archived); it was not dropped - archive it again or drop it by hand'
                                % (detached.key, live, backup_id, rows))
        try:
            conn.execute(sql.SQL('DROP TABLE {}').format(target))
        except psycopg.Error as exc:
            raise LifeboatError('cannot drop %s: %s; it is archived in backup %s and kept until that is fixed'
                                % (detached.key, first_line(exc), backup_id))


def attach(conn, table, schema, name, bounds, comment):
    """Attach a table as a partition again with its recorded bounds (checked values, written as
    literals), and give back its comment."""
    target = qualified(schema, name)
    with conn.transaction():
        conn.execute(sql.SQL('ALTER TABLE {} ATTACH PARTITION {} {}').format(
            qualified(table.schema, table.name), target, bounds.sql()))
        conn.execute(sql.SQL('COMMENT ON TABLE {} IS {}').format(target, sql.Literal(comment)))


def restore_archive(ctx, backup, schema, name):
    """pg_restore one archived table into the database, in one transaction."""
    pg_restore = ctx.finder.find('pg_restore', dump_major(backup.manifest), 'backup %s was written by pg_dump %s'
                                 % (backup.backup_id, backup.manifest['pg_dump_version']))
    db = ctx.params['db']
    # The whole archive: it holds this one table with its own indexes, constraints and grants.
    # pg_restore restores into a database only when given --dbname, and reads a --dbname holding
    # `=` as connection options (`x host=...` would restore onto another server). An empty one
    # makes libpq take the name from PGDATABASE (tool_environment), which is only ever a name.
    argv = [pg_restore.path, '--single-transaction', '--exit-on-error', '--no-password', '--dbname=']
    what = 'pg_restore of %s from backup %s' % (table_key(schema, name), backup.backup_id)
    if restore_container.in_container(ctx):
        # Through stdin, in one transaction: input that ends early fails pg_restore, and nothing is kept.
        run_on_file(ctx.execer, argv, archive_path(backup), what,
                    environment=container_tools.container_tool_environment(ctx.options, db))
        return pg_restore
    with PassFile(ctx.options, ctx.tmpdir) as passfile:
        run_tool(ctx.run_command, argv + [archive_path(backup)], ctx.options.tool_environment(db, passfile), what)
    return pg_restore
