# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files next to the database (seed 003's uploads directory) in the same repository.

A files set is `<repository>/<name>/<backup_id>/` holding `files.tar.gz` (ownership, modes and
times kept) and a manifest listing every file with its sha256. The archive is hashed as it is
written. A restore refuses an archive holding anything but plain directories and regular files
inside the tree, unpacks it into a fresh private folder beside the destination (relative to
descriptors, O_EXCL | O_NOFOLLOW, so nothing is written or chowned through a link), checks every
file against the manifest, and only then swaps it in; the previous directory is kept under a
dated, unpredictable name.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import time

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError, error_text
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import (
    CHUNK, FORMAT_VERSION, SHA256, HashingWriter, InvalidSet, verify_files)
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import new_backup_id
from ansible_collections.lifeboat.db.plugins.module_utils.files.offsite import copy_files_offsite, plan_offsite

ARCHIVE_NAME = 'files.tar.gz'


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
    """Yield (relative path, name, descriptor of its directory, lstat or None if gone) for every
    entry below source, sorted. os.fwalk holds each directory open and never descends through a
    link, so a directory swapped for a link after it was listed cannot lead the walk elsewhere."""
    for root, dirs, names, root_fd in os.fwalk(source, onerror=_unreadable):
        dirs.sort()
        for name in sorted(dirs) + sorted(names):
            try:
                facts = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            except OSError:
                facts = None
            yield os.path.relpath(os.path.join(root, name), source), name, root_fd, facts


def _unreadable(error):
    """A folder the walk cannot read would be missing from the backup without a word: refuse."""
    if isinstance(error, PermissionError):
        _refuse_unreadable(error.filename)
    # Anything else (a folder gone meanwhile) is what a live tree does; the walk goes on.


def _refuse_unreadable(path):
    raise LifeboatError('cannot read %s: permission denied, so it would be missing from the backup; the module user '
                        '(uid %d) must be able to read every file and folder of the tree: run the task as a user '
                        'that can (become root), or give it read access' % (path, os.geteuid()))


class _OpenDirectory(object):
    """What tarfile.gettarinfo needs to describe a directory from its descriptor (fstat)."""

    def __init__(self, fd, name):
        self.fd, self.name = fd, name

    def fileno(self):
        return self.fd


def _same_entry(fd, listed):
    """Whether the open descriptor is the entry the walk listed (device, inode and kind)."""
    facts = os.fstat(fd)
    return (facts.st_dev, facts.st_ino, stat.S_IFMT(facts.st_mode)) == \
        (listed.st_dev, listed.st_ino, stat.S_IFMT(listed.st_mode))


def _archived_kind(facts):
    return facts is not None and (stat.S_ISDIR(facts.st_mode) or stat.S_ISREG(facts.st_mode))


def archive_tree(source, tar):
    """Add the tree to tar, reading each file once: the sha256 in the manifest is that of the
    bytes archived, so a file that changes meanwhile cannot make the backup disagree with itself.

    Each entry is opened without following a link (O_NOFOLLOW, relative to its directory's
    descriptor) and must still be the inode the walk listed (fstat): one replaced meanwhile, by a
    link to /etc/shadow say, is not archived but reported with the links and special files."""
    top = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    try:
        tar.addfile(tar.gettarinfo(arcname='.', fileobj=_OpenDirectory(top, source)))
    finally:
        os.close(top)
    contents, skipped = [], []
    for relative, name, dir_fd, listed in walk_tree(source):
        if not _archived_kind(listed):
            skipped.append(relative)
            continue
        directory = stat.S_ISDIR(listed.st_mode)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | (os.O_DIRECTORY if directory else 0)
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except PermissionError:
            _refuse_unreadable(os.path.join(source, relative))
        except OSError:
            skipped.append(relative)  # now a link, or gone
            continue
        if directory:
            try:
                same = _same_entry(fd, listed)
                info = tar.gettarinfo(arcname=relative, fileobj=_OpenDirectory(fd, name)) if same else None
            finally:
                os.close(fd)
            if info is None:
                skipped.append(relative)
            else:
                tar.addfile(info)
            continue
        with os.fdopen(fd, 'rb') as handle:
            if not _same_entry(fd, listed):
                skipped.append(relative)
                continue
            info = tar.gettarinfo(arcname=relative, fileobj=handle)
            reader = HashingReader(handle)
            tar.addfile(info, reader)
        contents.append(dict(path=relative, size=info.size, mode='%04o' % info.mode, uid=info.uid, gid=info.gid,
                             sha256=reader.digest.hexdigest()))
    return contents, skipped


def backup_files(ctx, source, name, keep_last=None, offsite=None):
    """Archive `source` into a new set of `name`; then local retention and, with `offsite` (a
    backup.offsite.OffsiteRequest), the set's copy to S3 with that store's retention."""
    if not os.path.isdir(source):
        raise LifeboatError('path %s is not a directory on the target host; name the directory to back up' % source)
    started = utc_now()
    clock = time.monotonic()
    backup_id = new_backup_id(started)
    if ctx.check_mode:
        result = dict(changed=True, backup_id=backup_id,
                      actions=['Would archive %s (%d files) into %s' % (source, len([f for dummy, dummy2, dummy3, f in walk_tree(source)
                                                                                     if f and stat.S_ISREG(f.st_mode)]),
                                                                       os.path.join(ctx.repository.database_dir(name), backup_id))])
        if offsite:
            result['offsite'] = plan_offsite(offsite, name, backup_id)
            result['actions'] += result['offsite'].pop('actions')
        return result
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
        # The new set is committed: from here on a failure must not lose its id (issue 15, item 10).
        errors = []
        try:
            deleted = ctx.repository.apply_retention(name, 'files', keep_last, protect=(backup_id,), errors=errors)
        except (LifeboatError, IOError, OSError) as exc:
            deleted = []
            errors.append(error_text(exc))
        copied = copy_files_offsite(ctx, offsite, name, final, manifest) if offsite else None
    extra, warnings = {}, []
    if errors:
        extra['retention_errors'] = errors
        warnings.append('files backup %s is complete at %s, but retention could not finish: %s'
                        % (backup_id, final, '; '.join(errors)))
    if copied is not None:
        extra['offsite'] = copied
        warnings.extend(copied.pop('warnings'))
    if warnings:
        extra['warnings'] = warnings
    return dict(changed=True, backup_id=backup_id, backup_path=final, file_count=len(contents),
                total_bytes=manifest['total_bytes'], size=manifest['files'][0]['size'], deleted=deleted,
                sha256=manifest['files'][0]['sha256'],
                not_archived=skipped,
                actions=['Archived %s (%d files, %d bytes) into %s' % (source, len(contents), manifest['total_bytes'], final)]
                + ['Skipped %s (not a regular file or directory)' % path for path in skipped]
                + ['Deleted files backup %s (keep_last=%s)' % (b, keep_last) for b in deleted]
                + (copied['actions'] if copied is not None else []), **extra)


def listed_contents(backup):
    """{path: entry} of the manifest's contents, each with a text path and sha256 (a manifest is
    untrusted input too)."""
    contents = backup.manifest.get('contents')
    if not isinstance(contents, list) or not all(
            isinstance(e, dict) and isinstance(e.get('path'), str) and isinstance(e.get('sha256'), str)
            for e in contents):
        raise LifeboatError('files backup %s has a manifest whose contents are not a list of {path, sha256}; '
                            'use another backup' % backup.backup_id)
    for entry in contents:
        if _path_problem(entry['path']) or not SHA256.match(entry['sha256']):
            # Checked before anything is downloaded or unpacked, whatever the archive holds.
            raise LifeboatError('files backup %s is refused: its manifest lists %r, which is %s; lifeboat did not '
                                'write it like this, use another backup'
                                % (backup.backup_id, entry['path'][:200],
                                   _path_problem(entry['path']) or 'given no sha256'))
    return dict((entry['path'], entry) for entry in contents)


def _path_problem(name):
    """Why `name` is not a plain relative path inside the tree (tarfile's data filter), or None."""
    parts = name.split('/')
    if name.startswith('/') or '\x00' in name or '..' in parts:
        return 'a place outside the tree'
    if not name or '' in parts or '.' in parts:
        return 'not a plain relative name'
    return None


def _check_members(backup, listed, members):
    """Refuse, before anything is unpacked, every member that is not a plain directory or regular
    file inside the tree: links (symbolic or hard), devices, FIFOs, absolute names, '..' parts.
    lifeboat's own archives never hold anything else (links are not archived, see walk_tree), so
    a restore needs no rule for a link that stays inside the tree. Model: tarfile's data filter."""
    names = set()
    for member in members:
        name = member.name
        problem = None
        path_problem = _path_problem(name) if name != '.' else None
        if not (member.isdir() or member.isreg()):
            problem = 'is not a regular file or directory (a link, device or FIFO)'
        elif path_problem:
            problem = 'names %s' % path_problem
        elif name in names:
            problem = 'appears twice'
        elif member.isreg() and name not in listed:
            problem = 'is not in the manifest'
        if problem:
            raise LifeboatError('files backup %s holds an unsafe entry %r that %s; refusing to unpack it, the '
                                'destination was not touched' % (backup.backup_id, name[:200], problem))
        names.add(name)


def _unpack(backup, listed, tar, members, staging_fd):
    """Create each member inside the private staging folder, relative to descriptors, with
    O_EXCL | O_NOFOLLOW: nothing is written, chowned or chmodded through a link. Each file is
    hashed while it is written and checked against the manifest."""
    as_root = os.geteuid() == 0
    done, directories = set(), []
    for member in members:
        folder, base = os.path.split(member.name)
        parent_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=staging_fd) if folder \
            else os.dup(staging_fd)
        try:
            if member.name == '.':
                directories.append(member)
                continue
            if member.isdir():
                os.mkdir(base, 0o700, dir_fd=parent_fd)
                directories.append(member)
                continue
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=parent_fd)
            with os.fdopen(fd, 'wb') as out:
                digest = hashlib.sha256()
                source = tar.extractfile(member)
                for block in iter(lambda: source.read(CHUNK), b''):
                    digest.update(block)
                    out.write(block)
                # Written out first: a flush at close would stamp the file with the time of the restore.
                out.flush()
                _set_attributes(out.fileno(), member, as_root)
            if digest.hexdigest() != listed[member.name]['sha256']:
                raise LifeboatError('files backup %s unpacked %s differently from its manifest; the destination '
                                    'was not touched' % (backup.backup_id, member.name))
            done.add(member.name)
        finally:
            os.close(parent_fd)
    missing = sorted(set(listed) - done)
    if missing:
        raise LifeboatError('files backup %s lacks %s listed in its manifest; the destination was not touched'
                            % (backup.backup_id, missing[0]))
    # Deepest first and last of all: a directory made read-only must not stop what goes inside.
    for member in sorted(directories, key=lambda m: m.name.count('/'), reverse=True):
        fd = os.open(member.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=staging_fd)
        try:
            _set_attributes(fd, member, as_root)
        finally:
            os.close(fd)


def _set_attributes(fd, member, as_root):
    """Owner (as root), mode without setuid/setgid, and times of what fd is: never a link."""
    if as_root:
        os.fchown(fd, member.uid, member.gid)
    os.fchmod(fd, member.mode & 0o1777)
    os.utime(fd, (member.mtime, member.mtime))


def _open_verified(backup):
    """The archive, opened once without following a link and hashed from that descriptor: what
    is unpacked is what matched the manifest, even if the file at that path changes meanwhile."""
    expected = [f['sha256'] for f in backup.manifest['files'] if f.get('name') == ARCHIVE_NAME]
    raw = os.fdopen(os.open(os.path.join(backup.path, ARCHIVE_NAME), os.O_RDONLY | os.O_NOFOLLOW), 'rb')
    try:
        digest = hashlib.sha256()
        for block in iter(lambda: raw.read(CHUNK), b''):
            digest.update(block)
        if [digest.hexdigest()] != expected:
            raise LifeboatError('files backup %s is damaged: sha256 of %s does not match its manifest; use another '
                                'backup' % (backup.backup_id, ARCHIVE_NAME))
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    return raw


def _no_link(path, what):
    if os.path.islink(path):
        raise LifeboatError('%s %s is a symbolic link; name the real directory (a restore never follows a link)'
                            % (what, path))


def restore_files(ctx, name, reference, dest):
    """Restore a files set of the local repository into `dest`."""
    return restore_set(ctx, resolve_set(ctx.repository, name, reference), dest)


def resolve_set(source, name, reference):
    """A files set of a local repository or an S3Store; for `latest`, sets refused as not
    lifeboat's (manifest.InvalidSet) are named in the failure."""
    try:
        return source.resolve(name, reference, kind='files')
    except InvalidSet:
        raise
    except LifeboatError as exc:
        refused = (source.refused or {}).get(name)
        if reference != 'latest' or not refused:
            raise
        raise LifeboatError('%s (refused there: %s)' % (exc.msg, '; '.join('%s: %s' % (r.backup_id, r.reason)
                                                                            for r in refused[:3])))


def restore_set(ctx, backup, dest):
    """Check the local set `backup` (its files against the manifest, then every entry of the
    archive) and swap its tree in at `dest`."""
    verify_files(backup.path, backup.manifest)
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    label = '%s.prev-%s-' % (os.path.basename(dest), utc_now().strftime('%Y%m%dT%H%M%SZ'))
    with _open_verified(backup) as raw, tarfile.open(fileobj=raw, mode='r:gz') as tar:
        members = tar.getmembers()
        listed = listed_contents(backup)
        _check_members(backup, listed, members)
        count = len(listed)
        if ctx.check_mode:
            return dict(changed=True, backup_id=backup.backup_id,
                        actions=['Verified files backup %s' % backup.backup_id,
                                 'Would unpack %d files into %s' % (count, dest)]
                        + (['Would keep the current %s as %s<random>' % (dest, os.path.join(parent, label))]
                           if os.path.lexists(dest) else []))
        if not os.path.isdir(parent):
            raise LifeboatError('the parent of dest (%s) does not exist; create it first' % parent)
        _no_link(parent, 'the parent of dest')
        _no_link(dest, 'dest')
        # A fresh private (0700) folder with an unpredictable name: nothing can be planted in it.
        staging = tempfile.mkdtemp(prefix='.%s.lifeboat-restore-' % os.path.basename(dest), dir=parent)
        try:
            staging_fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                _unpack(backup, listed, tar, members, staging_fd)
            finally:
                os.close(staging_fd)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    kept = None
    try:
        if os.path.lexists(dest):
            # rename() replaces the empty folder made for it, and fails on a link planted there
            # meanwhile: it never follows one. Its name is unpredictable like the staging folder's.
            kept = tempfile.mkdtemp(prefix=label, dir=parent)
            try:
                os.rename(dest, kept)
            except OSError:
                os.rmdir(kept)
                kept = None
                raise
        os.rename(staging, dest)
    except OSError as exc:
        if kept and not os.path.lexists(dest):
            os.rename(kept, dest)
        shutil.rmtree(staging, ignore_errors=True)
        raise LifeboatError('could not move the unpacked files to %s: %s; the destination was not changed'
                            % (dest, exc.strerror or exc))
    return dict(changed=True, backup_id=backup.backup_id, dest=dest, previous=kept,
                file_count=count,
                actions=['Verified files backup %s' % backup.backup_id,
                         'Unpacked %d files into %s' % (count, dest)]
                + (['Kept the previous %s as %s' % (dest, kept)] if kept else []))
