#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: seed
short_description: Rebuild a database from schema and seed files, and run Flyway-compatible migrations
version_added: 0.1.0
description:
  - Automates seed 000's baseline recovery. Files are read on the target host.
  - O(action=apply) resets a schema (optional, guarded by O(confirm_reset)), applies schema files
    (plain SQL such as C(pg_dump --schema-only --no-owner --no-privileges) output) and seed files,
    then sets sequences. All of it runs in B(one transaction), so an error anywhere leaves the
    database exactly as it was, old schema and rows included. An error names the file, the line and
    the statement.
  - Applied schema and seed files are recorded with their sha256 in C(<schema>.lifeboat_seed_history).
    A file already applied is not applied again (C(changed=false)); a file changed since is reported
    and reapplied only with O(reapply_changed=true).
  - O(action=baseline), O(action=migrate), O(action=info), O(action=validate) and O(action=repair)
    work like Flyway's commands on the same C(flyway_schema_history) table, with the same file names
    (C(V<version>__<description>.sql), C(R__<description>.sql), callbacks C(beforeMigrate.sql),
    C(beforeEachMigrate.sql), C(afterEachMigrate.sql), C(afterEachMigrateError.sql),
    C(afterMigrate.sql), C(afterMigrateError.sql), each also as C(<event>__<description>.sql)), the
    same checksum and the same advisory lock. A database Flyway migrated validates here, and the
    other way round.
  - Each migration runs in its own transaction, unless its statements cannot (C(CREATE INDEX
    CONCURRENTLY), C(VACUUM), ...; detected) or its C(<script>.conf) says C(executeInTransaction=false).
    A failed transactional migration is rolled back and not recorded; a failed non-transactional one
    is recorded with C(success=false), as Flyway does, and blocks C(migrate) until C(repair).
  - Callbacks run on every C(migrate), as Flyway runs them, so they must be re-runnable; C(changed)
    counts migrations, not callbacks.
  - O(action=smoke) runs O(smoke_sql) (an C(INSERT ... RETURNING), say) in a transaction that is
    always rolled back, and fails unless it wrote at least one row.
  - O(action=export_schema) writes C(pg_dump --schema-only --no-owner --no-privileges) of O(db) to
    O(dest) (C(0600), written under a temporary name and renamed), leaving out the history tables.
  - With O(container), O(action=export_schema)'s C(pg_dump) is the container's own, run there through the
    Docker API, its output streamed into O(dest) on this host (the Docker host) as above. Every other action
    runs over this host's connection, which goes to the container's server (see the fragment); the files
    and migrations are read on this host. The result names the container (RV(container)).
extends_documentation_fragment:
  - lifeboat.db.connection
  - lifeboat.db.container
options:
  db:
    description: Database to work on.
    type: str
    required: true
    aliases: [login_db, database]
  action:
    description: What to do; see the description.
    type: str
    default: apply
    choices: [apply, baseline, migrate, info, validate, repair, smoke, export_schema]
  schema:
    description:
      - Schema holding C(flyway_schema_history) and C(lifeboat_seed_history) (Flyway's C(defaultSchema)).
      - Default is the connection's current schema (usually C(public)). When given, it is put first on
        the C(search_path) for every file, migration, callback and repeatable, as Flyway does.
    type: str
  reset_schema:
    description:
      - With O(action=apply), drop this schema with everything in it (C(DROP SCHEMA ... CASCADE)) and
        create it again with its owner, grants, comment and default privileges, before the files run.
      - Needs O(confirm_reset) set to the same name. In check mode it reports what would be dropped.
    type: str
  confirm_reset:
    description: Must equal O(reset_schema) for a reset to happen; guards against resetting the wrong schema.
    type: str
  schema_files:
    description: Schema files (plain SQL) to apply, in this order, with O(action=apply).
    type: list
    elements: path
  seed_files:
    description: Seed data files (INSERTs, C(COPY ... FROM stdin)) to apply after the schema files.
    type: list
    elements: path
  reapply_changed:
    description:
      - Apply again a schema or seed file whose content changed since it was applied.
      - Without it, such a file is left alone with an Ansible warning.
    type: bool
    default: false
  sequences:
    description:
      - Sequences to set at the end of O(action=apply) or O(action=migrate).
      - "Each item is C({name, value}) (as C(setval(name, value)) - the next value is C(value) plus the increment) or
        C({name, column}) with C(column) as C(table.column) or C(schema.table.column) - the next value is
        C(max(column)) plus the increment, or the sequence's start when the table is empty."
      - C(column) is read as SQL reads names - C(D_Facility.Id) is C(d_facility.id); double-quote a part with
        capitals, spaces, dots or quotes.
      - Changed only when the sequence is not already there.
    type: list
    elements: dict
  migrations:
    description:
      - Folders on the target holding the migrations (Flyway's C(locations)), searched recursively.
      - A C(.sql) file whose name is neither a migration nor a callback is an error, so a misspelt
        migration never silently stays unapplied.
    type: list
    elements: path
  target:
    description: Migrate up to and including this version (e.g. C(0222)); C(latest) means all.
    type: str
    default: latest
  out_of_order:
    description: Apply a pending version older than the newest applied one (otherwise it is C(ignored), an error).
    type: bool
    default: false
  baseline_version:
    description: Version recorded by O(action=baseline) and O(baseline_on_migrate).
    type: str
    default: '1'
  baseline_description:
    description: Description of the baseline row.
    type: str
    default: '<< Flyway Baseline >>'
  baseline_on_migrate:
    description:
      - Let O(action=migrate) baseline a schema that has objects but no history table. Without it,
        such a schema is an error (a migration from scratch would collide with what is there).
    type: bool
    default: false
  ignore_pending:
    description: Let O(action=validate) pass with migrations not yet applied (Flyway's C(*:pending)).
    type: bool
    default: false
  ignore_missing:
    description: Let validation pass with applied migrations whose file is gone (Flyway's C(*:missing)).
    type: bool
    default: false
  placeholder_replacement:
    description: Replace C(${name}) placeholders in migrations (as Flyway does by default).
    type: bool
    default: true
  placeholders:
    description:
      - Values of C(${name}) placeholders. C(${flyway:defaultSchema}), C(${flyway:user}), C(${flyway:database}),
        C(${flyway:table}), C(${flyway:filename}) and C(${flyway:timestamp}) are built in.
      - An unknown placeholder is an error. Checksums are of the files as written, as in Flyway.
    type: dict
  table:
    description: Name of the Flyway history table.
    type: str
    default: flyway_schema_history
  installed_by:
    description: Value of C(installed_by) in new history rows. Default is the database user.
    type: str
  lock_timeout:
    description: Seconds to wait for another migration (lifeboat's or Flyway's) holding the migration lock.
    type: int
    default: 60
  smoke_sql:
    description: The write statement of O(action=smoke).
    type: str
  dest:
    description: File on the target that O(action=export_schema) writes.
    type: path
  exclude_tables:
    description: More tables (pg_dump patterns) that O(action=export_schema) leaves out.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Reads everything and reports what would be reset, applied, migrated, repaired or set; changes nothing.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Rebuild Modernized from Legacy's schema dump and the synthetic seed, in one transaction
  lifeboat.db.seed:
    db: opendolphin_modern
    port: 55433
    reset_schema: public
    confirm_reset: public
    schema_files: [/srv/baseline/legacy_schema_dump.sql]
    seed_files: [/srv/baseline/local_synthetic_seed.sql]
    sequences:
      - {name: facility_num, value: 103}

- name: Flyway baseline, then migrate to 0222
  lifeboat.db.seed:
    db: opendolphin_modern
    action: migrate
    migrations: [/srv/app/server-modernized/tools/flyway/sql]
    baseline_on_migrate: true
    baseline_version: '0'
    target: '0222'

- name: Prove the audit table takes writes, leaving nothing behind
  lifeboat.db.seed:
    db: opendolphin_modern
    action: smoke
    smoke_sql: INSERT INTO d_audit_event (action, trace_id) VALUES ('gate-smoke', 'lifeboat') RETURNING id
'''

RETURN = r'''
container:
  description: The container the database lives in - C(name), C(id), C(image), C(image_id), C(docker_host).
  returned: with O(container)
  type: dict
schema:
  description: Schema of the history tables.
  returned: always
  type: str
reset:
  description: The schema reset (owner, grants, default privileges, and the tables and estimated rows dropped).
  returned: when O(reset_schema) is given
  type: dict
files:
  description: Each schema and seed file with C(kind), C(file), C(checksum) (sha256), C(statements) and
    C(status) (C(applied), C(unchanged), C(changed) - changed since applied and left alone - or C(reapplied)).
  returned: with O(action=apply)
  type: list
  elements: dict
sequences:
  description: Each sequence with C(name), C(last_value) and C(is_called) before, C(value), C(next_value) and C(changed).
  returned: when O(sequences) is given
  type: list
  elements: dict
migrations:
  description:
    - Flyway's C(info) - every applied row and every resolved file, with C(version), C(description),
      C(type), C(script), C(checksum), C(installed_rank), C(installed_on), C(installed_by), C(execution_time),
      C(category) and C(state) (C(pending), C(success), C(failed), C(ignored), C(missing), C(outdated),
      C(superseded), C(baseline), C(below_baseline), C(above_target), C(future), C(out_of_order), C(deleted)).
    - After O(action=migrate) or O(action=repair) it is the state afterwards.
  returned: with the migration actions
  type: list
  elements: dict
pending:
  description: Scripts that O(action=migrate) would apply (check mode) or did not reach.
  returned: with the migration actions
  type: list
  elements: str
applied:
  description: Migrations applied by this run, with C(version), C(description), C(script), C(checksum), C(transactional),
    C(statements) and C(execution_time) (ms).
  returned: with O(action=migrate)
  type: list
  elements: dict
callbacks:
  description: Callback scripts run, in order.
  returned: with O(action=migrate)
  type: list
  elements: str
current_version:
  description: Highest applied version (the baseline's when nothing after it), or null.
  returned: with the migration actions
  type: str
problems:
  description: What validation found, each with C(kind) (C(checksum), C(description), C(missing), C(failed),
    C(ignored), C(pending)), C(version), C(script) and C(message).
  returned: with O(action=validate) and O(action=migrate)
  type: list
  elements: dict
repaired:
  description: C(removed_failed) (failed rows deleted) and C(realigned) (rows whose checksum and description
    now match the files).
  returned: with O(action=repair)
  type: dict
smoke:
  description: C(statement), C(rowcount), up to 5 returned C(rows) and C(rolled_back) (always true); in check mode
    only C(statement) and C(skipped) (the statement is not run - even rolled back it would advance sequences).
  returned: with O(action=smoke)
  type: dict
dest:
  description: The schema dump written.
  returned: with O(action=export_schema)
  type: str
actions:
  description: What the task did (or would do), in plain sentences.
  returned: always
  type: list
  elements: str
timing:
  description: Start, end and duration of the task.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.migrate.run import run
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import container_argument_spec

ACTIONS = ['apply', 'baseline', 'migrate', 'info', 'validate', 'repair', 'smoke', 'export_schema']


def argument_spec():
    spec = connection_argument_spec()
    spec['db']['required'] = True
    spec.update(
        action=dict(type='str', default='apply', choices=ACTIONS),
        schema=dict(type='str'),
        reset_schema=dict(type='str'),
        confirm_reset=dict(type='str'),
        schema_files=dict(type='list', elements='path'),
        seed_files=dict(type='list', elements='path'),
        reapply_changed=dict(type='bool', default=False),
        sequences=dict(type='list', elements='dict'),
        migrations=dict(type='list', elements='path'),
        target=dict(type='str', default='latest'),
        out_of_order=dict(type='bool', default=False),
        baseline_version=dict(type='str', default='1'),
        baseline_description=dict(type='str', default='<< Flyway Baseline >>'),
        baseline_on_migrate=dict(type='bool', default=False),
        ignore_pending=dict(type='bool', default=False),
        ignore_missing=dict(type='bool', default=False),
        placeholder_replacement=dict(type='bool', default=True),
        placeholders=dict(type='dict'),
        table=dict(type='str', default='flyway_schema_history'),
        installed_by=dict(type='str'),
        lock_timeout=dict(type='int', default=60),
        smoke_sql=dict(type='str'),
        dest=dict(type='path'),
        exclude_tables=dict(type='list', elements='str'),
    )
    spec.update(container_argument_spec())
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[('action', 'migrate', ['migrations']), ('action', 'validate', ['migrations']),
                     ('action', 'info', ['migrations']),
                     ('action', 'repair', ['migrations']), ('action', 'smoke', ['smoke_sql']),
                     ('action', 'export_schema', ['dest'])],
        required_by=dict(reset_schema=['confirm_reset']),
    )
    run_module(module, run)


if __name__ == '__main__':
    main()
