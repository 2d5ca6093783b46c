# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""action=check: read-only checks of a live SQLite database, each with its own result.

`integrity` (quick_check or integrity_check), `foreign_key_check`, row counts against a backup
set or a baseline file (integrity.results.compare_row_counts, with its tolerance), and the
operator's SQL checks in lifeboat.db.integrity's expectation language (no rows by default,
`rows: N`, or `value: X`; integrity.custom.evaluate judges them). The file is opened with a
`mode=ro` URI and `PRAGMA query_only`: SQLite itself refuses any write a check's SQL attempts,
and Python's sqlite3 refuses a second statement in one check. Everything is read in one read
transaction, so counts and checks see the same moment of a database the application is writing.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import sqlite3

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.custom import SEVERITIES, evaluate
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import (
    ERROR, FAILED, PASSED, compare_row_counts, parse_tolerance)
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import read_manifest
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.database import (
    hot_journal, integrity_problems, is_busy, open_live, row_counts)
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.holders import locked_message
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.sets import sqlite_set

CHECK_KEYS = ('name', 'sql', 'params', 'rows', 'value', 'severity')
SAMPLE_ROWS = 5


def normalize_checks(checks):
    """The `checks` option checked for shape before anything runs; one line per mistake."""
    normalized, names = [], set()
    for number, check in enumerate(checks or [], 1):
        if not isinstance(check, dict) or not check.get('name') or not check.get('sql'):
            raise LifeboatError('checks item %d must be a dict with name and sql, e.g. {name: complete_versions, '
                                'sql: "SELECT version_id FROM ... HAVING ..."}' % number)
        unknown = sorted(set(check) - set(CHECK_KEYS))
        if unknown:
            raise LifeboatError('check %r has unknown key(s) %s; use %s' % (check['name'], ', '.join(unknown),
                                                                           ', '.join(CHECK_KEYS)))
        if 'rows' in check and 'value' in check:
            raise LifeboatError('check %r gives both rows and value; give one expectation' % check['name'])
        if 'rows' in check and (not isinstance(check['rows'], int) or check['rows'] < 0):
            raise LifeboatError('check %r: rows must be a whole number of rows, got %r' % (check['name'], check['rows']))
        if check.get('severity', 'error') not in SEVERITIES:
            raise LifeboatError('check %r: severity must be error or warning, got %r' % (check['name'],
                                                                                        check['severity']))
        if check['name'] in names:
            raise LifeboatError('two checks are named %r; give each its own name' % check['name'])
        names.add(check['name'])
        normalized.append(dict(check))
    return normalized


def reference_counts(ctx, name, reference, baseline):
    """(row counts, what they are) of a backup set of `name` or of a baseline JSON file."""
    if baseline:
        return read_manifest(baseline)['row_counts'], 'baseline %s' % baseline
    backup = sqlite_set(ctx.repository, name, reference)
    return backup.manifest.get('row_counts') or {}, 'backup %s' % backup.backup_id


def builtin(name, problems, passed_summary):
    # integrity_check puts line breaks inside a problem ("*** in database main ***\nPage 5: ...").
    problems = [' '.join(str(p).split()) for p in problems]
    return dict(name=name, kind=name, severity='error', status=FAILED if problems else PASSED,
                summary=('%d problem(s): %s' % (len(problems), '; '.join(str(p) for p in problems[:3]))
                         if problems else passed_summary), sample=[str(p) for p in problems[:SAMPLE_ROWS]])


def foreign_key_problems(conn):
    return ['%s row %s -> %s (constraint %s)' % row for row in conn.execute('PRAGMA foreign_key_check').fetchall()]


def run_custom(conn, check):
    try:
        cursor = conn.execute(check['sql'], check.get('params') or ())
        columns = [c[0] for c in cursor.description or ()]
        rows = cursor.fetchall()
    except (sqlite3.Error, sqlite3.Warning) as exc:
        if is_busy(exc):
            raise
        return dict(name=check['name'], kind='custom', severity=check.get('severity', 'error'), status=ERROR,
                    summary='could not run: %s' % exc, rows=None, sample=[])
    if not columns:
        return dict(name=check['name'], kind='custom', severity=check.get('severity', 'error'), status=ERROR,
                    summary='its SQL returns no result; write a query whose rows are the violations', rows=None,
                    sample=[])
    return evaluate(check, check['name'], columns, rows, SAMPLE_ROWS)


def run_checks(ctx, path, name):
    p = ctx.params
    checks = normalize_checks(p['checks'])
    tolerance = parse_tolerance(p['tolerance'])
    expected = reference_counts(ctx, name, p['backup'], p['baseline']) if p['compare_counts'] else None
    conn = open_live(path, p['busy_timeout'])
    results = []
    try:
        try:
            conn.execute('PRAGMA query_only = ON')
            conn.execute('BEGIN')
            if p['integrity'] != 'none':
                problems = integrity_problems(conn, full=p['integrity'] == 'full')
                results.append(builtin('integrity', problems, '%s ok' % ('integrity_check' if p['integrity'] == 'full'
                                                                         else 'quick_check')))
            if p['foreign_keys']:
                results.append(builtin('foreign_keys', foreign_key_problems(conn), 'no foreign key violations'))
            if expected is not None:
                counted = compare_row_counts(expected[0], row_counts(conn), tolerance=tolerance)
                counted['summary'] += ' (against %s)' % expected[1]
                results.append(counted)
            for check in checks:
                results.append(run_custom(conn, check))
            conn.execute('COMMIT')
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise LifeboatError(locked_message(path, exc, p['busy_timeout'], 'check of %s' % path))
            if hot_journal(path, exc):
                raise LifeboatError('check of %s: %s' % (path, hot_journal(path, exc)))
            # A file SQLite cannot read at all fails the integrity check, not the task's error path.
            results.append(builtin('integrity', [str(exc)], ''))
    finally:
        conn.close()
    failed = [r['name'] for r in results if r['status'] in (FAILED, ERROR) and r['severity'] == 'error']
    warned = [r['name'] for r in results if r['status'] in (FAILED, ERROR) and r['severity'] != 'error']
    result = dict(changed=False, checks=results, failed_checks=failed + warned,
                  actions=['%s: %s - %s' % (r['name'], r['status'], r['summary']) for r in results])
    if failed:
        result.update(failed=True, msg='%d check(s) of %s failed: %s' % (
            len(failed), path, '; '.join('%s (%s)' % (r['name'], r['summary']) for r in results if r['name'] in failed)))
    if warned:
        result['warnings'] = ['check %s: %s' % (r['name'], r['summary']) for r in results if r['name'] in warned]
    return result
