# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.restore.flow import restore
from ansible_collections.lifeboat.db.plugins.module_utils.restore.request import RestoreRequest


def run(ctx):
    p = ctx.params
    request = RestoreRequest(p['backup_db'] or p['db'], p['backup'], p['db'], p['mode'], jobs=p['jobs'],
                             no_owner=p['no_owner'], no_acl=p['no_acl'], maintenance_db=p['maintenance_db'],
                             analyze=p['analyze'], safety_backup=p['safety_backup'],
                             glacier_restore=p['glacier_restore'], grace_seconds=p['grace_seconds'],
                             keep_previous=p['keep_previous'], kind=p['kind'],
                             tables=p['tables'], role=p['role'], grants=p['grants'],
                             refresh_matviews=p['refresh_matviews'], repair_sequences=p['repair_sequences'],
                             checks=p['checks'], locale_fallback=p['locale_fallback'])
    return restore(ctx, request)
