# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A range-partitioned table as the catalog describes it: its key, its partitions and their bounds
(read by PostgreSQL itself as the key's type), the time zone its periods are counted in, and the
tables retention detached and has not dropped yet.

Existing partitions are recognised by their bounds, not their names, so partitions made by hand
(pagila's `payment_p2022_01`, seed 002's `policy_violations_2025`) count as they are. A retired
partition is marked with a table comment before it is detached (see bounds.RetiredMark), so a run
that stopped half-way - detached but not yet archived or dropped - is finished by the next run.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import split_name, table_key
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import psycopg, server_major, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.partition.bounds import (
    MARK_PREFIX, Bounds, RetiredMark, qualified, shown)

try:
    from zoneinfo import ZoneInfo
except ImportError:  # Python < 3.9 on the target: only UTC is known
    ZoneInfo = None

BOUND = re.compile(r"^FOR VALUES FROM \((.+)\) TO \((.+)\)$", re.S)


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
