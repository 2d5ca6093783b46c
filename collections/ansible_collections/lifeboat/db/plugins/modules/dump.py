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
  - Runs C(pg_dump) (custom, directory or plain format) into C(<repository>/<db>/<backup_id>/) on the target host.
  - The set is built under a temporary name; its C(manifest.json) (versions, file sizes, sha256,
    exact per-table row counts, start and end times) is written last and the folder renamed into
    place, so an interrupted run never leaves anything that looks like a backup.
  - Row counts are taken in the same snapshot C(pg_dump) reads, so they match the dump exactly.
  - Files are created with mode C(0600), folders C(0700).
  - A custom or directory archive is read back with C(pg_restore --list) before it becomes a backup;
    a plain dump is hashed while it is written.
  - While it runs, C(<repository>/<db>/.progress.json) tells the phase, the bytes written and the
    tables dumped so far, for a task to read while the dump runs as an async job.
  - One run at a time per database and repository - a second run waits up to O(lock_timeout) and then
    fails naming the holder. What a killed run left behind is removed by the next one.
  - With O(keep_last) and/or O(keep_days), older backups of the same kind are deleted after the new
    one is complete; the newest verified backup is never deleted, nor the one this run took. Table and
    schema selections are counted apart from whole-database backups. A set dated in the future is kept,
    never counted as the newest, and reported. When retention fails after the new set is complete, the
    task still succeeds with the new O(backup_id) and reports what retention could not do.
  - Waits up to O(lock_timeout) while a C(lifeboat.db.restore) rebuilds the database (its advisory lock),
    then fails saying so - a dump never captures a half-restored database.
  - With O(offsite_url), each new set is then copied to S3 (files first, manifest last), the upload
    checked against S3's checksums, and retention applied there too. With O(repository) an
    C(s3://) URL, pg_dump streams straight to S3 and nothing is written locally but the lock and
    the progress file (in O(cache_dir)).
  - With O(container), C(pg_dump) and C(pg_dumpall) run inside that container through the Docker API -
    the server's own tools - and their output streams into the repository on this host, hashed as it
    arrives; the custom archive is read back by the container's C(pg_restore) through its standard input.
    O(format=directory) (with O(jobs)) is written into a private folder in the container, copied out file by
    file (each checked, written 0600 and hashed) and the folder removed whatever happens.
    With an C(s3://) O(repository) the set is written into O(cache_dir) first and uploaded when it is whole
    (manifest last), then the local copy removed. The manifest names the container (C(container) - name, id,
    image).
extends_documentation_fragment:
  - lifeboat.db.connection
  - lifeboat.db.container
  - lifeboat.db.s3
  - lifeboat.db.offsite
options:
  repository:
    description:
      - Absolute path of the backup repository on the target host, or C(s3://bucket/prefix) to stream
        the dump straight to S3 (formats C(custom) and C(plain)).
    type: path
    required: true
  cache_dir:
    description:
      - With an C(s3://) O(repository), the local folder on the target host that holds the lock and the
        progress file. One host should write a database's S3 prefix at a time; the lock is local.
    type: path
    default: /var/tmp/lifeboat-cache
  offsite_url:
    description:
      - Copy each new backup set to C(s3://bucket/prefix) after it is complete. The local set is kept
        whatever happens to the copy; C(offsite.json) in it records where the copy went.
    type: str
  offsite_keep_days:
    description: Retention of the S3 copies (same rules as O(keep_days)). Default is O(keep_days).
    type: float
  kind:
    description:
      - Label of the backup set, recorded in the manifest. Retention counts backups of one kind only.
    type: str
    default: full
  format:
    description:
      - C(custom) - one archive file, restorable in parallel and selectively.
      - C(directory) - one file per table, dumped in parallel with O(jobs).
      - C(plain) - an SQL script, compressed with O(compress_method).
    type: str
    default: custom
    choices: [custom, directory, plain]
  compress:
    description: Compression level (0 = none; gzip up to 9, lz4 up to 12, zstd up to 22).
    type: int
    default: 6
  compress_method:
    description: Compression method. C(lz4) and C(zstd) need pg_dump 16 or newer.
    type: str
    default: gzip
    choices: [gzip, lz4, zstd, none]
  jobs:
    description: Parallel pg_dump jobs; more than 1 needs O(format=directory).
    type: int
    default: 1
  tables:
    description:
      - Dump only these tables (pg_dump C(--table) patterns, best schema-qualified, e.g. C(public.orders)).
      - A pattern that matches nothing is an error.
    type: list
    elements: str
  exclude_tables:
    description: Leave out these tables (pg_dump C(--exclude-table) patterns).
    type: list
    elements: str
  schemas:
    description: Dump only these schemas (pg_dump C(--schema) patterns).
    type: list
    elements: str
  exclude_schemas:
    description: Leave out these schemas (pg_dump C(--exclude-schema) patterns).
    type: list
    elements: str
  globals:
    description:
      - Add roles and tablespaces (C(pg_dumpall --globals-only)) to the set as C(globals.sql).
      - Role password hashes are secrets - the file is C(0600) and marked C(secret) in the manifest.
    type: bool
    default: false
  keep_last:
    description:
      - Keep this many newest backups of O(kind) for O(db). Must be at least 1.
      - With O(keep_days) too, a backup is kept when either rule keeps it. With neither, nothing is deleted.
    type: int
  keep_days:
    description: Keep backups of O(kind) younger than this many days (may be fractional).
    type: float
  lock_timeout:
    description:
      - Seconds to wait for another run on the same database and repository to finish, and for a
        restore of the database to finish.
    type: int
    default: 0
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

- name: Seed 002's explicit table list, in parallel, zstd-compressed (pg_dump 16+)
  lifeboat.db.dump:
    db: app
    repository: /var/backups/lifeboat
    format: directory
    jobs: 4
    compress_method: zstd
    compress: 3
    tables: [public.organizations, public.members, public.policy_violations]
    keep_days: 30

- name: Daily backup kept 30 days locally, copied to S3 STANDARD_IA and kept 90 days there (seed 002)
  lifeboat.db.dump:
    db: app
    repository: /var/backups/lifeboat
    kind: daily
    keep_days: 30
    offsite_url: s3://acme-db-backups/prod
    s3_storage_class: STANDARD_IA
    s3_sse: aws:kms
    offsite_keep_days: 90

- name: Monthly long-term backup streamed straight to GLACIER, no local copy
  lifeboat.db.dump:
    db: app
    repository: s3://acme-db-backups/prod-monthly
    kind: monthly
    s3_storage_class: GLACIER
    keep_last: 24

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
offsite:
  description:
    - The offsite copy - C(url), C(uploaded_at), C(storage_class), C(sse), per-object C(objects) (key,
      size, S3 checksum, how the upload was C(checked)) and the S3 sets C(deleted) by retention.
    - With O(offsite=optional) and a failed copy, C(url) is null and C(error) says why.
  returned: when offsite_url is set and not check mode
  type: dict
pg_dump:
  description: The pg_dump used (name, path, version).
  returned: always
  type: dict
lock_waited_seconds:
  description: Seconds spent waiting for the repository lock.
  returned: success and not check mode
  type: float
restore_waited_seconds:
  description: Seconds spent waiting for a restore of the database to finish.
  returned: success and not check mode
  type: float
retention_errors:
  description: What retention could not do after the new set was complete (each set it could not delete, or why it could not run).
  returned: when retention failed
  type: list
  elements: str
dated_ahead:
  description: Backup sets of this kind dated in the future (a clock ran ahead); retention keeps them and never counts them as the newest.
  returned: when there are such sets and retention is set
  type: list
  elements: str
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

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.backup.options import FORMATS, METHODS
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import s3_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import container_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.backup.run import run


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        repository=dict(type='path', required=True),
        kind=dict(type='str', default='full'),
        format=dict(type='str', default='custom', choices=list(FORMATS)),
        compress=dict(type='int', default=6),
        compress_method=dict(type='str', default='gzip', choices=list(METHODS)),
        jobs=dict(type='int', default=1),
        tables=dict(type='list', elements='str'),
        exclude_tables=dict(type='list', elements='str'),
        schemas=dict(type='list', elements='str'),
        exclude_schemas=dict(type='list', elements='str'),
        globals=dict(type='bool', default=False),
        keep_last=dict(type='int'),
        keep_days=dict(type='float'),
        lock_timeout=dict(type='int', default=0),
        cache_dir=dict(type='path', default='/var/tmp/lifeboat-cache'),
        offsite_url=dict(type='str'),
        offsite=dict(type='str', default='required', choices=['required', 'optional']),
        offsite_keep_last=dict(type='int'),
        offsite_keep_days=dict(type='float'),
    )
    spec.update(s3_argument_spec())
    spec.update(container_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
