# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A range-partitioned table as the catalog describes it, and the plan that keeps it: the
partitions to create ahead (and in gaps), and the partitions retention retires.

Existing partitions are recognised by their bounds, not their names, so partitions made by hand
(pagila's `payment_p2022_01`, seed 002's `policy_violations_2025`) count as they are. A retired
partition is marked with a table comment before it is detached (see RetiredMark), so a run that
stopped half-way - detached but not yet archived or dropped - is finished by the next run.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import re

from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import split_name, table_key
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import psycopg, server_major, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

try:
    from zoneinfo import ZoneInfo
except ImportError:  # Python < 3.9 on the target: only UTC is known
    ZoneInfo = None

BOUND = re.compile(r"^FOR VALUES FROM \((.+)\) TO \((.+)\)$", re.S)
MARK_PREFIX = 'lifeboat-retired '


def qualified(schema, name):
    return sql.SQL('{}.{}').format(sql.Identifier(schema), sql.Identifier(name))


class Partition(object):
    def __init__(self, schema, name, bound, is_default=False, detach_pending=False, relkind='r', oid=None,
                 owner=None):
        self.schema, self.name, self.bound = schema, name, bound
        self.owner = owner
        self.is_default = is_default
        self.detach_pending = detach_pending
        self.relkind = relkind
        self.oid = oid
        self.lower = self.upper = None  # period values (naive local datetimes or ints); None for MIN/MAXVALUE

    @property
    def key(self):
        return table_key(self.schema, self.name)


# The key types lifeboat keeps, each with a bound value as it is stored (and an example for messages).
INT_LIMITS = {'smallint': 2 ** 15, 'integer': 2 ** 31, 'bigint': 2 ** 63}
_DATE = r'(\d{4})-(\d{2})-(\d{2})'
_TIME = r'[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?'
_OFFSET = r'(?:([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?|Z)'
TIME_SHAPES = {
    'date': re.compile(_DATE),
    'timestamp without time zone': re.compile(_DATE + _TIME),
    'timestamp with time zone': re.compile(_DATE + _TIME + _OFFSET),
}
EXAMPLES = {'date': '2024-01-01', 'timestamp without time zone': '2024-01-01 00:00:00',
            'timestamp with time zone': '2024-01-01 00:00:00+00', 'smallint': '100', 'integer': '1000',
            'bigint': '1000'}
# A bound text is read back from an old mark or manifest only in the shape pg_get_expr gives plain
# values (DateStyle ISO); its values are then parsed as the key's type, never run as SQL.
PLAIN_BOUND = re.compile(r"FOR VALUES FROM \(('[0-9 :.+T-]{1,40}'|-?[0-9]{1,20})\) "
                         r"TO \(('[0-9 :.+T-]{1,40}'|-?[0-9]{1,20})\)")  # fullmatch: no trailing newline


def parse_value(key_type, value):
    """A stored bound value as a value of the key's type, or None unless it is exactly one."""
    if key_type in INT_LIMITS:
        if isinstance(value, str) and re.fullmatch(r'-?[0-9]{1,20}', value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value if -INT_LIMITS[key_type] <= value < INT_LIMITS[key_type] else None
    shape = TIME_SHAPES.get(key_type)
    match = shape.fullmatch(value) if shape is not None and isinstance(value, str) else None
    if match is None:
        return None
    parts = match.groups()
    try:
        if key_type == 'date':
            return datetime.date(*[int(p) for p in parts])
        zone = None
        if key_type == 'timestamp with time zone':
            sign, hours, minutes, seconds = parts[7:]
            offset = datetime.timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=int(seconds or 0))
            zone = datetime.timezone(-offset if sign == '-' else offset)
        return datetime.datetime(*[int(p) for p in parts[:6]], microsecond=int((parts[6] or '0').ljust(6, '0')),
                                 tzinfo=zone)
    except ValueError:  # a day, an hour or an offset that does not exist
        return None


def shown(value, limit=80):
    """Untrusted text for a one-line message: quoted with its escapes, cut at `limit`."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit] + '...'
    return json.dumps(value)


def _stored(value):
    """A bound value as a mark or manifest stores it: an int, or ISO text (with its offset)."""
    if isinstance(value, datetime.datetime):
        return value.isoformat(' ')
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


class Bounds(object):
    """A retired partition's range as typed values of its key. Marks and manifests are read back
    through it (a table's owner can write its comment, anyone with the repository its manifests),
    and it reaches SQL only as literals."""

    def __init__(self, key_type, lower, upper):
        self.key_type, self.lower, self.upper = key_type, lower, upper

    @classmethod
    def from_values(cls, key_type, lower, upper):
        if key_type not in EXAMPLES:
            raise ValueError('the key type %s is not one lifeboat keeps' % key_type)
        values = []
        for which, value in (('lower', lower), ('upper', upper)):
            parsed = parse_value(key_type, value)
            if parsed is None:
                raise ValueError('its %s bound %s is not a %s like %s'
                                 % (which, shown(value), key_type, EXAMPLES[key_type]))
            values.append(parsed)
        if not values[0] < values[1]:
            raise ValueError('its lower bound %s is not below its upper bound %s' % tuple(map(_stored, values)))
        return cls(key_type, *values)

    @classmethod
    def from_text(cls, key_type, text):
        match = PLAIN_BOUND.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError('its bounds %s are not FOR VALUES FROM (...) TO (...) of plain values'
                             % shown(text))
        return cls.from_values(key_type, *[group.strip("'") for group in match.groups()])

    @classmethod
    def from_record(cls, key_type, record):
        """Bounds a mark or manifest records: typed lower and upper, or (as lifeboat wrote them
        before) a bound text of plain values."""
        recorded = record.get('key_type', key_type)
        if recorded != key_type:
            raise ValueError('it records a key of type %s but the table is keyed on %s'
                             % (shown(recorded), key_type))
        if 'lower' in record or 'upper' in record:
            return cls.from_values(key_type, record.get('lower'), record.get('upper'))
        return cls.from_text(key_type, record.get('bound'))

    def record(self):
        return dict(key_type=self.key_type, lower=_stored(self.lower), upper=_stored(self.upper), bound=self.text())

    def text(self):
        def literal(value):
            return str(value) if isinstance(value, int) else "'%s'" % _stored(value)
        return 'FOR VALUES FROM (%s) TO (%s)' % (literal(self.lower), literal(self.upper))

    def sql(self):
        # Plain literals, which PostgreSQL reads as the key's type (as create_partition's bounds).
        return sql.SQL('FOR VALUES FROM ({}) TO ({})').format(sql.Literal(_stored(self.lower)),
                                                              sql.Literal(_stored(self.upper)))


class RetiredMark(object):
    """The comment that marks a partition retention retired: set before it is detached, so a
    detached table is known as ours (and its bounds kept) until it is archived and dropped. It
    records the table it was written on (schema, name, OID) and the bounds as typed values; read
    back, it is checked against the table it is found on (PartitionedTable.detached)."""

    def __init__(self, parent, schema, name, oid, bounds, retired_at, comment=None, backup_id=None):
        self.parent, self.schema, self.name, self.oid = parent, schema, name, oid
        self.bounds = bounds  # a dict as Bounds.from_record reads it; untrusted until checked
        self.retired_at = retired_at
        self.comment = comment  # the table's own comment, put back if it is attached again
        self.backup_id = backup_id

    def text(self):
        data = dict(self.bounds, version=2, parent=self.parent, schema=self.schema, name=self.name, oid=self.oid,
                    retired_at=self.retired_at, comment=self.comment, backup_id=self.backup_id)
        return MARK_PREFIX + json.dumps(data, sort_keys=True)

    @classmethod
    def parse(cls, text):
        """The mark in a comment, or None. Nothing in it is trusted yet."""
        if not text or not text.startswith(MARK_PREFIX):
            return None
        try:
            data = json.loads(text[len(MARK_PREFIX):])
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get('parent'), str):
            return None

        def text_or_none(key):
            return data[key] if isinstance(data.get(key), str) else None
        oid = data.get('oid')
        if 'oid' in data or 'version' in data:  # lifeboat's marks before version 2 recorded no table
            if isinstance(oid, bool) or not isinstance(oid, int):
                oid = -1  # an identity that is no OID matches no table
        return cls(data['parent'], data.get('schema'), data.get('name'), oid,
                   dict((k, data[k]) for k in ('key_type', 'lower', 'upper', 'bound') if k in data),
                   text_or_none('retired_at'), text_or_none('comment'), text_or_none('backup_id'))

    def write(self, conn, schema, name):
        conn.execute(sql.SQL('COMMENT ON TABLE {} IS {}').format(qualified(schema, name), sql.Literal(self.text())))


class Detached(object):
    """A table retention detached from the parent and has not dropped yet, its mark checked."""

    def __init__(self, schema, name, mark, bounds, oid):
        self.schema, self.name, self.mark, self.bounds, self.oid = schema, name, mark, bounds, oid

    @property
    def key(self):
        return table_key(self.schema, self.name)


class PartitionedTable(object):
    """What the catalog says of one range-partitioned table."""

    def __init__(self, conn, table, time_zone):
        self.schema, self.name = split_name(table)
        self.key = table_key(self.schema, self.name)
        self.zone = _zone(time_zone)
        self.major = server_major(conn)
        row = conn.execute(
            "SELECT c.oid, c.relkind, pt.partstrat, pt.partnatts, a.attname, format_type(a.atttypid, NULL), "
            "       pt.partdefid, pg_get_userbyid(c.relowner), current_user "
            "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "  LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid "
            "  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0] "
            " WHERE n.nspname = %s AND c.relname = %s", (self.schema, self.name)).fetchone()
        if row is None:
            raise LifeboatError('table %s not found; name an existing partitioned table as schema.table' % self.key)
        self.oid, relkind, strategy, columns, self.column, self.key_type, self.default_oid, owner, login = row
        # A retired table's mark is trusted only on a table owned by one of these (see detached()).
        self.trusted_owners = (owner, login)
        if relkind != 'p':
            raise LifeboatError('%s is not a partitioned table; lifeboat.db.partition keeps the partitions of a table '
                                'made with PARTITION BY RANGE (column)' % self.key)
        if strategy != 'r':
            raise LifeboatError('%s is partitioned BY %s; lifeboat.db.partition keeps RANGE partitions only'
                                % (self.key, dict(l='LIST', h='HASH').get(strategy, strategy)))
        if columns != 1 or self.column is None:
            raise LifeboatError('%s is partitioned on %s; lifeboat.db.partition needs a range on one column'
                                % (self.key, 'an expression' if columns == 1 else '%d columns' % columns))
        self.partitions = self.read_partitions(conn)
        self.default = next((p for p in self.partitions if p.is_default), None)

    def read_partitions(self, conn):
        """The table's partitions as the catalog has them now."""
        pending = 'i.inhdetachpending' if self.major >= 14 else 'false'
        rows = conn.execute(
            "SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid), c.oid = %%s, %s, c.relkind, c.oid, "
            "       pg_get_userbyid(c.relowner) "
            "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "  JOIN pg_namespace n ON n.oid = c.relnamespace "
            " WHERE i.inhparent = %%s ORDER BY 1, 2" % pending, (self.default_oid, self.oid)).fetchall()
        return [Partition(*row) for row in rows]

    def read_bounds(self, conn):
        """Fill each partition's lower and upper as period values."""
        ranged = [p for p in self.partitions if not p.is_default]
        literals = []
        for part in ranged:
            match = BOUND.match(part.bound or '')
            if not match:
                raise LifeboatError('cannot read the bounds of partition %s (%s)' % (part.key, part.bound))
            literals.extend(_literal(text) for text in match.groups())
        values = self.cast(conn, literals)
        for index, part in enumerate(ranged):
            part.lower, part.upper = values[2 * index], values[2 * index + 1]

    def cast(self, conn, literals):
        """Bound literals -> period values, read by PostgreSQL itself as the key's type."""
        if not literals:
            return []
        wanted = [text for text in literals if text is not None]
        query = sql.SQL('SELECT v::{} FROM unnest(%s::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i').format(
            sql.SQL(self.key_type))
        read = iter(self.to_period(row[0]) for row in conn.execute(query, (wanted,)).fetchall())
        return [next(read) if text is not None else None for text in literals]

    def to_period(self, value):
        """A key value as the calendar counts it: wall-clock time in the time zone, or an int."""
        if isinstance(value, datetime.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(self.zone).replace(tzinfo=None)
            return value
        if isinstance(value, datetime.date):
            return datetime.datetime(value.year, value.month, value.day)
        return int(value)

    def literal(self, start):
        """A period start as a literal of the key's type (timestamptz with its offset)."""
        if not isinstance(start, datetime.datetime):
            return sql.Literal(int(start))
        if self.key_type == 'date':
            return sql.Literal(start.strftime('%Y-%m-%d'))
        if self.key_type == 'timestamp with time zone':
            return sql.Literal(start.replace(tzinfo=self.zone).isoformat(' '))
        return sql.Literal(start.isoformat(' '))

    def detached(self, conn):
        """Tables retention detached from this table and has not dropped, and (key, why) of the
        marked tables that are not: any table's owner can write a mark into its comment, so a mark
        counts only on the very table it was written on (its OID and name), owned by this table's
        owner or by lifeboat's login (a table owner cannot give a table to a role they are not),
        with this table's columns and bounds that are values of its key."""
        rows = conn.execute(
            "SELECT n.nspname, c.relname, d.description, c.oid, pg_get_userbyid(c.relowner), "
            "       EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid), "
            "       (SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attname) "
            "          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) "
            "     = (SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attname) "
            "          FROM pg_attribute a WHERE a.attrelid = p.oid AND a.attnum > 0 AND NOT a.attisdropped) "
            "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "  JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 "
            "  JOIN pg_class p ON p.oid = %s "
            " WHERE c.relkind = 'r' AND NOT c.relispartition AND d.description LIKE %s ORDER BY 1, 2",
            (self.oid, MARK_PREFIX + '%',)).fetchall()
        found, refused = [], []
        for schema, name, text, oid, owner, inherits, same_columns in rows:
            mark = RetiredMark.parse(text)
            if mark is None or mark.parent != self.key:
                continue
            try:
                if mark.oid is not None and (mark.oid, mark.schema, mark.name) != (oid, schema, name):
                    raise ValueError('it is not the table lifeboat marked (the mark was written on %s, OID %s; this '
                                     'is OID %d): a copy or a look-alike'
                                     % (shown(table_key(str(mark.schema), str(mark.name))), mark.oid, oid))
                if inherits:
                    raise ValueError('it inherits from or is inherited by another table')
                if owner not in self.trusted_owners:
                    raise ValueError(self.untrusted_owner(owner))
                if not same_columns:
                    raise ValueError('its columns are not those of %s' % self.key)
                bounds = Bounds.from_record(self.key_type, mark.bounds)
            except ValueError as exc:
                refused.append((table_key(schema, name), str(exc)))
                continue
            found.append(Detached(schema, name, mark, bounds, oid))
        return found, refused

    def untrusted_owner(self, owner):
        return "it is owned by %s, not by %s's owner %s or by lifeboat's login %s" % ((owner, self.key)
                                                                                      + self.trusted_owners)

    def current_max(self, conn):
        query = sql.SQL('SELECT max({}) FROM {}').format(sql.Identifier(self.column), qualified(self.schema, self.name))
        value = conn.execute(query).fetchone()[0]
        return None if value is None else self.to_period(value)


def _literal(text):
    text = text.strip()
    if text in ('MINVALUE', 'MAXVALUE'):
        return None
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    return text


def _zone(name):
    if name.upper() == 'UTC':
        return datetime.timezone.utc
    if ZoneInfo is None:
        raise LifeboatError('time_zone %s needs Python 3.9 or newer on the target host (zoneinfo); use UTC' % name)
    try:
        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError: an unknown or malformed name
        raise LifeboatError('time_zone %r is not a known time zone; use a name like UTC or Asia/Tokyo' % (name,))


def set_time_zone(conn, name):
    """The session shows timestamptz bounds in the table's time zone, as the plan speaks of them."""
    try:
        conn.execute("SELECT set_config('TimeZone', %s, false)", (name,))
    except psycopg.Error:
        raise LifeboatError('time_zone %r is not a time zone PostgreSQL knows; use a name like UTC or Asia/Tokyo'
                            % (name,))


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
    for part in ranged:
        if part.lower is None or part.upper is None or not calendar.is_period(part.lower, part.upper):
            raise LifeboatError('partition %s (%s) is not one %s, so interval %s does not match the partitions of %s; '
                                'give the interval they were made with'
                                % (part.key, part.bound, calendar.unit, calendar.interval if calendar.is_time else
                                   calendar.step, table.key))
    plan = Plan()
    cutoff = None
    if retain is not None:
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
    _count_default_rows(conn, table, plan, default_rows)
    plan.detached, plan.refused = table.detached(conn)
    return plan


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
