# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""action=execute: one data fix (seed 004's `UPDATE runs SET plan_job_id = NULL WHERE ...`) in a
transaction whose row count must fall inside `expect_rows`.

BEGIN IMMEDIATE takes the write lock first (waiting busy_timeout for a writer), the statement
runs, and the rows it changed decide: outside {min, max} it is rolled back and the task fails
with the count; in check mode it is always rolled back and the count reported. Only one INSERT,
UPDATE, DELETE or REPLACE runs: Python's sqlite3 refuses a second statement, and a statement
that changes no rows by count (DDL, a PRAGMA) is rolled back as not a data fix.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import sqlite3

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.database import is_busy, open_live
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.holders import locked_message


def bounds(expect_rows):
    """(min, max) of the expect_rows option; max None means no upper bound."""
    expect_rows = expect_rows or {}
    unknown = sorted(set(expect_rows) - set(('min', 'max')))
    if unknown:
        raise LifeboatError('expect_rows takes min and max, not %s; e.g. {min: 1, max: 50}' % ', '.join(unknown))
    low, high = expect_rows.get('min', 0), expect_rows.get('max')
    for label, value in (('min', low), ('max', high)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise LifeboatError('expect_rows.%s must be a whole number of rows, got %r' % (label, value))
    if high is not None and high < low:
        raise LifeboatError('expect_rows.max (%d) is below expect_rows.min (%d)' % (high, low))
    return low, high


def describe_bounds(low, high):
    return '%d..%s' % (low, high if high is not None else 'any')


def execute(ctx, path):
    p = ctx.params
    if not p['sql']:
        raise LifeboatError('action=execute needs sql: the one INSERT, UPDATE or DELETE of the data fix')
    low, high = bounds(p['expect_rows'])
    conn = open_live(path, p['busy_timeout'], read_only=False)
    try:
        try:
            conn.execute('BEGIN IMMEDIATE')
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise LifeboatError(locked_message(path, exc, p['busy_timeout'], 'data fix on %s' % path))
            raise LifeboatError('data fix on %s: cannot start a write transaction: %s' % (path, exc))
        try:
            rows = conn.execute(p['sql'], p['params'] or ()).rowcount
        except (sqlite3.Error, sqlite3.Warning) as exc:
            conn.execute('ROLLBACK')
            if is_busy(exc):
                raise LifeboatError(locked_message(path, exc, p['busy_timeout'], 'data fix on %s' % path))
            raise LifeboatError('data fix on %s failed and was rolled back: %s' % (path, exc))
        if rows < 0:
            conn.execute('ROLLBACK')
            raise LifeboatError('data fix on %s was rolled back: sql must be one INSERT, UPDATE, DELETE or REPLACE '
                                '(it reported no row count)' % path)
        if rows < low or (high is not None and rows > high):
            conn.execute('ROLLBACK')
            raise LifeboatError('data fix on %s changed %d rows, outside expect_rows %s: rolled back, nothing changed'
                                % (path, rows, describe_bounds(low, high)), rows=rows)
        if ctx.check_mode:
            conn.execute('ROLLBACK')
            return dict(changed=rows > 0, rows=rows, actions=['Would change %d rows of %s (ran and rolled back)'
                                                              % (rows, path)])
        conn.execute('COMMIT')
    finally:
        conn.close()
    return dict(changed=rows > 0, rows=rows, actions=['Changed %d rows of %s (expect_rows %s) in one transaction'
                                                      % (rows, path, describe_bounds(low, high))])
