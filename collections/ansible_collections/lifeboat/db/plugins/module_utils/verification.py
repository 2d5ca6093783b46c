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

from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.manifest import verify_files, write_json_atomic
from ansible_collections.lifeboat.db.plugins.module_utils.repository import VERIFICATION_NAME, iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.tools import run_tool


def archive_path(backup):
    """Where the archive of a backup set is (manifests of 0.1 had no `archive` key)."""
    name = backup.manifest.get('archive') or '%s.dump' % backup.manifest['database']
    return os.path.join(backup.path, name)


def dump_major(manifest):
    return int(manifest['pg_dump_version'].split('.')[0])


def check_backup(ctx, backup):
    """Raise LifeboatError unless every file matches the manifest and the archive reads back.
    Returns the names of the files checked."""
    checked = verify_files(backup.path, backup.manifest)
    if backup.manifest.get('format', 'custom') in ('custom', 'directory'):
        pg_restore = ctx.finder.find('pg_restore', dump_major(backup.manifest),
                                     'backup %s was written by pg_dump %s' % (backup.backup_id,
                                                                             backup.manifest['pg_dump_version']))
        run_tool(ctx.run_command, [pg_restore.path, '--list', archive_path(backup)], None,
                 'reading the table of contents of backup %s' % backup.backup_id)
    return checked


def verify_and_record(ctx, backup):
    """Check a set and write verification.json (unless in check mode); returns the record."""
    try:
        checked = check_backup(ctx, backup)
        record = dict(status='passed', verified_at=iso(utc_now()), files_checked=len(checked), detail=None)
    except LifeboatError as exc:
        record = dict(status='failed', verified_at=iso(utc_now()), files_checked=None, detail=exc.msg)
    if not ctx.check_mode:
        write_json_atomic(os.path.join(backup.path, VERIFICATION_NAME), record)
    return record
