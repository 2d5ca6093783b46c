# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The offsite copy of a committed local set: uploaded to an S3 store, with that store's own
retention. The local set stays whatever happens here."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError, error_text
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import write_json_atomic
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import OFFSITE_NAME, validate_retention


class OffsiteRequest(object):
    """Copy each new set to an S3 store after it is complete, with its own retention."""

    def __init__(self, store, keep_last=None, keep_days=None, required=True):
        validate_retention(keep_last, keep_days)
        self.store = store
        self.keep_last = keep_last
        self.keep_days = keep_days
        self.required = required


def copy_offsite(ctx, request, final, manifest, progress):
    """Upload the committed local set; the local set stays whatever happens here."""
    offsite = request.offsite
    database, backup_id = request.database, manifest['backup_id']
    progress.update(force=True, phase='uploading', bytes=0)
    try:
        swept = offsite.store.remove_leftovers(database)
        record = offsite.store.upload_set(database, backup_id, final, manifest,
                                          progress=lambda sent: progress.update(bytes=sent))
        write_json_atomic(os.path.join(final, OFFSITE_NAME), record)
    except (LifeboatError, IOError, OSError) as exc:
        if not isinstance(exc, LifeboatError):
            exc = LifeboatError('cannot read the local set: %s' % (exc.strerror or exc))
        progress.update(force=True, phase='offsite failed', error=exc.msg)
        if offsite.required:
            raise LifeboatError('backup %s is complete and kept at %s, but its offsite copy to %s failed: %s'
                                % (backup_id, final, offsite.store.url, exc.msg), backup_id=backup_id,
                                backup_path=final, manifest=manifest)
        return dict(url=None, error=exc.msg, deleted=[],
                    actions=['Offsite copy to %s failed (offsite: optional): %s' % (offsite.store.url, exc.msg)])
    progress.update(force=True, phase='done')
    # The copy is complete: retention there failing is reported, it does not undo the copy.
    errors, deleted = [], []
    try:
        deleted = offsite.store.apply_retention(database, request.kind, offsite.keep_last, offsite.keep_days,
                                                protect=(backup_id,), errors=errors)
        _forget_offsite(ctx.repository, database, deleted)
    except (LifeboatError, IOError, OSError) as exc:
        errors.append(error_text(exc))
    if errors:
        record['retention_errors'] = errors
    record.update(deleted=deleted, actions=['Removed %s left in %s by an interrupted run' % (name, offsite.store.url)
                                            for name in swept]
                  + ['Copied backup %s to %s (%s, checked by %s)' % (backup_id, record['url'], record['storage_class'],
                                                                     ', '.join(sorted(set(o['checked'] for o in
                                                                                          record['objects']))))]
                  + ['Deleted backup %s from %s (retention)' % (old, offsite.store.url) for old in deleted])
    return record


def _forget_offsite(repository, database, deleted):
    """Local sets whose S3 copy retention removed say so, so their locations stay true."""
    for backup_id in deleted:
        record = os.path.join(repository.database_dir(database), backup_id, OFFSITE_NAME)
        if os.path.exists(record):
            with open(record) as handle:
                previous = json.load(handle)
            write_json_atomic(record, dict(previous, url=None, removed_url=previous.get('url'),
                                           removed_at=iso(utc_now())))
