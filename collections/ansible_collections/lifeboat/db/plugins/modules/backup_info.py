#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: backup_info
short_description: List the backups in a lifeboat repository, and re-verify them
version_added: 0.1.0
description:
  - Lists the complete backup sets of a repository on the target host, newest first - id, kind,
    database, format, age, size, rows, whether and when it was verified, where it is.
  - With O(verify=true), re-checks each listed set (every file's size and sha256 against the
    manifest, and C(pg_restore --list) for custom and directory archives) and records the outcome
    in the set's C(verification.json). A set that fails is no longer counted as verified, so
    retention will not rely on it. The task fails when a set fails unless O(fail_on=never).
    A check that could not run (no C(pg_restore), S3 unreachable) is C(unchecked), not failed.
  - A set whose manifest is not one lifeboat wrote is listed under C(invalid) with the reason and a warning,
    never as a backup.
  - With an C(s3://) O(repository), lists the sets in S3 (each with its C(storage_class)); verify
    streams every file from S3 and hashes it (nothing is written locally) and reads a custom
    archive's table of contents from S3; the record goes to the set's C(verification.json) in S3.
    A set still in GLACIER is reported C(unavailable), not failed.
  - With O(offsite_url) and a local O(repository), sets that exist only in S3 are listed too, and
    C(locations) tells where each set is.
  - Connects to no database; the connection options are accepted for C(module_defaults) but unused.
extends_documentation_fragment:
  - lifeboat.db.connection
  - lifeboat.db.s3
options:
  repository:
    description: Absolute path of the backup repository on the target host, or C(s3://bucket/prefix).
    type: path
    required: true
  offsite_url:
    description: The C(s3://bucket/prefix) the dumps copy to; its sets are listed with the local ones.
    type: str
  db:
    description: Only backups of this database. Default is every database in the repository.
    type: str
    aliases: [login_db, database]
  kind:
    description: Only backups of this kind (C(full), C(pre-restore), ...).
    type: str
  backup:
    description: Only this backup id (or C(latest)).
    type: str
  verify:
    description: Re-verify the listed backups and record the result.
    type: bool
    default: false
  fail_on:
    description: C(error) fails the task when a verification fails; C(never) only reports.
    type: str
    default: error
    choices: [error, never]
attributes:
  check_mode:
    support: full
    description: Listing and verifying run in check mode; the verification record is not written.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: What backups do we have?
  lifeboat.db.backup_info:
    repository: /var/backups/lifeboat
    db: app
  register: inventory

- name: What is in the offsite bucket, and does it still read back?
  lifeboat.db.backup_info:
    repository: s3://acme-db-backups/prod
    s3_region: eu-central-1
    verify: true

- name: Weekly proof that the backups still read back
  lifeboat.db.backup_info:
    repository: /var/backups/lifeboat
    verify: true
'''

RETURN = r'''
backups:
  description: Backup sets, newest first.
  returned: always
  type: list
  elements: dict
  sample:
    - backup_id: 20261123T020000Z-a1b2c3
      database: app
      kind: full
      format: custom
      age_seconds: 3600.0
      size: 1048576
      total_rows: 120000
      verified: true
      verified_at: "2026-11-23T02:00:41.120000Z"
      verification: passed
      locations: [local, s3://acme-db-backups/prod/app/20261123T020000Z-a1b2c3]
count:
  description: Number of backup sets listed.
  returned: always
  type: int
invalid:
  description:
    - Sets that are not counted as backups because their manifest is not one lifeboat wrote (not a JSON object,
      a file name outside the set, a backup id or database that does not match where it is, a size S3 does not
      hold, ...) - C(backup_id), C(database), C(where), C(reason). Each is also a warning.
  returned: always
  type: list
  elements: dict
verified:
  description:
    - Outcome of each verification, by backup id (status, verified_at, detail).
    - C(status) is C(passed), C(failed) (proven damage - a size or checksum mismatch, an unreadable table of
      contents), C(unavailable) (in GLACIER) or C(unchecked) (the check could not run - no C(pg_restore), S3
      unreachable or throttled; a warning, and the set keeps the state it had).
  returned: when verify is true
  type: dict
actions:
  description: What the task did, in plain sentences.
  returned: always
  type: list
  elements: str
timing:
  description: Start and end of the task (ISO 8601 and epoch seconds) and its duration in seconds.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import s3_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.storage.run import run


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        repository=dict(type='path', required=True),
        kind=dict(type='str'),
        backup=dict(type='str'),
        verify=dict(type='bool', default=False),
        fail_on=dict(type='str', default='error', choices=['error', 'never']),
        offsite_url=dict(type='str'),
    )
    spec.update(s3_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
