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
extends_documentation_fragment:
  - lifeboat.db.connection
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
        ones included, one check per key; C(sequences) - serial and identity sequences behind their column's
        largest value, every schema; C(invalid_indexes); C(not_valid_constraints) (severity warning);
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
    description: Compare the row counts of these tables only (C(schema.table)).
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

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils import integrity as checks_lib
from ansible_collections.lifeboat.db.plugins.module_utils.baseline import (
    capture_path, check_database, compare_sequences, load_reference, previous_baseline, write_baseline)
from ansible_collections.lifeboat.db.plugins.module_utils.catalog import check_name
from ansible_collections.lifeboat.db.plugins.module_utils.checks import (
    compare_row_counts, describe_tolerance, parse_tolerance)
from ansible_collections.lifeboat.db.plugins.module_utils.connection import (
    ConnectionOptions, connection_argument_spec, server_version_string)
from ansible_collections.lifeboat.db.plugins.module_utils.custom_checks import execute, normalize_checks
from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.integrity import (
    BUILTIN_FACTORIES, ERROR, FAILED, PASSED, SKIPPED, Check, Snapshot, all_sequences, count_tables,
    estimate_tables, result, run_checks)
from ansible_collections.lifeboat.db.plugins.module_utils.repository import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.schema import describe, diff, fingerprint
from ansible_collections.lifeboat.db.plugins.module_utils.task import run_module


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
        )),
        fail_on=dict(type='str', default='error', choices=['error', 'warning', 'never']),
    )
    return spec


def validate(params):
    for name in ('parallel', 'timeout'):
        if params[name] < 1:
            raise LifeboatError('%s must be 1 or more, got %d' % (name, params[name]))
    if params['sample_rows'] < 0:
        raise LifeboatError('sample_rows must be 0 or more, got %d' % params['sample_rows'])
    tolerance = parse_tolerance(params['tolerance'])
    if tolerance is None and params['count'] == 'estimate':
        tolerance = ('percent', 10.0)
    return tolerance


def open_snapshot(ctx):
    return Snapshot(lambda: ctx.options.connect(ctx.params['db'], autocommit=False), ctx.params['parallel'])


def take_counts(ctx, snapshot, tables=None):
    if ctx.params['count'] == 'estimate':
        return checks_lib.estimate_tables(snapshot.first, tables)
    return count_tables(snapshot, ctx.params['timeout'], tables)


# -- capture ---------------------------------------------------------------------------------

def capture(ctx):
    p = ctx.params
    path = capture_path(p, ctx.repository)
    snapshot = open_snapshot(ctx)
    try:
        counts = take_counts(ctx, snapshot)
        sequences = all_sequences(snapshot.first)
        schema = describe(snapshot.first)
        version = server_version_string(snapshot.first)
    finally:
        snapshot.close()
    data = dict(kind='baseline', database=p['db'], server_version=version, captured_at=iso(utc_now()),
                count=p['count'], row_counts=counts, total_rows=sum(counts.values()), sequences=sequences,
                schema_fingerprint=fingerprint(schema), schema=schema)
    previous = previous_baseline(p, ctx.repository)
    unchanged = previous is not None and previous.get('database') == p['db'] and all(
        previous.get(key) == data[key] for key in ('row_counts', 'sequences', 'schema_fingerprint'))
    result = dict(changed=not unchanged, row_counts=counts, source=path,
                  summary='baseline of %r: %d tables, %d rows, %d sequences, schema %s' % (
                      p['db'], len(counts), data['total_rows'], len(sequences), data['schema_fingerprint'][:12]))
    if unchanged:
        result['source'] = p['baseline'] if p['baseline'] and p['baseline'] != 'latest' else 'the latest baseline'
        result['actions'] = ['The baseline already holds these row counts, sequence values and schema']
    elif ctx.check_mode:
        result['actions'] = ['Would write the baseline of %d tables and %d sequences to %s'
                             % (len(counts), len(sequences), path)]
    else:
        write_baseline(path, data)
        result['actions'] = ['Wrote the baseline of %d tables and %d sequences to %s' % (len(counts), len(sequences),
                                                                                        path)]
    return result


# -- check -----------------------------------------------------------------------------------

def plan(ctx, snapshot, reference):
    """The checks to run, in the order they are reported."""
    p = ctx.params
    planned = []
    if 'foreign_keys' not in p['skip']:
        planned.extend(checks_lib.foreign_key_checks(snapshot.first))
    planned.extend(checks_lib.relationship_checks(p['relationships']))
    for name in checks_lib.BUILTINS:
        if name in BUILTIN_FACTORIES and name not in p['skip']:
            planned.append(BUILTIN_FACTORIES[name]())
    if p['required_tables']:
        planned.append(checks_lib.required_tables_check(p['required_tables']))
    if p['required_columns']:
        planned.append(checks_lib.required_columns_check(p['required_columns']))
    planned.extend(checks_lib.min_rows_checks(p['min_rows']))
    planned.extend(checks_lib.sequence_state_checks(p['sequences']))
    for custom in normalize_checks(p['checks']):
        planned.append(Check(custom['name'], 'custom', lambda conn, limit, c=custom: execute(conn, c, limit),
                             custom.get('severity', 'error')))
    if reference and reference.get('kind') == 'baseline':
        if 'sequences' in reference:
            planned.append(_wrapped('baseline sequences', 'baseline_sequences', lambda conn, limit: compare_sequences(
                reference['sequences'], checks_lib.all_sequences(conn), limit)))
        if 'schema' in reference:
            planned.append(_wrapped('schema fingerprint', 'schema', lambda conn, limit: schema_against(
                reference['schema'], describe(conn), 'the baseline', 'the database')))
    if p['parity_with']:
        planned.append(_wrapped('schema_parity', 'schema', lambda conn, limit: schema_against(
            describe(conn), other_schema(ctx), p['db'], p['parity_with']['db'])))
    return planned


def _wrapped(name, kind, run):
    return checks_lib.wrap(Check(name, kind, run))


def schema_against(left, right, left_name, right_name):
    lines = diff(left, right, left_name, right_name)
    if not lines:
        return dict(status=PASSED, summary='same schema (fingerprint %s)' % fingerprint(left)[:12], diff=[])
    shown = '; '.join(lines[:3]) + ('; ...' if len(lines) > 3 else '')
    return dict(status=FAILED, summary='%d schema difference(s): %s' % (len(lines), shown), diff=lines,
                sample=[dict(difference=line) for line in lines[:5]])


def other_schema(ctx):
    """The schema of parity_with's database, read on a connection of its own (read-only)."""
    other = ctx.params['parity_with']
    params = dict(ctx.params)
    if other.get('host'):
        params.update(login_host=other['host'], login_unix_socket=None)
    for key, option in (('port', 'port'), ('user', 'login_user'), ('password', 'login_password')):
        if other.get(key) is not None:
            params[option] = other[key]
    conn = ConnectionOptions(params).connect(other['db'], autocommit=False)
    try:
        conn.read_only = True
        return describe(conn)
    finally:
        conn.rollback()
        conn.close()


def row_count_check(ctx, snapshot, reference, source, problem, tolerance):
    """The row_counts result and the counts; (None, None) without a reference. `problem` says
    why the reference given cannot be used: the check is then reported as one that could not run."""
    p = ctx.params
    if reference is None and problem is None:
        return None, None
    if problem is None:
        try:
            start = time.monotonic()
            counts = take_counts(ctx, snapshot, set(p['tables']) if p['tables'] else None)
            entry = compare_row_counts(reference['row_counts'], counts, p['tables'], tolerance)
            entry['summary'] = '%s (%s counts against %s)' % (entry['summary'], p['count'], source)
            entry['seconds'] = round(time.monotonic() - start, 3)
            return entry, counts
        except LifeboatError as exc:
            problem = exc.msg
    return result(Check('row_counts', 'row_counts', None), ERROR, 'row_counts: %s' % problem), None


def summarize(db, results):
    counts = dict((status, len([r for r in results if r['status'] == status]))
                  for status in (PASSED, FAILED, SKIPPED, ERROR))
    bad = [r for r in results if r['status'] in (FAILED, ERROR)]
    line = 'integrity of %r: %d check(s), %d passed, %d failed, %d could not run, %d skipped' % (
        db, len(results), counts[PASSED], counts[FAILED], counts[ERROR], counts[SKIPPED])
    if bad:
        line += '; ' + '; '.join('%s%s: %s' % (r['name'], ' (warning)' if r['severity'] == 'warning' else '',
                                              r['summary']) for r in bad[:3])
        if len(bad) > 3:
            line += '; and %d more' % (len(bad) - 3)
    return line, counts


def check(ctx):
    p = ctx.params
    tolerance = validate(p)
    reference, source, reference_error = None, None, None
    try:
        reference, source = load_reference(p, ctx.repository)
        if reference is not None:
            check_database(reference, source, p)
    except LifeboatError as exc:
        # Nothing of a reference that cannot be used is compared: not its counts, sequences or schema.
        reference, reference_error = None, exc.msg
    if p['action'] == 'compare' and reference is None and reference_error is None:
        raise LifeboatError('action=compare needs baseline (a baseline or manifest file) or repository (and backup)')
    snapshot = open_snapshot(ctx)
    try:
        planned = plan(ctx, snapshot, reference)
        entry, counts = row_count_check(ctx, snapshot, reference, source, reference_error, tolerance)
        results = [entry] if entry else []
        results.extend(run_checks(snapshot, planned, p['timeout'], p['sample_rows']))
    finally:
        snapshot.close()
    summary, tally = summarize(p['db'], results)
    # A check that could not run proves nothing, whatever its severity.
    blocking = [r for r in results if r['status'] == ERROR or (r['status'] == FAILED and (
        r['severity'] == 'error' or p['fail_on'] == 'warning'))]
    outcome = dict(changed=False, checks=results, counts=tally, summary=summary,
                   passed=not [r for r in results if r['status'] == ERROR or (
                       r['status'] == FAILED and r['severity'] == 'error')],
                   failed_checks=[r['name'] for r in results if r['status'] in (FAILED, ERROR)],
                   actions=['Ran %d check(s) on database %r in one snapshot on %d connection(s)%s'
                            % (len(results), p['db'], p['parallel'],
                               ', row counts against %s%s' % (source, ' (tolerance %s)' % describe_tolerance(tolerance)
                                                              if tolerance else '') if source else '')])
    if counts is not None:
        outcome.update(row_counts=counts, source=source)
    if blocking and p['fail_on'] != 'never':
        raise LifeboatError(summary, **dict((k, v) for k, v in outcome.items() if k != 'changed'))
    return outcome


def run(ctx):
    # db and backup_db are checked by run_module with every module's.
    check_name('parity_with.db', (ctx.params['parity_with'] or {}).get('db'))
    if ctx.params['baseline'] and ctx.params['baseline'] != 'latest':
        ctx.params['baseline'] = os.path.expanduser(ctx.params['baseline'])
    return capture(ctx) if ctx.params['action'] == 'capture' else check(ctx)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
