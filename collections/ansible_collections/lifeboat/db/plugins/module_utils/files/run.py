# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.files.archive import backup_files, restore_files


def run(ctx):
    p = ctx.params
    if p['action'] == 'backup':
        if not p['path']:
            raise LifeboatError('action=backup needs path: the directory to back up')
        return backup_files(ctx, p['path'], p['name'], p['keep_last'])
    if not p['dest']:
        raise LifeboatError('action=restore needs dest: the directory to restore into')
    return restore_files(ctx, p['name'], p['backup'], p['dest'])
