# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files into and out of a container through the Docker API (put_archive / get_archive).

A parallel pg_restore needs the archive as a file inside the container, and a directory-format
pg_dump writes a folder there: both travel as tar streams. Into the container, the tar is made as
it is sent (a header, the file in blocks, the padding), so a large archive is never held in
memory or copied on the host. Out of it, the engine's tar is untrusted input: only regular files
and folders under the requested name are written, never links, devices or names that climb out.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import os
import posixpath
import stat
import tarfile

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container.engine import api_error_text, docker

CHUNK = 1024 * 1024
BLOCK = tarfile.BLOCKSIZE
_NOT_COPIED = ('%s is not a regular file (a symbolic link?); a link in an archive would copy whatever it points at '
               'into the container, so nothing of it is copied - put the file itself in its place')


def tar_stream(path, name, mode=0o600, uid=0, gid=0, follow=True):
    """The blocks of a tar archive holding the file `path` as `name`, generated as they are read.
    `follow`: whether `path` may be a symbolic link - the path the operator named may (pg_restore
    on a host follows it too); a file inside an archive folder may not (_file_entry)."""
    for block in _file_entry(path, name, mode, uid, gid, follow):
        yield block
    yield b'\0' * (2 * BLOCK)


def tar_folder_stream(path, name, uid=0, gid=0):
    """The blocks of a tar archive holding the folder `path` as `name` (0700) with its regular files
    (0600) and folders, generated as the files are read. Anything else in it (a link, a device) is
    refused: a backup set holds files only, and a link would point somewhere in the container."""
    yield _entry(name, tarfile.DIRTYPE, 0o700, uid, gid, 0, os.stat(path).st_mtime)
    for root, dirs, files in os.walk(path):
        dirs.sort()
        inside = posixpath.join(name, *os.path.relpath(root, path).split(os.sep)) if root != path else name
        for entry in sorted(dirs + files):
            full = os.path.join(root, entry)
            facts = os.lstat(full)
            member = posixpath.join(inside, entry)
            if stat.S_ISDIR(facts.st_mode):
                yield _entry(member, tarfile.DIRTYPE, 0o700, uid, gid, 0, facts.st_mtime)
            elif stat.S_ISREG(facts.st_mode):
                for block in _file_entry(full, member, 0o600, uid, gid):
                    yield block
            else:
                raise LifeboatError('%s is not a regular file or folder; a backup set holds nothing else, so it is '
                                    'not copied into the container' % full)
    yield b'\0' * (2 * BLOCK)


def _entry(name, kind, mode, uid, gid, size, mtime):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.size, info.mtime = kind, mode, uid, gid, size, int(mtime)
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _file_entry(path, name, mode, uid, gid, follow=False):
    """One file's header, its blocks as they are read, and the padding to a whole tar block. Unless
    `follow`, a symbolic link is refused, not read: a link in an archive someone else made would
    copy whatever it points at (/etc/shadow) into the container. The file is opened once and its
    facts taken from that open file, so a link swapped in after a check is never followed either
    (O_NONBLOCK: a FIFO put there is refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW))
    except (IOError, OSError) as exc:
        if exc.errno == errno.ELOOP:
            raise LifeboatError(_NOT_COPIED % path)
        raise LifeboatError('%s could not be read to copy it into the container: %s' % (path, exc.strerror or exc))
    with os.fdopen(fd, 'rb') as source:
        facts = os.fstat(source.fileno())
        if not stat.S_ISREG(facts.st_mode):
            raise LifeboatError(_NOT_COPIED % path)
        size = facts.st_size
        yield _entry(name, tarfile.REGTYPE, mode, uid, gid, size, facts.st_mtime)
        sent = 0
        for block in iter(lambda: source.read(CHUNK), b''):
            sent += len(block)
            if sent > size:
                break
            yield block
    if sent != size:
        raise LifeboatError('%s changed size while it was copied into the container (%d bytes, then %d); nothing '
                            'was restored from it' % (path, size, sent))
    if size % BLOCK:
        yield b'\0' * (BLOCK - size % BLOCK)


def copy_in(execer, path, directory, name, mode=0o600, uid=0, gid=0, follow=True):
    """Copy the file (or folder, as tar_folder_stream) `path` into the container's `directory` as
    `name`; returns its path there. `follow`: whether `path` itself may be a symbolic link (tar_stream)."""
    container = execer.container
    if os.path.isdir(path) and (follow or not os.path.islink(path)):
        stream = tar_folder_stream(path, name, uid, gid)
    else:
        stream = tar_stream(path, name, mode, uid, gid, follow)
    try:
        done = container.api.put_archive(container.id, directory, stream)
    except docker.errors.APIError as exc:
        raise LifeboatError('copying %s into container %r (%s) failed: %s'
                            % (path, container.name, directory, api_error_text(exc)))
    if not done:
        raise LifeboatError('the engine did not take %s into container %r (%s)' % (path, container.name, directory))
    return posixpath.join(directory, name)


def copy_out(execer, source, destination):
    """Copy `source` (a file or folder in the container) into the host folder `destination`, which
    must exist. Returns [{name, size, sha256}] of the files written (names relative to destination)."""
    container = execer.container
    try:
        chunks, _ = container.api.get_archive(container.id, source, chunk_size=CHUNK)
    except docker.errors.NotFound:
        raise LifeboatError('%s does not exist in container %r' % (source, container.name))
    except docker.errors.APIError as exc:
        raise LifeboatError('copying %s out of container %r failed: %s' % (source, container.name,
                                                                           api_error_text(exc)))
    reader = _ChunkReader(chunks)
    try:
        return extract_safely(reader, posixpath.basename(source.rstrip('/')), destination,
                              'the copy of %s out of container %r' % (source, container.name))
    finally:
        reader.close()


def extract_safely(fileobj, top, destination, what):
    """Write the regular files and folders of a tar stream, all under `top`, into `destination`
    (files 0600, folders 0700, never over an existing file); refuse anything else in one line, and
    a stream that stops before the tar's end-of-archive block: the files after the cut would be
    missing without a word (a directory-format dump without its table data still lists)."""
    written = []
    try:
        with tarfile.open(fileobj=fileobj, mode='r|', tarinfo=_EndNoted) as tar:
            for member in tar:
                name = _checked_name(member.name, top, what)
                target = os.path.join(destination, *name.split('/'))
                if member.isdir():
                    if not os.path.isdir(target):
                        os.mkdir(target, 0o700)
                elif member.isfile():
                    written.append(_write_member(tar, member, target, name, what))
                else:
                    raise LifeboatError('%s holds %s, which is not a regular file or folder; nothing of it is used'
                                        % (what, name))
            if not getattr(tar, _END_SEEN, False):
                raise LifeboatError('%s stopped before the end of its tar stream (after %s), so files may be '
                                    'missing; nothing of it is used, run again'
                                    % (what, written[-1]['name'] if written else 'no file'))
    except tarfile.TarError as exc:
        raise LifeboatError('%s is not a readable tar stream: %s' % (what, exc))
    except (IOError, OSError) as exc:
        raise LifeboatError('%s could not be written into %s: %s' % (what, destination, exc.strerror or exc))
    return written


_END_SEEN = 'lifeboat_end_seen'


class _EndNoted(tarfile.TarInfo):
    """A TarInfo that marks its TarFile when the end-of-archive block (zeros where a header would
    be) is read. tarfile's stream mode ends its members alike at that block, at the end of the
    data and at a header it cannot read; a whole tar (the engine's, Go's archive/tar) has it."""

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super(_EndNoted, cls).fromtarfile(tar)
        except tarfile.EOFHeaderError:
            setattr(tar, _END_SEEN, True)
            raise


def _checked_name(name, top, what):
    clean = posixpath.normpath(name)
    if name.startswith('/') or clean == '..' or clean.startswith('../') or '\\' in name:
        raise LifeboatError('%s names %r, outside the folder it was asked for; nothing of it is used' % (what, name))
    if clean != top and not clean.startswith(top + '/'):
        raise LifeboatError('%s holds %r, which is not under %r; nothing of it is used' % (what, name, top))
    return clean


def _write_member(tar, member, target, name, what):
    digest = hashlib.sha256()
    source = tar.extractfile(member)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    size = 0
    with os.fdopen(fd, 'wb') as out:
        for block in iter(lambda: source.read(CHUNK), b''):
            out.write(block)
            digest.update(block)
            size += len(block)
        out.flush()
        os.fsync(out.fileno())
    if size != member.size:
        raise LifeboatError('%s ended inside %s (%d of %d bytes)' % (what, name, size, member.size))
    return dict(name=name, size=size, sha256=digest.hexdigest())


class _ChunkReader(object):
    """A file-like read() over the engine's generator of chunks, for tarfile's stream mode."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buffer = b''
        self.offset = 0  # what was read of buffer: it is only copied when a chunk is added

    def read(self, size=-1):
        while size < 0 or len(self.buffer) - self.offset < size:
            try:
                chunk = next(self.chunks)
            except StopIteration:
                break
            self.buffer = self.buffer[self.offset:] + chunk
            self.offset = 0
        end = len(self.buffer) if size < 0 else min(len(self.buffer), self.offset + size)
        block = self.buffer[self.offset:end]
        self.offset = end
        return block

    def close(self):
        close = getattr(self.chunks, 'close', None)
        if close:
            close()


def scratch_dir(execer, what):
    """A new private folder in the container (mktemp -d), for files on their way in or out."""
    # Proven whole, not asked again: a second mktemp would leave the first folder behind.
    result = execer.check(['mktemp', '-d', '/tmp/lifeboat.XXXXXXXX'], 'making a scratch folder for %s' % what,
                          whole=True)
    path = result.stdout.decode('utf-8', 'replace').strip()
    if not path.startswith('/tmp/lifeboat.'):
        raise LifeboatError('mktemp in container %r answered %r, not a folder' % (execer.container.name, path))
    return path


def remove_in(execer, path):
    """Remove a scratch file or folder in the container; returns None, or why it could not."""
    result = execer.run(['rm', '-rf', '--', path])
    if result.exit_code != 0:
        return execer.failure('rm', 'removing %s' % path, result)
    return None


def exec_user(execer):
    """(uid, gid) the container's commands run as: files copied in are theirs, 0600."""
    result = execer.ask(['id', '-u'], 'asking the container for its user')
    uid = result.stdout.decode('ascii', 'replace').strip()
    result = execer.ask(['id', '-g'], 'asking the container for its group')
    gid = result.stdout.decode('ascii', 'replace').strip()
    if not (uid.isdigit() and gid.isdigit()):
        raise LifeboatError('container %r did not tell its user and group (id answered %r, %r)'
                            % (execer.container.name, uid, gid))
    return int(uid), int(gid)
