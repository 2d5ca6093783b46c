# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dump module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.backup.offsite import OffsiteRequest
from ansible_collections.lifeboat.db.plugins.module_utils.backup.pg_dump import BackupRequest, take_backup
from ansible_collections.lifeboat.db.plugins.module_utils.backup.options import DumpOptions
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError


def run(ctx):
    params = ctx.params
    if not params['db']:
        raise LifeboatError('db is required: name the database to back up')
    options = DumpOptions(format=params['format'], compress=params['compress'],
                          compress_method=params['compress_method'], jobs=params['jobs'], tables=params['tables'],
                          exclude_tables=params['exclude_tables'], schemas=params['schemas'],
                          exclude_schemas=params['exclude_schemas'])
    offsite = None
    store = ctx.offsite_store()
    if store is not None:
        if ctx.store is not None:
            raise LifeboatError('offsite_url copies a local backup to S3, but repository is already in S3; '
                                'use a local repository path, or drop offsite_url')
        no_rule = params['offsite_keep_last'] is None and params['offsite_keep_days'] is None
        offsite = OffsiteRequest(store, params['keep_last'] if no_rule else params['offsite_keep_last'],
                                 params['keep_days'] if no_rule else params['offsite_keep_days'],
                                 required=params['offsite'] == 'required')
    request = BackupRequest(params['db'], kind=params['kind'], options=options, keep_last=params['keep_last'],
                            keep_days=params['keep_days'], with_globals=params['globals'],
                            lock_timeout=params['lock_timeout'], offsite=offsite)
    return take_backup(ctx, request)
