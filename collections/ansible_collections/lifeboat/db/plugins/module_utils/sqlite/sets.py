# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which SQLite set an id or `latest` names, for restore and for check's count comparison."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

KIND = 'sqlite'
PRE_RESTORE_KIND = 'sqlite-pre-restore'


def sqlite_set(repository, name, reference):
    """A set by id (a pre-restore set too, to roll forward), or for `latest` the newest of kind
    sqlite; a set of another kind (a PostgreSQL dump of the same name) is refused."""
    if reference == 'latest' and not repository.backups(name, kind=KIND):
        raise LifeboatError('no SQLite backup of %r in %s; take one with lifeboat.db.sqlite action=backup, or check '
                            'repository and name' % (name, repository.root))
    backup = repository.resolve(name, reference, kind=KIND if reference == 'latest' else None)
    if backup.kind not in (KIND, PRE_RESTORE_KIND):
        raise LifeboatError('backup %s of %r is a %s backup, not a SQLite one; name a set lifeboat.db.sqlite took'
                            % (backup.backup_id, name, backup.kind))
    return backup
