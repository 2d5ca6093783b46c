# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Which pgBackRest stanza, configuration, repository and program a lifeboat.db.pgbackrest_* module uses.
    DOCUMENTATION = r'''
options:
  stanza:
    description: The pgBackRest stanza (one PostgreSQL cluster).
    type: str
    required: true
  config:
    description:
      - Path of the C(pgbackrest.conf) holding the stanza. Default is pgBackRest's own,
        C(/etc/pgbackrest/pgbackrest.conf) (with C(/etc/pgbackrest/conf.d)).
    type: path
  repo:
    description: Only this repository (pgBackRest's C(--repo) index, 1 for C(repo1-*)). Default is all of them.
    type: int
  pgbackrest_bin:
    description: Path of the pgbackrest program. Default is C(pgbackrest) from E(PATH) or C(/usr/bin).
    type: path
'''
