# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restored cluster as a running scratch instance: pg_ctl start and stop, waiting for recovery to reach
its target and promote, and reading back where it stopped - from the server, its timeline history file and
its log (whose prefix and language lifeboat sets, so the lines below are PostgreSQL 15's own)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os
import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import psycopg
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.scratch import postmaster_pid
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.target import format_lsn, parse_lsn

# `2026-12-05 11:53:01.187 UTC [4242] FATAL:  recovery ended before configured recovery target was reached`
LOG_LINE = re.compile(r'^\S+ \S+ \S+ \[\d+\] (LOG|FATAL|PANIC|ERROR|WARNING):\s+(.*)$')
# restore_command's own failure, as pgBackRest prints it to the server log: `ERROR: [045]: ...`
ARCHIVE_GET_ERROR = re.compile(r'(?:^|\s)(?:ERROR|ASSERT): \[(\d+)\]: (.*)$')
STOPPING = re.compile(r'^recovery stopping (.*)$')
# What lifeboat's own connection attempts make the server log while it recovers: waiting, not the failure.
CONNECTION_REFUSED = ('the database system is not yet accepting connections', 'the database system is starting up',
                      'the database system is shutting down', 'the database system is in recovery mode')
POLL_SECONDS = 0.3


class Instance(object):
    def __init__(self, run_command, bin_dir, data_dir, port, socket_dir, log_file, login_user, dbname):
        self.run_command = run_command
        self.bin_dir = bin_dir
        self.data_dir = data_dir
        self.port = port
        self.socket_dir = socket_dir
        self.log_file = log_file
        self.login_user = login_user
        self.dbname = dbname
        # What to do when recovery ends before the target: the caller knows the target and the backup.
        self.recovery_hint = 'the archive lacks or cannot read WAL needed for the target: run pgbackrest verify'

    def pg_ctl(self, *args):
        argv = [os.path.join(self.bin_dir, 'pg_ctl'), '-D', self.data_dir] + list(args)
        return self.run_command(argv, environ_update={'LC_ALL': 'C'})

    def running(self):
        return postmaster_pid(self.data_dir) is not None

    def start(self):
        """Start without waiting: recovery may take long, and a postmaster that exits is read from the log."""
        rc, out, err = self.pg_ctl('-l', self.log_file, '-W', 'start')
        if rc != 0:
            raise LifeboatError('pg_ctl could not start the scratch instance in %s (rc %d): %s; see %s'
                                % (self.data_dir, rc, last_line(err or out), self.log_file))

    def stop(self, mode='fast'):
        """Stop the instance if it runs; `immediate` when a fast stop does not end it in 60 seconds."""
        if not self.running():
            return False
        rc, out, err = self.pg_ctl('-m', mode, '-w', '-t', '60', 'stop')
        if rc != 0 and self.running():
            rc, out, err = self.pg_ctl('-m', 'immediate', '-w', '-t', '60', 'stop')
            if rc != 0 and self.running():
                raise LifeboatError('cannot stop the scratch instance in %s: %s; stop it with pg_ctl -D %s stop -m '
                                    'immediate' % (self.data_dir, last_line(err or out), self.data_dir))
        return True

    def connect(self):
        return psycopg.connect(host=self.socket_dir, port=self.port, user=self.login_user, dbname=self.dbname,
                               connect_timeout=5, autocommit=True, application_name='lifeboat')

    def wait_for_promotion(self, timeout, log_offset):
        """Poll until recovery has promoted; the postmaster exiting first (recovery ended short of the
        target, WAL missing or damaged) or the timeout ends in one line, with the instance stopped."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            if not self.running():
                # A postmaster that exited at once may not have written its pid file yet: give it a moment.
                time.sleep(POLL_SECONDS)
                if not self.running():
                    raise LifeboatError(self.why_it_stopped(log_offset))
            try:
                with self.connect() as conn:
                    if not conn.execute('SELECT pg_is_in_recovery()').fetchone()[0]:
                        return
            except psycopg.Error as exc:
                # Before the consistent point the server refuses connections; that is waiting, not failing.
                last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if 'does not exist' in last_error:
                    # No waiting makes a role or database appear in the restored cluster.
                    self.stop('fast')
                    raise LifeboatError('cannot read the scratch instance: %s; set login_user and db to a role and '
                                        'database of the restored cluster (default postgres)' % last_error)
            if time.monotonic() > deadline:
                # Recovery is cut short anyway, and a fast stop waits for whatever the startup process runs.
                self.stop('immediate')
                raise LifeboatError('recovery did not reach the target within timeout=%d s (%s); the scratch instance '
                                    'is stopped - raise timeout, or see %s'
                                    % (timeout, last_error or 'still in recovery', self.log_file))
            time.sleep(POLL_SECONDS)

    def why_it_stopped(self, log_offset):
        lines = log_lines(self.log_file, log_offset)
        fatal = [text for level, text in lines if level in ('FATAL', 'PANIC') and text not in CONNECTION_REFUSED]
        archive = archive_get_errors(self.log_file, log_offset)
        detail = fatal[-1] if fatal else 'the postmaster exited'
        if detail.startswith('configuration file'):
            # PostgreSQL names the bad line in the LOG lines before; a restored postgresql.conf may hold it.
            errors = [text for level, text in lines if level == 'LOG']
            return ('the scratch instance did not start: %s (%s); fix settings, or the restored postgresql.conf in %s '
                    '- the live cluster was not touched' % ('; '.join(errors[-3:]) or detail, detail, self.data_dir))
        where = ''
        redo = [text for level, text in lines if level == 'LOG' and text.startswith('redo done at')]
        if redo:
            where = ' (%s)' % redo[-1].split(' system usage')[0]
        extra = ' - pgBackRest archive-get: %s' % archive[-1] if archive else ''
        hint = self.recovery_hint if 'recovery target' in detail or archive else 'see %s' % self.log_file
        return ('recovery of the scratch instance stopped: %s%s%s; %s; the live cluster was not touched'
                % (detail, where, extra, hint))

    def read_back(self, log_offset):
        """Where recovery ended: the new timeline, the LSN it branched at (its history file), the last
        transaction replayed, and the log's `recovery stopping` line."""
        with self.connect() as conn:
            wal, replayed = conn.execute(
                'SELECT pg_walfile_name(pg_current_wal_lsn()), pg_last_xact_replay_timestamp()').fetchone()
        timeline = int(wal[:8], 16)
        history = read_history(self.data_dir, timeline)
        stopping = [STOPPING.match(text).group(1) for level, text in log_lines(self.log_file, log_offset)
                    if level == 'LOG' and STOPPING.match(text)]
        return dict(timeline=timeline, lsn=history['lsn'] if history else None,
                    last_replayed_at=iso_utc(replayed), promoted=True,
                    stop_reason=history['reason'] if history else None,
                    stopping=stopping[-1] if stopping else None)


def read_history(data_dir, timeline):
    """The last line of the timeline's history file: where it branched off and why (PostgreSQL writes
    one at every promotion after archive recovery)."""
    path = os.path.join(data_dir, 'pg_wal', '%08X.history' % timeline)
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            rows = [line.split('\t') for line in handle.read().splitlines()
                    if line.strip() and not line.startswith('#')]
    except (IOError, OSError):
        return None
    if not rows or len(rows[-1]) < 2:
        return None
    return dict(lsn=format_lsn(parse_lsn(rows[-1][1].strip(), 'history switch point')),
                reason=rows[-1][2].strip() if len(rows[-1]) > 2 else None)


def iso_utc(moment):
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_log(path, offset):
    try:
        with open(path, 'rb') as handle:
            handle.seek(offset)
            return handle.read(32 * 1024 * 1024).decode('utf-8', 'replace')
    except (IOError, OSError):
        return ''


def log_lines(path, offset):
    found = []
    for line in read_log(path, offset).splitlines():
        match = LOG_LINE.match(line)
        if match:
            found.append((match.group(1), match.group(2).strip()))
    return found


def archive_get_errors(path, offset):
    """restore_command's failures in the server log, each on one line: pgBackRest continues an error on
    indented lines (`unable to get 0000...06:` then the repository file and why)."""
    errors = []
    current = None
    for line in read_log(path, offset).splitlines():
        match = None if LOG_LINE.match(line) else ARCHIVE_GET_ERROR.search(line)
        if match:
            current = ['[%s] %s' % match.groups()]
            errors.append(current)
        elif current is not None and line[:1].isspace() and line.strip():
            current.append(line.strip())
        else:
            current = None
    return [' '.join(parts)[:500] for parts in errors]


def last_line(text):
    lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
    return lines[-1][:300] if lines else 'no message'

