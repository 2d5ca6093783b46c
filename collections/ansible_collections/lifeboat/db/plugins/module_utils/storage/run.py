# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup_info module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3_store import S3Backup
from ansible_collections.lifeboat.db.plugins.module_utils.storage.verification import verify_and_record, verify_remote


def refused(source, databases):
    """The sets the listing refused (manifest.InvalidSet), of these databases."""
    return [exc.summary(db) for db in databases for exc in source.refused.get(db, [])]


def listed(ctx, invalid):
    """Sets of the repository (local or S3), plus those only in the offsite store. Sets that
    fail validation are not backups: they go to `invalid`, with the reason."""
    p = ctx.params
    source = ctx.store or ctx.repository
    databases = [p['db']] if p['db'] else source.databases()
    found = [b for db in databases for b in source.backups(db, kind=p['kind'])]
    invalid.extend(refused(source, databases))
    offsite = ctx.offsite_store() if ctx.store is None else None
    if offsite is not None:
        local = dict((b.backup_id, b) for b in found)
        for backup in found:  # S3 itself says where the copies are, not what was recorded
            backup.locations = [where for where in backup.locations if not where.startswith(offsite.url + '/')]
        remote_databases = [p['db']] if p['db'] else offsite.databases()
        remote_sets = [b for db in remote_databases for b in offsite.backups(db, kind=p['kind'])]
        invalid.extend(refused(offsite, remote_databases))
        for remote in remote_sets:
            if remote.backup_id in local:
                if remote.path not in local[remote.backup_id].locations:
                    local[remote.backup_id].locations.append(remote.path)
            else:
                found.append(remote)
    return found


def selected(ctx, invalid):
    p = ctx.params
    found = listed(ctx, invalid)
    found.sort(key=lambda b: (b.manifest.get('started_at', ''), b.backup_id), reverse=True)
    if p['backup'] == 'latest':
        found = found[:1]
    elif p['backup']:
        found = [b for b in found if b.backup_id == p['backup']]
        for bad in invalid:
            if not found and bad['backup_id'] == p['backup']:
                raise LifeboatError('backup set %s in %s is refused: %s; lifeboat did not write it like this, so it '
                                    'is not counted as a backup - move it out of the repository'
                                    % (bad['backup_id'], bad['where'], bad['reason']))
        if not found:
            raise LifeboatError('backup %r not found in repository %s' % (p['backup'], where(ctx)))
    return found


def where(ctx):
    return ctx.store.url if ctx.store is not None else ctx.repository.root


def run(ctx):
    invalid = []
    backups = selected(ctx, invalid)
    result = dict(changed=False, count=len(backups), invalid=invalid,
                  actions=['Listed %d backup set(s) in %s' % (len(backups), where(ctx))])
    if invalid:
        result['warnings'] = ['backup set %s in %s is refused and not counted as a backup: %s'
                              % (bad['backup_id'], bad['where'], bad['reason']) for bad in invalid]
    failed = []
    if ctx.params['verify']:
        records = {}
        for backup in backups:
            if isinstance(backup, S3Backup):
                records[backup.backup_id] = verify_remote(ctx, backup.store, backup)
            else:
                records[backup.backup_id] = verify_and_record(ctx, backup)
            backup.verification = records[backup.backup_id]
        result['verified'] = records
        result['changed'] = bool(backups) and not ctx.check_mode
        failed = ['%s (%s)' % (b, r['detail']) for b, r in records.items() if r['status'] == 'failed']
        unavailable = [b for b, r in records.items() if r['status'] == 'unavailable']
        unchecked = ['%s (%s)' % (b, r['detail']) for b, r in records.items() if r['status'] == 'unchecked']
        result['actions'].append('Verified %d backup set(s): %d passed, %d failed, %d unavailable (GLACIER), '
                                 '%d unchecked' % (len(records), len(records) - len(failed) - len(unavailable)
                                                   - len(unchecked), len(failed), len(unavailable), len(unchecked)))
        if unchecked:
            # Verification that could not run proves nothing either way: a warning, never a failure.
            result.setdefault('warnings', []).extend('backup %s could not be verified: %s' % (b, r['detail'])
                                                     for b, r in records.items() if r['status'] == 'unchecked')
    result['backups'] = [b.summary() for b in backups]
    if failed and ctx.params['fail_on'] == 'error':
        raise LifeboatError('%d backup set(s) failed verification: %s' % (len(failed), '; '.join(failed)),
                            **dict((k, v) for k, v in result.items() if k != 'changed'))
    return result
