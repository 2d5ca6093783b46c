# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Delta exports: the rows of busy tables changed since the last export, kept as backup sets.

A delta set is an ordinary backup set (kind `delta`, format `delta`) holding one gzip-compressed
COPY file per table and, in its manifest, the watermark of every table: the largest value of the
table's change column in the snapshot exported. The next export of the same chain (the deltas
following one full backup) continues from that watermark, so the repository alone says where to
go on - there is no state anywhere else.

Applying upserts the rows (INSERT ... ON CONFLICT (key) DO UPDATE), so re-exporting a row twice
is harmless; that is what makes the overlap window cheap. Rows deleted from the source are not in
any delta: a change column cannot tell that a row is gone.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import os
import re
import socket
import time

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import parse_name, quoted_key, table_key
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import (
    first_line, psycopg, server_version_string, sql)
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import feeding, furthest, is_behind
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import (
    FORMAT_VERSION, HashingWriter, describe_files, verify_files)
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import new_backup_id, validate_retention

ACTIONS = ('export', 'apply')
DELTA_FORMAT = 'delta'
CHUNK = 1024 * 1024

# Change column types, by format_type() name, with the SQL type to cast watermarks to. Only these
# fixed fragments ever reach the SQL text; the catalog's type name is a lookup key, never SQL.
TEMPORAL_TYPES = {'timestamp with time zone': 'timestamptz', 'timestamp without time zone': 'timestamp',
                  'date': 'date'}
INTEGER_TYPES = {'smallint': 'int2', 'integer': 'int4', 'bigint': 'int8'}

TABLE = """
SELECT n.nspname, c.relname, c.oid, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass(%s)
"""
TABLE_BY_NAME = """
SELECT c.oid, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s
"""
# The type without its modifier: timestamptz(3) is a timestamptz change column all the same.
COLUMNS = """
SELECT a.attname, format_type(a.atttypid, NULL), a.attidentity, a.attgenerated
  FROM pg_attribute a
 WHERE a.attrelid = %s::oid AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""
# Column sets of the unique indexes ON CONFLICT can use: no expressions, no predicate.
UNIQUE_KEYS = """
SELECT i.indisprimary,
       ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
  FROM pg_index i
 WHERE i.indrelid = %s::oid AND i.indisunique AND i.indexprs IS NULL AND i.indpred IS NULL
 ORDER BY i.indisprimary DESC, i.indexrelid
"""
FOREIGN_KEYS = """
SELECT conrelid, confrelid FROM pg_constraint
 WHERE contype = 'f' AND conrelid = ANY(%s::oid[]) AND confrelid = ANY(%s::oid[]) AND conrelid <> confrelid
"""
# User triggers that fire now; internal ones (foreign keys) are never touched.
ENABLED_TRIGGERS = """
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = %s::oid AND NOT tgisinternal AND tgenabled <> 'D'
 ORDER BY tgname
"""
ENABLE = {'O': 'ENABLE TRIGGER', 'A': 'ENABLE ALWAYS TRIGGER', 'R': 'ENABLE REPLICA TRIGGER'}


class Table(object):
    """One table as the catalog of a database describes it."""

    def __init__(self, conn, schema, name, oid, relkind):
        self.schema, self.name, self.oid = schema, name, oid
        if relkind not in ('r', 'p'):
            raise LifeboatError('%s is not a table (relkind %s); deltas export ordinary or partitioned tables'
                                % (self.qualified, relkind))
        self.columns = [tuple(row) for row in conn.execute(COLUMNS, (oid,)).fetchall()]
        self.types = dict((column[0], column[1]) for column in self.columns)

    @property
    def qualified(self):
        return table_key(self.schema, self.name)

    @property
    def identifier(self):
        return sql.Identifier(self.schema, self.name)

    def copyable_columns(self):
        # Generated columns are computed by the target itself and cannot be inserted.
        return [name for name, dummy, dummy2, generated in self.columns if not generated]

    def unique_keys(self, conn):
        rows = conn.execute(UNIQUE_KEYS, (self.oid,)).fetchall()
        return [(bool(primary), list(columns)) for primary, columns in rows]


def find_table(conn, name):
    """The table a user named (resolved like PostgreSQL resolves it: a bare name through the
    search_path), or a clear error."""
    # Read here, not by the server: a part over 63 bytes would be cut to another table's name.
    row = conn.execute(TABLE, (quoted_key(*parse_name(name)),)).fetchone()
    if row is None:
        raise LifeboatError('table %r does not exist in database %r; check the name (schema.table) in tables'
                            % (name, conn.info.dbname))
    return Table(conn, *row)


def table_by_name(conn, qualified_name, schema, name):
    row = conn.execute(TABLE_BY_NAME, (schema, name)).fetchone()
    if row is None:
        raise LifeboatError('table %s of the delta does not exist in database %r; restore the base backup into it first'
                            % (qualified_name, conn.info.dbname))
    return Table(conn, schema, name, *row)


# ----------------------------------------------------------------------------------------------
# export

class ExportRequest(object):
    def __init__(self, database, tables, base='latest', kind='delta', overlap_seconds=300, keep_last=None,
                 keep_days=None, lock_timeout=0, compress=6, base_kind='full'):
        self.base_kind = base_kind
        if not tables:
            raise LifeboatError('action=export needs tables: a list of {name, change_column} to export')
        if overlap_seconds < 0:
            raise LifeboatError('overlap_seconds must be 0 or more, got %d' % overlap_seconds)
        if not 0 <= compress <= 9:
            raise LifeboatError('compress is a gzip level from 0 to 9, got %d' % compress)
        validate_retention(keep_last, keep_days)
        self.database = database
        self.tables = tables
        self.base = base
        self.kind = kind
        self.overlap_seconds = overlap_seconds
        self.keep_last = keep_last
        self.keep_days = keep_days
        self.lock_timeout = lock_timeout
        self.compress = compress


class TablePlan(object):
    """What one export does with one table: its columns, key, and the rows after `since`."""

    def __init__(self, table, change_column, key, columns, change_type, cast):
        self.table = table
        self.change_column = change_column
        self.key = key
        self.columns = columns
        self.change_type = change_type
        self.cast = cast
        self.watermark = None   # where the previous export stopped (before the overlap)
        self.since = None       # what this export compares with (after the overlap)
        self.since_from = None
        self.inclusive = False
        self.time_zone = 'UTC'  # the database's, for a timestamp or date column's first watermark

    @property
    def name(self):
        return self.table.qualified


def plan_table(conn, spec):
    """Check one `tables` entry against the catalog and return its TablePlan."""
    table = find_table(conn, spec['name'])
    column = spec['change_column']
    if column not in table.types:
        raise LifeboatError('table %s has no column %r; set change_column to a column that records when a row '
                            'changed (e.g. updated_at)' % (table.qualified, column))
    column_type = table.types[column]
    if column_type in TEMPORAL_TYPES:
        change_type, cast = 'temporal', TEMPORAL_TYPES[column_type]
    elif column_type in INTEGER_TYPES:
        change_type, cast = 'integer', INTEGER_TYPES[column_type]
    else:
        raise LifeboatError('change_column %s of table %s is of type %s; use a timestamp, date or integer column'
                            % (column, table.qualified, column_type))
    unique_keys = table.unique_keys(conn)
    if spec.get('key'):
        key = list(spec['key'])
        missing = [name for name in key if name not in table.types]
        if missing:
            raise LifeboatError('key of table %s names unknown column(s) %s' % (table.qualified, ', '.join(missing)))
        if not any(set(columns) == set(key) for dummy, columns in unique_keys):
            raise LifeboatError('key (%s) of table %s is not the column set of a unique index; applying upserts '
                                'ON CONFLICT, which needs one' % (', '.join(key), table.qualified))
    else:
        primary = [columns for is_primary, columns in unique_keys if is_primary]
        if not primary:
            raise LifeboatError('table %s has no primary key; set key to the columns of one of its unique indexes'
                                % table.qualified)
        key = primary[0]
    columns = table.copyable_columns()
    plan = TablePlan(table, column, key, columns, change_type, cast)
    plan.inclusive = column_type == 'date'
    return plan


def delta_chain(repository, database, base_id, kind):
    """Delta sets that follow the full backup `base_id`, oldest first."""
    sets = [b for b in repository.backups(database, kind=kind) if b.manifest.get('format') == DELTA_FORMAT
            and (b.manifest.get('delta') or {}).get('base_backup_id') == base_id]
    return list(reversed(sets))


def resolve_base(repository, database, reference, kind='full'):
    base = repository.resolve(database, reference, kind=kind)
    if base.manifest.get('format') == DELTA_FORMAT:
        raise LifeboatError('base %s is a delta set; name the full backup the deltas follow' % base.backup_id)
    return base


def _previous_watermark(chain, plan):
    """The watermark of the newest delta of the chain that exported this table by this column."""
    for delta in reversed(chain):
        entry = delta.manifest['delta']['tables'].get(plan.name)
        if entry and entry.get('change_column') == plan.change_column:
            return entry['until'], 'delta %s' % delta.backup_id
    return None, None


def _set_since(conn, plan, spec, chain, base, overlap):
    watermark, source = _previous_watermark(chain, plan)
    if watermark is None and spec.get('since') not in (None, ''):
        watermark, source = spec['since'], 'the since option'
    if watermark is None:
        if plan.change_type == 'integer':
            raise LifeboatError('table %s has no watermark yet: no delta of base %s exported it, and an integer '
                                'change_column (%s) cannot start from the base backup\'s start time; set since for '
                                'this table (the value the base backup already holds)'
                                % (plan.name, base.backup_id, plan.change_column))
        watermark, source = base.manifest['started_at'], 'base %s started_at' % base.backup_id
        if plan.cast != 'timestamptz':
            # The base's start is an instant; a timestamp (or date) column holds the wall clock of
            # the sessions that wrote it, so the instant is read in the database's time zone, not
            # the pinned UTC: in New York, UTC would put the next hours' changes below it.
            watermark = conn.execute("SELECT (CAST(%s AS timestamptz) AT TIME ZONE %s)::text",
                                     (str(watermark), plan.time_zone)).fetchone()[0]
            source += ' in %s' % plan.time_zone
    cast = sql.SQL(plan.cast)
    try:
        with conn.transaction():
            if plan.change_type == 'integer':
                plan.watermark = conn.execute(sql.SQL('SELECT CAST(%s AS {})::text').format(cast),
                                              (str(watermark),)).fetchone()[0]
                plan.since = plan.watermark
            else:
                # Normalised to the column's own text form (the session runs in UTC).
                row = conn.execute(sql.SQL('SELECT CAST(CAST(%s AS timestamptz) AS {})::text, '
                                           'CAST(CAST(%s AS timestamptz) - make_interval(secs => %s) AS {})::text')
                                   .format(cast, cast), (str(watermark), str(watermark), overlap)).fetchone()
                plan.watermark, plan.since = row
    except psycopg.Error as exc:
        raise LifeboatError('since %r of table %s is not a valid %s: %s'
                            % (watermark, plan.name, plan.table.types[plan.change_column], first_line(exc)))
    plan.since_from = source


# Session settings of both ends of a delta: COPY's text form of dates, times, intervals and
# floats depends on them, so export and apply pin them (as pg_dump does) and the watermarks,
# PostgreSQL's text of a value, read the same whatever the server's or the role's defaults.
SESSION = (("TimeZone", "UTC"), ("DateStyle", "ISO"), ("IntervalStyle", "postgres"),
           ("extra_float_digits", "3"), ("client_encoding", "UTF8"))


def _pin_session(conn, local=False):
    for name, value in SESSION:
        conn.execute('SELECT set_config(%s, %s, %s)', (name, value, local))


def _plan_tables(ctx, request):
    """Connect in one REPEATABLE READ, read-only snapshot and check every `tables` entry."""
    conn = ctx.options.connect(request.database)
    try:
        # The time zone sessions of this database write local timestamps in (its default, or the
        # role's), read before the session is pinned to UTC.
        time_zone = conn.execute("SELECT current_setting('TimeZone')").fetchone()[0]
        _pin_session(conn)
        conn.autocommit = False
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        plans, seen = [], set()
        for spec in request.tables:
            plan = plan_table(conn, spec)
            plan.time_zone = time_zone
            if plan.name in seen:
                raise LifeboatError('table %s is listed twice in tables' % plan.name)
            seen.add(plan.name)
            plans.append((plan, spec))
    except BaseException:
        conn.close()
        raise
    return conn, plans


def export_delta(ctx, request):
    started = utc_now()
    clock = time.monotonic()
    repository = ctx.repository
    base = resolve_base(repository, request.database, request.base, request.base_kind)
    backup_id = new_backup_id(started)
    target_dir = os.path.join(repository.database_dir(request.database), backup_id)
    if ctx.check_mode:
        conn, plans = _plan_tables(ctx, request)
        try:
            chain = delta_chain(repository, request.database, base.backup_id, request.kind)
            for plan, spec in plans:
                _set_since(conn, plan, spec, chain, base, request.overlap_seconds)
        finally:
            conn.close()
        doomed = _retention(repository, request, chain, incoming=1)
        return dict(changed=True, backup_id=backup_id, backup_path=target_dir, base_backup_id=base.backup_id,
                    previous_delta_id=chain[-1].backup_id if chain else None,
                    tables=dict((p.name, dict(change_column=p.change_column, key=p.key, since=p.since,
                                              since_from=p.since_from)) for p, dummy in plans),
                    deleted=[b.backup_id for b in doomed],
                    actions=['Would export the rows of %s with %s %s %s (from %s) into %s'
                             % (p.name, p.change_column, '>=' if p.inclusive else '>', p.since, p.since_from,
                                target_dir) for p, dummy in plans]
                    + ['Would delete delta %s (retention)' % b.backup_id for b in doomed])
    # The lock comes before the snapshot: the watermark read from the chain is then the one
    # a concurrent export wrote before this snapshot was taken, never a later one.
    with repository.lock(request.database, request.lock_timeout, 'a %s export' % request.kind) as lock:
        leftovers = repository.remove_leftovers(request.database)
        chain = delta_chain(repository, request.database, base.backup_id, request.kind)
        conn, plans = _plan_tables(ctx, request)
        try:
            for plan, spec in plans:
                _set_since(conn, plan, spec, chain, base, request.overlap_seconds)
            staging = repository.begin(request.database, backup_id)
            try:
                entries, streamed = _export_in_snapshot(conn, plans, staging, request.compress)
                conn.rollback()
                finished = utc_now()
                files = describe_files(staging, sorted(streamed), known=streamed)
                manifest = dict(
                    format_version=FORMAT_VERSION, backup_id=backup_id, kind=request.kind, database=request.database,
                    format=DELTA_FORMAT, compression=dict(method='gzip', level=request.compress),
                    server_version=server_version_string(conn), host=socket.gethostname(),
                    started_at=iso(started), finished_at=iso(finished), verified_at=iso(finished),
                    checksums='streamed', duration_seconds=round(time.monotonic() - clock, 3), files=files,
                    # Not the tables' sizes (a delta holds changed rows only): nothing may
                    # compare a database's row counts with a delta's.
                    row_counts={}, rows_exported=sum(e['rows'] for e in entries.values()),
                    delta=dict(base_backup_id=base.backup_id,
                               previous_delta_id=chain[-1].backup_id if chain else None,
                               overlap_seconds=request.overlap_seconds, session=dict(SESSION), tables=entries))
                final = repository.commit(request.database, staging, manifest)
            except BaseException:
                repository.abort(staging)
                raise
        finally:
            conn.close()
        deleted = []
        for old in _retention(repository, request, chain):
            repository.delete(old)
            deleted.append(old.backup_id)
    size = sum(f['size'] for f in files)
    return dict(changed=True, backup_id=backup_id, backup_path=final, base_backup_id=base.backup_id,
                previous_delta_id=manifest['delta']['previous_delta_id'], tables=entries,
                rows=manifest['rows_exported'], size=size, manifest=manifest, deleted=deleted,
                lock_waited_seconds=lock.waited,
                actions=['Removed %s left by an interrupted run' % name for name in leftovers]
                + ['Exported %d rows of %s with %s %s %s (watermark now %s)'
                   % (e['rows'], name, e['change_column'], '>=' if e['inclusive'] else '>', e['since'], e['until'])
                   for name, e in sorted(entries.items())]
                + ['Wrote delta %s of base %s (%d bytes) into %s' % (backup_id, base.backup_id, size, final)]
                + ['Deleted delta %s (retention)' % old_id for old_id in deleted])


def _retention(repository, request, chain, incoming=0):
    """Retention as for dumps, except that the deltas of the chain being extended are kept:
    deleting one would lose the rows only it holds, and apply would refuse the broken chain."""
    keep = set(b.backup_id for b in chain if b is not None)
    return [b for b in repository.retention_plan(request.database, request.kind, request.keep_last,
                                                 request.keep_days, incoming=incoming)
            if b.backup_id not in keep]


def _file_name(index, plan):
    # Table names may hold any character; the file name only needs to be unique and readable.
    return '%03d-%s.copy.gz' % (index, re.sub(r'[^A-Za-z0-9_.-]', '_', plan.name))


def _export_in_snapshot(conn, plans, staging, level):
    """COPY each table's changed rows into gzip files, all in the one snapshot; returns the
    manifest entries and {file: sha256} (hashed while written)."""
    entries, streamed = {}, {}
    for index, (plan, dummy) in enumerate(plans, 1):
        change = sql.Identifier(plan.change_column)
        since = sql.SQL('CAST({} AS {})').format(sql.Literal(plan.since), sql.SQL(plan.cast))
        until = conn.execute(sql.SQL('SELECT greatest(max({}), CAST(%s AS {}))::text FROM {}')
                             .format(change, sql.SQL(plan.cast), plan.table.identifier),
                             (plan.watermark,)).fetchone()[0]
        query = sql.SQL('COPY (SELECT {} FROM {} WHERE {} {} {}) TO STDOUT').format(
            sql.SQL(', ').join(sql.Identifier(c) for c in plan.columns), plan.table.identifier, change,
            sql.SQL('>=' if plan.inclusive else '>'), since)
        name = _file_name(index, plan)
        fd = os.open(os.path.join(staging, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'wb') as raw:
            writer = HashingWriter(raw)
            # mtime=0 and no file name in the header: the same rows always give the same bytes.
            with gzip.GzipFile(filename='', mode='wb', fileobj=writer, compresslevel=level, mtime=0) as packed:
                with conn.cursor() as cur:
                    with cur.copy(query) as copy:
                        for block in copy:
                            packed.write(block)
                    rows = cur.rowcount
            raw.flush()
            os.fsync(raw.fileno())
        streamed[name] = writer.digest.hexdigest()
        # The table's size in this snapshot: deletes travel in no delta, but apply can tell that
        # the rebuilt table has rows the source no longer has.
        table_rows = conn.execute(sql.SQL('SELECT count(*) FROM {}').format(plan.table.identifier)).fetchone()[0]
        entries[plan.name] = dict(table_rows=table_rows, schema=plan.table.schema, table=plan.table.name, change_column=plan.change_column,
                                  change_type=plan.change_type, key=plan.key,
                                  columns=plan.columns, since=plan.since, since_from=plan.since_from,
                                  inclusive=plan.inclusive, until=until, rows=rows, file=name,
                                  **({'time_zone': plan.time_zone} if plan.cast != 'timestamptz'
                                     and plan.change_type == 'temporal' else {}))
    return entries, streamed


# ----------------------------------------------------------------------------------------------
# apply

class ApplyRequest(object):
    def __init__(self, database, backup_db, base='latest', deltas=None, kind='delta', lock_timeout=0,
                 disable_triggers=True, base_kind='full'):
        self.base_kind = base_kind
        self.disable_triggers = disable_triggers
        self.database = database
        self.backup_db = backup_db or database
        self.base = base
        self.deltas = deltas
        self.kind = kind
        self.lock_timeout = lock_timeout


def _select_deltas(repository, request, base):
    """The deltas to apply, oldest first, refusing a chain with a gap (its rows would be lost)."""
    chain = delta_chain(repository, request.backup_db, base.backup_id, request.kind)
    present = set(d.backup_id for d in chain)
    if request.deltas:
        unknown = [i for i in request.deltas if i not in present]
        if unknown:
            raise LifeboatError('delta(s) %s are not deltas of base %s in repository %s (its deltas: %s)'
                                % (', '.join(unknown), base.backup_id, repository.root,
                                   ', '.join(d.backup_id for d in chain) or 'none'))
        # Oldest first whatever order they were given in: an older delta applied last would put
        # back values a newer one had replaced.
        selected = [d for d in chain if d.backup_id in set(request.deltas)]
        # The first one named may continue from a delta applied earlier; the others may not skip one.
        expected = selected[0].manifest['delta'].get('previous_delta_id')
    else:
        selected, expected = chain, None
    for delta in selected:
        previous = delta.manifest['delta'].get('previous_delta_id')
        if previous != expected:
            where = 'not in the repository' if previous not in present else 'not among the deltas to apply'
            raise LifeboatError('the deltas of base %s have a gap: delta %s continues from delta %s, which is %s; '
                                'its rows would be lost' % (base.backup_id, delta.backup_id, previous, where))
        expected = delta.backup_id
    return selected


def _dependency_order(conn, tables):
    """Tables with the referenced (parent) tables first, so foreign keys hold row by row."""
    oids = [t.oid for t in tables]
    parents = dict((oid, set()) for oid in oids)
    for child, parent in conn.execute(FOREIGN_KEYS, (oids, oids)).fetchall():
        parents[child].add(parent)
    ordered, placed = [], set()
    while len(ordered) < len(tables):
        ready = [t for t in tables if t.oid not in placed and parents[t.oid] <= placed]
        if not ready:
            # A cycle of foreign keys: no order satisfies it row by row; keep the given order and
            # let a violation, if any, fail (and roll back) the whole apply.
            ready = [t for t in tables if t.oid not in placed]
        for table in ready:
            ordered.append(table)
            placed.add(table.oid)
    return ordered


def _upsert_statement(table, columns, key, temp, ordinal):
    """Upsert the newest version of each key in `temp` into the table; the statement returns
    (distinct keys, inserted, updated)."""
    cols = sql.SQL(', ').join(sql.Identifier(c) for c in columns)
    keys = sql.SQL(', ').join(sql.Identifier(c) for c in key)
    always = [name for name, dummy, identity, dummy2 in table.columns if identity == 'a' and name in columns]
    # An identity ALWAYS column can only be updated to DEFAULT; its value never changes anyway.
    others = [c for c in columns if c not in key and c not in always]
    # A key carried by several deltas is applied once, as the newest delta has it: the older
    # versions would only be overwritten again.
    source = sql.SQL('SELECT DISTINCT ON ({}) {} FROM {} ORDER BY {}, {} DESC').format(
        keys, cols, sql.Identifier(temp), keys, sql.Identifier(ordinal))
    statement = sql.SQL('INSERT INTO {} AS t ({}) {}SELECT {} FROM src ON CONFLICT ({}) ').format(
        table.identifier, cols, sql.SQL('OVERRIDING SYSTEM VALUE ' if always else ''), cols, keys)
    if others:
        # Compared as text, which every type has (json and point have no equality operator): a
        # row that already holds these values is left alone, so re-applying changes nothing.
        statement += sql.SQL('DO UPDATE SET {} WHERE ROW({}) IS DISTINCT FROM ROW({}) ').format(
            sql.SQL(', ').join(sql.SQL('{} = EXCLUDED.{}').format(sql.Identifier(c), sql.Identifier(c))
                               for c in others),
            sql.SQL(', ').join(sql.SQL('t.{}::text').format(sql.Identifier(c)) for c in others),
            sql.SQL(', ').join(sql.SQL('EXCLUDED.{}::text').format(sql.Identifier(c)) for c in others))
    else:
        statement += sql.SQL('DO NOTHING ')
    return sql.SQL('WITH src AS MATERIALIZED ({}), applied AS ({} RETURNING (t.xmax = 0) AS inserted) '
                   'SELECT (SELECT count(*) FROM src), count(*) FILTER (WHERE inserted), '
                   'count(*) FILTER (WHERE NOT inserted) FROM applied').format(source, statement)


def _check_target(conn, table, columns, key):
    unknown = [c for c in columns + key if c not in table.types]
    if unknown:
        raise LifeboatError('table %s in database %r has no column(s) %s that the delta holds; the target does not '
                            'have the schema of the base backup' % (table.qualified, conn.info.dbname, ', '.join(unknown)))
    generated = [name for name, dummy, dummy2, gen in table.columns if gen and name in columns]
    if generated:
        raise LifeboatError('column(s) %s of table %s are generated in database %r but not in the delta'
                            % (', '.join(generated), table.qualified, conn.info.dbname))


def _load(conn, table, parts, temp):
    """COPY the table's rows of every delta into one temporary table, then upsert them."""
    columns, key = parts[0][1]['columns'], parts[0][1]['key']
    _check_target(conn, table, columns, key)
    cols = sql.SQL(', ').join(sql.Identifier(c) for c in columns)
    ordinal = 'lifeboat_delta_ordinal'
    while ordinal in columns:
        ordinal += '_'
    # Only the delta's columns and their types, no constraints: the table's own constraints are
    # checked by the INSERT. The ordinal column tells which delta a row came from.
    conn.execute(sql.SQL('CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {}, 0 AS {} FROM {} WITH NO DATA')
                 .format(sql.Identifier(temp), cols, sql.Identifier(ordinal), table.identifier))
    for index, (delta, entry) in enumerate(parts):
        conn.execute(sql.SQL('ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}').format(
            sql.Identifier(temp), sql.Identifier(ordinal), sql.Literal(index)))
        with conn.cursor() as cur:
            with cur.copy(sql.SQL('COPY {} ({}) FROM STDIN').format(sql.Identifier(temp), cols)) as copy:
                with gzip.open(os.path.join(delta.path, entry['file']), 'rb') as source:
                    for block in iter(lambda: source.read(CHUNK), b''):
                        copy.write(block)
    distinct, inserted, updated = conn.execute(_upsert_statement(table, columns, key, temp, ordinal)).fetchone()
    conn.execute(sql.SQL('DROP TABLE {}').format(sql.Identifier(temp)))
    rows = sum(entry['rows'] for dummy, entry in parts)
    return dict(deltas=[d.backup_id for d, dummy in parts], rows=rows, superseded=rows - distinct,
                inserted=inserted, updated=updated, unchanged=distinct - inserted - updated)


def _sequences_behind(conn, tables):
    """Sequences feeding a column of `tables` whose next value may be among the rows, each to be
    moved past the furthest of those columns (pg/sequences.py)."""
    found = feeding(conn, table_oids=set(table.oid for table in tables))
    behind = [(table, f) for table in tables for f in found
              if f.table_oid == table.oid and is_behind(f.next_value, f.increment, f.edge)]
    value = furthest((f.seq_oid, f.increment, f.edge) for dummy, f in behind)
    return [dict(sequence=table_key(f.seq_schema, f.seq), oid=f.seq_oid, table=table.qualified, column=f.column,
                 value=value[f.seq_oid]) for table, f in behind]


def apply_deltas(ctx, request):
    repository = ctx.repository
    # Resolved once before locking too: a wrong backup_db or base then fails without the lock
    # creating a folder for a database the repository does not hold.
    resolve_base(repository, request.backup_db, request.base, request.base_kind)
    with repository.lock(request.backup_db, request.lock_timeout, 'applying deltas to %r' % request.database) as lock:
        base = resolve_base(repository, request.backup_db, request.base, request.base_kind)
        deltas = _select_deltas(repository, request, base)
        # Every file of every delta is checked before the target is touched: a damaged delta
        # applies nothing at all, not the deltas before it.
        verified = []
        for delta in deltas:
            verified.extend('%s/%s' % (delta.backup_id, name) for name in verify_files(delta.path, delta.manifest))
        actions = ['Verified %d file(s) of %d delta(s) of base %s against their manifests'
                   % (len(verified), len(deltas), base.backup_id)]
        facts = dict(base_backup_id=base.backup_id, deltas=[d.backup_id for d in deltas], target_db=request.database,
                     verified_files=verified, lock_waited_seconds=lock.waited)
        if not deltas:
            return dict(changed=False, applied={}, sequences=[], row_count_differences=[], actions=actions + [
                'Base %s has no deltas of kind %s; nothing to apply' % (base.backup_id, request.kind)], **facts)
        conn = ctx.options.connect(request.database, autocommit=False)
        try:
            applied, sequences, steps = _apply_in_transaction(conn, deltas, request.disable_triggers)
            differences = _row_count_differences(conn, deltas)
            if ctx.check_mode:
                # Everything ran and is now undone: the counts are what a real run would do.
                conn.rollback()
            else:
                for entry in sequences:
                    # setval is not transactional; done last, when nothing can fail but COMMIT,
                    # and a sequence moved ahead needlessly is harmless.
                    conn.execute('SELECT setval(%s::oid::regclass, %s, true)', (entry['oid'], entry['value']))
                conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
    for entry in sequences:
        del entry['oid']
    changed = bool(sequences) or any(c['inserted'] or c['updated'] for c in applied.values())
    if ctx.check_mode:
        actions.extend('Would %s' % would for would, dummy in steps)
        actions.extend('Would advance sequence %s of %s.%s to %d' % (s['sequence'], s['table'], s['column'], s['value'])
                       for s in sequences)
        actions.append('Rolled back: check mode changes nothing')
    else:
        actions.extend(did for dummy, did in steps)
        actions.extend('Advanced sequence %s of %s.%s to %d' % (s['sequence'], s['table'], s['column'], s['value'])
                       for s in sequences)
    result = dict(changed=changed, applied=applied, sequences=sequences, actions=actions,
                  row_count_differences=differences, **facts)
    if differences:
        result['warnings'] = [
            'table %s has %d row(s) after applying, the source had %d when delta %s was taken: rows deleted on '
            'the source (deltas carry no deletes) or changed here; restore a newer full backup to match it'
            % (d['table'], d['rows'], d['source_rows'], d['delta']) for d in differences]
    return result


def _row_count_differences(conn, deltas):
    """Tables whose row count, after applying, differs from the count the newest delta that
    carries them recorded in its snapshot (older deltas recorded none: not compared)."""
    newest = {}
    for delta in deltas:
        for name, entry in delta.manifest['delta']['tables'].items():
            if isinstance(entry.get('table_rows'), int):
                newest[name] = (delta, entry)
    differences = []
    for name, (delta, entry) in sorted(newest.items()):
        table = table_by_name(conn, name, entry['schema'], entry['table'])
        rows = conn.execute(sql.SQL('SELECT count(*) FROM {}').format(table.identifier)).fetchone()[0]
        if rows != entry['table_rows']:
            differences.append(dict(table=name, delta=delta.backup_id, source_rows=entry['table_rows'], rows=rows))
    return differences


def _disable_triggers(conn, table):
    """Disable the table's enabled user triggers until the end of the apply; returns them.

    A trigger that stamps updated_at (or writes an audit row) would otherwise rewrite the values
    the delta carries, and the rebuilt table would differ from the source. ALTER TABLE is
    transactional: a failed apply rolls the disabling back with everything else.
    """
    triggers = [tuple(row) for row in conn.execute(ENABLED_TRIGGERS, (table.oid,)).fetchall()]
    for name, dummy in triggers:
        conn.execute(sql.SQL('ALTER TABLE {} DISABLE TRIGGER {}').format(table.identifier, sql.Identifier(name)))
    return triggers


def _enable_triggers(conn, table, triggers):
    for name, state in triggers:
        conn.execute(sql.SQL('ALTER TABLE {} {} {}').format(table.identifier, sql.SQL(ENABLE[state]),
                                                            sql.Identifier(name)))


def _apply_in_transaction(conn, deltas, disable_triggers):
    """Apply the deltas table by table, parents first; returns (per table, sequences, steps)."""
    _pin_session(conn, local=True)
    parts = {}
    for delta in deltas:
        for name, entry in delta.manifest['delta']['tables'].items():
            earlier = parts.setdefault(name, [])
            if earlier and (earlier[0][1]['columns'], earlier[0][1]['key']) != (entry['columns'], entry['key']):
                raise LifeboatError('table %s has other columns or another key in delta %s than in delta %s; apply '
                                    'them in separate runs with deltas' % (name, delta.backup_id, earlier[0][0].backup_id))
            earlier.append((delta, entry))
    tables = [table_by_name(conn, name, p[-1][1]['schema'], p[-1][1]['table']) for name, p in sorted(parts.items())]
    applied, steps = {}, []
    for index, table in enumerate(_dependency_order(conn, tables)):
        try:
            triggers = _disable_triggers(conn, table) if disable_triggers else []
            counts = _load(conn, table, parts[table.qualified], 'lifeboat_delta_%d' % index)
            _enable_triggers(conn, table, triggers)
        except psycopg.Error as exc:
            raise LifeboatError('applying the deltas to table %s failed: %s; nothing was applied'
                                % (table.qualified, first_line(exc)))
        applied[table.qualified] = counts
        if triggers:
            what = 'trigger(s) %s of %s while loading' % (', '.join(n for n, dummy in triggers), table.qualified)
            steps.append(('disable ' + what, 'Disabled ' + what))
        what = '%d row(s) of %d delta(s) to %s: %d inserted, %d updated, %d already current, %d superseded by a ' \
               'later delta' % (counts['rows'], len(counts['deltas']), table.qualified, counts['inserted'],
                                counts['updated'], counts['unchanged'], counts['superseded'])
        steps.append(('apply ' + what, 'Applied ' + what))
    return applied, _sequences_behind(conn, tables), steps
