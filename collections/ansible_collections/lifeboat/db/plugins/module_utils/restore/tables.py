# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mode=tables: restoring chosen tables into the live database (seed 002's table restore).

Seed 002 runs `pg_restore --table=X --clean`, which restores the table's definition and rows but
silently skips its indexes, constraints, triggers and sequence values. Here the archive's table of
contents (`pg_restore --list`) is filtered into a `--use-list` that holds everything belonging to
each table, and pg_restore's SQL (`--file=-`) is streamed into ONE psql transaction between our own
preamble and epilogue:

- a table missing in the live database is recreated with its columns, defaults, owned sequences
  (and their values), rows, constraints, indexes, triggers, policies, comments and grants, plus
  the foreign keys to and from tables that exist;
- a table that exists keeps its live definition and everything depending on it (views, foreign
  keys from other tables): its rows are deleted and the backup's loaded, and its owned sequences
  are set to the backup's values.

Triggers are off for the whole load (session_replication_role = replica), so foreign keys are
checked by us, in both directions, before COMMIT, and the row counts against the manifest. COMMIT
is the last line we write and only after pg_restore finished cleanly: any failure leaves every
table as it was.

Which tables are recreated or replaced, and which archive entries that takes, is decided by
table_plan.py; this file runs that plan.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.backup.pg_dump import BackupRequest, take_backup
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import database_exists, sql
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import quoted_key
from ansible_collections.lifeboat.db.plugins.module_utils.backup.options import DumpOptions
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.toc import parse_toc
from ansible_collections.lifeboat.db.plugins.module_utils.restore.container import ArchiveInside, in_container
from ansible_collections.lifeboat.db.plugins.module_utils.restore.table_plan import (
    HostArchive, LiveDatabase, TablesPlan, describe_archive, display, write_list)


def restore_tables(ctx, conn, request, backup, pg_restore, archive, facts, actions, timings):
    """mode=tables (see the module docstring). `conn` is the maintenance connection: it holds the
    advisory lock (restore._restore) that keeps a swap, another restore or a backup of the same
    database away."""
    _check_restorable(conn, request, backup)
    # In a container the archive is copied in once, for both of pg_restore's reads of it.
    source = ArchiveInside(ctx, archive, request.warnings) if in_container(ctx) else HostArchive(ctx, archive)
    with source:
        _restore_tables(ctx, source, request, backup, pg_restore, facts, actions, timings)


def _restore_tables(ctx, source, request, backup, pg_restore, facts, actions, timings):
    # The table of contents check_backup read (and proved readable) before anything changed.
    toc = parse_toc(backup.toc)
    objects = describe_archive(ctx, source, pg_restore, toc, backup.backup_id)
    target = ctx.options.connect(request.target_db)
    try:
        plan = TablesPlan(request.tables, toc, objects, LiveDatabase(target), backup.manifest, backup.backup_id)
        facts['tables'] = plan.described()
        facts['safety_backup_id'] = None
        if ctx.check_mode:
            actions.extend(_preview(request, backup, plan, target))
            return
        if plan.replaced and request.safety_backup:
            _take_safety_backup(ctx, request, plan, target, facts, actions, timings)
        step = time.monotonic()
        _restore_in_one_transaction(ctx, source, request, backup, pg_restore, plan, target, facts)
        timings['restore_seconds'] = round(time.monotonic() - step, 3)
        actions.extend(plan.skipped)
        actions.extend(_sentences(plan, backup.backup_id, would=False))
        actions.append('Checked the foreign keys to and from the restored table(s) and their row counts against '
                       'the manifest of backup %s before committing' % backup.backup_id)
        if request.analyze:
            _analyze(target, plan, actions, timings)
    finally:
        target.close()


def _check_restorable(conn, request, backup):
    manifest = backup.manifest
    if manifest.get('format') not in ('custom', 'directory'):
        raise LifeboatError('backup %s is a %s dump; mode=tables needs a custom or directory archive (pg_restore '
                            'picks single tables out of those only)' % (backup.backup_id, manifest.get('format')))
    if not database_exists(conn, request.target_db):
        raise LifeboatError('database %r does not exist; mode=tables restores into an existing database (use '
                            'mode=new to restore the whole backup into a new one)' % request.target_db)


def _preview(request, backup, plan, target):
    """Check mode's sentences: the plan only, nothing taken or loaded."""
    said = []
    if plan.replaced and request.safety_backup:
        said.append('Would take a safety backup (kind pre-restore) of table(s) %s'
                    % ', '.join(display(k) for k in _with_live_partitions(plan, target)))
    return said + _sentences(plan, backup.backup_id, would=True)


def _take_safety_backup(ctx, request, plan, target, facts, actions, timings):
    """A pre-restore backup of the tables whose rows are about to be replaced."""
    kept = _with_live_partitions(plan, target)
    safety = take_backup(ctx, BackupRequest(
        request.target_db, kind='pre-restore', local=True,
        options=DumpOptions(tables=[quoted_key(s, t) for s, t in kept])))
    facts['safety_backup_id'] = safety['backup_id']
    timings['safety_backup_seconds'] = safety['duration_seconds']
    actions.append('Took safety backup %s of table(s) %s' % (safety['backup_id'],
                                                            ', '.join(display(k) for k in kept)))


def _restore_in_one_transaction(ctx, source, request, backup, pg_restore, plan, target, facts):
    """_load, with a failure told in one line: psql's and our checks' prefixes removed, and the
    safety backup named that still holds the tables as they were."""
    try:
        _load(ctx, source, request, backup, pg_restore, plan, target)
    except LifeboatError as exc:
        detail = re.sub(r'\s+', ' ', re.sub(r'^psql:[^:]*:\d+: ', '', exc.msg.split(' failed: ', 1)[-1]))
        detail = detail.replace('ERROR: lifeboat: ', '')
        kept = facts['safety_backup_id']
        raise LifeboatError('restoring table(s) %s from backup %s into database %r failed: %s; nothing was '
                            'changed (the transaction was rolled back)%s'
                            % (', '.join(display(k) for k in request.tables), backup.backup_id,
                               request.target_db, detail, '; safety backup %s is kept' % kept if kept else ''),
                            safety_backup_id=kept)


def _analyze(target, plan, actions, timings):
    step = time.monotonic()
    for key in plan.keys:
        target.execute(sql.SQL('ANALYZE {}.{}').format(sql.Identifier(key[0]), sql.Identifier(key[1])))
    timings['analyze_seconds'] = round(time.monotonic() - step, 3)
    actions.append('Analyzed %d table(s)' % len(plan.keys))


def _with_live_partitions(plan, target):
    """The tables whose rows change, with every live partition of a replaced partitioned table
    (DELETE on it empties partitions the backup may not know)."""
    live = LiveDatabase(target)
    kept = []
    for key in plan.replaced:
        for member in [key] + (live.partitions(key) if plan.kinds[key] == 'p' else []):
            if member not in kept:
                kept.append(member)
    return kept


def _sentences(plan, backup_id, would):
    said = []
    for key in plan.keys:
        rows = '%s row(s)' % plan.rows[key] if plan.rows[key] is not None else 'its rows'
        if key in plan.recreated:
            said.append('%s table %s from backup %s with its indexes, constraints, triggers, comments, owned '
                        'sequences and %s' % ('Would recreate' if would else 'Recreated', display(key), backup_id,
                                              rows))
        else:
            said.append("%s the rows of table %s with backup %s's %s, keeping its definition and what depends on "
                        "it, and set its owned sequences to the backup's values"
                        % ('Would replace' if would else 'Replaced', display(key), backup_id, rows))
    return said


def _load(ctx, source, request, backup, pg_restore, plan, target):
    """One psql transaction: our preamble, pg_restore's SQL for the chosen entries, our checks, COMMIT."""
    listing = write_list(ctx, plan.entries + plan.late)
    psql = ctx.finder.find('psql', pg_restore.major, 'running the SQL of pg_restore %s' % pg_restore.version)
    restore_argv = [pg_restore.path, '--file=-']
    if request.no_owner:
        restore_argv.append('--no-owner')
    if request.no_acl:
        restore_argv.append('--no-acl')
    # The database comes from PGDATABASE: a name given as --dbname would be parsed as a
    # connection string if it held '='.
    psql_argv = [psql.path, '--no-psqlrc', '--no-password', '--quiet', '--set=ON_ERROR_STOP=1']
    preamble = _preamble(plan).as_string(target).encode('utf-8')
    epilogue = _epilogue(plan, backup, target).as_string(target).encode('utf-8')

    def script():
        yield preamble
        for block in source.sql_blocks(restore_argv, listing, 'pg_restore of backup %s' % backup.backup_id):
            yield block
        yield epilogue

    try:
        source.apply(psql_argv, request.target_db, script(), 'psql into database %r' % request.target_db)
    finally:
        os.unlink(listing)


def _ident(key):
    return sql.SQL('{}.{}').format(sql.Identifier(key[0]), sql.Identifier(key[1]))


def _preamble(plan):
    # Replaced tables are locked against writers (readers keep seeing the old rows until COMMIT)
    # and emptied with DELETE, not TRUNCATE: TRUNCATE refuses tables other tables' foreign keys
    # point at and would block readers for the whole load. With triggers off, the DELETE does not
    # cascade into the tables that reference these.
    statements = [sql.SQL('BEGIN'), sql.SQL('SET LOCAL session_replication_role = replica')]
    if plan.replaced:
        statements.append(sql.SQL('LOCK TABLE {} IN EXCLUSIVE MODE').format(
            sql.SQL(', ').join(_ident(key) for key in plan.replaced)))
        for key in plan.replaced:
            # A partitioned table is emptied whole (partitions the backup does not know too);
            # a plain table ONLY, so tables inheriting from it keep their rows.
            only = sql.SQL('') if plan.kinds[key] == 'p' else sql.SQL('ONLY ')
            statements.append(sql.SQL('DELETE FROM {}{}').format(only, _ident(key)))
    return sql.SQL('').join(s + sql.SQL(';\n') for s in statements)


# Orphans of every foreign key from or to the restored tables (and their partition ancestors,
# where a partition's foreign keys are declared). MATCH SIMPLE skips a row with any NULL key
# column, MATCH FULL only a row whose key columns are all NULL.
FOREIGN_KEY_CHECK = """
DECLARE
    rels oid[];
    fk record;
    orphans bigint;
BEGIN
    -- pg_partition_ancestors() returns nothing for a table that is not a partition.
    rels := ARRAY(SELECT r.rel FROM unnest(@tables@::regclass[]) r(rel)
                  UNION SELECT a.relid FROM unnest(@tables@::regclass[]) r(rel), pg_partition_ancestors(r.rel) a);
    FOR fk IN
        SELECT c.conname, c.conrelid::regclass AS child, c.confrelid::regclass AS parent,
               (SELECT string_agg(format('c.%I IS NOT NULL', a.attname),
                                  CASE c.confmatchtype WHEN 'f' THEN ' OR ' ELSE ' AND ' END)
                  FROM unnest(c.conkey) k(attnum)
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS present,
               (SELECT string_agg(format('p.%I = c.%I', pa.attname, ca.attname), ' AND ')
                  FROM unnest(c.conkey, c.confkey) k(ck, pk)
                  JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.ck
                  JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.pk) AS matches
          FROM pg_constraint c
         WHERE c.contype = 'f' AND c.conparentid = 0 AND (c.conrelid = ANY (rels) OR c.confrelid = ANY (rels))
         ORDER BY c.conname
    LOOP
        EXECUTE format('SELECT count(*) FROM %s c WHERE (%s) AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)',
                       fk.child, fk.present, fk.parent, fk.matches) INTO orphans;
        IF orphans > 0 THEN
            RAISE EXCEPTION 'lifeboat: foreign key % on % has % row(s) without a match in %; restore % too, or '
                'fix those rows first', fk.conname, fk.child, orphans, fk.parent, fk.parent;
        END IF;
    END LOOP;
END
"""

ROW_COUNT_CHECK = """
    SELECT count(*) INTO n FROM ONLY {table};
    IF n <> {expected} THEN
        RAISE EXCEPTION 'lifeboat: % holds % row(s) after the load, the manifest of backup % says %',
            {name}, n, {backup}, {expected};
    END IF;
"""


def _epilogue(plan, backup, conn):
    """The checks that decide whether we COMMIT, then COMMIT. DO takes its body as a string
    literal, so quoting the body with sql.Literal needs no dollar quotes."""
    tables = sql.SQL('ARRAY[{}]').format(sql.SQL(', ').join(
        sql.Literal(_ident(key).as_string(conn)) for key in plan.keys)).as_string(conn)
    bodies = [FOREIGN_KEY_CHECK.replace('@tables@', tables)]
    counts = backup.manifest.get('row_counts') or {}
    loaded = set((e.schema, e.tag) for e in plan.entries if e.desc == 'TABLE DATA')
    checks = [sql.SQL(ROW_COUNT_CHECK).format(table=_ident(key), expected=sql.Literal(counts[display(key)]),
                                              name=sql.Literal(display(key)), backup=sql.Literal(backup.backup_id))
              for key in plan.keys if key in loaded and display(key) in counts]
    if checks:
        bodies.append(sql.SQL('DECLARE n bigint; BEGIN {} END').format(sql.SQL('').join(checks)).as_string(conn))
    statements = [sql.SQL('DO {}').format(sql.Literal(body)) for body in bodies] + [sql.SQL('COMMIT')]
    return sql.SQL('\n') + sql.SQL('').join(s + sql.SQL(';\n') for s in statements)
