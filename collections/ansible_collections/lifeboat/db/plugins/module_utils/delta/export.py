# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""action=export: the rows of busy tables changed since the chain's last export, written as a
delta set (sets.py) in one read-only snapshot."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import os
import re
import socket
import time

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import (
    first_line, psycopg, server_version_string, sql)
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.delta.sets import (
    DELTA_FORMAT, SESSION, delta_chain, find_table, pin_session, resolve_base)
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import (
    FORMAT_VERSION, HashingWriter, describe_files)
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import new_backup_id, validate_retention

# Change column types, by format_type() name, with the SQL type to cast watermarks to. Only these
# fixed fragments ever reach the SQL text; the catalog's type name is a lookup key, never SQL.
TEMPORAL_TYPES = {'timestamp with time zone': 'timestamptz', 'timestamp without time zone': 'timestamp',
                  'date': 'date'}
INTEGER_TYPES = {'smallint': 'int2', 'integer': 'int4', 'bigint': 'int8'}


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
def _plan_tables(ctx, request, chain, base):
    """Connect in one REPEATABLE READ, read-only snapshot, check every `tables` entry and set
    where each table's export starts."""
    conn = ctx.options.connect(request.database)
    try:
        # The time zone sessions of this database write local timestamps in (its default, or the
        # role's), read before the session is pinned to UTC.
        time_zone = conn.execute("SELECT current_setting('TimeZone')").fetchone()[0]
        pin_session(conn)
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
        for plan, spec in plans:
            _set_since(conn, plan, spec, chain, base, request.overlap_seconds)
    except BaseException:
        conn.close()
        raise
    return conn, plans


def export_delta(ctx, request):
    """Export the changed rows of every table as the next delta set of the base's chain."""
    started, clock = utc_now(), time.monotonic()
    repository = ctx.repository
    base = resolve_base(repository, request.database, request.base, request.base_kind)
    backup_id = new_backup_id(started)
    # Checked here in both modes: it refuses a database name unfit for a folder.
    target_dir = os.path.join(repository.database_dir(request.database), backup_id)
    if ctx.check_mode:
        return _preview_export(ctx, request, base, backup_id, target_dir)
    # The lock comes before the snapshot: the watermark read from the chain is then the one
    # a concurrent export wrote before this snapshot was taken, never a later one.
    with repository.lock(request.database, request.lock_timeout, 'a %s export' % request.kind) as lock:
        leftovers = repository.remove_leftovers(request.database)
        chain = delta_chain(repository, request.database, base.backup_id, request.kind)
        conn, plans = _plan_tables(ctx, request, chain, base)
        try:
            final, manifest = _write_delta(repository, conn, plans, request, base, chain, backup_id, (started, clock))
        finally:
            conn.close()
        deleted = _delete_expired(repository, request, chain)
    return _export_result(request, base, final, manifest, deleted, leftovers, lock)


def _preview_export(ctx, request, base, backup_id, target_dir):
    """Check mode: what the export would start from and delete, from the same snapshot planning."""
    chain = delta_chain(ctx.repository, request.database, base.backup_id, request.kind)
    conn, plans = _plan_tables(ctx, request, chain, base)
    conn.close()
    doomed = _retention(ctx.repository, request, chain, incoming=1)
    return dict(changed=True, backup_id=backup_id, backup_path=target_dir, base_backup_id=base.backup_id,
                previous_delta_id=chain[-1].backup_id if chain else None,
                tables=dict((p.name, dict(change_column=p.change_column, key=p.key, since=p.since,
                                          since_from=p.since_from)) for p, dummy in plans),
                deleted=[b.backup_id for b in doomed],
                actions=['Would export the rows of %s with %s %s %s (from %s) into %s'
                         % (p.name, p.change_column, '>=' if p.inclusive else '>', p.since, p.since_from,
                            target_dir) for p, dummy in plans]
                + ['Would delete delta %s (retention)' % b.backup_id for b in doomed])


def _write_delta(repository, conn, plans, request, base, chain, backup_id, start):
    """Stream every table into a staging folder and commit it with its manifest; returns the
    set's path and manifest. Nothing is left behind if any step fails."""
    staging = repository.begin(request.database, backup_id)
    try:
        entries, streamed = _export_in_snapshot(conn, plans, staging, request.compress)
        conn.rollback()
        finished = utc_now()
        files = describe_files(staging, sorted(streamed), known=streamed)
        manifest = _manifest(conn, request, base, chain, backup_id, start + (finished,), files, entries)
        return repository.commit(request.database, staging, manifest), manifest
    except BaseException:
        repository.abort(staging)
        raise


def _manifest(conn, request, base, chain, backup_id, start, files, entries):
    started, clock, finished = start
    return dict(
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


def _delete_expired(repository, request, chain):
    deleted = []
    for old in _retention(repository, request, chain):
        repository.delete(old)
        deleted.append(old.backup_id)
    return deleted


def _export_result(request, base, final, manifest, deleted, leftovers, lock):
    backup_id, entries = manifest['backup_id'], manifest['delta']['tables']
    size = sum(f['size'] for f in manifest['files'])
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
