# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks an operator writes in SQL, the way the runbooks end with hand-written queries.

A check is `{name, sql}` or `{name, file}` plus what it expects: by default no rows (the query
looks for violations: orphans, negative stock, ...), or `rows: N` (exactly N rows), or
`value: X` (the last column of its single row, compared as text, so a query may put a label
first, as seed 002's `SELECT 'teams without leaders' AS check_name, COUNT(*) AS count` does).
A file may hold several statements (seed 002's integrity-check.sql runs unmodified); each one
that returns rows is its own check, named after its `check_name` column when it has one. Each
runs read-only with a statement timeout, and its result carries a few of the rows it returned,
so a failure shows what is wrong.

A check's text is untrusted: `COMMIT; DELETE ...` sent as one simple-protocol string would end
the read-only transaction and run the DELETE outside it. So the text is split first (the script
splitter, which knows quotes, dollar quotes and comments), inline `sql` must be one statement,
no statement may control the transaction or the session, and each statement is sent alone
through the extended protocol (prepared), where the server itself refuses a second statement.
Each one gets the timeout again (a check cannot lift it for the next), and everything a check
did to the session is rolled back after it.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import psycopg
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import FAILED, PASSED
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.runner import Check
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sql_script import parse

SAMPLE_ROWS = 5
KEYS = ('name', 'sql', 'file', 'rows', 'value', 'severity')
SEVERITIES = ('error', 'warning')
# First words of statements that end or change the transaction (COMMIT, END, PREPARE TRANSACTION,
# SET TRANSACTION READ WRITE, ...) or the session (SET statement_timeout, RESET, DISCARD), and
# COPY: none of them is a check, and some would let the next statement run outside the check's
# read-only transaction. Reads (SELECT, WITH, VALUES, TABLE, ...) are left to PostgreSQL, whose
# read-only transaction refuses any write, a function's included.
_NOT_A_QUERY = frozenset(('BEGIN', 'START', 'COMMIT', 'END', 'ROLLBACK', 'ABORT', 'SAVEPOINT', 'RELEASE',
                          'PREPARE', 'SET', 'RESET', 'DISCARD', 'COPY'))
_FIRST_WORD = re.compile(r'[A-Za-z_]+')


def normalize_checks(checks):
    """Check the option's shape; returns [{name, sql | file, rows?, value?, severity?}] or raises one line."""
    normalized, names = [], set()
    for number, check in enumerate(checks or [], 1):
        if not isinstance(check, dict) or not check.get('name') or not (check.get('sql') or check.get('file')):
            raise LifeboatError('checks item %d must be a dict with name and sql (or file), e.g. {name: '
                                'no_orphan_orders, sql: "SELECT id FROM orders o WHERE NOT EXISTS (...)"}' % number)
        unknown = sorted(set(check) - set(KEYS))
        if unknown:
            raise LifeboatError('check %r has unknown key(s) %s; use %s' % (check['name'], ', '.join(unknown),
                                                                           ', '.join(KEYS)))
        if check.get('sql') and check.get('file'):
            raise LifeboatError('check %r gives both sql and file; give one' % check['name'])
        if 'rows' in check and 'value' in check:
            raise LifeboatError('check %r gives both rows and value; give one expectation' % check['name'])
        if 'rows' in check and (not isinstance(check['rows'], int) or check['rows'] < 0):
            raise LifeboatError('check %r: rows must be a whole number of rows, got %r' % (check['name'], check['rows']))
        if check.get('severity', 'error') not in SEVERITIES:
            raise LifeboatError('check %r: severity must be error or warning, got %r' % (check['name'],
                                                                                        check['severity']))
        if check.get('sql'):
            # Inline SQL is checked before anything runs (a file is read when its check runs).
            statements(check, check['sql'], inline=True)
        if check['name'] in names:
            raise LifeboatError('two checks are named %r; give each its own name' % check['name'])
        names.add(check['name'])
        normalized.append(dict(check))
    return normalized


def _expectation(check):
    if 'value' in check:
        return 'value %s' % check['value']
    return '%d row(s)' % check.get('rows', 0)


def check_sql(check):
    """The SQL text of a check: inline, or read from its file on the target host."""
    if check.get('sql'):
        return check['sql']
    try:
        with open(check['file'], encoding='utf-8') as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise LifeboatError('check %r: cannot read %s: %s; give the path of the SQL file on the target host'
                            % (check['name'], check['file'], exc.strerror or exc))
    except UnicodeDecodeError:
        raise LifeboatError('check %r: %s is not UTF-8 text' % (check['name'], check['file']))


def statements(check, text, inline):
    """The statements of a check's text, or one line saying why it may not run."""
    found = parse(text, 'check %r' % check['name'])
    if inline and len(found) > 1:
        raise LifeboatError('check %r: its sql holds %d statements; a check is one statement (put several in a '
                            'file: each statement is its own check)' % (check['name'], len(found)))
    for number, statement in enumerate(found, 1):
        word = _FIRST_WORD.match(statement.text)
        word = word.group().upper() if word else ''
        if word in _NOT_A_QUERY or statement.control or statement.copy_data is not None:
            raise LifeboatError('check %r: statement %d (%s) controls the transaction or the session; only queries '
                                'may run in a check, nothing of it ran' % (check['name'], number, statement.summary(60)))
    return found


def execute(conn, check, limit=SAMPLE_ROWS):
    """Run a check on `conn`, already inside a read-only transaction with its statement timeout;
    returns one result per statement that returned rows. Database errors are raised as they are."""
    found = []
    todo = statements(check, check_sql(check), inline=bool(check.get('sql')))
    timeout = conn.execute("SELECT current_setting('statement_timeout')").fetchone()[0]
    # A savepoint rolled back at the end: a set_config(..., false) or a role a check sets dies with it.
    with conn.transaction(force_rollback=True):
        for statement in todo:
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (timeout,))
            # prepare=True: the extended protocol, which refuses a second statement in one text.
            cur = conn.execute(statement.text, prepare=True)
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
                raise LifeboatError('check %r ended its read-only transaction; only queries may run in a check'
                                    % check['name'])
            if cur.description is not None:
                found.append(([c.name for c in cur.description], cur.fetchall()))
    if not found:
        raise LifeboatError('check %r: its SQL returns no result; write a query (SELECT ...) whose rows are the '
                            'violations' % check['name'])
    results = []
    for number, (columns, rows) in enumerate(found, 1):
        name = check['name']
        if len(found) > 1:
            label = rows[0][columns.index('check_name')] if rows and 'check_name' in columns else '#%d' % number
            name = '%s: %s' % (check['name'], label) if not str(label).startswith('#') else '%s %s' % (name, label)
        results.append(evaluate(check, name, columns, rows, limit))
    return results


def evaluate(check, name, columns, rows, limit=SAMPLE_ROWS):
    """A check's result from the rows its query returned."""
    sample = [dict(zip(columns, [plain(v) for v in row])) for row in rows[:limit]]
    if 'value' in check:
        got = str(rows[0][-1]) if len(rows) == 1 and columns else None
        ok = got == str(check['value'])
        found = 'value %s' % got if got is not None else '%d row(s)' % len(rows)
    else:
        ok = len(rows) == check.get('rows', 0)
        found = '%d row(s)' % len(rows)
    return dict(name=name, kind='custom', severity=check.get('severity', 'error'), status=PASSED if ok else FAILED,
                summary='expected %s, found %s' % (_expectation(check), found), rows=len(rows), sample=sample)


def custom_check(check):
    """A normalized check as runner.run_checks runs it (integrity's and restore's alike): one
    result per statement that returned rows."""
    return Check(check['name'], 'custom', lambda conn, limit: execute(conn, check, limit), check.get('severity', 'error'))


def plain(value):
    """A value as JSON can carry it (dates, decimals and the like as text)."""
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
