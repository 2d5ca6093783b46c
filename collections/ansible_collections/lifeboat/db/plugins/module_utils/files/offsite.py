# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A files set's copy in S3, made after a backup exactly as a database set's offsite copy
(backup.offsite: files first, manifest last, each upload checked, retention there too); the local
set stays whatever happens to the copy. restore_s3 brings it back on any host."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.backup.offsite import OffsiteRequest, copy_offsite
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.progress import Progress

KIND = 'files'


def offsite_request(ctx):
    """The task's OffsiteRequest, or None without offsite_url. With neither offsite_keep_last nor
    offsite_keep_days, S3 keeps as many sets as keep_last keeps locally (as lifeboat.db.dump)."""
    p = ctx.params
    store = ctx.offsite_store()
    if store is None:
        return None
    no_rule = p['offsite_keep_last'] is None and p['offsite_keep_days'] is None
    return OffsiteRequest(store, p['keep_last'] if no_rule else p['offsite_keep_last'],
                          None if no_rule else p['offsite_keep_days'], required=p['offsite'] == 'required')


class _Copy(object):
    """What backup.offsite.copy_offsite reads of a dump's request."""

    def __init__(self, name, offsite):
        self.database, self.kind, self.offsite = name, KIND, offsite


def plan_offsite(offsite, name, backup_id):
    """Check mode: where the copy would go and what retention would delete there."""
    store = offsite.store
    store.check_bucket()
    doomed = store.retention_plan(name, KIND, offsite.keep_last, offsite.keep_days, incoming=1)
    url = store.set_url(name, backup_id)
    return dict(url=url, deleted=[b.backup_id for b in doomed],
                actions=['Would copy it to %s' % url]
                + ['Would delete files backup %s from %s (retention)' % (b.backup_id, store.url) for b in doomed])


def copy_files_offsite(ctx, offsite, name, final, manifest):
    """Copy the committed set at `final` to S3 (files first, manifest last, each upload checked);
    returns the offsite record with its `actions` and `warnings`. With offsite: required a failed
    copy fails the task, naming the local set that is kept."""
    progress = Progress(ctx.repository.database_dir(name), manifest['backup_id'], None)
    try:
        record = copy_offsite(ctx, _Copy(name, offsite), final, manifest, progress)
    except LifeboatError as exc:
        exc.facts.pop('manifest', None)  # its contents list every file: not for a failure's result
        raise
    warnings = []
    if record.get('error'):
        warnings.append('files backup %s is complete at %s but its offsite copy failed: %s'
                        % (manifest['backup_id'], final, record['error']))
    if record.get('retention_errors'):
        warnings.append('files backup %s was copied to %s, but retention there could not finish: %s'
                        % (manifest['backup_id'], record['url'], '; '.join(record['retention_errors'])))
    record['warnings'] = warnings
    return record
