# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one clock: UTC now, and the ISO 8601 text every result, manifest and report uses."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import time


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def parse_iso(text):
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc)


def task_timer():
    """A task's clock, started now: the returned function gives the result's `timing` (start and
    end in ISO 8601 and epoch seconds, and the duration from the monotonic clock)."""
    started, clock = utc_now(), time.monotonic()

    def timing():
        return dict(started_at=iso(started), finished_at=iso(utc_now()), started_epoch=started.timestamp(),
                    finished_epoch=time.time(), seconds=round(time.monotonic() - clock, 3))
    return timing
