#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: sqlite
short_description: Back up, check, restore, export from and fix a live SQLite database (seed 004)
version_added: 0.1.0
description:
  - Python's C(sqlite3) on the target host; no C(sqlite3) command, no PostgreSQL. See docs/sqlite.md.
  - O(action=backup) copies the live database O(path) through SQLite's online backup API (never a
    file copy) in steps of O(step_pages) pages, all read in one read transaction, so the copy is
    one moment of the database while the application keeps writing. The copy must pass
    C(PRAGMA integrity_check) before the set counts. The set is
    C(<repository>/<name>/<backup_id>/database.sqlite) (0600) with a manifest holding its size and
    sha256, every table's row count, page size and count, journal mode, user_version and the
    SQLite version; retention by O(keep_last)/O(keep_days) as for database backups (kind C(sqlite)).
  - O(action=check) opens the file read-only and runs C(quick_check) or C(integrity_check)
    (O(integrity)), C(foreign_key_check) (O(foreign_keys)), row counts against a backup set or
    O(baseline) (O(compare_counts), O(tolerance)) and the operator's O(checks). Each check has its
    own result in RV(checks); the task fails when a check of severity C(error) fails.
  - O(action=restore) verifies the set O(backup) (sha256, integrity_check), refuses while a process
    holds the database (it names the pid and command line) or a lock is held, writes the set beside
    O(path) under a temporary name, checks and fsyncs it, keeps the live file in the repository as a
    set of kind C(sqlite-pre-restore) (through the backup API, so what its C(-wal) held is kept),
    renames the live file's stale C(-wal), C(-shm) and C(-journal) aside, renames the copy over
    O(path) and then removes them; if that rename fails they are put back and the live database stays whole.
    The restored file takes the owner (as root) and mode of the file it replaces.
  - O(action=export) writes the rows of O(query) to the CSV file O(dest) (header, UTF-8, 0600,
    temporary name then rename). When O(dest) already holds the same bytes it is left as it is and
    the task reports no change.
  - O(action=execute) runs one data fix O(sql) in a C(BEGIN IMMEDIATE) transaction and rolls it
    back when the rows it changed are outside O(expect_rows).
  - O(path) must be the real file, never a symbolic link or a directory.
  - Connects to no PostgreSQL database; the connection options are accepted for C(module_defaults) but unused.
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  action:
    description: What to do with the database at O(path).
    type: str
    default: backup
    choices: [backup, check, restore, export, execute]
  path:
    description:
      - The live SQLite database file on the target host.
      - For O(action=restore) it may be missing (a new host); its folder must exist.
    type: path
    required: true
  repository:
    description:
      - Absolute path of the backup repository on the target host.
      - Needed by O(action=backup) and O(action=restore), and by O(action=check) with O(compare_counts) and no O(baseline).
    type: path
  name:
    description: The backup sets' name in the repository (their folder). Default is the file's stem (C(scpln.db) gives C(scpln)).
    type: str
  backup:
    description:
      - The set to restore (O(action=restore)) or to compare counts against (O(action=check)), an id or C(latest).
      - C(latest) is the newest set of kind C(sqlite); a C(sqlite-pre-restore) set is restored by its id (roll forward).
    type: str
    default: latest
  keep_last:
    description:
      - Keep this many newest SQLite backups of O(name) (O(action=backup)). Must be at least 1.
      - With O(keep_days) too, a backup is kept when either rule keeps it. With neither, nothing is deleted.
    type: int
  keep_days:
    description: Keep SQLite backups of O(name) younger than this many days (may be fractional).
    type: float
  busy_timeout:
    description:
      - Seconds to wait for a lock another connection holds (SQLite's busy timeout), and for the
        backup to make progress, before the task fails naming the processes that hold the file.
    type: float
    default: 10
  step_pages:
    description:
      - Pages the online backup copies per step (O(action=backup)); C(-1) copies all in one step.
    type: int
    default: 1024
  integrity:
    description: C(quick) runs C(PRAGMA quick_check), C(full) C(PRAGMA integrity_check), C(none) neither (O(action=check)).
    type: str
    default: quick
    choices: [quick, full, none]
  foreign_keys:
    description: Run C(PRAGMA foreign_key_check) (O(action=check)).
    type: bool
    default: true
  compare_counts:
    description:
      - Compare every table's row count with the set O(backup), or with O(baseline) when given (O(action=check)).
    type: bool
    default: false
  baseline:
    description:
      - A JSON file on the target host with C(row_counts) ({table, rows}) to compare with, e.g. a set's C(manifest.json).
    type: path
  tolerance:
    description:
      - How far a count may differ and still pass, C(5%) of the expected count or a number of rows such as C(100).
    type: str
  checks:
    description:
      - The operator's SQL checks (O(action=check)). Each is C(name) and C(sql) (one statement, with
        optional C(params)), expecting no rows by default, or C(rows) (exactly that many rows) or
        C(value) (the last column of its single row, compared as text); C(severity) C(error)
        (default) or C(warning). The language of lifeboat.db.integrity's checks.
      - They run read-only; SQLite refuses any write.
    type: list
    elements: dict
  query:
    description: The query whose rows O(action=export) writes.
    type: str
  params:
    description: Values for the C(?) (a list) or C(:name) (a dict) placeholders of O(query), O(sql) - never formatted into the text.
    type: raw
  dest:
    description: The CSV file O(action=export) writes; its folder must exist.
    type: path
  sql:
    description: The data fix of O(action=execute), one C(INSERT), C(UPDATE), C(DELETE) or C(REPLACE).
    type: str
  expect_rows:
    description:
      - C(min) and C(max) rows the fix may change (O(action=execute)); outside them it is rolled back and the task fails.
      - Default C(min) 0, no C(max).
    type: dict
attributes:
  check_mode:
    support: full
    description:
      - backup reports the set it would take and what retention would delete; restore verifies the
        set and looks for holders; export runs the query and reports a change only when O(dest) is
        missing or would differ; execute runs the fix and rolls it back,
        reporting the count; check is read-only either way.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Pre-rollback backup of the plan database while the application writes (seed 004, 4.2)
  lifeboat.db.sqlite:
    action: backup
    path: /srv/planning/data/scpln.db
    repository: /var/backups/lifeboat
    keep_last: 14

- name: Snapshot of the latest five versions' plan_series to CSV
  lifeboat.db.sqlite:
    action: export
    path: /srv/planning/data/scpln.db
    query: >-
      SELECT * FROM plan_series WHERE version_id IN
      (SELECT version_id FROM plan_versions ORDER BY created_at DESC LIMIT 5)
    dest: /srv/planning/tmp/plan_series_latest.csv

- name: Completeness gate - every recent version has its three artifacts (seed 004, 4.3)
  lifeboat.db.sqlite:
    action: check
    path: /srv/planning/data/scpln.db
    integrity: full
    checks:
      - name: recent_versions_complete
        sql: >-
          SELECT version_id FROM (SELECT version_id, MAX(created_at) AS newest,
            SUM(name = 'aggregate.json') >= 1 AND SUM(name = 'sku_week.json') >= 1
            AND SUM(name = 'plan_final.json') >= 1 AS complete
          FROM plan_artifacts GROUP BY version_id ORDER BY newest DESC LIMIT 5) WHERE NOT complete

- name: The RunRegistry fix, rolled back unless it touches 1 to 500 rows (seed 004, 4.5)
  lifeboat.db.sqlite:
    action: execute
    path: /srv/planning/data/scpln.db
    sql: UPDATE runs SET plan_job_id = NULL WHERE created_at >= ?
    params: ['2025-10-06T00:00:00']
    expect_rows: {min: 1, max: 500}

- name: Put the newest backup back (the application stopped first)
  lifeboat.db.sqlite:
    action: restore
    path: /srv/planning/data/scpln.db
    repository: /var/backups/lifeboat
    backup: latest
'''

RETURN = r'''
backup_id:
  description: The set taken (backup) or restored (restore).
  returned: action is backup or restore
  type: str
backup_path:
  description: Folder of the set taken.
  returned: action is backup and not check mode
  type: str
sha256:
  description: sha256 of the set's database file (backup, restore), or of the CSV (export, also when O(dest) already held it).
  returned: success and not check mode, action is backup, restore or export
  type: str
size:
  description: Bytes of the set's database file (backup) or of the CSV (export).
  returned: success and not check mode, action is backup or export
  type: int
row_counts:
  description: Rows of every table in the copy (backup) or in the restored set (restore).
  returned: success and not check mode, action is backup or restore
  type: dict
total_rows:
  description: Sum of RV(row_counts).
  returned: action is backup and not check mode
  type: int
sqlite:
  description: The live database's page_size, page_count, journal_mode, user_version, application_id,
    freelist_count, encoding and the sqlite_version that copied it.
  returned: action is backup and not check mode
  type: dict
seconds:
  description: How long the online copy and its checks took.
  returned: action is backup and not check mode
  type: float
copy_seconds:
  description: How long the copy itself held its read transaction (what a writer with a rollback journal waits for).
  returned: action is backup and not check mode
  type: float
deleted:
  description: SQLite backups of O(name) removed by retention (backup; in check mode, those it would remove).
  returned: action is backup
  type: list
  elements: str
retention_errors:
  description: What retention could not do after the new set was complete.
  returned: when retention failed
  type: list
  elements: str
checks:
  description:
    - Each check's C(name), C(kind) (integrity, foreign_keys, row_counts, custom), C(severity),
      C(status) (passed, failed, error), C(summary) and a C(sample) of what it found; row_counts
      lists C(tables) with expected and actual counts.
  returned: action is check
  type: list
  elements: dict
failed_checks:
  description: Names of the checks that failed or could not run, whatever their severity.
  returned: action is check
  type: list
  elements: str
path:
  description: The live database restored.
  returned: action is restore
  type: str
pre_restore:
  description: The set that keeps the replaced file - C(backup_id), C(backup_path), C(integrity), C(raw)
    (true when SQLite could not read it and its bytes were kept as they were).
  returned: action is restore, not check mode, and there was a live file
  type: dict
holders:
  description: The processes that held the database (pid, command, files) when a restore was refused.
  returned: a restore refused for a holder
  type: list
  elements: dict
rows:
  description: Rows written to the CSV (export), or rows the fix changed (execute; also when it was rolled back for its bounds).
  returned: action is export or execute
  type: int
columns:
  description: The CSV's header.
  returned: action is export
  type: list
  elements: str
dest:
  description: The CSV written.
  returned: action is export
  type: str
actions:
  description: What the task did (or would do), in plain sentences.
  returned: success
  type: list
  elements: str
timing:
  description: Start and end of the task (ISO 8601 and epoch seconds) and its duration in seconds.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.run import run_module


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        action=dict(type='str', default='backup', choices=['backup', 'check', 'restore', 'export', 'execute']),
        path=dict(type='path', required=True),
        repository=dict(type='path'),
        name=dict(type='str'),
        backup=dict(type='str', default='latest'),
        keep_last=dict(type='int'),
        keep_days=dict(type='float'),
        busy_timeout=dict(type='float', default=10),
        step_pages=dict(type='int', default=1024),
        integrity=dict(type='str', default='quick', choices=['quick', 'full', 'none']),
        foreign_keys=dict(type='bool', default=True, no_log=False),
        compare_counts=dict(type='bool', default=False),
        baseline=dict(type='path'),
        tolerance=dict(type='str'),
        checks=dict(type='list', elements='dict'),
        query=dict(type='str'),
        params=dict(type='raw'),
        dest=dict(type='path'),
        sql=dict(type='str'),
        expect_rows=dict(type='dict'),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module)


if __name__ == '__main__':
    main()
