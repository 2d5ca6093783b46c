#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: integrity
short_description: Check that a PostgreSQL database is whole - orphans, sequences, indexes, row counts, schema
version_added: 0.1.0
description:
  - O(action=check) runs read-only checks on O(db) and reports each with a name, a severity, a status and a few
    sample offending rows. By default it runs every built-in check (see O(skip)) - orphan rows for every foreign
    key, sequences behind their column, invalid indexes, NOT VALID constraints, amcheck - plus the checks the
    options ask for - declared relationships, required tables and columns, minimum row counts, sequence states,
    the operator's own SQL, schema parity with another database.
  - With O(baseline) or O(repository) it also compares the row counts with a captured baseline or a backup's
    manifest (with a O(tolerance) for a live database); a baseline also brings its sequence values (none may have
    gone back) and its schema fingerprint (any difference is shown as a diff).
  - O(action=capture) writes a baseline - row counts, sequence values and a schema description with its
    fingerprint - to O(baseline) or into O(repository) (mode C(0600), atomically).
  - All checks run in one snapshot (REPEATABLE READ, read-only), on O(parallel) connections that share it, each
    in its own savepoint with a statement timeout. A check that cannot run (SQL that does not parse, a table that
    does not exist, a baseline of another database) is reported with status C(error) and the others still run.
  - The task fails when a check of severity C(error) fails or cannot run, unless O(fail_on=never).
  - With O(container), every check (amcheck too) still runs over this host's connection, which goes to the
    container's server (see the fragment); no client tool runs. The result names the container (RV(container)).
extends_documentation_fragment:
  - lifeboat.db.connection
  - lifeboat.db.container
options:
  db:
    description: Database to check.
    type: str
    required: true
    aliases: [login_db, database]
  action:
    description:
      - C(check) runs the checks; C(compare) is the same and needs a reference (O(baseline) or O(repository)).
      - C(capture) writes a baseline.
    type: str
    default: check
    choices: [check, compare, capture]
  skip:
    description:
      - Built-in checks not to run. C(foreign_keys) - orphan rows for every foreign key in the catalog, NOT VALID
        ones included, one check per key; C(sequences) - sequences that feed a column and are behind it by
        their own increment and direction (largest value ascending, smallest descending), every schema; C(invalid_indexes); C(not_valid_constraints) (severity warning);
        C(amcheck) - C(bt_index_check) on every btree index, when the amcheck extension is installed in O(db).
    type: list
    elements: str
    choices: [foreign_keys, sequences, invalid_indexes, not_valid_constraints, amcheck]
    default: []
  relationships:
    description:
      - Relationships the schema does not declare with a foreign key, checked for orphan rows like one.
      - Each is C(table), C(columns) (a name or a list), C(references) (the parent table), optional
        C(referenced_columns) (default C(id) for each column) and optional C(name).
    type: list
    elements: dict
  required_tables:
    description: Tables that must exist (C(schema.table); a bare name means C(public)).
    type: list
    elements: str
  required_columns:
    description: Columns that must exist, as a mapping of table to a list of column names.
    type: dict
  min_rows:
    description: Minimum row counts, as a mapping of table to a number (seed 000's gate - C(public.d_users) at least 3).
    type: dict
  sequences:
    description:
      - Sequences whose state to report, read without consuming a value (no nextval/setval).
      - Each is a name or C({name, next_at_least}). A sequence fails when it is exhausted, behind the column it
        feeds, or its next value is below C(next_at_least).
    type: list
    elements: raw
  checks:
    description:
      - The operator's own SQL checks. Each is C(name) and C(sql) or C(file) (a SQL file on the target host, which
        may hold several statements), plus what it expects - by default no rows (a query that finds violations),
        or C(rows) (exactly that many rows), or C(value) (the last column of its single row, compared as text) -
        and an optional C(severity) (C(error) or C(warning)).
      - In a file, each statement that returns rows is its own check, named after its C(check_name) column when
        it has one (seed 002's integrity-check.sql runs unmodified with C(value=0)).
      - Inline C(sql) is one statement. A statement that controls the transaction or the session (C(COMMIT),
        C(END), C(SET), C(RESET), C(COPY), ...) is refused before any check runs; each statement is sent alone
        through the extended protocol in a read-only transaction with the check's timeout, and what it did to the
        session is rolled back.
    type: list
    elements: dict
  baseline:
    description:
      - Path on the target host of the baseline file to write (O(action=capture)) or to compare with.
      - To compare, a backup's C(manifest.json) works as well. C(latest) means the newest baseline captured into
        O(repository).
    type: str
  expected_row_counts:
    description:
      - The row counts to compare with, given directly as C(schema.table) to rows - such as lifeboat.db.restore's
        C(expected_row_counts), the backup's own counts, so a restore from S3 needs no file left behind to compare.
      - Instead of O(baseline) and O(repository); not with O(action=capture).
    type: dict
  repository:
    description:
      - Without O(baseline), compare the row counts with the manifest of O(backup) in this repository.
      - With O(action=capture) and no O(baseline), the baseline is written under C(<repository>/<db>/.baselines/).
    type: path
  backup:
    description: Backup id (or C(latest)) whose manifest to compare with; needs O(repository).
    type: str
    default: latest
  backup_db:
    description: Database whose backups (or baselines) to look in. Defaults to O(db).
    type: str
  tables:
    description: Compare the row counts of these tables only (C(schema.table), read as SQL reads a name - C(Public.Orders) is C(public.orders)).
    type: list
    elements: str
  tolerance:
    description:
      - How far a row count may differ from the reference and still pass, for a live database that keeps
        changing - a percentage such as C(5%) or a number of rows such as C(100).
      - Without it counts must be equal, except with O(count=estimate), where it defaults to C(10%).
    type: str
  count:
    description:
      - C(exact) counts rows with C(count(*)). C(estimate) reads the planner's statistics (C(reltuples), or the
        planner's estimate for a table never analyzed) - seconds on a big database, but approximate.
    type: str
    default: exact
    choices: [exact, estimate]
  parallel:
    description: Connections to run the checks and counts on. They share one exported snapshot.
    type: int
    default: 1
  timeout:
    description: Statement timeout of each check, in seconds. A check that runs longer is reported as C(error).
    type: int
    default: 300
  sample_rows:
    description: Offending rows to show per check.
    type: int
    default: 5
  parity_with:
    description:
      - Another database, maybe on another server, whose schema must equal O(db)'s - tables, columns and their
        types, indexes, constraints, sequences, views (seed 000's Legacy and Modernized). Check C(schema_parity)
        lists every difference as a line of RV(checks[].diff).
      - Connection settings not given are the task's own.
    type: dict
    suboptions:
      db:
        description: Name of the other database.
        type: str
        required: true
      host:
        description: Its server's host.
        type: str
      port:
        description: Its server's port.
        type: int
      user:
        description: Role to log in as.
        type: str
      password:
        description: Password of O(parity_with.user).
        type: str
      container:
        description:
          - The container the other database's server runs in, on the same engine as O(container) (O(docker_host)),
            for example seed 000's Legacy beside Modernized; its server is reached as for O(container).
          - Not with O(parity_with.host) or O(parity_with.port).
        type: str
  fail_on:
    description:
      - C(error) fails the task when a check of severity error fails or cannot run; C(warning) also when a
        warning fails; C(never) only reports.
    type: str
    default: error
    choices: [error, warning, never]
attributes:
  check_mode:
    support: full
    description: Every check is read-only and runs in check mode; capture reports whether the baseline would change
      and writes nothing.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: After a restore, every foreign key, sequence and index must be sound
  lifeboat.db.integrity:
    db: consulting_tool
    parallel: 2

- name: Seed 002's checks - the runbook's SQL file unmodified, a relationship without a foreign key
  lifeboat.db.integrity:
    db: consulting_tool
    checks:
      - name: bc004
        file: /opt/dr/bc-004/integrity-check.sql
        value: 0
    relationships:
      - table: public.organization_hierarchies
        columns: [ancestor_unit_id]
        references: public.organization_units

- name: Seed 000's gate - required tables, at least 3 users, the facility_num sequence, parity with Legacy
  lifeboat.db.integrity:
    db: opendolphin_modern
    required_tables: [public.d_users, public.d_facility, public.d_audit_event]
    required_columns:
      public.d_users: [id, userid, facility_id]
    min_rows:
      public.d_users: 3
    sequences:
      - name: public.facility_num
        next_at_least: 104
    parity_with:
      db: opendolphin
      port: 5432

- name: Capture a baseline before a drill (seed 001)
  lifeboat.db.integrity:
    db: app
    action: capture
    baseline: /var/backups/lifeboat/app-baseline.json

- name: After the restore, counts, sequences and schema must match the baseline
  lifeboat.db.integrity:
    db: app
    baseline: /var/backups/lifeboat/app-baseline.json

- name: On a live 1 TB database - estimated counts against the latest backup, report only
  lifeboat.db.integrity:
    db: app
    repository: /var/backups/lifeboat
    count: estimate
    tolerance: 5%
    skip: [amcheck]
    fail_on: never
  register: integrity
'''

RETURN = r'''
container:
  description: The container the database lives in - C(name), C(id), C(image), C(image_id), C(docker_host).
  returned: with O(container)
  type: dict
checks:
  description:
    - One entry per check - C(name), C(kind), C(severity) (error or warning), C(status) (passed, failed, skipped,
      or error when it could not run), C(summary) (one line), C(sample) (a few offending rows) and C(seconds) (how
      long it ran; for row_counts, the counting), plus details of its kind (C(tables) for row_counts, C(orphans) for foreign keys and relationships, C(diff) for schema).
  returned: when action is check or compare
  type: list
  elements: dict
  sample:
    - name: foreign_key public.team_members.team_members_team_id_fkey
      kind: foreign_key
      severity: error
      status: failed
      summary: "2 row(s) of public.team_members reference no row of public.teams(id)"
      orphans: 2
      sample: [{"id": 9001, "team_id": 777}]
passed:
  description: Whether every check ran and none of severity error failed.
  returned: when action is check or compare
  type: bool
failed_checks:
  description: Names of the checks that failed or could not run, whatever their severity.
  returned: when action is check or compare
  type: list
  elements: str
counts:
  description: How many checks passed, failed, were skipped, or could not run (error).
  returned: when action is check or compare
  type: dict
summary:
  description: One line describing the outcome.
  returned: always
  type: str
row_counts:
  description: Rows per table of O(db) (exact or estimated, see O(count)), when they were counted.
  returned: when a reference was compared or a baseline captured
  type: dict
source:
  description: The baseline file or backup compared with or written.
  returned: when a reference was compared or a baseline captured
  type: str
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

from ansible_collections.lifeboat.db.plugins.module_utils.integrity import checks as checks_lib
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import container_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.run import run


def argument_spec():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', required=True, aliases=['login_db', 'database'])
    spec.update(
        action=dict(type='str', default='check', choices=['check', 'compare', 'capture']),
        skip=dict(type='list', elements='str', default=[], choices=list(checks_lib.BUILTINS)),
        relationships=dict(type='list', elements='dict'),
        required_tables=dict(type='list', elements='str'),
        required_columns=dict(type='dict'),
        min_rows=dict(type='dict'),
        sequences=dict(type='list', elements='raw'),
        checks=dict(type='list', elements='dict'),
        baseline=dict(type='str'),
        expected_row_counts=dict(type='dict'),
        repository=dict(type='path'),
        backup=dict(type='str', default='latest'),
        backup_db=dict(type='str'),
        tables=dict(type='list', elements='str'),
        tolerance=dict(type='str'),
        count=dict(type='str', default='exact', choices=['exact', 'estimate']),
        parallel=dict(type='int', default=1),
        timeout=dict(type='int', default=300),
        sample_rows=dict(type='int', default=5),
        parity_with=dict(type='dict', options=dict(
            db=dict(type='str', required=True),
            host=dict(type='str'),
            port=dict(type='int'),
            user=dict(type='str'),
            password=dict(type='str', no_log=True),
            container=dict(type='str'),
        )),
        fail_on=dict(type='str', default='error', choices=['error', 'warning', 'never']),
    )
    spec.update(container_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
