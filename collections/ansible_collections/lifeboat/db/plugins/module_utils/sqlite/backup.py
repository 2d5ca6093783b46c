# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""action=backup: a consistent copy of a live SQLite database into the repository.

The copy goes through SQLite's online backup API (never a file copy, which under a writer can
pair pages of different moments), in steps of `step_pages` pages, all read inside one read
transaction of the source: every step sees the same snapshot, so a writer committing meanwhile
neither restarts the copy nor makes it inconsistent. In WAL mode the writer never waits for it;
with a rollback journal it waits while the snapshot is held (the result says so). The copy must
pass `PRAGMA integrity_check` before the set counts; its row counts, page size and count,
journal mode and user_version go into the manifest with its size and sha256. A set is built in
the repository's staging folder and appears only when complete, like a PostgreSQL backup, and
`keep_last`/`keep_days` apply to the sets of kind `sqlite` of the same name.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import socket
import sqlite3
import time

from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError, error_text
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import FORMAT_VERSION, describe_files
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import new_backup_id
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.database import (
    facts, hot_journal, integrity_problems, is_busy, open_copy, open_live, row_counts)
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.holders import locked_message
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.sets import KIND, PRE_RESTORE_KIND

SET_FILE = 'database.sqlite'


class Stalled(Exception):
    """Raised from the backup's progress callback: the source stayed busy past busy_timeout."""


class SourceBusy(LifeboatError):
    """The live database stayed locked past busy_timeout: a holder, not damage."""


class TargetFull(LifeboatError):
    """The repository's disk filled up during the copy: the source is not at fault."""


class OnlineCopy(object):
    """What copy_online found: the source's facts, the copy's counts and problems, the steps."""

    def __init__(self):
        self.source = {}
        self.copy = {}
        self.row_counts = {}
        self.problems = []
        self.steps = 0
        self.copy_seconds = 0.0
        self.seconds = 0.0


def copy_online(path, dest, busy_timeout, step_pages, what):
    """Copy the live database at `path` to the new file `dest` (0600) through the backup API,
    then check the copy (integrity_check, row counts) without changing a byte of it."""
    result = OnlineCopy()
    clock = time.monotonic()
    source = open_live(path, busy_timeout)
    try:
        try:
            # One read transaction over every step: the snapshot the whole copy is taken from.
            source.execute('BEGIN')
            source.execute('SELECT count(*) FROM sqlite_master').fetchone()
            result.source = facts(source)
        except sqlite3.Error as exc:
            raise _source_error(path, exc, busy_timeout, what)
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        target = sqlite3.connect(dest, isolation_level=None)
        try:
            _step_copy(source, target, step_pages, busy_timeout, result)
        except Stalled:
            raise SourceBusy(locked_message(path, 'the copy made no progress', busy_timeout, what))
        except sqlite3.Error as exc:
            if _is_full(exc):
                raise TargetFull('%s: the disk of %s is full (%s); nothing was added to the repository: free space '
                                 'there or choose another repository' % (what, os.path.dirname(dest), exc))
            raise _source_error(path, exc, busy_timeout, what)
        finally:
            target.close()
        source.execute('COMMIT')
        result.copy_seconds = round(time.monotonic() - clock, 3)
    finally:
        source.close()
    copy = open_copy(dest)
    try:
        copy.execute('BEGIN')
        result.problems = integrity_problems(copy)
        if not result.problems:
            result.row_counts = row_counts(copy)
        result.copy = facts(copy)
        copy.execute('COMMIT')
    except sqlite3.Error as exc:
        result.problems = [str(exc)]
    finally:
        copy.close()
    result.seconds = round(time.monotonic() - clock, 3)
    return result


def _step_copy(source, target, step_pages, busy_timeout, result):
    state = dict(since=time.monotonic(), remaining=None)

    def progress(status, remaining, total):
        result.steps += 1
        if remaining != state['remaining']:
            state.update(since=time.monotonic(), remaining=remaining)
        elif time.monotonic() - state['since'] > busy_timeout:
            raise Stalled()
    # sleep: how long the module waits after a busy step before the next try.
    source.backup(target, pages=step_pages, progress=progress, sleep=0.05)


def _is_full(exc):
    """SQLITE_FULL, by its code where Python gives it (3.11+) or by SQLite's own message, which
    never holds a path."""
    return getattr(exc, 'sqlite_errorname', None) == 'SQLITE_FULL' or 'database or disk is full' in str(exc)


def _source_error(path, exc, busy_timeout, what):
    if is_busy(exc):
        return SourceBusy(locked_message(path, exc, busy_timeout, what))
    if hot_journal(path, exc):
        return LifeboatError('%s: %s' % (what, hot_journal(path, exc)))
    return LifeboatError('%s: cannot read %s as a SQLite database: %s; check it with action=check (a damaged file '
                         'is restored from a backup with action=restore)' % (what, path, exc))


def base_manifest(backup_id, name, kind, path, started):
    return dict(format_version=FORMAT_VERSION, backup_id=backup_id, kind=kind, database=name, format='sqlite',
                archive=SET_FILE, source=path, host=socket.gethostname(), started_at=iso(started))


def online_manifest(manifest, staging, copied):
    finished = utc_now()
    manifest.update(finished_at=iso(finished), duration_seconds=copied.seconds,
                    files=describe_files(staging, [SET_FILE]), row_counts=copied.row_counts,
                    total_rows=sum(copied.row_counts.values()), sqlite=copied.source,
                    integrity='ok' if not copied.problems else 'failed', integrity_problems=copied.problems[:5],
                    steps=copied.steps)
    if not copied.problems:
        manifest['verified_at'] = iso(finished)
    return manifest


def take_backup(ctx, path, name):
    """Back up the live database at `path` as a new set of `name`; then retention."""
    p = ctx.params
    started = utc_now()
    backup_id = new_backup_id(started)
    repository = ctx.repository
    if ctx.check_mode:
        doomed = repository.retention_plan(name, KIND, p['keep_last'], p['keep_days'], incoming=1)
        return dict(changed=True, backup_id=backup_id, deleted=[b.backup_id for b in doomed],
                    actions=['Would copy %s through the online backup API into %s'
                             % (path, os.path.join(repository.database_dir(name), backup_id))]
                    + ['Would delete SQLite backup %s (retention)' % b.backup_id for b in doomed])
    what = 'backup of %s' % path
    with repository.lock(name, p['busy_timeout'], 'a SQLite backup'):
        repository.remove_leftovers(name)
        staging = repository.begin(name, backup_id)
        try:
            copied = copy_online(path, os.path.join(staging, SET_FILE), p['busy_timeout'], p['step_pages'], what)
            if copied.problems:
                raise LifeboatError('%s: the copy fails integrity_check (%s), so the live database is damaged; '
                                    'nothing was added to the repository - restore a backup with action=restore'
                                    % (what, '; '.join(copied.problems[:3])))
            manifest = online_manifest(base_manifest(backup_id, name, KIND, path, started), staging, copied)
            final = repository.commit(name, staging, manifest)
        except BaseException:
            repository.abort(staging)
            raise
        # The set is committed: a retention failure from here on must not lose its id.
        errors = []
        try:
            deleted = repository.apply_retention(name, KIND, p['keep_last'], p['keep_days'], protect=(backup_id,),
                                                 errors=errors)
        except (LifeboatError, IOError, OSError) as exc:
            deleted = []
            errors.append(error_text(exc))
    source = manifest['sqlite']
    result = dict(changed=True, backup_id=backup_id, backup_path=final, sha256=manifest['files'][0]['sha256'],
                  size=manifest['files'][0]['size'], row_counts=manifest['row_counts'],
                  total_rows=manifest['total_rows'], sqlite=source, deleted=deleted, seconds=copied.seconds,
                  copy_seconds=copied.copy_seconds,
                  actions=['Copied %s (%d pages of %d bytes, journal mode %s) through the online backup API in %d '
                           'step(s) into %s' % (path, source['page_count'], source['page_size'],
                                                source['journal_mode'], copied.steps, final),
                           'Checked the copy: integrity_check ok, %d rows in %d tables'
                           % (manifest['total_rows'], len(manifest['row_counts']))]
                  + ['Deleted SQLite backup %s (retention)' % b for b in deleted])
    warnings = []
    if source['journal_mode'] != 'wal':
        warnings.append('%s uses journal mode %s: writers waited while the copy was read (%.1f s); with '
                        'PRAGMA journal_mode=WAL they never wait for a backup' % (path, source['journal_mode'],
                                                                                 copied.copy_seconds))
    if errors:
        result['retention_errors'] = errors
        warnings.append('SQLite backup %s is complete at %s, but retention could not finish: %s'
                        % (backup_id, final, '; '.join(errors)))
    if warnings:
        result['warnings'] = warnings
    return result


def keep_pre_restore(ctx, path, name, busy_timeout):
    """Keep the live file as a set of kind sqlite-pre-restore before a restore replaces it; returns
    the set's id and path. Through the backup API, which reads committed data still in the -wal
    too; a file SQLite cannot read at all (a damaged header) is kept byte for byte with its -wal
    instead - no process holds it (restore checked), so nothing changes it meanwhile."""
    started = utc_now()
    backup_id = new_backup_id(started)
    repository = ctx.repository
    what = 'pre-restore copy of %s' % path
    with repository.lock(name, busy_timeout, 'a SQLite pre-restore copy'):
        repository.remove_leftovers(name)
        staging = repository.begin(name, backup_id)
        try:
            manifest = base_manifest(backup_id, name, PRE_RESTORE_KIND, path, started)
            try:
                copied = copy_online(path, os.path.join(staging, SET_FILE), busy_timeout, -1, what)
                online_manifest(manifest, staging, copied)
            except (SourceBusy, TargetFull):
                raise
            except LifeboatError as exc:
                # By its type, never its text: the message holds the path, which may say anything.
                manifest.update(_raw_copy(path, staging), reason=exc.msg)
            final = repository.commit(name, staging, manifest)
        except BaseException:
            repository.abort(staging)
            raise
    return backup_id, final, manifest


def _raw_copy(path, staging):
    for entry in os.listdir(staging):
        os.unlink(os.path.join(staging, entry))
    names = []
    for source, name in ((path, SET_FILE), (path + '-wal', SET_FILE + '-wal')):
        if os.path.isfile(source) and not os.path.islink(source):
            shutil.copyfile(source, os.path.join(staging, name), follow_symlinks=False)
            names.append(name)
    finished = iso(utc_now())
    return dict(raw=True, finished_at=finished, files=describe_files(staging, names), row_counts={}, total_rows=0,
                integrity='unreadable')
