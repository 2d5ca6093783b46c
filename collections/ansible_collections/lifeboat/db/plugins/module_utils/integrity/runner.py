# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one runner of checks, for integrity's checks and restore's custom checks alike.

A check is a `Check` (a name, a kind, a severity and a function of a connection) and
`run_checks` executes checks read-only, on one or more connections that share one snapshot
(exported by the first, as pg_dump -j does), so counts taken on different connections describe
the same moment. Each check runs in its own savepoint with its own statement timeout: one that
fails to parse or times out is reported with status `error` and the others still run. Every
result has the shape of `result`: name, kind, severity, status (results.py), summary, sample,
its details and the seconds it took.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import threading
import time

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import ERROR


class Check(object):
    """One check: `run(conn, limit)` returns a dict with at least status and summary."""

    def __init__(self, name, kind, run, severity='error'):
        self.name, self.kind, self.run, self.severity = name, kind, run, severity


def result(check, status, summary, **details):
    entry = dict(name=check.name, kind=check.kind, severity=check.severity, status=status, summary=summary)
    entry.setdefault('sample', [])
    entry.update(details)
    return entry


class Snapshot(object):
    """`count` read-only REPEATABLE READ connections that see the same snapshot."""

    def __init__(self, connect, count):
        self.connections = []
        try:
            first = self._open(connect)
            if count > 1:
                snapshot = first.execute('SELECT pg_export_snapshot()').fetchone()[0]
                for dummy in range(count - 1):
                    other = self._open(connect)
                    other.execute(sql.SQL('SET TRANSACTION SNAPSHOT {}').format(sql.Literal(snapshot)))
            else:
                first.execute('SELECT 1')  # begins the transaction, so the snapshot is taken now
        except BaseException:
            self.close()
            raise

    def _open(self, connect):
        conn = connect()
        self.connections.append(conn)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn

    @property
    def first(self):
        return self.connections[0]

    def close(self):
        for conn in self.connections:
            try:
                conn.rollback()
                conn.close()
            except psycopg.Error:
                pass


# How run_one begins the reason of a database error or a timeout.
_NAMELESS = ('did not finish within ', 'could not run: ')


def run_one(conn, job, timeout):
    """Run `job(conn)` inside a savepoint with a statement timeout; returns (value, error, seconds)."""
    start = time.monotonic()
    try:
        with conn.transaction():
            conn.execute(sql.SQL('SET LOCAL statement_timeout = {}').format(sql.Literal('%ds' % timeout)))
            value, error = job(conn), None
    except psycopg.errors.QueryCanceled:
        value, error = None, 'did not finish within %ds (timeout); raise timeout or run it off-peak' % timeout
    except psycopg.Error as exc:
        value, error = None, 'could not run: %s' % first_line(exc)
    except LifeboatError as exc:
        value, error = None, exc.msg
    return value, error, round(time.monotonic() - start, 3)


def run_jobs(snapshot, jobs, timeout):
    """Run callables of a connection on the snapshot's connections, one job at a time per
    connection; returns [(value, error, seconds)] in the order of `jobs`."""
    outcomes = [None] * len(jobs)
    position = [0]
    lock = threading.Lock()

    def worker(conn):
        while True:
            with lock:
                index = position[0]
                position[0] += 1
            if index >= len(jobs):
                return
            outcomes[index] = run_one(conn, jobs[index], timeout)

    threads = [threading.Thread(target=worker, args=(conn,)) for conn in snapshot.connections[1:]]
    for thread in threads:
        thread.start()
    worker(snapshot.first)
    for thread in threads:
        thread.join()
    return outcomes


def run_checks(snapshot, checks, timeout, limit):
    """Run `checks`; returns one result per check, in order. A check that could not run is
    reported with status error and its reason."""
    outcomes = run_jobs(snapshot, [lambda conn, c=c: c.run(conn, limit) for c in checks], timeout)
    results = []
    for check, (value, error, seconds) in zip(checks, outcomes):
        if error is not None:
            # Name the check in the one-line reason, once: a LifeboatError of a check names it, a
            # database error or a timeout does not (its text may hold the name by chance).
            named = check.name in error and not error.startswith(_NAMELESS)
            value = result(check, ERROR, error if named else 'check %r %s' % (check.name, error))
        # A file of custom checks gives one result per statement, which share its time.
        for entry in value if isinstance(value, list) else [value]:
            entry['seconds'] = seconds
            results.append(entry)
    return results


def wrap(check):
    """Let a check's function return only its status, summary and details."""
    inner = check.run
    check.run = lambda conn, limit: result(check, **inner(conn, limit))
    return check
