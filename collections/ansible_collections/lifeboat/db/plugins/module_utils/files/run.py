# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.files.archive import backup_files, restore_files
from ansible_collections.lifeboat.db.plugins.module_utils.files.container import host_path
from ansible_collections.lifeboat.db.plugins.module_utils.files.offsite import offsite_request
from ansible_collections.lifeboat.db.plugins.module_utils.files.restore_s3 import restore_from_s3


def run(ctx):
    container = getattr(ctx, 'container', None)
    if container is None:
        return _run(ctx)
    # path and dest are named as the container sees them; the work is done on their host folders.
    p = ctx.params
    seen = dict(path=p['path'], dest=p['dest'])
    if p['path'] and p['action'] == 'backup':
        p['path'] = host_path(container, 'path', p['path'])
    if p['dest'] and p['action'] == 'restore':
        p['dest'] = host_path(container, 'dest', p['dest'], restore=True)
    result = _run(ctx)
    result['container'] = dict(ctx.container_facts(), **dict(
        ('%s_in_container' % key, value) for key, value in seen.items() if value))
    return result


def _run(ctx):
    p = ctx.params
    if p['action'] == 'backup':
        if not p['path']:
            raise LifeboatError('action=backup needs path: the directory to back up')
        if ctx.store is not None:
            raise LifeboatError('action=backup writes the files set into a local repository: give repository as a '
                                'path on the target host, and offsite_url: s3://bucket/prefix to copy the set to S3')
        return backup_files(ctx, p['path'], p['name'], p['keep_last'], offsite=offsite_request(ctx))
    if not p['dest']:
        raise LifeboatError('action=restore needs dest: the directory to restore into')
    if p['offsite_url']:
        raise LifeboatError('offsite_url copies a new files backup to S3 (action=backup); to restore from S3 give '
                            'repository: s3://bucket/prefix')
    if ctx.store is not None:
        return restore_from_s3(ctx, p['name'], p['backup'], p['dest'])
    return restore_files(ctx, p['name'], p['backup'], p['dest'])
