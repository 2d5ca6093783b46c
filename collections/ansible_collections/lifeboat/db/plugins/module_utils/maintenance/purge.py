# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Purging rows past their retention in small batches.

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

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.maintenance.relations import TABLE_KINDS, Relation, resolve

# A batch that cannot get its locks within lock_timeout is tried this many more times, waiting
# lock_timeout x attempt in between, before the purge gives up.
LOCK_RETRIES = 3

# The leaf partitions that hold a partitioned table's rows (foreign partitions have no ctid to purge by).
LEAF_PARTITIONS = """SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispopulated
  FROM pg_partition_tree(%s::oid::regclass) t
  JOIN pg_class c ON c.oid = t.relid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE t.isleaf AND c.relkind = 'r'
 ORDER BY c.oid"""

LOCK_TIMEOUT_UNITS = {'ms': 1, 's': 1000, 'min': 60000}


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


def purges_of(params):
    return [Purge(entry) for entry in params['purge'] or []]


def plan_purge(conn, purge, dbname):
    """Look the table up and plan the batch statement on each leaf (nothing is deleted)."""
    purge.table = resolve(conn, [purge.name], TABLE_KINDS, 'purge', dbname)[0]
    purge.leaves = [purge.table] if purge.table.kind == 'r' else \
        [Relation(*row) for row in conn.execute(LEAF_PARTITIONS, (purge.table.oid,)).fetchall()]
    for leaf in purge.leaves:
        _explain(conn, purge, leaf)


def _explain(conn, purge, leaf):
    """Plan the batch statement without running it: a condition that does not parse, names a
    column the table lacks or is not a boolean fails here, before anything is deleted."""
    try:
        conn.execute(sql.SQL('EXPLAIN ') + purge.batch(leaf, None), binary=True)
    except psycopg.Error as exc:
        raise LifeboatError('purge of %s: the where condition does not work: %s; write where as the condition '
                            'after WHERE, on the columns of %s; nothing was done'
                            % (purge.table.label, first_line(exc), purge.table.label))


def run_purge(work, purge):
    """Purge one entry (check mode: count what it would delete). `work` is the task's run.Maintenance;
    the entry is in work.purged from the start, so a failure reports the rows already removed."""
    entry = dict(table=purge.table.label, where=purge.where, rows=0, batches=None, longest_batch_seconds=None,
                 seconds=None)
    work.purged.append(entry)
    if work.check_mode:
        entry['rows'] = sum(work.conn.execute(purge.count(leaf), binary=True).fetchone()[0]
                            for leaf in purge.leaves)
        work.actions.append('Would purge %d rows of %s in batches of at most %d'
                            % (entry['rows'], purge.describe(), purge.batch_size))
        work.changed = work.changed or entry['rows'] > 0
        return
    entry.update(batches=0, longest_batch_seconds=0.0, seconds=0.0)
    started = time.monotonic()
    try:
        for leaf in purge.leaves:
            _purge_leaf(work, purge, leaf, entry)
    finally:
        entry['seconds'] = round(time.monotonic() - started, 3)
    if entry['rows']:
        work.actions.append('Purged %d rows of %s in %d batches of at most %d (longest %.3f s, %.3f s in all)'
                            % (entry['rows'], purge.describe(), entry['batches'], purge.batch_size,
                               entry['longest_batch_seconds'], entry['seconds']))
    else:
        work.actions.append('Purged no rows of %s: none matched' % purge.describe())


def _purge_leaf(work, purge, leaf, entry):
    """Batches from ctid to ctid until a pass from the start of `leaf` finds nothing left."""
    floor = None
    while True:
        rows, highest = _batch(work, purge, leaf, floor, entry)
        if rows == 0 and floor is None:
            return
        # A full batch goes on from where it ended; a short one reached the end of the table,
        # so the next pass starts over to catch rows skipped on the way.
        floor = highest if rows == purge.batch_size else None
        if purge.pause:
            time.sleep(purge.pause)


def _batch(work, purge, leaf, floor, entry):
    """One batch in its own transaction, tried again when it cannot get its locks in time."""
    statement = purge.batch(leaf, floor)
    for attempt in range(LOCK_RETRIES + 1):
        started = time.monotonic()
        try:
            with work.conn.transaction():
                work.conn.execute("SELECT set_config('lock_timeout', %s, true)", ('%dms' % purge.lock_timeout,))
                rows, highest = work.conn.execute(statement, binary=True).fetchone()
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
            # Its locks were held while it waited: a failed attempt counts for the longest batch.
            _record_time(entry, started)
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
        _record_batch(work, entry, started, rows)
        return rows, highest


def _record_batch(work, entry, started, rows):
    _record_time(entry, started)
    entry['batches'] += 1
    entry['rows'] += rows
    work.changed = work.changed or rows > 0


def _record_time(entry, started):
    entry['longest_batch_seconds'] = round(max(entry['longest_batch_seconds'], time.monotonic() - started), 3)
