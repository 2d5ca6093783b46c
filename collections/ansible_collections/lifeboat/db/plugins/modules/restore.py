#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: restore
short_description: Restore a PostgreSQL database from a lifeboat backup repository
version_added: 0.1.0
description:
  - Restores O(backup) (an id or C(latest)) of database O(backup_db) from the repository on the
    target host into database O(db).
  - Before anything changes it checks every file against the sha256 in the backup's manifest,
    reads the archive's table of contents with C(pg_restore --list), and picks a C(pg_restore) at
    least as new as both the server and the C(pg_dump) that wrote the backup. A damaged backup is
    refused and the target is not touched.
  - O(mode=swap), the default, never touches the live database until its replacement is proven
    - the backup is restored into a staging database while the live one keeps serving, its row
    counts are checked against the manifest, and then, in one short step, new connections to the
    live database are refused, remaining sessions get O(grace_seconds) and are ended, the live
    database is renamed to C(<db>_prev_<time>) and staging takes its name, with the owner, grants,
    C(ALTER DATABASE ... SET) settings, connection limit and comment carried over, all in one
    transaction. A failure before or during that step drops staging and leaves the live database
    as it was. O(keep_previous) bounds the previous databases kept. Staging databases left by a
    killed run are dropped by the next one. Staging and previous databases carry a comment
    (C(lifeboat staging of <db>), C(lifeboat previous of <db>)); only databases with that exact
    comment and name shape are ever dropped, and a name too long for its suffix is cut with a hash
    of the whole name, so two long names sharing a prefix never touch each other's copies.
  - O(mode=new) restores into a database that must not exist yet; if the restore fails, the new
    database is dropped again (only a database this run created is ever dropped).
  - O(mode=replace) first proves the database can be re-created here (see O(locale_fallback)), then
    takes a safety backup of the existing database (kind C(pre-restore)), drops it C(WITH (FORCE)),
    recreates it with the same owner and the backup's encoding and locale, and restores. If the
    restore fails, the safety backup is restored so the database is as it was; if even that fails,
    the one-line error names both causes and the safety backup's id.
  - Every mode holds a per-database lock (a session advisory lock on the maintenance connection)
    for the whole run - a second restore of the same database, or a backup of it, is refused or
    waits - and pins the backup set it reads, so retention (C(keep_last)) running meanwhile keeps
    it. Names are passed to C(pg_restore) and C(psql) so they are only names (never read as
    connection strings).
  - O(mode=tables) restores only the tables in O(tables) into the live database O(db), from a custom or
    directory backup. The archive's table of contents (C(pg_restore --list)) is filtered into a
    C(--use-list) holding everything that belongs to each table, which C(pg_restore --table) alone
    skips. A table missing from the database (dropped) is recreated with its columns, defaults,
    owned sequences and their values, rows, constraints, indexes, triggers, policies, comments and
    grants, and the foreign keys to and from tables that exist. A table that exists keeps its live
    definition and everything depending on it (views, other tables' foreign keys) - its rows are
    deleted and the backup's loaded, and its owned sequences are set to the backup's values. A
    partitioned table brings all its partitions; a partition alone is just itself (a recreated one
    is attached to its live parent). Everything happens in ONE transaction with triggers disabled
    (C(session_replication_role = replica), so the login must be a superuser or be granted SET on
    that parameter); before COMMIT the foreign keys to and from the restored tables are checked for
    orphans and their row counts against the manifest - any failure rolls everything back and
    leaves every table as it was. Existing tables are first saved in a safety backup of those tables
    (kind C(pre-restore)) unless O(safety_backup=false). It holds the same per-database lock as
    O(mode=swap), so the two never overlap. O(jobs) does not apply.
  - With an C(s3://) O(repository), the set is downloaded into O(cache_dir) first, every file
    checked against the manifest as it arrives, then restored as from a local repository; the
    download is removed after a successful restore. A set in GLACIER or DEEP_ARCHIVE must be
    restored from there first (O(glacier_restore)).
  - With O(container), the set is checked on this host as always, and the container's own C(pg_restore) and C(psql)
    restore it - a custom archive's table of contents read through their standard input, a custom archive or
    a directory-format set copied into a private folder in the container (so O(jobs) works) and removed
    afterwards, a plain dump fed to C(psql) inside C(BEGIN)/C(COMMIT) sent by lifeboat. Every mode; for
    O(mode=tables) the container's C(pg_restore --file=-) output is carried into its C(psql) in one
    transaction, as on a host. An C(s3://) set is downloaded into O(cache_dir) first. The result names the
    container.
extends_documentation_fragment:
  - lifeboat.db.connection
  - lifeboat.db.container
  - lifeboat.db.s3
options:
  db:
    description: Database to restore into.
    type: str
    required: true
    aliases: [login_db, database]
  repository:
    description: Absolute path of the backup repository on the target host, or C(s3://bucket/prefix).
    type: path
    required: true
  cache_dir:
    description: The local folder on the target host a set in S3 is downloaded into (private to the module user).
    type: path
    default: /var/tmp/lifeboat-cache
  glacier_restore:
    description:
      - When the set is in GLACIER or DEEP_ARCHIVE, start its restore (7 days, Standard tier) and fail
        saying to run again when it is done. Without it such a set fails with that advice.
    type: bool
    default: false
  backup:
    description:
      - What to restore. C(latest) is the newest backup of O(kind) in O(repository) or, without O(kind), the newest
        backup of the whole database (not a delta, a table selection or a C(pre-restore) safety backup); a set whose
        last verification failed is skipped.
      - A backup id from O(repository).
      - An absolute path on the target host - a backup set folder, or an archive lifeboat did not write (a
        C(pg_dump -Fc) file, a C(-Fd) folder, a plain C(.sql) or C(.sql.gz)). Such an archive has no manifest, so
        there are no checksums to check and no row counts to compare; its table of contents must read back.
      - C(s3://bucket/prefix/<database>/<backup_id>) (or C(.../<database>/latest)) - one set in S3, whatever
        O(repository) is; it is downloaded into O(cache_dir), every file checked against the manifest.
    type: str
    default: latest
  kind:
    description: With O(backup=latest), the kind of backup to take the newest of (for example C(daily) or C(monthly)).
    type: str
  backup_db:
    description: Database whose backups to look in. Defaults to O(db).
    type: str
  mode:
    description: How to treat the target database (see the description).
    type: str
    default: swap
    choices: [swap, new, replace, tables]
  tables:
    description:
      - With O(mode=tables) (required there, refused otherwise), the tables to restore, each as
        C(schema.table) read as SQL reads a name - C(Public.Orders) is C(public.orders); double-quote a
        part with capitals, spaces, dots or quotes, e.g. C(public."MixedCase"). No patterns. A
        partitioned table brings its partitions.
    type: list
    elements: str
  grace_seconds:
    description: With O(mode=swap), how long sessions on the live database may finish on their own before they are ended.
    type: float
    default: 1.0
  keep_previous:
    description: With O(mode=swap), how many C(<db>_prev_<time>) databases to keep (0 drops the previous one at once).
    type: int
    default: 1
  jobs:
    description: Parallel pg_restore jobs.
    type: int
    default: 1
  no_owner:
    description: Do not restore object ownership (C(pg_restore --no-owner)).
    type: bool
    default: true
  no_acl:
    description: Do not restore privileges (C(pg_restore --no-acl)).
    type: bool
    default: true
  safety_backup:
    description:
      - With O(mode=replace), back up the current database before dropping it. Turning this off means a failed
        restore cannot be undone - the database is dropped and what it held is lost, which the failure says.
      - With O(mode=tables), back up the tables whose rows are replaced before the restore (a failed restore rolls
        back anyway; this keeps their rows for after a successful one).
    type: bool
    default: true
  locale_fallback:
    description:
      - The restored database (O(mode=swap), V(new), V(replace)) is created with the encoding, C(LC_COLLATE) and
        C(LC_CTYPE) of the database the backup was taken from; before anything changes, lifeboat proves that
        this server can create such a database (it creates and drops a throwaway C(<db>_lbprobe_<hex>)).
      - When it cannot (a backup from a server with a locale this one has not got), the restore is refused and
        nothing is changed, unless this is V(true) - then the database is created with this server's own
        settings (those of C(template0)), which the actions say. Text may then sort differently than on the
        server the backup came from.
    type: bool
    default: false
  analyze:
    description: Run ANALYZE on the restored database so the planner has statistics at once.
    type: bool
    default: true
  role:
    description:
      - Role to restore as (C(pg_restore --role)); objects are created by, and with O(no_owner) owned by, that role.
        It must exist on the server (checked before anything changes).
    type: str
  grants:
    description:
      - Privileges to grant in the restored database once it is restored (seed 003 re-runs
        C(GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO mks_user) by hand after restoring with
        C(--no-acl)). In O(mode=swap) they are granted in staging, before the swap.
      - Each item is C(to) (a role, or C(PUBLIC)), C(objects) (C(tables), C(sequences), C(functions) or C(schema);
        default C(tables)), C(privileges) (a list or comma-separated, default C(ALL)) and C(schema) (default C(public)).
        Roles must exist (checked before anything changes).
    type: list
    elements: dict
  refresh_matviews:
    description: REFRESH every materialized view of the restored database before it is handed over.
    type: bool
    default: false
  repair_sequences:
    description:
      - Move every sequence that feeds a column (serial, identity, or named in its DEFAULT nextval) and whose
        next value, by its own increment, may already be in that column, to the column's largest value (smallest
        for a descending sequence; of several columns, the furthest), so the next insert does not fail on a
        duplicate key. Reported in RV(sequences_repaired).
    type: bool
    default: true
  checks:
    description:
      - The operator's own SQL checks, run read-only on the restored database before it is handed over (in
        O(mode=swap), on staging, so a failing check leaves the live database untouched; in O(mode=new) the new
        database is dropped; in O(mode=replace) the safety backup is put back).
      - Each is C(name) and C(sql) (or C(file), a SQL file on the target host), plus what it expects - by default
        no rows (a query that finds violations), or C(rows) (exactly that many rows), or C(value) (the last column
        of its single row, compared as text). The same checks as in M(lifeboat.db.integrity).
      - Inline C(sql) is one statement; a statement that controls the transaction or the session (C(COMMIT),
        C(END), C(SET), C(RESET), C(COPY), ...) is refused before the restore starts.
    type: list
    elements: dict
  maintenance_db:
    description:
      - Database to connect to for CREATE and DROP DATABASE.
      - The per-database restore lock is held in database C(postgres) whatever this is (backups look for it
        there), so the login must be able to connect to C(postgres) too (not in check mode).
    type: str
    default: postgres
  confirm:
    description:
      - The name of the target database, repeated. Needed when the target host is marked
        C(lifeboat_production) in the inventory (the action plugin refuses the task without it,
        except in check mode); a value that is not O(db) is always refused. The module itself ignores it.
    type: str
attributes:
  check_mode:
    support: full
    description: Verifies the backup and the tools and reports the steps it would take; changes nothing.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Disaster recovery from the offsite bucket (seed 002)
  lifeboat.db.restore:
    db: app
    repository: s3://acme-db-backups/prod
    s3_region: eu-central-1
    backup: latest
    mode: new
    glacier_restore: true

- name: Restore last night's backup over the app database (a safety backup is taken first)
  lifeboat.db.restore:
    login_host: db1.example.com
    login_password: "{{ vault_postgres_password }}"
    db: app
    repository: /var/backups/lifeboat
    backup: latest
    mode: replace

- name: Bring back a dropped table and reset another one's rows (seed 002's table restore)
  lifeboat.db.restore:
    db: consulting_tool
    repository: /var/backups/lifeboat
    backup: latest
    mode: tables
    tables:
      - public.policy_violations
      - public.team_members

- name: Seed 003's restore, with the grants it re-runs by hand afterwards
  lifeboat.db.restore:
    db: mks_db
    repository: /var/backups/lifeboat
    backup: latest
    kind: daily
    grants:
      - {to: mks_user, objects: tables, privileges: ALL}
      - {to: mks_user, objects: sequences, privileges: ALL}
    refresh_matviews: true

- name: Restore a dump made by hand (pg_dump -Fc > app.dump) beside the live database and swap it in
  lifeboat.db.restore:
    db: app
    repository: /var/backups/lifeboat
    backup: /srv/dumps/app.dump
    confirm: app

- name: Forensic copy of one backup into a new database
  lifeboat.db.restore:
    db: app_forensic_20261122
    backup_db: app
    backup: 20261122T020000Z-4f2a9c
    repository: /var/backups/lifeboat
    mode: new
    jobs: 4
'''

RETURN = r'''
backup_id:
  description: Id of the backup restored.
  returned: always
  type: str
backup_path:
  description: Folder of the backup restored.
  returned: always
  type: str
backup_finished_at:
  description: When the restored backup finished (ISO 8601, UTC); its age is the recovery point.
  returned: always
  type: str
target_db:
  description: Database restored into.
  returned: always
  type: str
mode:
  description: Mode used.
  returned: always
  type: str
swap:
  description:
    - With O(mode=swap), the swap step - C(window_seconds) (how long the live database refused
      connections), C(previous_db), C(sessions_terminated), C(grace_seconds).
  returned: mode is swap and not check mode
  type: dict
row_count_check:
  description: With O(mode=swap), the staging database's row counts against the manifest (status, summary, tables).
  returned: mode is swap and not check mode
  type: dict
previous_dropped:
  description: Previous databases dropped because of O(keep_previous).
  returned: mode is swap and the live database existed
  type: list
  elements: str
custom_checks:
  description: Results of O(checks) (name, status, summary, rows, a few sample rows, seconds).
  returned: when O(checks) is set and they ran
  type: list
  elements: dict
grants_applied:
  description: The GRANT statements run from O(grants).
  returned: when O(grants) is set and not check mode
  type: list
  elements: str
matviews_refreshed:
  description: Materialized views refreshed because of O(refresh_matviews).
  returned: when O(refresh_matviews) is set and not check mode
  type: list
  elements: str
sequences_repaired:
  description:
    - Sequences moved past their column's edge (sequence, column, last_value, next_value, increment, and
      max_value or min_value for a descending sequence).
  returned: when O(repair_sequences) is set and not check mode
  type: list
  elements: dict
safety_backup_id:
  description:
    - Id of the pre-restore safety backup taken by O(mode=replace) or O(mode=tables). With O(mode=tables) it
      is always returned, null when no existing table was changed or O(safety_backup=false).
  returned: when a safety backup was taken, and always with mode tables
  type: str
tables:
  description:
    - With O(mode=tables), each table restored (or, in check mode, to be restored) - C(name)
      (schema.table), C(action) (C(recreated) when it was missing, C(replaced) when its rows were
      replaced) and C(rows) (the backup's row count; a partitioned table counts its partitions').
  returned: mode is tables
  type: list
  elements: dict
  sample: [{"name": "public.orders", "action": "replaced", "rows": 600}]
verified_files:
  description: Files checked against the manifest.
  returned: always
  type: list
  elements: str
preflight:
  description:
    - What was checked before anything changed - C(extensions) the backup needs (all available on the server),
      C(restore_bytes) (about how much the restored database takes, and C(restore_bytes_basis)), and, when the
      server's data directory is on this host, C(data_directory) and its C(free_bytes) (C(disk_checked)); otherwise
      C(disk_note) says why the disk was not checked.
  returned: when the backup could be read
  type: dict
expected_row_counts:
  description: Row counts recorded in the backup's manifest (null for an archive lifeboat did not write).
  returned: always
  type: dict
pg_restore:
  description: The pg_restore used (name, path, version).
  returned: always
  type: dict
container:
  description:
    - With O(container), the container the tools ran in (C(name), C(id), C(image), C(image_id), C(docker_host)).
  returned: when container is set
  type: dict
timings:
  description: Seconds spent verifying, taking the safety backup, restoring, analyzing, and in total.
  returned: success and not check mode
  type: dict
  sample: {"verify_seconds": 0.02, "restore_seconds": 1.4, "analyze_seconds": 0.1, "total_seconds": 1.9}
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
from ansible_collections.lifeboat.db.plugins.module_utils.restore.request import MODES
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import s3_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import container_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.restore.run import run


def argument_spec():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', required=True, aliases=['login_db', 'database'])
    spec.update(
        repository=dict(type='path', required=True),
        backup=dict(type='str', default='latest'),
        backup_db=dict(type='str'),
        kind=dict(type='str'),
        role=dict(type='str'),
        grants=dict(type='list', elements='dict'),
        refresh_matviews=dict(type='bool', default=False),
        repair_sequences=dict(type='bool', default=True),
        checks=dict(type='list', elements='dict'),
        mode=dict(type='str', default='swap', choices=list(MODES)),
        grace_seconds=dict(type='float', default=1.0),
        keep_previous=dict(type='int', default=1),
        jobs=dict(type='int', default=1),
        no_owner=dict(type='bool', default=True),
        no_acl=dict(type='bool', default=True),
        safety_backup=dict(type='bool', default=True),
        locale_fallback=dict(type='bool', default=False),
        analyze=dict(type='bool', default=True),
        maintenance_db=dict(type='str', default='postgres'),
        cache_dir=dict(type='path', default='/var/tmp/lifeboat-cache'),
        glacier_restore=dict(type='bool', default=False),
        confirm=dict(type='str'),
        tables=dict(type='list', elements='str'),
    )
    spec.update(s3_argument_spec())
    spec.update(container_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
