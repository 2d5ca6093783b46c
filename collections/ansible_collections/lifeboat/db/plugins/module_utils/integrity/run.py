# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The integrity module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible_collections.lifeboat.db.plugins.module_utils.integrity import checks as checks_lib
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.baseline import (
    baseline_sequences, capture_path, check_database, compare_sequences, load_reference, previous_baseline,
    write_baseline)
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import check_name
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import (
    ERROR, FAILED, PASSED, SKIPPED, compare_row_counts, describe_tolerance, parse_tolerance)
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import ConnectionOptions, server_version_string
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.custom import custom_check, normalize_checks
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.checks import BUILTIN_FACTORIES, count_tables
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import recorded_key
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.runner import (
    Check, Snapshot, result, run_checks, wrap)
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import sequence_states
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import open_container
from ansible_collections.lifeboat.db.plugins.module_utils.pg.schema import describe, diff, fingerprint


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


def capture(ctx):
    p = ctx.params
    path = capture_path(p, ctx.repository)
    snapshot = open_snapshot(ctx)
    try:
        counts = take_counts(ctx, snapshot)
        sequences = baseline_sequences(sequence_states(snapshot.first))
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
    planned.extend(custom_check(custom) for custom in normalize_checks(p['checks']))
    if reference and reference.get('kind') == 'baseline':
        if 'sequences' in reference:
            planned.append(_wrapped('baseline sequences', 'baseline_sequences', lambda conn, limit: compare_sequences(
                reference['sequences'], sequence_states(conn), limit)))
        if 'schema' in reference:
            planned.append(_wrapped('schema fingerprint', 'schema', lambda conn, limit: schema_against(
                reference['schema'], describe(conn), 'the baseline', 'the database')))
    if p['parity_with']:
        planned.append(_wrapped('schema_parity', 'schema', lambda conn, limit: schema_against(
            describe(conn), other_schema(ctx), p['db'], p['parity_with']['db'])))
    return planned


def _wrapped(name, kind, run):
    return wrap(Check(name, kind, run))


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
    # The task's own server as the task reaches it (with container: where the Docker host reaches it).
    params = dict(ctx.params, login_host=ctx.options.host, login_unix_socket=None, port=ctx.options.port)
    if other.get('container'):
        if other.get('host') is not None or other.get('port') is not None:
            raise LifeboatError('parity_with names container %r and host or port: give the container (its server is '
                                'found from its settings) or host and port, not both' % other['container'])
        # Seed 000's Legacy in a container of its own on the same engine as the task's.
        container, _ = open_container(dict(container=other['container'], docker_host=ctx.params.get('docker_host')))
        params['login_host'], params['port'] = container.address()
    elif other.get('host'):
        params.update(login_host=other['host'])
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
            # The same spellings as everywhere else: Public.Orders compares public.orders.
            tables = [recorded_key(t, reference['row_counts']) for t in p['tables'] or ()]
            counts = take_counts(ctx, snapshot, set(tables) if tables else None)
            entry = compare_row_counts(reference['row_counts'], counts, tables, tolerance)
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
    if ctx.params['expected_row_counts'] is not None and (ctx.params['baseline'] or ctx.params['action'] == 'capture'):
        raise LifeboatError('expected_row_counts is a reference to compare with: give it instead of baseline, and not '
                            'with action=capture')
    if ctx.params['baseline'] and ctx.params['baseline'] != 'latest':
        ctx.params['baseline'] = os.path.expanduser(ctx.params['baseline'])
    outcome = capture(ctx) if ctx.params['action'] == 'capture' else check(ctx)
    if getattr(ctx, 'container', None) is not None:
        outcome['container'] = ctx.container_facts()
    return outcome
