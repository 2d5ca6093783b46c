# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Partition bounds as values: a key value parsed and shown, the bounds of one partition (to and
from SQL, and the record a retirement mark keeps), and the mark itself.

The table as the catalog describes it is table.py's; the plan that keeps it is plan.py's.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import re

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql

MARK_PREFIX = 'lifeboat-retired '


def qualified(schema, name):
    return sql.SQL('{}.{}').format(sql.Identifier(schema), sql.Identifier(name))


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
