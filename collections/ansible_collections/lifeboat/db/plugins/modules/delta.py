#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: delta
short_description: Export and apply change-column deltas of busy tables between full backups
version_added: 0.1.0
description:
  - O(action=export) writes the rows of O(tables) whose change column (e.g. C(updated_at)) moved
    since the previous export into a new backup set of kind O(kind) (format C(delta)) in
    C(<repository>/<db>/<backup_id>/). All tables are read in one C(REPEATABLE READ) read-only
    snapshot, each with C(COPY) into a gzip file hashed while it is written.
  - The deltas following one full backup (O(base)) form a chain. Each delta's manifest records per
    table the watermark C(until), the largest change value in its snapshot; the next export of the
    chain exports the rows after that watermark. The first delta of a chain starts from the base
    backup's C(started_at).
  - For timestamp and date change columns, rows up to O(overlap_seconds) before the watermark are
    exported again, because a transaction can commit after the snapshot with an older timestamp.
    Applying upserts, so a row exported twice is harmless. Integer change columns have no overlap.
  - O(action=apply) upserts the rows of the deltas of a chain into O(db), typically a database just
    restored from the base backup with M(lifeboat.db.restore). Every file of every delta is checked
    against its manifest's sha256 first; a mismatch applies nothing. Then, in one transaction, the
    tables are loaded parents first (foreign keys) - each table's rows of all the deltas go into a
    temporary table, and the newest version of each key is upserted with
    C(INSERT ... ON CONFLICT (key) DO UPDATE); rows already holding those values are left alone, so
    applying a chain twice changes nothing. Sequences feeding a loaded column are then advanced
    past the rows (largest value, or smallest for a descending sequence; of several tables, the furthest). Any failure rolls everything back.
  - Deletes are not carried. A change column cannot tell that a row is gone, so a row deleted in
    the source after the base backup stays in a database rebuilt from base plus deltas. Each delta
    records every exported table's row count, and apply warns about each table whose count then
    differs (RV(row_count_differences)). The change column must be set on every insert and update,
    by the application or a trigger.
  - A C(timestamp) (without time zone) or C(date) change column is compared in the database's time
    zone; the first delta after a full backup reads the backup's start time there, not in UTC.
  - Retention (O(keep_last), O(keep_days)) works as for M(lifeboat.db.dump) on sets of O(kind),
    except that it never deletes a delta of the chain being extended.
  - One run at a time per database and repository, as for M(lifeboat.db.dump).
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  action:
    description: Export a delta of O(db), or apply the deltas of a chain to O(db).
    type: str
    required: true
    choices: [export, apply]
  db:
    description: Database to export from (O(action=export)) or to apply to (O(action=apply)).
    type: str
    required: true
    aliases: [login_db, database]
  repository:
    description: Absolute path of the backup repository on the target host.
    type: path
    required: true
  backup_db:
    description:
      - With O(action=apply), the database whose backups to look in. Defaults to O(db).
      - Not used by O(action=export), which always exports into the folder of O(db).
    type: str
  tables:
    description:
      - Tables to export; required with O(action=export), not used by O(action=apply).
    type: list
    elements: dict
    suboptions:
      name:
        description: The table, best schema-qualified (C(public.orders)).
        type: str
        required: true
      change_column:
        description:
          - Column that records when a row last changed - C(timestamp), C(timestamptz), C(date) or an integer type.
          - Rows whose value is above the watermark are exported (at or above it for C(date)).
        type: str
        required: true
      key:
        description:
          - Columns identifying a row, used for the upsert. Defaults to the primary key.
          - Must be exactly the columns of a unique index. A table without a primary key needs it.
        type: list
        elements: str
        no_log: false
      since:
        description:
          - Watermark to start from when no delta of the chain has exported this table yet; later
            exports continue from the chain's watermark and do not use it.
          - Required for an integer O(tables[].change_column) - the base backup's start time means nothing to it.
          - For temporal columns it replaces the base backup's C(started_at) (before the overlap).
        type: str
  base:
    description: Id of the full backup whose chain to extend or apply, or C(latest) for the newest set of kind O(base_kind).
    type: str
    default: latest
  base_kind:
    description: Kind of the full backups a C(latest) O(base) is looked up in (seed 002's dailies are kind C(daily)).
    type: str
    default: full
  deltas:
    description:
      - With O(action=apply), apply only these deltas of the chain (ids). They are applied oldest first whatever their order here.
      - Default is every delta of the chain of O(base), oldest first.
    type: list
    elements: str
  disable_triggers:
    description:
      - With O(action=apply), disable the user triggers of each table while its rows are loaded
        (C(ALTER TABLE ... DISABLE TRIGGER), inside the transaction, restored before it commits), so a
        trigger that stamps the change column or writes audit rows does not rewrite what the delta carries.
      - Needs ownership of the tables and locks them exclusively until the apply commits. Foreign keys are always checked.
    type: bool
    default: true
  kind:
    description: Label of the delta sets (recorded in the manifest); the chain is made of sets of this kind.
    type: str
    default: delta
  overlap_seconds:
    description: For temporal change columns, re-export rows changed up to this many seconds before the watermark.
    type: int
    default: 300
  compress:
    description: gzip level of the exported files (0 to 9).
    type: int
    default: 6
  keep_last:
    description:
      - After an export, keep this many newest sets of O(kind) for O(db) (at least 1). Deltas of the chain just extended are always kept.
      - With O(keep_days) too, a set is kept when either rule keeps it. With neither, nothing is deleted.
    type: int
  keep_days:
    description: After an export, keep sets of O(kind) younger than this many days (may be fractional).
    type: float
  lock_timeout:
    description: Seconds to wait for another run on the same database and repository to finish.
    type: int
    default: 0
attributes:
  check_mode:
    support: full
    description:
      - Export reports the tables and the watermark each would be exported from, and the sets retention would delete; writes nothing.
      - Apply verifies the deltas and applies them inside a transaction that is rolled back, reporting the rows it would
        insert and update and the sequences it would advance.
  diff_mode:
    support: none
notes:
  - Watermarks are PostgreSQL's text of the change value, read with C(TimeZone=UTC); a C(timestamp) column
    (without time zone) is compared with the base backup's start time as UTC.
  - The overlap also has to cover any clock difference between the database server and the host running the base backup.
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Four-hourly delta of the busy tables since the last full backup
  lifeboat.db.delta:
    action: export
    db: app
    repository: /var/backups/lifeboat
    tables:
      - name: public.orders
        change_column: updated_at
      - name: public.order_items
        change_column: updated_at
      - name: public.ledger
        change_column: entry_no
        since: "0"
    keep_days: 3
  register: delta

- name: Rebuild a copy - restore the full backup, then apply its deltas
  lifeboat.db.restore:
    db: app_copy
    backup_db: app
    backup: 20261123T020000Z-4f2a9c
    repository: /var/backups/lifeboat

- name: Apply the chain of that full backup
  lifeboat.db.delta:
    action: apply
    db: app_copy
    backup_db: app
    base: 20261123T020000Z-4f2a9c
    repository: /var/backups/lifeboat
'''

RETURN = r'''
backup_id:
  description: Id of the delta set written (or, in check mode, that would be written).
  returned: action=export
  type: str
  sample: 20261123T071500Z-a1b2c3
backup_path:
  description: Folder of the delta set.
  returned: action=export
  type: str
base_backup_id:
  description: Id of the full backup the chain follows.
  returned: always
  type: str
previous_delta_id:
  description: Id of the delta this one continues from; null for the first delta after the base.
  returned: action=export
  type: str
tables:
  description:
    - Per table, the change column, key, columns, watermark C(since) exported from and where it came from
      (C(since_from)), the new watermark C(until), the rows exported and the file.
    - In check mode only the change column, key, C(since) and C(since_from).
  returned: action=export
  type: dict
  sample: {"public.orders": {"change_column": "updated_at", "since": "2026-11-23 01:55:00.12+00",
           "until": "2026-11-23 07:14:59.8+00", "rows": 1250, "file": "001-public.orders.copy.gz"}}
rows:
  description: Rows exported, all tables together.
  returned: action=export, not in check mode
  type: int
size:
  description: Bytes written, all files together.
  returned: action=export, not in check mode
  type: int
manifest:
  description: The manifest written as C(manifest.json).
  returned: action=export, not in check mode
  type: dict
deleted:
  description: Ids of the sets removed (or, in check mode, that would be removed) by retention.
  returned: action=export
  type: list
  elements: str
deltas:
  description: Ids of the deltas applied (or checked), oldest first.
  returned: action=apply
  type: list
  elements: str
target_db:
  description: Database the deltas were applied to.
  returned: action=apply
  type: str
verified_files:
  description: Files checked against their manifests (C(<delta id>/<file>)).
  returned: action=apply
  type: list
  elements: str
applied:
  description:
    - Per table, the deltas that carried it, the rows in them, how many were older versions of a key a later delta
      also carried (C(superseded)), and of the rest how many were inserted, updated and already current (C(unchanged)).
  returned: action=apply
  type: dict
  sample: {"public.orders": {"deltas": ["20261123T071500Z-a1b2c3"], "rows": 4, "superseded": 1, "inserted": 1,
           "updated": 1, "unchanged": 1}}
sequences:
  description: Sequences advanced (or that would be) so the next default value is above the rows loaded.
  returned: action=apply
  type: list
  elements: dict
  sample: [{"sequence": "public.orders_id_seq", "table": "public.orders", "column": "id", "value": 1042}]
row_count_differences:
  description:
    - Tables whose row count after applying differs from the count the newest delta carrying them recorded in the
      source's snapshot (rows deleted on the source, which deltas cannot carry, or rows changed here). Each is also
      an Ansible warning.
  returned: action=apply
  type: list
  elements: dict
  sample: [{"table": "public.orders", "delta": "20261123T071500Z-a1b2c3", "source_rows": 1000, "rows": 1003}]
lock_waited_seconds:
  description: Seconds spent waiting for the repository lock.
  returned: success and not check mode
  type: float
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
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.delta.run import ACTIONS, run


def argument_spec():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', required=True, aliases=['login_db', 'database'])
    spec.update(
        action=dict(type='str', required=True, choices=list(ACTIONS)),
        repository=dict(type='path', required=True),
        backup_db=dict(type='str'),
        tables=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            change_column=dict(type='str', required=True),
            key=dict(type='list', elements='str', no_log=False),
            since=dict(type='str'),
        )),
        base=dict(type='str', default='latest'),
        base_kind=dict(type='str', default='full'),
        deltas=dict(type='list', elements='str'),
        disable_triggers=dict(type='bool', default=True),
        kind=dict(type='str', default='delta'),
        overlap_seconds=dict(type='int', default=300),
        compress=dict(type='int', default=6),
        keep_last=dict(type='int'),
        keep_days=dict(type='float'),
        lock_timeout=dict(type='int', default=0),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
