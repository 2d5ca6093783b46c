# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durations, sizes and times as people read them in a report, in English or Japanese."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import math

from ansible_collections.lifeboat.db.plugins.module_utils.common.report_texts import text

TIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'


def _number(value, decimals):
    shown = '%.*f' % (decimals, value)
    return shown.rstrip('0').rstrip('.') if '.' in shown else shown


def duration(lang, seconds):
    """2.25 s, 12.5 min, 4 h, 1.5 d (a dash when there is no value)."""
    if seconds is None:
        return text(lang, 'none')
    if seconds < 0.1:
        return text(lang, 'unit_seconds', value=_number(seconds, 3))
    if seconds < 10:
        return text(lang, 'unit_seconds', value=_number(seconds, 2))
    if seconds < 120:
        return text(lang, 'unit_seconds', value=_number(seconds, 1))
    if seconds < 3600:
        return text(lang, 'unit_minutes', value=_number(seconds / 60.0, 1))
    if seconds < 2 * 86400:
        return text(lang, 'unit_hours', value=_number(seconds / 3600.0, 1))
    return text(lang, 'unit_days', value=_number(seconds / 86400.0, 1))


def axis(lang, seconds, step):
    """A tick of a time axis whose ticks are `step` seconds apart: as many decimals as the step needs."""
    if step >= 60:
        return duration(lang, seconds)
    decimals = max(0, -int(math.floor(math.log10(step)))) if step > 0 else 0
    return text(lang, 'unit_seconds', value=_number(seconds, decimals))


def size(lang, count):
    """Bytes in binary units (52 KiB, 1.2 GiB); the same in both languages."""
    if count is None:
        return text(lang, 'none')
    value = float(count)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return '%s %s' % (_number(value, 0 if unit == 'B' else 1), unit)
        value /= 1024.0


def count(lang, value):
    return text(lang, 'none') if value is None else '{:,}'.format(int(value))


def parse_time(value):
    """A UTC time as the modules write it (2026-12-05T08:28:28.782253Z), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.strptime(value, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def moment(lang, value, plus_seconds=0.0):
    """2026-12-05 08:28:28 UTC (optionally `plus_seconds` later); a dash for no or an unreadable time."""
    parsed = parse_time(value)
    if parsed is None:
        return text(lang, 'none')
    return (parsed + datetime.timedelta(seconds=plus_seconds)).strftime('%Y-%m-%d %H:%M:%S UTC')
