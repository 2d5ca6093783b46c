# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who holds a database open: every process with a descriptor on the file or its -wal, -shm or
-journal (from /proc/<pid>/fd), and whether a connection lifeboat cannot see holds a lock.

A file swapped under a process that has it open keeps that process writing into the old inode
(lost writes) or, worse, pairs its old -wal with the new file: a restore is refused while anyone
holds the database, naming the pid and its command line.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sqlite3

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.database import COMPANIONS, is_busy, open_live

PROC = '/proc'
COMMAND_CHARS = 200


def database_files(path):
    return [path] + [path + suffix for suffix in COMPANIONS]


def identities(path):
    """{(device, inode): name} of the database and those of its companion files that exist. A
    process is matched by the file it has open, not by the path it opened it by: through a
    symbolic link to a folder, a bind mount or a relative path the name differs, the inode not."""
    wanted = {}
    for name in database_files(path):
        try:
            facts = os.stat(name)
        except OSError:
            continue
        wanted[(facts.st_dev, facts.st_ino)] = name
    return wanted


def holders(path, proc=PROC):
    """([{pid, command, files}], pids that could not be inspected): processes other than this one
    with a descriptor open on the database or its companion files."""
    wanted = identities(path)
    found, hidden = [], 0
    for pid in sorted((int(n) for n in os.listdir(proc) if n.isdigit())):
        if pid == os.getpid():
            continue
        fd_dir = os.path.join(proc, str(pid), 'fd')
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            hidden += os.path.exists(os.path.join(proc, str(pid)))  # another user's process, not root
            continue
        files = set()
        for fd in fds:
            try:
                facts = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue  # closed meanwhile
            if (facts.st_dev, facts.st_ino) in wanted:
                files.add(wanted[(facts.st_dev, facts.st_ino)])
        if files:
            found.append(dict(pid=pid, command=command_line(proc, pid), files=sorted(files)))
    return found, hidden


def command_line(proc, pid):
    try:
        with open(os.path.join(proc, str(pid), 'cmdline'), 'rb') as handle:
            raw = handle.read(4096)
    except (IOError, OSError):
        return '?'
    text = raw.rstrip(b'\0').replace(b'\0', b' ').decode('utf-8', 'replace')
    return text[:COMMAND_CHARS] or '?'


def describe(found):
    return '; '.join('pid %d (%s) has %s open' % (h['pid'], h['command'], ', '.join(os.path.basename(f)
                                                                                     for f in h['files']))
                     for h in found)


def refuse_if_held(path, what):
    """Raise one line naming every process that holds the database; `what` is the action refused."""
    found, hidden = holders(path)
    if found:
        raise LifeboatError('%s refused: %s; stop or pause the application first (e.g. with the lifeboat_service '
                            'role), then run again' % (what, describe(found)), holders=found)
    return hidden


def refuse_if_locked(path, busy_timeout, what):
    """A connection lifeboat cannot see (another host on a shared filesystem, a process of another
    user when not root) shows only as a lock: take the exclusive lock once and let it go. Returns
    None, or why a damaged file could not be locked at all."""
    conn = open_live(path, busy_timeout, read_only=False)
    try:
        conn.execute('BEGIN EXCLUSIVE')
        conn.execute('ROLLBACK')
        return None
    except sqlite3.Error as exc:
        if is_busy(exc):
            raise LifeboatError('%s refused: %s is locked by another connection (%s) that lifeboat cannot name, for '
                                'more than busy_timeout (%ss); stop the application that holds it, then run again'
                                % (what, path, exc, busy_timeout))
        # A damaged file cannot be locked through SQLite ("file is not a database"): that is no
        # holder, and a damaged live file is what a restore is for.
        return str(exc)
    finally:
        conn.close()


def locked_message(path, exc, busy_timeout, what):
    """The one line of a database lock that outlasted busy_timeout, naming who holds the file."""
    found, dummy = holders(path)
    who = describe(found) if found else 'no process on this host has it open (another host?)'
    return ('%s: %s stayed locked for more than busy_timeout (%ss): %s; %s; pause the writer or raise busy_timeout'
            % (what, path, busy_timeout, exc, who))
