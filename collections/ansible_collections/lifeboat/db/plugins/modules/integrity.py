#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: integrity
short_description: Check a PostgreSQL database against a backup manifest or a captured baseline
version_added: 0.1.0
description:
  - O(action=capture) counts the rows of every table of O(db) exactly, in one snapshot, and
    writes them to the baseline file O(baseline) on the target host (mode C(0600), atomically).
  - O(action=compare) counts the rows again and compares them per table with O(baseline) (a
    captured baseline or any backup's C(manifest.json)) or with the manifest of O(backup) in
    O(repository). The task fails on a missing table or a different count unless O(fail_on=never).
  - Tables that exist only in the database are reported as C(extra) and do not fail the check.
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  db:
    description: Database to check.
    type: str
    required: true
    aliases: [login_db, database]
  action:
    description: Capture a baseline, or compare the database with one.
    type: str
    default: compare
    choices: [capture, compare]
  baseline:
    description:
      - Path on the target host of the baseline file to write (O(action=capture)) or to compare with.
      - For O(action=compare) a backup's C(manifest.json) works as well.
    type: path
  repository:
    description: Compare with the manifest of O(backup) in this repository instead of a baseline file.
    type: path
  backup:
    description: Backup id (or C(latest)) whose manifest to compare with; needs O(repository).
    type: str
    default: latest
  backup_db:
    description: Database whose backups to look in. Defaults to O(db).
    type: str
  tables:
    description: Compare only these tables (C(schema.table)). Default is every table in the baseline and the database.
    type: list
    elements: str
  fail_on:
    description: C(error) fails the task when a check fails; C(never) only reports.
    type: str
    default: error
    choices: [error, never]
attributes:
  check_mode:
    support: full
    description: Comparing is read-only and runs in check mode; capture reports whether the baseline would change and writes nothing.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Capture row counts before a drill (seed 001's baseline)
  lifeboat.db.integrity:
    db: app
    action: capture
    baseline: /var/backups/lifeboat/app-baseline.json

- name: After the restore, the counts must equal the baseline
  lifeboat.db.integrity:
    db: app
    baseline: /var/backups/lifeboat/app-baseline.json

- name: Compare with what the latest backup holds, report only
  lifeboat.db.integrity:
    db: app
    repository: /var/backups/lifeboat
    backup: latest
    fail_on: never
  register: counts
'''

RETURN = r'''
checks:
  description: One entry per check with name, severity, status (passed/failed), summary and details.
  returned: when action is compare
  type: list
  elements: dict
  sample:
    - name: row_counts
      severity: error
      status: failed
      summary: "1 table(s) differ: public.orders (expected 5000, found 0)"
      failures: 1
      tables: [{"table": "public.orders", "expected": 5000, "actual": 0, "status": "mismatch"}]
passed:
  description: Whether every check passed.
  returned: when action is compare
  type: bool
summary:
  description: One line describing the outcome.
  returned: always
  type: str
row_counts:
  description: Exact rows per table of O(db), counted now.
  returned: always
  type: dict
source:
  description: The baseline file or backup compared with or written.
  returned: always
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.catalog import exact_row_counts
from ansible_collections.lifeboat.db.plugins.module_utils.checks import compare_row_counts
from ansible_collections.lifeboat.db.plugins.module_utils.connection import (
    connection_argument_spec, psycopg, server_version_string)
from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.manifest import read_manifest, write_json_atomic
from ansible_collections.lifeboat.db.plugins.module_utils.repository import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.task import run_module


def argument_spec():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', required=True, aliases=['login_db', 'database'])
    spec.update(
        action=dict(type='str', default='compare', choices=['capture', 'compare']),
        baseline=dict(type='path'),
        repository=dict(type='path'),
        backup=dict(type='str', default='latest'),
        backup_db=dict(type='str'),
        tables=dict(type='list', elements='str'),
        fail_on=dict(type='str', default='error', choices=['error', 'never']),
    )
    return spec


def count_rows(ctx, dbname):
    conn = ctx.options.connect(dbname, autocommit=False)
    try:
        # One snapshot for all tables, so the counts describe a single moment.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return exact_row_counts(conn), server_version_string(conn)
    finally:
        conn.close()


def capture(ctx):
    p = ctx.params
    if not p['baseline']:
        raise LifeboatError('action=capture needs baseline: the path of the baseline file to write')
    counts, version = count_rows(ctx, p['db'])
    previous = None
    if os.path.exists(p['baseline']):
        previous = read_manifest(p['baseline'])
    unchanged = previous is not None and previous.get('database') == p['db'] and previous['row_counts'] == counts
    result = dict(changed=not unchanged, row_counts=counts, source=p['baseline'],
                  summary='baseline of %d tables, %d rows' % (len(counts), sum(counts.values())))
    if unchanged:
        result['actions'] = ['Baseline %s already holds these row counts' % p['baseline']]
    elif ctx.check_mode:
        result['actions'] = ['Would write the row counts of %d tables to %s' % (len(counts), p['baseline'])]
    else:
        directory = os.path.dirname(p['baseline'])
        try:
            if directory:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            write_json_atomic(p['baseline'], dict(kind='baseline', database=p['db'], server_version=version,
                                                  captured_at=iso(utc_now()), row_counts=counts,
                                                  total_rows=sum(counts.values())))
        except OSError as exc:
            raise LifeboatError('cannot write baseline %s: %s; choose a writable path' % (p['baseline'], exc.strerror or exc))
        result['actions'] = ['Wrote the row counts of %d tables to %s' % (len(counts), p['baseline'])]
    return result


def expected_counts(ctx):
    p = ctx.params
    if p['baseline']:
        data = read_manifest(p['baseline'])
        return data, p['baseline']
    if ctx.repository:
        backup = ctx.repository.resolve(p['backup_db'] or p['db'], p['backup'])
        if backup.manifest.get('format') == 'delta':
            raise LifeboatError('backup %s is a delta export and holds no row counts of the database; compare '
                                'with its base backup instead' % backup.backup_id)
        return backup.manifest, 'backup %s' % backup.backup_id
    raise LifeboatError('action=compare needs baseline (a baseline or manifest file) or repository (and backup)')


def compare(ctx):
    p = ctx.params
    reference, source = expected_counts(ctx)
    if reference.get('database') not in (None, p['db'], p['backup_db']):
        raise LifeboatError('%s describes database %r, not %r; pass the matching baseline or set backup_db'
                            % (source, reference.get('database'), p['db']))
    counts, dummy = count_rows(ctx, p['db'])
    check = compare_row_counts(reference['row_counts'], counts, p['tables'])
    passed = check['status'] == 'passed'
    result = dict(changed=False, checks=[check], passed=passed, row_counts=counts, source=source,
                  summary='row counts of %r against %s: %s' % (p['db'], source, check['summary']),
                  actions=['Compared the row counts of %d tables with %s' % (len(check['tables']), source)])
    if not passed and p['fail_on'] == 'error':
        raise LifeboatError(result['summary'], **dict((k, v) for k, v in result.items() if k != 'changed'))
    return result


def run(ctx):
    return capture(ctx) if ctx.params['action'] == 'capture' else compare(ctx)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
