# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which folder refuses the module user, for a permission error's message: the folder, its owner
and mode, and the user it must belong to (playbooks/prepare.yml makes lifeboat's folders that user's)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import pwd
import stat


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return 'uid %d' % uid


def blocking_folder(path):
    """(folder, lstat) of the folder on the way to `path` the current user cannot pass or write in:
    the nearest existing one if it cannot be written, else the nearest one above that cannot be
    entered; None when no folder refuses (the error came from elsewhere)."""
    existing = os.path.abspath(path)
    while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    needed = os.W_OK | os.X_OK
    folder = existing
    while True:
        try:
            facts = os.lstat(folder)
        except OSError:
            return None
        if stat.S_ISDIR(facts.st_mode) and not os.access(folder, needed):
            return folder, facts
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder, needed = parent, os.X_OK


def permission_hint(exc, path):
    """For a permission error met under `path`: '<folder> belongs to <owner> (mode 0700) and this task
    runs as <user>: it must belong to <user>; run playbooks/prepare.yml ...', else ''."""
    if getattr(exc, 'errno', None) not in (errno.EACCES, errno.EPERM):
        return ''
    found = blocking_folder(getattr(exc, 'filename', None) or path)
    if found is None:
        return ''
    folder, facts = found
    me = user_name(os.geteuid())
    return ('%s belongs to %s (mode %04o) and this task runs as %s: it must belong to %s (0700); run '
            'playbooks/prepare.yml, which makes the repository, cache and log folders the database OS user\'s, '
            'or chown it' % (folder, user_name(facts.st_uid), stat.S_IMODE(facts.st_mode), me, me))


def cannot_write(root, exc):
    """The message of a repository that cannot be written: whose folder refuses, and how to fix it."""
    return 'cannot write to repository %s: %s; %s' % (
        root, exc.strerror or exc, permission_hint(exc, root)
        or 'choose a repository path on a writable filesystem the module user can write to')
