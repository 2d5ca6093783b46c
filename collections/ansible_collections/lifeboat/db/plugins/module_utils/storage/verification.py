# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proving a backup set is intact: every file against the manifest, and the archive readable.

Used before every restore, and by lifeboat.db.backup_info's verify, which records the outcome in
the set's verification.json (the manifest itself is never rewritten).
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import (
    member_path, validate_manifest, verify_files, write_json_atomic)
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import VERIFICATION_NAME
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import S3Error
from ansible_collections.lifeboat.db.plugins.module_utils.pg.toc import read_toc


class Unchecked(LifeboatError):
    """The check could not run (no pg_restore of the version, S3 unreachable): nothing proven."""


def archive_path(backup):
    """Where the archive of a backup set is (manifests of 0.1 had no `archive` key)."""
    name = backup.manifest.get('archive')
    if name is None:
        name = '%s.dump' % backup.manifest['database']
    if backup.manifest.get('external'):
        return os.path.join(backup.path, name)
    return member_path(backup.path, name, backup.backup_id)


def _pg_restore(ctx, backup):
    try:
        return ctx.finder.find('pg_restore', dump_major(backup.manifest), 'backup %s was written by pg_dump %s'
                               % (backup.backup_id, backup.manifest['pg_dump_version']))
    except LifeboatError as exc:
        raise Unchecked(exc.msg)


def dump_major(manifest):
    return int(manifest['pg_dump_version'].split('.')[0])


def check_backup(ctx, backup):
    """Raise LifeboatError unless every file matches the manifest and the archive reads back.
    Returns the names of the files checked; the table of contents is kept as `backup.toc`.
    An archive lifeboat did not write (sources.external_archive) has no checksums to check."""
    manifest = backup.manifest
    if not manifest.get('external'):
        # Every reader checks the set before it uses a name from it (listings did; a caller may not have).
        validate_manifest(manifest, backup.backup_id, None, os.path.dirname(backup.path))
    checked = [] if manifest.get('external') else verify_files(backup.path, manifest)
    backup.toc = None
    if manifest.get('format', 'custom') in ('custom', 'directory'):
        pg_restore = _pg_restore(ctx, backup)
        backup.toc = read_toc(ctx, pg_restore.path, archive_path(backup),
                              'reading the table of contents of backup %s' % backup.backup_id)
    return checked


def _keeps(backup, record):
    """Whether to write `record`: a check that could not run never overwrites proven damage."""
    previous = (backup.verification or {}).get('status')
    return record['status'] != 'unchecked' or previous != 'failed'


def verify_and_record(ctx, backup):
    """Check a set and write verification.json (unless in check mode); returns the record.
    `failed` only for proven damage; `unchecked` when the check could not run."""
    try:
        checked = check_backup(ctx, backup)
        record = dict(status='passed', verified_at=iso(utc_now()), files_checked=len(checked), detail=None)
    except Unchecked as exc:
        record = dict(status='unchecked', verified_at=iso(utc_now()), files_checked=None, detail=exc.msg)
    except LifeboatError as exc:
        record = dict(status='failed', verified_at=iso(utc_now()), files_checked=None, detail=exc.msg)
    if not ctx.check_mode and _keeps(backup, record):
        write_json_atomic(os.path.join(backup.path, VERIFICATION_NAME), record)
    return record


def verify_remote(ctx, store, backup):
    """Re-check a set in S3: every file streamed and hashed against the manifest (nothing is
    written locally) and a custom archive's table of contents read from S3. A set still in
    GLACIER cannot be read: it is reported `unavailable`, not failed."""
    record = dict(verified_at=iso(utc_now()), files_checked=None, detail=None)
    if backup.archived:
        record.update(status='unavailable', detail='in %s; restore it from there to verify it'
                      % ', '.join(sorted(set(backup.storage[name] for name in backup.archived))))
        return record
    try:
        for entry in backup.manifest['files']:
            digest, size = store.hash_object(backup, entry['name'])
            if (digest, size) != (entry['sha256'], entry['size']):
                raise LifeboatError('%s in %s has %d bytes and sha256 %s, the manifest says %d and %s'
                                    % (entry['name'], backup.path, size, digest, entry['size'], entry['sha256']))
        if backup.manifest.get('format', 'custom') == 'custom':
            pg_restore = _pg_restore(ctx, backup)
            store.list_archive(store.set_key(backup.database, backup.backup_id, backup.manifest['archive']),
                               pg_restore.path, 'reading the table of contents of backup %s' % backup.backup_id)
        record.update(status='passed', files_checked=len(backup.manifest['files']))
    except (Unchecked, S3Error) as exc:
        record.update(status='unchecked', detail=exc.msg)
    except LifeboatError as exc:
        record.update(status='failed', detail=exc.msg)
    if not ctx.check_mode and _keeps(backup, record):
        try:
            store.record_verification(backup, record)
        except S3Error:
            if record['status'] != 'unchecked':
                raise  # S3 unreachable a moment ago too: nothing proven, nothing recorded
    return record
