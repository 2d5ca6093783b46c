# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan that keeps a range-partitioned table: the partitions to create ahead (and in gaps,
moving a default partition's rows in), the partitions retention retires; and creating one."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.partition.bounds import qualified


class Plan(object):
    """What one run does to one table: partitions to create, to retire, and retired ones to finish."""

    def __init__(self):
        self.create = []   # dicts: name, schema, period, lower, upper, reason (ahead|gap), default_rows
        self.retire = []   # attached Partitions to detach
        self.finalize = []  # Partitions whose DETACH CONCURRENTLY was interrupted
        self.detached = []  # Detached tables left by earlier runs
        self.refused = []  # (key, why) of tables whose retirement mark does not hold: left alone


def plan_partitions(conn, table, calendar, namer, premake, now, start=None, retain=None, default_rows='move'):
    """Check the existing partitions against the calendar and plan the run."""
    if premake < 0:
        raise LifeboatError('premake must be 0 or more, got %d' % premake)
    if retain is not None and retain < 1:
        raise LifeboatError('retain %d would retire every partition of %s, the current one too; retain must be 1 or '
                            'more periods' % (retain, table.key))
    table.read_bounds(conn)
    ranged = [p for p in table.partitions if not p.is_default]
    _check_periods(table, calendar, ranged)
    plan = Plan()
    cutoff = _plan_retirements(plan, table, calendar, ranged, now, retain) if retain is not None else None
    _plan_creations(plan, table, calendar, namer, ranged, now, premake, start, cutoff)
    _count_default_rows(conn, table, plan, default_rows)
    plan.detached, plan.refused = table.detached(conn)
    return plan


def _check_periods(table, calendar, ranged):
    """Every partition must be one period of the calendar, or the interval is not the table's."""
    for part in ranged:
        if part.lower is None or part.upper is None or not calendar.is_period(part.lower, part.upper):
            raise LifeboatError('partition %s (%s) is not one %s, so interval %s does not match the partitions of %s; '
                                'give the interval they were made with'
                                % (part.key, part.bound, calendar.unit, calendar.interval if calendar.is_time else
                                   calendar.step, table.key))


def _plan_retirements(plan, table, calendar, ranged, now, retain):
    """Partitions ending `retain` periods before now are retired (never all of them); returns that cutoff."""
    cutoff = calendar.shift(now, -retain)
    for part in ranged:
        if part.upper <= cutoff:
            if part.relkind == 'p':
                raise LifeboatError('partition %s is itself partitioned; lifeboat.db.partition retires plain '
                                    'partitions only - archive and drop it by hand, or raise retain' % part.key)
            (plan.finalize if part.detach_pending else plan.retire).append(part)
    if ranged and len(plan.retire) + len(plan.finalize) == len(ranged):
        raise LifeboatError('retain %d would retire every partition of %s (the newest ends at %s); raise retain '
                            'or check the now option' % (retain, table.key,
                                                         calendar.describe(max(p.upper for p in ranged))))
    return cutoff


def _plan_creations(plan, table, calendar, namer, ranged, now, premake, start, cutoff):
    """Partitions missing from the first period (start, else the oldest kept) to `premake` ahead."""
    current = calendar.floor(now)
    last = calendar.shift(current, premake)
    kept = [p for p in ranged if p not in plan.retire and p not in plan.finalize]
    existing = set(p.lower for p in kept)
    if start is not None:
        first = calendar.floor(start)
    elif kept:
        first = min(existing)
    else:
        first = current
    if cutoff is not None:
        # Never create a partition retention would retire at once.
        while calendar.after(first) <= cutoff:
            first = calendar.after(first)
    newest = max(existing) if existing else None
    wanted = [s for s in calendar.periods(first, last) if s not in existing]
    names = namer.names(wanted)
    taken = set(p.name for p in table.partitions)
    for period in wanted:
        name = names[period]
        if name in taken:
            raise LifeboatError('partition %s.%s exists but does not cover %s; rename it or choose another '
                                'name_pattern' % (table.schema, name, calendar.describe(period)))
        plan.create.append(dict(name=name, schema=table.schema, period=calendar.describe(period),
                                lower=period, upper=calendar.after(period),
                                reason='gap' if newest is not None and period < newest else 'ahead'))


def _count_default_rows(conn, table, plan, default_rows):
    """Rows of the default partition that a new partition's range takes, for each new partition."""
    for item in plan.create:
        item['default_rows'] = 0
        if table.default is None:
            continue
        query = sql.SQL('SELECT count(*) FROM ONLY {} WHERE {} >= {} AND {} < {}').format(
            qualified(table.default.schema, table.default.name), sql.Identifier(table.column),
            table.literal(item['lower']), sql.Identifier(table.column), table.literal(item['upper']))
        item['default_rows'] = conn.execute(query).fetchone()[0]
        if item['default_rows'] and default_rows == 'refuse':
            raise LifeboatError('the default partition %s holds %d rows of %s, so partition %s cannot be created; set '
                                'default_rows: move to move them into it in one transaction'
                                % (table.default.key, item['default_rows'], item['period'], item['name']))


def create_partition(conn, table, item, extra_indexes):
    """Create one partition in one transaction, with the rows of the default partition that belong
    to it moved in (PostgreSQL refuses the partition while the default holds such rows)."""
    target = qualified(table.schema, item['name'])
    bounds = sql.SQL('FOR VALUES FROM ({}) TO ({})').format(table.literal(item['lower']), table.literal(item['upper']))
    column = sql.Identifier(table.column)
    with conn.transaction():
        moved = 0
        if item['default_rows']:
            default = qualified(table.default.schema, table.default.name)
            columns = _insertable_columns(conn, table)
            names = sql.SQL(', ').join(sql.Identifier(c) for c in columns)
            # CREATE TABLE ... PARTITION OF locks the default partition too; taking it first keeps
            # writers from adding rows of the new range between the move and the create.
            conn.execute(sql.SQL('LOCK TABLE {} IN ACCESS EXCLUSIVE MODE').format(default))
            conn.execute(sql.SQL('CREATE TEMPORARY TABLE lifeboat_moving ON COMMIT DROP AS SELECT {} FROM ONLY {} '
                                 'WITH NO DATA').format(names, default))
            moved = conn.execute(sql.SQL(
                'WITH moved AS (DELETE FROM ONLY {} WHERE {} >= {} AND {} < {} RETURNING {}) '
                'INSERT INTO lifeboat_moving ({}) SELECT {} FROM moved').format(
                default, column, table.literal(item['lower']), column, table.literal(item['upper']), names,
                names, names)).rowcount
        conn.execute(sql.SQL('CREATE TABLE {} PARTITION OF {} {}').format(
            target, qualified(table.schema, table.name), bounds))
        for index in extra_indexes:
            conn.execute(sql.SQL('CREATE INDEX IF NOT EXISTS {} ON {} {}').format(
                sql.Identifier(index['name'].format(partition=item['name'])), target, sql.SQL(index['definition'])))
        if moved:
            conn.execute(sql.SQL('INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM lifeboat_moving').format(
                target, names, names))
            landed = conn.execute(sql.SQL('SELECT count(*) FROM {}').format(target)).fetchone()[0]
            if landed != moved:
                raise LifeboatError('moving %d rows from the default partition into %s landed %d; nothing was changed'
                                    % (moved, item['name'], landed))
    return moved


def _insertable_columns(conn, table):
    """The parent's columns a row can be copied through (generated columns are computed again)."""
    generated = "a.attgenerated = ''" if table.major >= 12 else 'true'
    rows = conn.execute("SELECT a.attname FROM pg_attribute a WHERE a.attrelid = %%s AND a.attnum > 0 "
                        "AND NOT a.attisdropped AND %s ORDER BY a.attnum" % generated, (table.oid,)).fetchall()
    return [row[0] for row in rows]


def validate_extra_indexes(indexes):
    for index in indexes:
        if not index.get('name') or not index.get('definition'):
            raise LifeboatError('each of partition_indexes needs a name (it may use {partition}) and a definition '
                                'like "USING GIN (context)", got %r' % (index,))
        try:
            index['name'].format(partition='p')
        except (KeyError, IndexError, ValueError):
            raise LifeboatError('partition_indexes name %r may use {partition} and nothing else' % index['name'])
