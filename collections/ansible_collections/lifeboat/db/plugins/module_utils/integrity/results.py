# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a check found: the statuses every check result carries (integrity's checks and restore's
custom checks alike), and row counts of a database against a backup's manifest or a baseline."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

# A check passed or failed; it was skipped (nothing to check, e.g. amcheck not installed); or it
# could not run (error), which proves nothing whatever the check's severity.
PASSED, FAILED, SKIPPED, ERROR = 'passed', 'failed', 'skipped', 'error'


def parse_tolerance(text):
    """'5%' (relative to the expected count) or '100' (rows) -> (kind, amount); None -> None.
    A live database keeps changing after its baseline was captured: a tolerance says how far a
    count may move before it counts as lost rows."""
    if text is None or str(text).strip() == '':
        return None
    match = re.match(r'^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$', str(text))
    if not match:
        raise LifeboatError("tolerance must be a percentage like '5%%' or a number of rows like '100', got %r" % (text,))
    amount = float(match.group(1))
    return ('percent', amount) if match.group(2) else ('rows', int(amount))


def describe_tolerance(tolerance):
    return '%g%%' % tolerance[1] if tolerance[0] == 'percent' else '%d row(s)' % tolerance[1]


def _within(want, have, tolerance):
    if tolerance is None:
        return False
    allowed = want * tolerance[1] / 100.0 if tolerance[0] == 'percent' else tolerance[1]
    return abs(have - want) <= allowed


def compare_row_counts(expected, actual, tables=None, tolerance=None):
    """Compare {'schema.table': rows} maps. Missing tables and different counts fail (a count
    within `tolerance` passes); a table that exists only in the database is reported as extra,
    which is not a loss of data."""
    names = sorted(set(expected) | set(actual))
    if tables:
        unknown = [t for t in tables if t not in expected]
        if unknown:
            raise LifeboatError('table(s) %s are not in the baseline; list tables as schema.table, e.g. %s'
                                % (', '.join(unknown), ', '.join(sorted(expected)[:3]) or 'public.users'))
        names = sorted(set(tables))
    rows, failures = [], 0
    for name in names:
        want, have = expected.get(name), actual.get(name)
        if want is None:
            status = 'extra'
        elif have is None:
            status, failures = 'missing', failures + 1
        elif have == want:
            status = 'ok'
        elif _within(want, have, tolerance):
            status = 'within_tolerance'
        else:
            status, failures = 'mismatch', failures + 1
        rows.append(dict(table=name, expected=want, actual=have, status=status))
    matching = len([r for r in rows if r['status'] in ('ok', 'within_tolerance')])
    if failures:
        summary = '%d table(s) differ: %s' % (failures, ', '.join(
            '%s (expected %s, found %s)' % (r['table'], r['expected'], r['actual'])
            for r in rows if r['status'] in ('missing', 'mismatch')))
    else:
        summary = '%d of %d tables match' % (matching, len(rows))
        moved = len([r for r in rows if r['status'] == 'within_tolerance'])
        if moved:
            summary += ' (%d within the tolerance of %s)' % (moved, describe_tolerance(tolerance))
    return dict(name='row_counts', kind='row_counts', severity='error', status=FAILED if failures else PASSED,
                summary=summary, failures=failures, tables=rows, sample=[r for r in rows if r['status'] in
                                                                           ('missing', 'mismatch')][:5])
