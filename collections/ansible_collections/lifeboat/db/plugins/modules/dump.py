#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: dump
short_description: Back up a PostgreSQL database into a lifeboat backup repository
version_added: 0.1.0
description:
  - Runs C(pg_dump) in custom format into C(<repository>/<db>/<backup_id>/) on the target host.
  - The set is built under a temporary name; its C(manifest.json) (versions, file sizes, sha256,
    exact per-table row counts, start and end times) is written last and the folder renamed into
    place, so an interrupted run never leaves anything that looks like a backup.
  - Row counts are taken in the same snapshot C(pg_dump) reads, so they match the dump exactly.
  - Files are created with mode C(0600), folders C(0700).
  - With O(keep_last), older backups of the same kind are deleted after the new one is complete;
    the newest backup is never deleted.
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  repository:
    description: Absolute path of the backup repository on the target host.
    type: path
    required: true
  kind:
    description:
      - Label of the backup set, recorded in the manifest. Retention counts backups of one kind only.
    type: str
    default: full
  compress:
    description: pg_dump compression level (0 = none, 9 = smallest).
    type: int
    default: 6
  keep_last:
    description:
      - Keep this many newest backups of O(kind) for O(db) and delete the older ones. Must be at
        least 1. Unset keeps everything.
    type: int
attributes:
  check_mode:
    support: full
    description: Connects, finds the pg_dump to use and reports the backup it would take and the backups retention would delete; writes nothing.
  diff_mode:
    support: none
notes:
  - The password reaches C(pg_dump) through a temporary passfile, never its command line.
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Nightly backup, keeping 30 generations (seed 001)
  lifeboat.db.dump:
    login_host: db1.example.com
    login_user: backup
    login_password: "{{ vault_backup_password }}"
    db: app
    repository: /var/backups/lifeboat
    keep_last: 30
  register: backup

- name: Show where it went
  ansible.builtin.debug:
    msg: "{{ backup.backup_id }} ({{ backup.size }} bytes) in {{ backup.backup_path }}"
'''

RETURN = r'''
backup_id:
  description: Id of the backup set (UTC start time plus a random suffix); sorts by time.
  returned: always
  type: str
  sample: 20261123T031500Z-a1b2c3
backup_path:
  description: Folder of the backup set on the target host.
  returned: always
  type: str
  sample: /var/backups/lifeboat/app/20261123T031500Z-a1b2c3
size:
  description: Size of the dump file in bytes.
  returned: success and not check mode
  type: int
sha256:
  description: sha256 of the dump file.
  returned: success and not check mode
  type: str
duration_seconds:
  description: Time the dump took, in seconds.
  returned: success and not check mode
  type: float
row_counts:
  description: Exact rows per table (C(schema.table)) in the dumped snapshot.
  returned: success and not check mode
  type: dict
  sample: {"public.customers": 1000}
manifest:
  description: The manifest written as C(manifest.json).
  returned: success and not check mode
  type: dict
deleted:
  description: Ids of the backups removed (or, in check mode, that would be removed) by O(keep_last).
  returned: always
  type: list
  elements: str
pg_dump:
  description: The pg_dump used (name, path, version).
  returned: always
  type: dict
actions:
  description: What the task did (or would do), in plain sentences.
  returned: always
  type: list
  elements: str
timing:
  description: Start and end of the task (ISO 8601 and epoch seconds) and its duration in seconds.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.backup import BackupRequest, take_backup
from ansible_collections.lifeboat.db.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.task import run_module


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        repository=dict(type='path', required=True),
        kind=dict(type='str', default='full'),
        compress=dict(type='int', default=6),
        keep_last=dict(type='int'),
    )
    return spec


def dump(ctx):
    params = ctx.params
    if not params['db']:
        raise LifeboatError('db is required: name the database to back up')
    if not 0 <= params['compress'] <= 9:
        raise LifeboatError('compress must be between 0 and 9, got %d' % params['compress'])
    request = BackupRequest(params['db'], kind=params['kind'], compress=params['compress'],
                            keep_last=params['keep_last'])
    return take_backup(ctx, request)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, dump)


if __name__ == '__main__':
    main()
