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
import os
import shutil

from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.manifest import (
    MANIFEST_NAME, fsync_dir, read_manifest, write_json_atomic)

PARTIAL_PREFIX = '.partial-'
DELETING_PREFIX = '.deleting-'


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def parse_iso(text):
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc)


def new_backup_id(moment):
    # Sorts by time as a string; the random tail keeps two backups in one second apart.
    return '%s-%s' % (moment.strftime('%Y%m%dT%H%M%SZ'), binascii.hexlify(os.urandom(3)).decode())


class Backup(object):
    def __init__(self, path, manifest):
        self.path = path
        self.manifest = manifest
        self.backup_id = manifest['backup_id']
        self.kind = manifest.get('kind', 'full')

    def summary(self):
        m = self.manifest
        return dict(backup_id=self.backup_id, kind=self.kind, path=self.path, database=m.get('database'),
                    finished_at=m.get('finished_at'), size=sum(f['size'] for f in m.get('files', [])))


class Repository(object):
    def __init__(self, root):
        if not root or not os.path.isabs(root):
            raise LifeboatError('repository must be an absolute path on the target host, got %r' % (root,))
        self.root = root

    def database_dir(self, database):
        if not database or '/' in database or database.startswith('.') or '\0' in database:
            raise LifeboatError('database name %r cannot be used as a repository folder name' % (database,))
        return os.path.join(self.root, database)

    def begin(self, database, backup_id):
        """Create the staging folder of a new backup set (0700) and return its path."""
        staging = os.path.join(self.database_dir(database), PARTIAL_PREFIX + backup_id)
        try:
            os.makedirs(self.database_dir(database), mode=0o700, exist_ok=True)
            os.mkdir(staging, 0o700)
        except OSError as exc:
            raise LifeboatError('cannot write to repository %s: %s; choose a repository path on a writable '
                                'filesystem the module user can write to' % (self.root, exc.strerror or exc))
        return staging

    def commit(self, database, staging, manifest):
        """Write the manifest last, then rename the staging folder into place."""
        for name in os.listdir(staging):
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
        for name in names:
            path = os.path.join(directory, name)
            manifest_path = os.path.join(path, MANIFEST_NAME)
            if name.startswith('.') or not os.path.isfile(manifest_path):
                continue
            manifest = read_manifest(manifest_path)
            if manifest.get('backup_id') != name:
                raise LifeboatError('%s does not belong to backup %s (its backup_id is %r); move the file out of the '
                                    'repository' % (manifest_path, name, manifest.get('backup_id')))
            if kind is None or manifest.get('kind', 'full') == kind:
                found.append(Backup(path, manifest))
        found.sort(key=lambda b: (b.manifest.get('started_at', ''), b.backup_id), reverse=True)
        return found

    def resolve(self, database, reference, kind='full'):
        """A backup by id, or the newest of `kind` for `latest`."""
        if reference == 'latest':
            candidates = self.backups(database, kind=kind)
            if not candidates:
                raise LifeboatError('no %s backup of database %r in repository %s; take one with lifeboat.db.dump '
                                    'or check the repository and backup_db options' % (kind, database, self.root))
            return candidates[0]
        for backup in self.backups(database):
            if backup.backup_id == reference:
                return backup
        known = ', '.join(b.backup_id for b in self.backups(database)[:5]) or 'none'
        raise LifeboatError('backup %r of database %r not found in repository %s (newest: %s); '
                            'use latest or one of the listed ids' % (reference, database, self.root, known))

    def retention_plan(self, database, kind, keep_last, incoming=0):
        """Backups of `kind` beyond the newest `keep_last`, counting `incoming` sets about to be
        added (check mode). The newest backup is never in the plan."""
        if keep_last is None:
            return []
        if keep_last < 1:
            raise LifeboatError('keep_last must be at least 1: lifeboat never deletes the newest backup')
        return self.backups(database, kind=kind)[max(keep_last - incoming, 0):]

    def delete(self, backup):
        parent, name = os.path.split(backup.path)
        doomed = os.path.join(parent, DELETING_PREFIX + name)
        os.rename(backup.path, doomed)
        shutil.rmtree(doomed)
