# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files next to the database (seed 003's uploads directory) in the same repository.

A files set is `<repository>/<name>/<backup_id>/` holding `files.tar.gz` (ownership, modes and
times kept) and a manifest listing every file with its sha256. The archive is hashed as it is
written. A restore unpacks beside the destination, checks every file against the manifest, and
only then swaps it in; the previous directory is kept under a dated name.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import shutil
import socket
import tarfile
import time

from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.manifest import FORMAT_VERSION, sha256_of, verify_files
from ansible_collections.lifeboat.db.plugins.module_utils.repository import iso, new_backup_id, utc_now

ARCHIVE_NAME = 'files.tar.gz'


class HashingWriter(object):
    """A file object that hashes what it writes, so the checksum needs no second read."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, data):
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()


class HashingReader(object):
    """Reads a file for tarfile and hashes exactly the bytes that go into the archive."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def walk_tree(source):
    """(relative path, absolute path) of the directories and regular files below source, sorted;
    and the other entries (symlinks, sockets, ...), which are not archived."""
    kept, skipped = [], []
    for root, dirs, names in os.walk(source):
        dirs.sort()
        for name in sorted(dirs) + sorted(names):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, source)
            if os.path.islink(path) or not (os.path.isdir(path) or os.path.isfile(path)):
                skipped.append(relative)
            else:
                kept.append((relative, path))
    return kept, skipped


def archive_tree(source, tar):
    """Add the tree to tar, reading each file once: the sha256 in the manifest is that of the
    bytes archived, so a file that changes meanwhile cannot make the backup disagree with itself."""
    kept, skipped = walk_tree(source)
    tar.add(source, arcname='.', recursive=False)
    contents = []
    for relative, path in kept:
        info = tar.gettarinfo(path, arcname=relative)
        if info.isdir():
            tar.addfile(info)
            continue
        with open(path, 'rb') as handle:
            reader = HashingReader(handle)
            tar.addfile(info, reader)
        contents.append(dict(path=relative, size=info.size, mode='%04o' % info.mode, uid=info.uid, gid=info.gid,
                             sha256=reader.digest.hexdigest()))
    return contents, skipped


def backup_files(ctx, source, name, keep_last=None):
    if not os.path.isdir(source):
        raise LifeboatError('path %s is not a directory on the target host; name the directory to back up' % source)
    started = utc_now()
    clock = time.monotonic()
    backup_id = new_backup_id(started)
    if ctx.check_mode:
        return dict(changed=True, backup_id=backup_id,
                    actions=['Would archive %s (%d files) into %s' % (source, len([path for dummy, path in walk_tree(source)[0]
                                                                                   if os.path.isfile(path)]),
                                                                     os.path.join(ctx.repository.database_dir(name), backup_id))])
    with ctx.repository.lock(name, 0, 'a files backup'):
        ctx.repository.remove_leftovers(name)
        staging = ctx.repository.begin(name, backup_id)
        try:
            archive = os.path.join(staging, ARCHIVE_NAME)
            fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'wb') as raw:
                writer = HashingWriter(raw)
                with tarfile.open(fileobj=writer, mode='w|gz', format=tarfile.PAX_FORMAT) as tar:
                    contents, skipped = archive_tree(source, tar)
                raw.flush()
                os.fsync(raw.fileno())
            finished = utc_now()
            manifest = dict(format_version=FORMAT_VERSION, backup_id=backup_id, kind='files', database=name,
                            format='tar.gz', archive=ARCHIVE_NAME, source=source, host=socket.gethostname(),
                            started_at=iso(started), finished_at=iso(finished), verified_at=iso(finished),
                            checksums='streamed', duration_seconds=round(time.monotonic() - clock, 3),
                            files=[dict(name=ARCHIVE_NAME, size=os.path.getsize(archive),
                                        sha256=writer.digest.hexdigest())],
                            contents=contents, file_count=len(contents), total_bytes=sum(c['size'] for c in contents),
                            row_counts={})
            final = ctx.repository.commit(name, staging, manifest)
        except BaseException:
            ctx.repository.abort(staging)
            raise
        deleted = ctx.repository.apply_retention(name, 'files', keep_last)
    return dict(changed=True, backup_id=backup_id, backup_path=final, file_count=len(contents),
                total_bytes=manifest['total_bytes'], size=manifest['files'][0]['size'], deleted=deleted,
                sha256=manifest['files'][0]['sha256'],
                not_archived=skipped,
                actions=['Archived %s (%d files, %d bytes) into %s' % (source, len(contents), manifest['total_bytes'], final)]
                + ['Skipped %s (not a regular file or directory)' % path for path in skipped]
                + ['Deleted files backup %s (keep_last=%s)' % (b, keep_last) for b in deleted])


def restore_files(ctx, name, reference, dest):
    backup = ctx.repository.resolve(name, reference, kind='files')
    verify_files(backup.path, backup.manifest)
    dest = dest.rstrip('/') or dest
    parent = os.path.dirname(dest) or '.'
    previous = '%s.prev-%s' % (dest, utc_now().strftime('%Y%m%dT%H%M%SZ'))
    if ctx.check_mode:
        return dict(changed=True, backup_id=backup.backup_id,
                    actions=['Verified files backup %s' % backup.backup_id,
                             'Would unpack %d files into %s' % (backup.manifest['file_count'], dest)]
                    + (['Would keep the current %s as %s' % (dest, previous)] if os.path.exists(dest) else []))
    if not os.path.isdir(parent):
        raise LifeboatError('the parent of dest (%s) does not exist; create it first' % parent)
    staging = os.path.join(parent, '.%s.lifeboat-restore-%d' % (os.path.basename(dest), os.getpid()))
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(os.path.join(backup.path, ARCHIVE_NAME), mode='r:gz') as tar:
            members = tar.getmembers()
            for member in members:
                # Never write outside the staging folder, whatever the archive says.
                target = os.path.normpath(os.path.join(staging, member.name))
                if not (target == staging or target.startswith(staging + os.sep)) or member.issym() or member.islnk():
                    raise LifeboatError('files backup %s holds an unsafe entry %r; refusing to unpack it'
                                        % (backup.backup_id, member.name))
            tar.extractall(staging, members=members, numeric_owner=True)
        for entry in backup.manifest['contents']:
            path = os.path.join(staging, entry['path'])
            if not os.path.isfile(path) or sha256_of(path) != entry['sha256']:
                raise LifeboatError('files backup %s unpacked %s differently from its manifest; the destination '
                                    'was not touched' % (backup.backup_id, entry['path']))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    kept = None
    if os.path.exists(dest):
        os.rename(dest, previous)
        kept = previous
    os.rename(staging, dest)
    return dict(changed=True, backup_id=backup.backup_id, dest=dest, previous=kept,
                file_count=backup.manifest['file_count'],
                actions=['Verified files backup %s' % backup.backup_id,
                         'Unpacked %d files into %s' % (backup.manifest['file_count'], dest)]
                + (['Kept the previous %s as %s' % (dest, kept)] if kept else []))
