# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routine upkeep of one database (seed 002): materialized views refreshed, tables vacuumed and
analyzed, rows past their retention purged in small batches.

Everything a task names is looked up, and every purge condition is planned by EXPLAIN, before
anything runs: a typo fails the task with nothing done. The work then runs in this order - purges
(each followed by its VACUUM ANALYZE when asked), VACUUM, ANALYZE, refreshes - so that the views
are refreshed from the purged data.

A purge never holds its locks for long: each batch is one short transaction that deletes at most
`batch_size` rows by their ctid (a TID scan), under a `lock_timeout`. The rows of a batch are
picked from just past the last batch's highest ctid (a TID range scan), so a batch does not wade
through the dead rows of the batches before it; a last pass from the start of the table catches
rows that pass skipped (updated meanwhile, or picked by an index in another order). ctid is only
unique within one relation, so a partitioned table is purged one leaf partition at a time.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import (
    NOT_EXTENSION_MEMBER, USER_SCHEMAS, split_name)
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

# A batch that cannot get its locks within lock_timeout is tried this many more times, waiting
# lock_timeout x attempt in between, before the purge gives up.
LOCK_RETRIES = 3

KIND_NAMES = {'r': 'table', 'p': 'partitioned table', 'm': 'materialized view', 'v': 'view', 'f': 'foreign table',
              'S': 'sequence', 'i': 'index', 'I': 'partitioned index', 'c': 'composite type', 't': 'TOAST table'}
TABLE_KINDS = ('r', 'p')
ANALYZABLE_KINDS = ('r', 'p', 'm')

RELATION = """SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispopulated
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s"""

# Every materialized view of the user schemas, oldest first (one built on another came after it).
ALL_MATVIEWS = """SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispopulated
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'm' AND %s
   AND %s
 ORDER BY c.oid""" % (USER_SCHEMAS, NOT_EXTENSION_MEMBER)

# The index REFRESH ... CONCURRENTLY can use, by the server's own rule (matview.c,
# is_usable_unique_index): unique, immediate, valid, btree, no WHERE, every column a plain column.
USABLE_UNIQUE_INDEX = """SELECT ic.relname
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE i.indrelid = %s AND i.indisunique AND i.indimmediate AND i.indisvalid
   AND i.indpred IS NULL AND i.indexprs IS NULL AND am.amname = 'btree'
   AND NOT (0 = ANY (i.indkey::int2[]))
 ORDER BY ic.relname
 LIMIT 1"""

# The leaf partitions that hold a partitioned table's rows (foreign partitions have no ctid to purge by).
LEAF_PARTITIONS = """SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispopulated
  FROM pg_partition_tree(%s::oid::regclass) t
  JOIN pg_class c ON c.oid = t.relid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE t.isleaf AND c.relkind = 'r'
 ORDER BY c.oid"""

LOCK_TIMEOUT_UNITS = {'ms': 1, 's': 1000, 'min': 60000}


class Relation(object):
    def __init__(self, oid, schema, name, kind, populated):
        self.oid, self.schema, self.name, self.kind, self.populated = oid, schema, name, kind, populated

    @property
    def label(self):
        return '%s.%s' % (self.schema, self.name)

    @property
    def ident(self):
        return sql.Identifier(self.schema, self.name)


def unique(names):
    seen = []
    for name in names or []:
        if name not in seen:
            seen.append(name)
    return seen


def resolve(conn, names, kinds, option, dbname):
    """The relations `names` denote; all of them must exist and be of `kinds`, or nothing is done."""
    found, problems = [], []
    for name in unique(names):
        schema, relation = split_name(name)
        row = conn.execute(RELATION, (schema, relation)).fetchone()
        if row is None:
            problems.append('%s.%s does not exist' % (schema, relation))
        elif row[3] not in kinds:
            problems.append('%s.%s is a %s' % (schema, relation, KIND_NAMES.get(row[3], 'relation')))
        else:
            found.append(Relation(*row))
    if problems:
        wanted = ' or '.join(KIND_NAMES[kind] for kind in kinds)
        raise LifeboatError('%s names what is not a %s in database %r: %s; name each as schema.name (a bare name '
                            'means public); nothing was done' % (option, wanted, dbname, ', '.join(problems)))
    return found


def lock_timeout_ms(value):
    """lock_timeout in milliseconds, from PostgreSQL's notation ('250ms', '5s', '1min'); a bare number is seconds."""
    match = re.match(r'^\s*(\d+(?:\.\d+)?)\s*(ms|s|min)?\s*$', str(value))
    milliseconds = float(match.group(1)) * LOCK_TIMEOUT_UNITS[match.group(2) or 's'] if match else 0
    if milliseconds < 1:
        raise LifeboatError('lock_timeout must be a time of at least 1ms such as 250ms, 5s or 1min (a bare number '
                            'means seconds), got %r' % (value,))
    return int(round(milliseconds))


class Purge(object):
    """One entry of the purge option: the table, its condition and how to pace the batches."""

    def __init__(self, entry):
        self.where = (entry['where'] or '').strip()
        self.batch_size = entry['batch_size']
        self.pause = entry['pause']
        self.lock_timeout = lock_timeout_ms(entry['lock_timeout'])
        self.lock_timeout_text = str(entry['lock_timeout']).strip()
        self.vacuum = entry['vacuum']
        self.name = entry['table']
        if not self.where:
            raise LifeboatError('purge of %s needs where: the condition of the rows to delete, as after WHERE '
                                "(e.g. status = 'inactive' AND left_at < now() - interval '3 years'); nothing was done"
                                % self.name)
        if self.batch_size < 1:
            raise LifeboatError('purge of %s: batch_size must be 1 or more, got %d; nothing was done'
                                % (self.name, self.batch_size))
        if self.pause < 0:
            raise LifeboatError('purge of %s: pause must be 0 or more seconds, got %s; nothing was done'
                                % (self.name, self.pause))
        self.table = None
        self.leaves = []

    @property
    def condition(self):
        # The operator's own SQL, by design; it only ever runs through the extended protocol
        # (binary=True below), which refuses a second statement smuggled in after a semicolon.
        return sql.SQL('({})').format(sql.SQL(self.where))

    def batch(self, leaf, floor):
        """DELETE at most batch_size matching rows of `leaf` past ctid `floor`; returns (rows, highest ctid).

        A leaf is read under the named table's name, so a condition that qualifies its columns
        with the table's name works for each partition too."""
        alias = sql.Identifier(self.table.name)
        past = sql.SQL('ctid > {}::tid AND ').format(sql.Literal(floor)) if floor else sql.SQL('')
        return sql.SQL('WITH deleted AS (DELETE FROM ONLY {leaf} AS {alias} WHERE ctid = ANY (ARRAY('
                       'SELECT ctid FROM ONLY {leaf} AS {alias} WHERE {past}{condition} LIMIT {limit})) '
                       'AND {condition} RETURNING ctid) '
                       'SELECT count(*), max(ctid)::text FROM deleted').format(
            leaf=leaf.ident, alias=alias, past=past, condition=self.condition, limit=sql.Literal(self.batch_size))

    def count(self, leaf):
        """The rows of `leaf` the batches would delete, read as they read them."""
        return sql.SQL('SELECT count(*) FROM ONLY {} AS {} WHERE {}').format(
            leaf.ident, sql.Identifier(self.table.name), self.condition)

    def describe(self):
        return '%s where %s' % (self.table.label, self.where)


class Maintenance(object):
    """Plans a task (every lookup and check), then does it, keeping the results as it goes."""

    def __init__(self, conn, params, check_mode):
        self.conn = conn
        self.params = params
        self.check_mode = check_mode
        self.changed = False
        self.actions = []
        self.refreshed, self.analyzed, self.vacuumed, self.purged = [], [], [], []
        # What plan() found: (view, index, reason) triples, tables, Purges.
        self.views, self.vacuum_tables, self.analyze_tables, self.purges = [], [], [], []

    def facts(self):
        return dict(changed=self.changed, refreshed=self.refreshed, analyzed=self.analyzed, vacuumed=self.vacuumed,
                    purged=self.purged, actions=self.actions)

    # -- planning: nothing below changes the database --------------------------------------------

    def plan(self, purges):
        p, db = self.params, self.params['db']
        views = resolve(self.conn, p['refresh'], ('m',), 'refresh', db)
        if p['refresh_all']:
            labels = [view.label for view in views]
            views += [Relation(*row) for row in self.conn.execute(ALL_MATVIEWS).fetchall()
                      if '%s.%s' % (row[1], row[2]) not in labels]
        self.views = [self.refresh_method(view) for view in views]
        self.vacuum_tables = resolve(self.conn, p['vacuum'], ANALYZABLE_KINDS, 'vacuum', db)
        self.analyze_tables = resolve(self.conn, p['analyze'], ANALYZABLE_KINDS, 'analyze', db)
        for purge in purges:
            purge.table = resolve(self.conn, [purge.name], TABLE_KINDS, 'purge', db)[0]
            purge.leaves = [purge.table] if purge.table.kind == 'r' else \
                [Relation(*row) for row in self.conn.execute(LEAF_PARTITIONS, (purge.table.oid,)).fetchall()]
            for leaf in purge.leaves:
                self.explain(purge, leaf)
        self.purges = purges

    def refresh_method(self, view):
        """(view, index CONCURRENTLY would use or None, why not concurrently or None)."""
        if not view.populated:
            return view, None, 'it is not populated yet and CONCURRENTLY needs a populated view'
        row = self.conn.execute(USABLE_UNIQUE_INDEX, (view.oid,)).fetchone()
        if row is None:
            return view, None, ('it has no unique index CONCURRENTLY can use (unique, valid, btree, without WHERE, '
                                'on plain columns)')
        return view, row[0], None

    def explain(self, purge, leaf):
        """Plan the batch statement without running it: a condition that does not parse, names a
        column the table lacks or is not a boolean fails here, before anything is deleted."""
        try:
            self.conn.execute(sql.SQL('EXPLAIN ') + purge.batch(leaf, None), binary=True)
        except psycopg.Error as exc:
            raise LifeboatError('purge of %s: the where condition does not work: %s; write where as the condition '
                                'after WHERE, on the columns of %s; nothing was done'
                                % (purge.table.label, first_line(exc), purge.table.label))

    # -- the work ----------------------------------------------------------------------------------

    def run(self):
        vacuumed = set()
        for purge in self.purges:
            self.purge(purge)
            if purge.vacuum:
                self.vacuum(purge.table)
                vacuumed.add(purge.table.oid)
        for table in self.vacuum_tables:
            if table.oid not in vacuumed:
                self.vacuum(table)
        for table in self.analyze_tables:
            self.analyze(table)
        for view, index, reason in self.views:
            self.refresh(view, index, reason)
        return self.facts()

    def timed(self, statement, what):
        """Seconds `statement` took; a database error names what was being done."""
        started = time.monotonic()
        try:
            self.conn.execute(statement)
        except psycopg.Error as exc:
            raise LifeboatError('%s failed: %s' % (what, first_line(exc)))
        return round(time.monotonic() - started, 3)

    def refresh(self, view, index, reason):
        how = 'concurrently, by unique index %s' % index if index else 'not concurrently: %s' % reason
        entry = dict(view=view.label, concurrently=bool(index), index=index, reason=reason, seconds=None)
        if self.check_mode:
            self.actions.append('Would refresh materialized view %s %s' % (view.label, how))
        else:
            statement = sql.SQL('REFRESH MATERIALIZED VIEW {}{}').format(
                sql.SQL('CONCURRENTLY ') if index else sql.SQL(''), view.ident)
            entry['seconds'] = self.timed(statement, 'refresh of materialized view %s' % view.label)
            self.actions.append('Refreshed materialized view %s in %.3f s, %s' % (view.label, entry['seconds'], how))
        self.refreshed.append(entry)
        self.changed = True

    def vacuum(self, table):
        self.maintain(table, self.vacuumed, 'VACUUM (ANALYZE) {}', 'vacuum and analyze', 'Vacuumed and analyzed')

    def analyze(self, table):
        self.maintain(table, self.analyzed, 'ANALYZE {}', 'analyze', 'Analyzed')

    def maintain(self, table, done, statement, planned, did):
        entry = dict(table=table.label, seconds=None)
        if self.check_mode:
            self.actions.append('Would %s %s %s' % (planned, KIND_NAMES[table.kind], table.label))
        else:
            # VACUUM cannot run inside a transaction: the connection is in autocommit.
            entry['seconds'] = self.timed(sql.SQL(statement).format(table.ident), '%s of %s' % (planned, table.label))
            self.actions.append('%s %s %s in %.3f s' % (did, KIND_NAMES[table.kind], table.label, entry['seconds']))
        done.append(entry)
        self.changed = True

    def purge(self, purge):
        entry = dict(table=purge.table.label, where=purge.where, rows=0, batches=None, longest_batch_seconds=None,
                     seconds=None)
        self.purged.append(entry)
        if self.check_mode:
            entry['rows'] = sum(self.conn.execute(purge.count(leaf), binary=True).fetchone()[0]
                                for leaf in purge.leaves)
            self.actions.append('Would purge %d rows of %s in batches of at most %d'
                                % (entry['rows'], purge.describe(), purge.batch_size))
            self.changed = self.changed or entry['rows'] > 0
            return
        entry.update(batches=0, longest_batch_seconds=0.0, seconds=0.0)
        started = time.monotonic()
        try:
            for leaf in purge.leaves:
                self.purge_leaf(purge, leaf, entry)
        finally:
            entry['seconds'] = round(time.monotonic() - started, 3)
        if entry['rows']:
            self.actions.append('Purged %d rows of %s in %d batches of at most %d (longest %.3f s, %.3f s in all)'
                                % (entry['rows'], purge.describe(), entry['batches'], purge.batch_size,
                                   entry['longest_batch_seconds'], entry['seconds']))
        else:
            self.actions.append('Purged no rows of %s: none matched' % purge.describe())

    def purge_leaf(self, purge, leaf, entry):
        """Batches from ctid to ctid until a pass from the start of `leaf` finds nothing left."""
        floor = None
        while True:
            rows, highest = self.batch(purge, leaf, floor, entry)
            if rows == 0 and floor is None:
                return
            # A full batch goes on from where it ended; a short one reached the end of the table,
            # so the next pass starts over to catch rows skipped on the way.
            floor = highest if rows == purge.batch_size else None
            if purge.pause:
                time.sleep(purge.pause)

    def batch(self, purge, leaf, floor, entry):
        """One batch in its own transaction, tried again when it cannot get its locks in time."""
        statement = purge.batch(leaf, floor)
        for attempt in range(LOCK_RETRIES + 1):
            started = time.monotonic()
            try:
                with self.conn.transaction():
                    self.conn.execute("SELECT set_config('lock_timeout', %s, true)", ('%dms' % purge.lock_timeout,))
                    rows, highest = self.conn.execute(statement, binary=True).fetchone()
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
                # Its locks were held while it waited: a failed attempt counts for the longest batch.
                self.record_time(entry, started)
                if attempt == LOCK_RETRIES:
                    raise LifeboatError(
                        'purge of %s stopped: a batch could not get its locks within lock_timeout %s in %d attempts '
                        '(%s); %d rows were already removed and stay removed; end the session holding the locks '
                        '(pg_stat_activity, pg_locks) or raise lock_timeout, then run the task again'
                        % (purge.table.label, purge.lock_timeout_text, LOCK_RETRIES + 1, first_line(exc),
                           entry['rows']))
                time.sleep(purge.lock_timeout / 1000.0 * (attempt + 1))
                continue
            except psycopg.Error as exc:
                raise LifeboatError('purge of %s failed after removing %d rows (they stay removed): %s'
                                    % (purge.table.label, entry['rows'], first_line(exc)))
            self.record_batch(entry, started, rows)
            return rows, highest

    def record_batch(self, entry, started, rows):
        self.record_time(entry, started)
        entry['batches'] += 1
        entry['rows'] += rows
        self.changed = self.changed or rows > 0

    @staticmethod
    def record_time(entry, started):
        entry['longest_batch_seconds'] = round(max(entry['longest_batch_seconds'], time.monotonic() - started), 3)


def purges_of(params):
    return [Purge(entry) for entry in params['purge'] or []]


def run(ctx):
    p = ctx.params
    if not (p['refresh'] or p['refresh_all'] or p['analyze'] or p['vacuum'] or p['purge']):
        raise LifeboatError('nothing to do: give refresh, refresh_all, analyze, vacuum or purge')
    purges = purges_of(p)
    conn = ctx.options.connect(p['db'])
    try:
        work = Maintenance(conn, p, ctx.check_mode)
        work.plan(purges)
        try:
            return work.run()
        except LifeboatError as exc:
            # What was done before the failure stays done: the failure reports it too.
            raise LifeboatError(exc.msg, **work.facts())
    finally:
        conn.close()
