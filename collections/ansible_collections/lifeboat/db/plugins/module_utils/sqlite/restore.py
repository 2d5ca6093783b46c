# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""action=restore: put a SQLite backup set back in place of the live file by a rename.

In order, each step only when the one before succeeded: the set's file against its manifest
(size, sha256) and through integrity_check; refused while a process holds the database (its pid
and command line named) or a lock lifeboat cannot name is held; the set written beside the live
file under a temporary name (hashed as it is written, fsynced) and checked again; the live file
kept in the repository as a set of kind sqlite-pre-restore (through the backup API, so what its
-wal still held is in it); the holders looked for once more; the live file's stale -wal, -shm and
-journal renamed aside (a -wal left beside the restored file would be replayed onto it); the new
file renamed over the live one, the folder fsynced and the aside files removed. A failure up to
and including that rename leaves the live database as it was (its companions put back) and
removes the temporary file.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import hashlib
import os
import sqlite3
import stat

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError, error_text
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import CHUNK, fsync_dir, member_path, verify_files
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.backup import SET_FILE, keep_pre_restore
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.database import COMPANIONS, integrity_problems, open_copy
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.holders import refuse_if_held, refuse_if_locked
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.sets import sqlite_set


def chosen_set(repository, name, reference):
    backup = sqlite_set(repository, name, reference)
    if backup.manifest.get('raw'):
        raise LifeboatError('backup %s is a byte-for-byte copy of a file SQLite could not read (%s); it is kept so '
                            'nothing is lost, not restored: copy its files out of %s by hand'
                            % (backup.backup_id, backup.manifest.get('reason', 'damaged'), backup.path))
    return backup


def sound_or_refused(path, backup, where):
    conn = open_copy(path)
    try:
        problems = integrity_problems(conn)
    except sqlite3.Error as exc:
        problems = [str(exc)]
    finally:
        conn.close()
    if problems:
        raise LifeboatError('backup %s fails integrity_check %s (%s); it is not restored, the live database was not '
                            'touched: choose another backup' % (backup.backup_id, where,
                                                               ' '.join('; '.join(problems[:3]).split())))


def write_beside(source, path, expected):
    """Copy `source` to a new temporary file beside `path`, hashed as written and fsynced."""
    temporary = '%s.lifeboat-restore-%s' % (path, binascii.hexlify(os.urandom(4)).decode())
    digest = hashlib.sha256()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, 'wb') as out, open(source, 'rb') as handle:
            for block in iter(lambda: handle.read(CHUNK), b''):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected:
            raise LifeboatError('the copy of %s written beside %s does not match its sha256; check the disk, the live '
                                'database was not touched' % (source, path))
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def restore(ctx, path, name):
    p = ctx.params
    what = 'restore of %s' % path
    backup = chosen_set(ctx.repository, name, p['backup'])
    exists = os.path.lexists(path)
    with ctx.repository.pin(backup):
        verify_files(backup.path, backup.manifest)
        source = member_path(backup.path, backup.manifest.get('archive') or SET_FILE, backup.backup_id)
        sound_or_refused(source, backup, 'in the repository')
        actions = ['Verified SQLite backup %s (sha256, integrity_check)' % backup.backup_id]
        if exists:
            hidden = refuse_if_held(path, what)
            if hidden:
                actions.append('Could not look at %d processes of other users (not root): a lock test stands in' % hidden)
        if ctx.check_mode:
            return dict(changed=True, backup_id=backup.backup_id, path=path, actions=actions + [
                'Would keep the live %s as a sqlite-pre-restore set' % path if exists else 'No live file to keep',
                'Would write backup %s beside %s, check it and rename it over it' % (backup.backup_id, path) if exists
                else 'Would write backup %s as the new file %s (no live file to take the owner and mode from: it would '
                     'be uid %d\'s, 0600)' % (backup.backup_id, path, os.geteuid())])
        unlockable = refuse_if_locked(path, p['busy_timeout'], what) if exists else None
        temporary = write_beside(source, path, backup.manifest['files'][0]['sha256'])
        try:
            sound_or_refused(temporary, backup, 'once written beside %s' % path)
            kept = _keep(ctx, path, name, temporary, actions, unlockable) if exists else None
            if exists:
                refuse_if_held(path, what)
            aside = _swap_in(temporary, path)
        except BaseException:
            if os.path.lexists(temporary):
                os.unlink(temporary)
            raise
    fsync_dir(os.path.dirname(path))
    removed = _remove_aside(aside)
    actions += ['Removed the stale %s of the replaced file' % ', '.join(removed)] if removed else []
    actions.append('Renamed the restored copy over %s' % path)
    result = dict(changed=True, backup_id=backup.backup_id, path=path, pre_restore=kept,
                  row_counts=backup.manifest.get('row_counts'), sha256=backup.manifest['files'][0]['sha256'],
                  actions=actions)
    if not exists:
        # No live file to take the owner and mode from: an application running as another user
        # cannot open the file until it is given them, so the result says what it is.
        made = os.stat(path)
        line = ('%s is new: owned by uid %d gid %d, mode %04o (there was no live file to take them from); give it the '
                'owner and mode the application opens it with (e.g. ansible.builtin.file)'
                % (path, made.st_uid, made.st_gid, stat.S_IMODE(made.st_mode)))
        actions.append(line)
        result['warnings'] = [line]
    return result


def _keep(ctx, path, name, temporary, actions, unlockable):
    live = os.lstat(path)
    # The restored file takes the live file's owner and mode: the application must open it as before.
    if os.geteuid() == 0:
        os.chown(temporary, live.st_uid, live.st_gid)
    os.chmod(temporary, live.st_mode & 0o7777)
    backup_id, final, manifest = keep_pre_restore(ctx, path, name, ctx.params['busy_timeout'])
    if manifest.get('raw'):
        actions.append('Kept the live %s byte for byte as set %s at %s: SQLite cannot read it (%s)'
                       % (path, backup_id, final, unlockable or manifest.get('reason')))
    else:
        actions.append('Kept the live %s as set %s at %s (%d rows, integrity %s)'
                       % (path, backup_id, final, manifest['total_rows'], manifest['integrity']))
    return dict(backup_id=backup_id, backup_path=final, raw=bool(manifest.get('raw')),
                integrity=manifest['integrity'])


def _swap_in(temporary, path):
    """Rename the restored copy over `path` with none of the replaced file's -wal, -shm and
    -journal beside it (an old -wal would be replayed onto the restored file at its next open).
    They are renamed aside first, not removed: if the rename of the copy fails, they are put back
    and the live database is whole, with the committed rows its -wal still held. Returns
    [(companion, aside name)] for _remove_aside once the copy is in place."""
    tag = binascii.hexlify(os.urandom(4)).decode()
    aside = []
    try:
        for companion in (path + suffix for suffix in COMPANIONS):
            if os.path.lexists(companion):
                moved = '%s.lifeboat-aside-%s' % (companion, tag)
                os.rename(companion, moved)
                aside.append((companion, moved))
        os.rename(temporary, path)
    except BaseException as exc:
        stranded = []
        for companion, moved in aside:
            try:
                os.rename(moved, companion)
            except OSError:
                stranded.append('%s (as %s)' % (os.path.basename(companion), moved))
        if stranded:
            raise LifeboatError('restore of %s failed (%s) and the live file\'s %s could not be put back: rename it '
                                'back by hand before the application opens the database'
                                % (path, error_text(exc), ', '.join(stranded)))
        if isinstance(exc, OSError):
            raise LifeboatError('restore of %s failed renaming the restored copy over it (%s); the live database is '
                                'as it was, with its -wal, -shm and -journal, and nothing was left beside it: fix the '
                                'cause, then run again' % (path, error_text(exc)))
        raise
    return aside


def _remove_aside(aside):
    """The replaced file's companions, once the restored copy is in place; their content is in
    the pre-restore set."""
    removed = []
    for companion, moved in aside:
        os.unlink(moved)
        removed.append(os.path.basename(companion))
    return removed
