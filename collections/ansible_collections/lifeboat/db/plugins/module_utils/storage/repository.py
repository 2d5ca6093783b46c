# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup repository on the target: `<root>/<database>/<backup_id>/` per backup set.

A set is built in `<database>/.partial-<backup_id>/` and becomes visible only when its manifest
is written and the folder renamed, so a crash never leaves something that looks like a backup.
Deletion renames first (the set disappears atomically) and removes the files afterwards.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
import stat
import time

from ansible_collections.lifeboat.db.plugins.module_utils.common.access import cannot_write
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError, error_text
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, parse_iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import (
    MANIFEST_NAME, InvalidSet, fsync_dir, parse_manifest, walk_files, write_json_atomic)

PARTIAL_PREFIX = '.partial-'
DELETING_PREFIX = '.deleting-'
LOCK_NAME = '.lock'
VERIFICATION_NAME = 'verification.json'
# Where a set's offsite copy went (written by the dump after the upload is checked).
OFFSITE_NAME = 'offsite.json'
# A set dated more than this after now comes from a clock that ran ahead: reported, never "newest".
CLOCK_SKEW = datetime.timedelta(minutes=5)
# Verification outcomes that prove nothing either way: the set keeps what it had.
INCONCLUSIVE = ('unavailable', 'unchecked')


def new_backup_id(moment):
    # Sorts by time as a string; the random tail keeps two backups in one second apart.
    return '%s-%s' % (moment.strftime('%Y%m%dT%H%M%SZ'), binascii.hexlify(os.urandom(3)).decode())


def validate_retention(keep_last, keep_days):
    if keep_last is not None and keep_last < 1:
        raise LifeboatError('keep_last must be at least 1: lifeboat never deletes the newest backup')
    if keep_days is not None and keep_days <= 0:
        raise LifeboatError('keep_days must be more than 0, got %s' % keep_days)


class Backup(object):
    """A complete backup set; `path` is its folder (or its s3:// URL for an S3Backup)."""

    def __init__(self, path, manifest, verification=None):
        self.path = path
        self.manifest = manifest
        self.backup_id = manifest['backup_id']
        self.kind = manifest.get('kind', 'full')
        self.verification = verification
        self.locations = ['local']

    @property
    def verified(self):
        """Checked when written (manifest.verified_at) and not failed a later verification (one
        that could not read a set in GLACIER proves nothing either way)."""
        if self.verification is not None and self.verification.get('status') not in INCONCLUSIVE:
            return self.verification.get('status') == 'passed'
        return bool(self.manifest.get('verified_at'))

    def summary(self, now=None):
        m = self.manifest
        age = (now or utc_now()) - parse_iso(m['started_at'])
        return dict(backup_id=self.backup_id, kind=self.kind, backup_path=self.path, database=m.get('database'),
                    format=m.get('format', 'custom'), started_at=m.get('started_at'), finished_at=m.get('finished_at'),
                    age_seconds=round(age.total_seconds(), 1), size=sum(f['size'] for f in m.get('files', [])),
                    total_rows=m.get('total_rows'), verified=self.verified,
                    verified_at=(self.verification or {}).get('verified_at') or m.get('verified_at'),
                    verification=(self.verification or {}).get('status'), locations=list(self.locations))


def dated_ahead(candidates, now=None):
    """Sets whose manifest says they started after now (beyond CLOCK_SKEW): a clock ran ahead."""
    horizon = (now or utc_now()) + CLOCK_SKEW
    return [b for b in candidates if parse_iso(b.manifest['started_at']) > horizon]


def selection_key(selection):
    """Retention counts whole-database backups ('') apart from each table or schema selection: a
    selection dump never pushes a whole-database backup out (nor one of another selection)."""
    chosen = dict((k, v) for k, v in (selection or {}).items() if v)
    return json.dumps(chosen, sort_keys=True) if chosen else ''


def selection_group(backup):
    return selection_key(backup.manifest.get('selection'))


def plan_retention(candidates, keep_last=None, keep_days=None, incoming=0, now=None, protect=(),
                   incoming_group=''):
    """Which of `candidates` (backups of one kind, newest first) retention deletes.

    Within each group of the kind (whole-database backups, and each table or schema selection) a
    backup is kept when it is among the newest `keep_last` (counting `incoming` sets about to be
    added to `incoming_group`, for check mode) or younger than `keep_days`; with both unset
    nothing is deleted. The newest verified backup of each group is always kept, whatever the
    rules say. A set dated beyond now (see dated_ahead) is never counted as the newest and never
    deleted, and a set in `protect` (the one a run just took) is never deleted. Local and S3
    repositories share this one rule.
    """
    validate_retention(keep_last, keep_days)
    if keep_last is None and keep_days is None:
        return []
    now = now or utc_now()
    ahead = set(b.backup_id for b in dated_ahead(candidates, now))
    keep = set(protect) | ahead
    groups = {}
    for backup in candidates:
        if backup.backup_id not in ahead:
            groups.setdefault(selection_group(backup), []).append(backup)
    for group, members in groups.items():
        adding = incoming if group == incoming_group else 0
        if keep_last is not None:
            keep.update(b.backup_id for b in members[:max(keep_last - adding, 0)])
        if keep_days is not None:
            horizon = now - datetime.timedelta(days=keep_days)
            keep.update(b.backup_id for b in members if parse_iso(b.manifest['started_at']) >= horizon)
        verified = [b for b in members if b.verified]
        if verified and not adding:
            keep.add(verified[0].backup_id)
        elif members and not adding:
            keep.add(members[0].backup_id)
    return [b for b in candidates if b.backup_id not in keep]


# Kinds `latest` never picks unless asked for by name: a pre-restore safety backup holds what a
# restore replaced, a partition archive holds one partition, and neither is "the database"; a
# SQLite set (lifeboat.db.sqlite) is a database, but never a PostgreSQL one of the same name.
NOT_LATEST_KINDS = ('pre-restore', 'partition-archive', 'files', 'sqlite', 'sqlite-pre-restore')


def whole_database(backup):
    """A backup of the whole database: not a delta export, not a table or schema selection."""
    manifest = backup.manifest
    if manifest.get('format') == 'delta' or backup.kind in NOT_LATEST_KINDS:
        return False
    return not any((manifest.get('selection') or {}).values())


def latest_restorable(candidates, database, kind, where):
    """The newest of `candidates` (newest first) that `latest` may mean: of `kind` when one is
    named, else the newest whole-database backup. A set whose last verification failed is skipped."""
    usable = [b for b in candidates if (kind is not None or whole_database(b))
              and (b.verification or {}).get('status') != 'failed']
    if usable:
        return usable[0]
    what = '%s backup' % kind if kind else 'whole-database backup'
    failed = [b.backup_id for b in candidates if (b.verification or {}).get('status') == 'failed']
    raise LifeboatError('no %s of database %r in %s%s; take one with lifeboat.db.dump or check the repository, '
                        'backup_db and kind options' % (what, database, where,
                                                        ' that passed verification (failed: %s)' % ', '.join(failed)
                                                        if failed else ''))


class Repository(object):
    def __init__(self, root):
        if not root or not os.path.isabs(root):
            raise LifeboatError('repository must be an absolute path on the target host, got %r' % (root,))
        self.root = root
        # Sets that failed validation, by database, as the last listing found them (InvalidSet).
        self.refused = {}

    def database_dir(self, database):
        if not database or '/' in database or database.startswith('.') or '\0' in database:
            raise LifeboatError('database name %r cannot be used as a repository folder name' % (database,))
        path = os.path.join(self.root, database)
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            link = False
        if link:
            # Everything lifeboat writes for a database goes below this folder: never through a link.
            raise LifeboatError('%s is a symbolic link; lifeboat never reads or writes a repository through a link: '
                                'replace it with a real folder' % path)
        return path

    def begin(self, database, backup_id):
        """Create the staging folder of a new backup set (0700) and return its path."""
        staging = os.path.join(self.database_dir(database), PARTIAL_PREFIX + backup_id)
        try:
            os.makedirs(self.database_dir(database), mode=0o700, exist_ok=True)
            os.mkdir(staging, 0o700)
        except OSError as exc:
            raise LifeboatError(cannot_write(self.root, exc))
        return staging

    def commit(self, database, staging, manifest):
        """Write the manifest last, then rename the staging folder into place."""
        for root, dirs, dummy in os.walk(staging):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o700)
        for name in walk_files(staging):
            path = os.path.join(staging, name)
            os.chmod(path, 0o600)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        write_json_atomic(os.path.join(staging, MANIFEST_NAME), manifest)
        final = os.path.join(self.database_dir(database), manifest['backup_id'])
        os.rename(staging, final)
        fsync_dir(self.database_dir(database))
        return final

    @staticmethod
    def abort(staging):
        shutil.rmtree(staging, ignore_errors=True)

    def databases(self):
        """Databases that have a folder in the repository."""
        try:
            return sorted(n for n in os.listdir(self.root)
                          if not n.startswith('.') and os.path.isdir(os.path.join(self.root, n)))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise LifeboatError('repository %s does not exist; check the repository path' % self.root)
            raise LifeboatError('cannot read repository %s: %s' % (self.root, exc.strerror))

    def backups(self, database, kind=None):
        """Complete backup sets of a database, newest first."""
        directory = self.database_dir(database)
        try:
            names = os.listdir(directory)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return []
            raise LifeboatError('cannot read repository %s: %s' % (directory, exc.strerror))
        found = []
        self.refused[database] = []
        for name in names:
            path = os.path.join(directory, name)
            manifest_path = os.path.join(path, MANIFEST_NAME)
            if name.startswith('.') or not os.path.isfile(manifest_path):
                continue
            try:
                manifest = read_set_manifest(path, name, database, directory)
            except InvalidSet as exc:
                self.refused[database].append(exc)
                continue
            if kind is None or manifest.get('kind', 'full') == kind:
                backup = Backup(path, manifest, read_record(path, VERIFICATION_NAME))
                offsite = read_record(path, OFFSITE_NAME)
                if offsite and offsite.get('url'):
                    backup.locations.append(offsite['url'])
                found.append(backup)
        found.sort(key=lambda b: (b.manifest.get('started_at', ''), b.backup_id), reverse=True)
        return found

    def resolve(self, database, reference, kind=None):
        """A backup by id, or for `latest` the newest of `kind` (without a kind: the newest
        whole-database backup, see latest_restorable)."""
        if reference == 'latest':
            return latest_restorable(self.backups(database, kind=kind), database, kind, self.root)
        for backup in self.backups(database):
            if backup.backup_id == reference:
                return backup
        refuse(self.refused.get(database), reference)
        known = ', '.join(b.backup_id for b in self.backups(database)[:5]) or 'none'
        raise LifeboatError('backup %r of database %r not found in repository %s (newest: %s); '
                            'use latest or one of the listed ids' % (reference, database, self.root, known))

    def retention_plan(self, database, kind, keep_last=None, keep_days=None, incoming=0, now=None, protect=(),
                       incoming_group=''):
        """Backups of `kind` that retention deletes (see plan_retention)."""
        if keep_last is None and keep_days is None:
            return []
        return plan_retention(self.backups(database, kind=kind), keep_last, keep_days, incoming, now, protect,
                              incoming_group)

    def apply_retention(self, database, kind, keep_last=None, keep_days=None, protect=(), errors=None):
        """Delete what retention_plan names; returns the deleted ids. Call while holding the lock.
        With an `errors` list, a set that cannot be deleted is noted there and the others go on."""
        validate_retention(keep_last, keep_days)
        deleted = []
        for old in self.retention_plan(database, kind, keep_last, keep_days, protect=protect):
            try:
                # A set a restore is reading is pinned (SetPin): it stays until a later run.
                if self.delete(old):
                    deleted.append(old.backup_id)
            except (LifeboatError, IOError, OSError) as exc:
                if errors is None:
                    raise
                errors.append('cannot delete backup %s: %s' % (old.backup_id, error_text(exc)))
        return deleted

    def remove_leftovers(self, database):
        """Remove what interrupted runs left behind. Only call while holding the lock: then no
        other run can be writing a .partial- set or deleting a .deleting- one."""
        directory = self.database_dir(database)
        removed = []
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if name.startswith(PARTIAL_PREFIX) or name.startswith(DELETING_PREFIX):
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    os.unlink(path)  # planted: remove the link, never what it points to
                else:
                    shutil.rmtree(path, ignore_errors=True)
                # A leftover that could not go (a mount point: EBUSY) is not claimed as removed;
                # the next run under the lock tries again.
                if not os.path.lexists(path):
                    removed.append(name)
        return removed

    def lock(self, database, timeout, purpose):
        return RepositoryLock(self, database, timeout, purpose)

    def pin(self, backup):
        """Hold `backup` against deletion while it is read (a restore): retention skips it."""
        return SetPin(backup.path)

    def delete(self, backup):
        """Delete a set unless a reader has pinned it; returns False (nothing done) when pinned."""
        parent, name = os.path.split(backup.path)
        doomed = os.path.join(parent, DELETING_PREFIX + name)
        with SetPin(backup.path, exclusive=True) as pin:
            if not pin.held:
                return False
            os.rename(backup.path, doomed)
        shutil.rmtree(doomed)
        return True


def read_record(path, name):
    """A set's own record (verification, offsite), or None when it is missing or not an object:
    a record never decides more than a manifest would."""
    try:
        with os.fdopen(os.open(os.path.join(path, name), os.O_RDONLY | os.O_NOFOLLOW)) as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get('status', ''), str) else None


MAX_MANIFEST = 64 * 1024 * 1024


def read_set_manifest(path, backup_id, database, where):
    """The validated manifest of the set folder `path` (manifest.validate_manifest), or InvalidSet."""
    try:
        with os.fdopen(os.open(os.path.join(path, MANIFEST_NAME), os.O_RDONLY | os.O_NOFOLLOW), 'rb') as handle:
            text = handle.read(MAX_MANIFEST + 1)
    except (IOError, OSError) as exc:
        raise InvalidSet(backup_id, where, 'its manifest cannot be read (%s)' % (exc.strerror or exc))
    if len(text) > MAX_MANIFEST:
        raise InvalidSet(backup_id, where, 'its manifest is larger than %d bytes' % MAX_MANIFEST)
    return parse_manifest(text.decode('utf-8', 'replace'), backup_id, database, where)


def refuse(refused, reference):
    """Raise the refusal of the set `reference` when the listing refused it."""
    for invalid in refused or []:
        if invalid.backup_id == reference:
            raise invalid


class SetPin(object):
    """flock(2) on a set's own folder: readers hold it shared for as long as they read the set,
    a deletion needs it exclusive and gives up at once when it cannot have it. The kernel drops
    it with its holder, so a killed restore pins nothing. The folder is opened without following
    a link: a pin never reaches outside the repository."""

    def __init__(self, path, exclusive=False):
        self.path = path
        self.exclusive = exclusive
        self.fd = None
        self.held = False

    def __enter__(self):
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise LifeboatError('cannot open backup set %s: %s' % (self.path, exc.strerror or exc))
        try:
            fcntl.flock(self.fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if self.exclusive else fcntl.LOCK_SH | fcntl.LOCK_NB)
            self.held = True
        except (IOError, OSError) as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if not self.exclusive:
                # Only a deletion holds it exclusively, and only for the instant of its rename.
                fcntl.flock(self.fd, fcntl.LOCK_SH)
                self.held = True
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.held = False


class RepositoryLock(object):
    """One writer per database in a repository, with flock(2) on `<db>/.lock`.

    The kernel releases the lock when its holder dies, so a lock left by a killed run is taken
    over without guessing whether a pid is still alive. The file names the holder for others.
    """

    def __init__(self, repository, database, timeout, purpose):
        self.repository = repository
        self.database = database
        self.timeout = timeout
        self.purpose = purpose
        self.path = os.path.join(repository.database_dir(database), LOCK_NAME)
        self.fd = None
        self.waited = 0.0

    def __enter__(self):
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LifeboatError('%s is a symbolic link; lifeboat never writes its lock through a link: remove it'
                                    % self.path)
            raise LifeboatError(cannot_write(self.repository.root, exc))
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() - start >= self.timeout:
                    holder = self._holder()
                    os.close(self.fd)
                    self.fd = None
                    raise LifeboatError(
                        'database %r in repository %s is locked by %s (pid %s on %s, since %s) and lock_timeout '
                        '(%ss) ran out; wait for it to finish or raise lock_timeout'
                        % (self.database, self.repository.root, holder.get('purpose', 'another run'),
                           holder.get('pid', '?'), holder.get('host', '?'), holder.get('since', '?'), self.timeout))
                time.sleep(0.2)
        self.waited = round(time.monotonic() - start, 3)
        holder = json.dumps(dict(host=socket.gethostname(), pid=os.getpid(), since=iso(utc_now()),
                                 purpose=self.purpose)).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, holder, 0)
        return self

    def _holder(self):
        try:
            return json.loads(os.pread(self.fd, 4096, 0).decode() or '{}')
        except ValueError:
            return {}

    def __exit__(self, *exc):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
