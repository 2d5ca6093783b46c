# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks an operator writes in SQL, the way the runbooks end with hand-written queries.

A check is `{name, sql}` plus what it expects: by default no rows (the query looks for
violations: orphans, negative stock, ...), or `rows: N` (exactly N rows), or `value: X` (the
first column of its single row, compared as text). Each runs read-only with a statement timeout,
and its result carries a few of the rows it returned, so a failure shows what is wrong.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.connection import first_line, psycopg
from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError

PASSED, FAILED = 'passed', 'failed'
SAMPLE_ROWS = 5
KEYS = ('name', 'sql', 'rows', 'value')


def normalize_checks(checks):
    """Check the option's shape; returns [{name, sql, rows?, value?}] or raises one line."""
    normalized, names = [], set()
    for number, check in enumerate(checks or [], 1):
        if not isinstance(check, dict) or not check.get('name') or not check.get('sql'):
            raise LifeboatError('checks item %d must be a dict with name and sql, e.g. {name: no_orphan_orders, '
                                'sql: "SELECT id FROM orders o WHERE NOT EXISTS (...)"}' % number)
        unknown = sorted(set(check) - set(KEYS))
        if unknown:
            raise LifeboatError('check %r has unknown key(s) %s; use %s' % (check['name'], ', '.join(unknown),
                                                                           ', '.join(KEYS)))
        if 'rows' in check and 'value' in check:
            raise LifeboatError('check %r gives both rows and value; give one expectation' % check['name'])
        if 'rows' in check and (not isinstance(check['rows'], int) or check['rows'] < 0):
            raise LifeboatError('check %r: rows must be a whole number of rows, got %r' % (check['name'], check['rows']))
        if check['name'] in names:
            raise LifeboatError('two checks are named %r; give each its own name' % check['name'])
        names.add(check['name'])
        normalized.append(dict(check))
    return normalized


def _expectation(check):
    if 'value' in check:
        return 'value %s' % check['value']
    return '%d row(s)' % check.get('rows', 0)


def run_check(conn, check, timeout_seconds=60):
    """Run one check on `conn` (autocommit) in a read-only transaction; returns its result."""
    try:
        with conn.transaction():
            conn.execute('SET TRANSACTION READ ONLY')
            conn.execute("SELECT set_config('statement_timeout', %s, true)", ('%ds' % timeout_seconds,))
            cur = conn.execute(check['sql'])
            columns = [c.name for c in cur.description] if cur.description else []
            rows = cur.fetchall() if cur.description else []
    except psycopg.Error as exc:
        raise LifeboatError('check %r could not run: %s' % (check['name'], first_line(exc)))
    sample = [dict(zip(columns, [_plain(v) for v in row])) for row in rows[:SAMPLE_ROWS]]
    if 'value' in check:
        got = str(rows[0][0]) if len(rows) == 1 and columns else None
        ok = got == str(check['value'])
        found = 'value %s' % got if got is not None else '%d row(s)' % len(rows)
    else:
        ok = len(rows) == check.get('rows', 0)
        found = '%d row(s)' % len(rows)
    return dict(name=check['name'], severity='error', status=PASSED if ok else FAILED,
                summary='expected %s, found %s' % (_expectation(check), found), rows=len(rows), sample=sample)


def _plain(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
