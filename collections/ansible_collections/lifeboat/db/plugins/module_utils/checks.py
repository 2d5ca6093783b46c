# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integrity checks: each returns a structured result with a name, a status and the details."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError

PASSED, FAILED = 'passed', 'failed'


def compare_row_counts(expected, actual, tables=None):
    """Compare {'schema.table': rows} maps. Missing tables and different counts fail; a table
    that exists only in the database is reported as extra, which is not a loss of data."""
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
        elif have != want:
            status, failures = 'mismatch', failures + 1
        else:
            status = 'ok'
        rows.append(dict(table=name, expected=want, actual=have, status=status))
    summary = ('%d of %d tables match' % (len([r for r in rows if r['status'] == 'ok']), len(rows))
               if not failures else
               '%d table(s) differ: %s' % (failures, ', '.join('%s (expected %s, found %s)'
                                                             % (r['table'], r['expected'], r['actual'])
                                                             for r in rows if r['status'] in ('missing', 'mismatch'))))
    return dict(name='row_counts', severity='error', status=FAILED if failures else PASSED, summary=summary,
                failures=failures, tables=rows)
