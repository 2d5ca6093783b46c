# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local cache of S3 backup sets: where downloads land before they are checked and restored
(an s3:// repository's stand-in, or a restore's `cache_dir` for a set named by s3:// URL)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

# Where an s3:// repository keeps its local cache unless cache_dir says otherwise.
DEFAULT_CACHE_DIR = '/var/tmp/lifeboat-cache'


def private_dir(path, check_mode):
    """The cache of an s3:// repository holds downloads that get restored: it must be the module
    user's alone, not a folder someone else made first in a shared place like /var/tmp."""
    if not os.path.isabs(path):
        raise LifeboatError('cache_dir must be an absolute path on the target host, got %r' % (path,))
    try:
        if not os.path.lexists(path):
            if check_mode:
                return path
            os.makedirs(path, 0o700)
        # lstat: a link planted in a shared place must not lead the cache elsewhere.
        facts = os.lstat(path)
    except OSError as exc:
        raise LifeboatError('cannot create cache_dir %s: %s; choose a folder the module user can write to'
                            % (path, exc.strerror or exc))
    if stat.S_ISLNK(facts.st_mode) or not stat.S_ISDIR(facts.st_mode):
        raise LifeboatError('cache_dir %s is a symbolic link or not a folder; backups downloaded there get restored, '
                            'so it must be a real folder private to the module user: remove it or choose another '
                            'cache_dir' % path)
    if facts.st_uid != os.geteuid() or facts.st_mode & 0o077:
        raise LifeboatError('cache_dir %s belongs to uid %d or is open to others (it must be 0700); backups downloaded '
                            'there get restored, so it must be private to the module user: run playbooks/prepare.yml '
                            '(it gives the cache folder to the database OS user), remove it or choose another cache_dir'
                            % (path, facts.st_uid))
    return path
