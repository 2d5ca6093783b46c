# -*- coding: utf-8 -*-
"""The partition calendar: periods, their names, and what counts as one whole period."""
import datetime

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.partition.periods import Calendar, Namer

D = datetime.datetime
TS = 'timestamp with time zone'


@pytest.mark.parametrize('interval, value, start, after', [
    ('yearly', D(2026, 11, 29, 10), D(2026, 1, 1), D(2027, 1, 1)),
    ('quarterly', D(2026, 11, 29), D(2026, 10, 1), D(2027, 1, 1)),
    ('monthly', D(2026, 12, 31, 23, 59), D(2026, 12, 1), D(2027, 1, 1)),
    ('weekly', D(2026, 11, 29), D(2026, 11, 23), D(2026, 11, 30)),  # a Sunday: its ISO week began on Monday
    ('daily', D(2024, 2, 29, 12), D(2024, 2, 29), D(2024, 3, 1)),
])
def test_floor_and_next_period(interval, value, start, after):
    calendar = Calendar(interval, TS)
    assert calendar.floor(value) == start
    assert calendar.after(start) == after
    assert calendar.is_period(start, after)
    assert not calendar.is_period(start, calendar.after(after))


def test_shift_back_clamps_the_day_of_month():
    monthly = Calendar('monthly', 'date')
    assert monthly.shift(D(2026, 3, 31), -1) == D(2026, 2, 28)
    assert Calendar('yearly', 'date').shift(D(2028, 2, 29), -3) == D(2025, 2, 28)


def test_integer_steps():
    calendar = Calendar('1000', 'bigint')
    assert calendar.floor(2500) == 2000 and calendar.after(2000) == 3000
    assert calendar.periods(0, 2000) == [0, 1000, 2000]
    assert calendar.floor(-1) == -1000
    assert not calendar.is_period(0, 500)


@pytest.mark.parametrize('interval, key_type, fragment', [
    ('monthly', 'integer', 'must be a positive integer step'),
    ('0', 'integer', 'must be a positive integer step'),
    ('1000', 'date', 'interval must be one of'),
    ('hourly', TS, 'interval must be one of'),
    ('monthly', 'text', 'keys of type'),
])
def test_interval_must_fit_the_key(interval, key_type, fragment):
    with pytest.raises(LifeboatError) as caught:
        Calendar(interval, key_type)
    assert fragment in caught.value.msg


@pytest.mark.parametrize('interval, pattern, start, name', [
    ('monthly', None, D(2026, 1, 1), 'payment_p2026_01'),
    ('yearly', None, D(2026, 1, 1), 'payment_p2026'),
    ('yearly', '{table}_{YYYY}', D(2025, 1, 1), 'payment_2025'),
    ('quarterly', None, D(2026, 7, 1), 'payment_p2026q3'),
    ('weekly', None, D(2026, 12, 28), 'payment_p2026w53'),
    ('weekly', None, D(2024, 12, 30), 'payment_p2025w01'),  # ISO year, not calendar year
    ('daily', None, D(2026, 2, 3), 'payment_p2026_02_03'),
])
def test_names(interval, pattern, start, name):
    assert Namer(pattern, Calendar(interval, 'date'), 'payment').name(start) == name


def test_integer_names_and_negative_starts():
    namer = Namer(None, Calendar('100', 'integer'), 'events')
    assert namer.name(300) == 'events_p300' and namer.name(-100) == 'events_pm100'


@pytest.mark.parametrize('pattern, fragment', [
    ('{table}_{year}', 'uses {year}'),
    ('{table}_{YYYY', 'not a valid pattern'),
    ('{table}_{start}', 'uses {start}'),
    ('x' * 60 + '{YYYY}', 'longer than'),
])
def test_bad_patterns(pattern, fragment):
    with pytest.raises(LifeboatError) as caught:
        Namer(pattern, Calendar('yearly', 'date'), 'payment').name(D(2026, 1, 1))
    assert fragment in caught.value.msg


def test_a_pattern_that_names_two_periods_alike_is_refused():
    namer = Namer('{table}_{YYYY}', Calendar('monthly', 'date'), 'payment')
    with pytest.raises(LifeboatError) as caught:
        namer.names([D(2026, 1, 1), D(2026, 2, 1)])
    assert 'same name' in caught.value.msg
