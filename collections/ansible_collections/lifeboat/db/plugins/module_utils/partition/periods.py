# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The calendar of a range-partitioned table: which period a key value falls in, the periods
before and after it, and the name of each period's partition. Pure Python, no database.

Time periods are computed on wall-clock time (naive datetimes) in the table's time zone: a
monthly partition of a timestamptz column runs from local midnight on the 1st to local midnight
on the next 1st, like pg_partman's. Integer keys use plain multiples of the step.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re
import string

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import MAX_NAME_BYTES
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

TIME_INTERVALS = ('yearly', 'quarterly', 'monthly', 'weekly', 'daily')
TIME_TYPES = ('date', 'timestamp without time zone', 'timestamp with time zone')
INTEGER_TYPES = ('smallint', 'integer', 'bigint')

# Default partition names, as pg_partman and pagila (`payment_p2022_01`) name them.
DEFAULT_PATTERNS = dict(yearly='{table}_p{YYYY}', quarterly='{table}_p{YYYY}q{Q}', monthly='{table}_p{YYYY}_{MM}',
                        weekly='{table}_p{IYYY}w{IW}', daily='{table}_p{YYYY}_{MM}_{DD}', integer='{table}_p{start}')
PLACEHOLDERS = dict(
    time=('table', 'YYYY', 'MM', 'DD', 'Q', 'IYYY', 'IW'),
    integer=('table', 'start'))


class Calendar(object):
    """Periods of one interval over one kind of key."""

    def __init__(self, interval, key_type):
        self.key_type = key_type
        if key_type in INTEGER_TYPES:
            if not re.match(r'^[1-9][0-9]*$', str(interval)):
                raise LifeboatError('the partition key is %s, so interval must be a positive integer step (like '
                                    '100000), got %r' % (key_type, interval))
            self.interval, self.step = 'integer', int(interval)
        elif key_type in TIME_TYPES:
            if interval not in TIME_INTERVALS:
                raise LifeboatError('the partition key is %s, so interval must be one of %s, got %r'
                                    % (key_type, ', '.join(TIME_INTERVALS), interval))
            self.interval, self.step = interval, None
        else:
            raise LifeboatError('the partition key is of type %s; lifeboat.db.partition manages keys of type %s'
                                % (key_type, ', '.join(TIME_TYPES + INTEGER_TYPES)))

    @property
    def unit(self):
        return '%s period' % self.interval if self.is_time else 'step of %d' % self.step

    @property
    def is_time(self):
        return self.step is None

    def floor(self, value):
        """Start of the period holding `value` (a naive datetime, or an int)."""
        if not self.is_time:
            return (value // self.step) * self.step
        day = value.date()
        if self.interval == 'yearly':
            day = day.replace(month=1, day=1)
        elif self.interval == 'quarterly':
            day = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
        elif self.interval == 'monthly':
            day = day.replace(day=1)
        elif self.interval == 'weekly':
            day = day - datetime.timedelta(days=day.weekday())
        return datetime.datetime(day.year, day.month, day.day)

    def shift(self, start, periods):
        """The period start `periods` periods after (or before, when negative) `start`."""
        if not self.is_time:
            return start + periods * self.step
        if self.interval in ('daily', 'weekly'):
            return start + datetime.timedelta(days=periods * (7 if self.interval == 'weekly' else 1))
        months = periods * dict(yearly=12, quarterly=3, monthly=1)[self.interval]
        index = start.year * 12 + start.month - 1 + months
        return _same_day_in_month(start, index // 12, index % 12 + 1)

    def after(self, start):
        return self.shift(start, 1)

    def is_period(self, lower, upper):
        """Whether [lower, upper) is exactly one whole period."""
        return self.floor(lower) == lower and self.after(lower) == upper

    def periods(self, first, last):
        """Period starts from `first` through `last`, both period starts."""
        found, current = [], first
        while current <= last:
            found.append(current)
            current = self.after(current)
        return found

    def describe(self, start):
        """A period as an operator says it: 2026-01, 2026q1, 2026-W03, 2026-01-05 or 1000."""
        if not self.is_time:
            return str(start)
        if self.interval == 'yearly':
            return '%04d' % start.year
        if self.interval == 'quarterly':
            return '%04dq%d' % (start.year, (start.month - 1) // 3 + 1)
        if self.interval == 'monthly':
            return '%04d-%02d' % (start.year, start.month)
        if self.interval == 'weekly':
            year, week, dummy = start.isocalendar()
            return '%04d-W%02d' % (year, week)
        return start.strftime('%Y-%m-%d')


def _same_day_in_month(start, year, month):
    """`start` moved to another month, its day clamped to that month's length (Mar 31 - 1 month = Feb 28)."""
    first_of_next = datetime.date(year + month // 12, month % 12 + 1, 1)
    return start.replace(year=year, month=month, day=min(start.day, (first_of_next - datetime.timedelta(days=1)).day))


class Namer(object):
    """Names partitions from a pattern like `{table}_p{YYYY}_{MM}`."""

    def __init__(self, pattern, calendar, table):
        self.calendar = calendar
        self.table = table
        self.pattern = pattern or DEFAULT_PATTERNS[calendar.interval]
        allowed = PLACEHOLDERS['time' if calendar.is_time else 'integer']
        try:
            fields = [field for dummy, field, dummy2, dummy3 in string.Formatter().parse(self.pattern)
                      if field is not None]
        except ValueError as exc:
            raise LifeboatError('name_pattern %r is not a valid pattern (%s); write it like %s'
                                % (self.pattern, exc, DEFAULT_PATTERNS[calendar.interval]))
        unknown = sorted(set(f for f in fields if f not in allowed))
        if unknown:
            raise LifeboatError('name_pattern %r uses %s; a %s partition name can use {%s}'
                                % (self.pattern, ', '.join('{%s}' % f for f in unknown), calendar.interval,
                                   '}, {'.join(allowed)))
        self.fields = set(fields)

    def name(self, start):
        if self.calendar.is_time:
            year, week, dummy = start.isocalendar()
            values = dict(table=self.table, YYYY='%04d' % start.year, MM='%02d' % start.month, DD='%02d' % start.day,
                          Q=str((start.month - 1) // 3 + 1), IYYY='%04d' % year, IW='%02d' % week)
        else:
            values = dict(table=self.table, start=str(start).replace('-', 'm'))
        name = self.pattern.format(**values)
        if len(name.encode('utf-8')) > MAX_NAME_BYTES:
            raise LifeboatError('partition name %r is longer than PostgreSQL\'s %d bytes; give a shorter name_pattern'
                                % (name, MAX_NAME_BYTES))
        return name

    def names(self, starts):
        """Names for `starts`; two periods with one name mean the pattern leaves a field out."""
        named = {}
        for start in starts:
            name = self.name(start)
            if name in named:
                raise LifeboatError('name_pattern %r gives the same name %r to periods %s and %s; add the fields '
                                    'a %s name needs (like %s)'
                                    % (self.pattern, name, self.calendar.describe(named[name]),
                                       self.calendar.describe(start), self.calendar.interval,
                                       DEFAULT_PATTERNS[self.calendar.interval]))
            named[name] = start
        return dict((start, name) for name, start in named.items())
