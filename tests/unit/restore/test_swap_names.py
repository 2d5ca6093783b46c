# -*- coding: utf-8 -*-
"""Names swap.py derives from a live database's: staging, previous and probe copies."""
import datetime
import re

from ansible_collections.lifeboat.db.plugins.module_utils.restore.swap import (
    NAMEDATALEN, marker, previous_name, probe_name, staging_name, stem)

MOMENT = datetime.datetime(2026, 12, 4, 20, 0, 0)


def derived(live):
    return [staging_name(live), previous_name(live, MOMENT), probe_name(live)]


def test_a_short_name_is_kept_whole():
    assert previous_name('app', MOMENT) == 'app_prev_20261204200000'
    assert re.match(r'^app_lbstage_[0-9a-f]{6}$', staging_name('app'))
    assert stem('app', 20) == 'app'


def test_long_names_sharing_a_prefix_derive_different_names_that_fit():
    a = 'x' * 55 + '_aaaaaaa'
    b = 'x' * 55 + '_bbbbbbb'
    for live in (a, b, 'ü' * 40):
        for name in derived(live):
            assert len(name.encode('utf-8')) <= NAMEDATALEN, name
            name.encode('utf-8').decode('utf-8')  # never a cut inside a character
    assert previous_name(a, MOMENT) != previous_name(b, MOMENT)
    assert stem(a, 15) != stem(b, 15)
    # The hash is of the whole name: stable from run to run, so a later run finds its copies.
    assert stem(a, 20) == stem(a, 20)


def test_the_marker_names_the_whole_live_database():
    assert marker('previous', 'app') == 'lifeboat previous of app'
    assert marker('staging', 'x' * 63).endswith('x' * 63)
