# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lifeboat.db.seed's actions: each reads everything it needs first, then changes the database
(or, in check mode, says what it would change)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.migrate import flyway, flyway_history, flyway_runner, seed
from ansible_collections.lifeboat.db.plugins.module_utils.migrate.schema_export import export_schema
from ansible_collections.lifeboat.db.plugins.module_utils.migrate.seed_sequences import (
    sequence_specs, sequences_in_check_mode, set_sequences)
from ansible_collections.lifeboat.db.plugins.module_utils.pg import sql_script


def run(ctx):
    params = ctx.params
    conn = ctx.options.connect(params['db'])
    try:
        schema = params['schema'] or conn.execute('SELECT current_schema()').fetchone()[0]
        if schema is None:
            raise LifeboatError('the connection has no current schema (empty search_path); set the schema option')
        result = dict(changed=False, schema=schema, actions=[])
        if getattr(ctx, 'container', None) is not None:
            # Which container and image the database was (the baseline gate's evidence names them).
            result['container'] = ctx.container_facts()
        ACTIONS[params['action']](ctx, conn, schema, result)
        return result
    finally:
        conn.close()


def apply(ctx, conn, schema, result):
    params = ctx.params
    reset = params['reset_schema']
    if reset is not None and params['confirm_reset'] != reset:
        raise LifeboatError('confirm_reset %r does not name reset_schema %r; set confirm_reset: %s to drop and '
                            'recreate it. Nothing was changed' % (params['confirm_reset'], reset, reset))
    specs = sequence_specs(params['sequences'])
    # Every file is read and parsed before the database is touched: a typo costs nothing.
    files = seed.load_files('schema', params['schema_files']) + seed.load_files('seed', params['seed_files'])
    history = seed.SeedHistory(schema)
    resets_history = reset is not None and reset == schema
    plan = seed.plan_files(files, {} if resets_history else history.applied(conn), params['reapply_changed'],
                           resets_history)
    result['files'] = [dict(kind=f.kind, file=f.name, checksum=f.checksum, statements=len(f.statements),
                            status=dict(apply='applied', reapply='reapplied').get(status, status))
                       for f, status in plan]
    for script, status in plan:
        if status == 'changed':
            # A warning as well: the database no longer matches the file, which a result line hides.
            line = ('%s file %s changed since it was applied; left alone (set reapply_changed: true to apply it '
                    'again)' % (script.kind, script.name))
            result['actions'].append(line)
            result.setdefault('warnings', []).append(line)
    todo = [(f, status) for f, status in plan if status in ('apply', 'reapply')]
    if ctx.check_mode:
        if reset is not None:
            result['reset'] = seed.describe_schema(conn, reset) or dict(schema=reset, existed=False)
            result['actions'].append('would drop and recreate schema %s (%s tables, about %s rows)' % (
                reset, result['reset'].get('tables', 0), result['reset'].get('estimated_rows', 0)))
        result['actions'].extend('would apply %s file %s' % (f.kind, f.name) for f, _ in todo)
        result['sequences'] = sequences_in_check_mode(conn, specs, result['actions'])
        result['changed'] = bool(reset is not None or todo or any(s.get('changed') for s in result['sequences']))
        return
    with conn.transaction():
        search_path = _search_path(conn, schema, params['schema'])
        sql_script.reset_session(conn, search_path)
        if reset is not None:
            result['reset'] = seed.reset_schema(conn, reset)
            result['actions'].append('dropped and recreated schema %s' % reset)
        for script, status in todo:
            milliseconds = seed.run_file(conn, script, search_path)
            history.record(conn, script, len(script.statements), milliseconds)
            result['actions'].append('applied %s file %s (%d statements)' % (script.kind, script.name,
                                                                               len(script.statements)))
        result['sequences'] = set_sequences(conn, specs, result['actions'])
    result['changed'] = bool(reset is not None or todo or any(s['changed'] for s in result['sequences']))


class Migrations(object):
    """The resolved files and the history of one task."""

    def __init__(self, ctx, conn, schema):
        params = ctx.params
        self.ctx, self.conn, self.params = ctx, conn, params
        self.versioned, self.repeatables, self.callbacks = flyway.resolve(params['migrations'] or [])
        self.history = flyway_history.History(schema, params['table']).read(conn)
        if params['target'] not in (None, 'latest'):
            flyway.version_key(params['target'], 'target')

    def entries(self):
        return flyway_history.states(self.versioned, self.repeatables, self.history, self.params['target'],
                                     self.params['out_of_order'])

    def report(self, result):
        entries = self.entries()
        result['migrations'] = entries
        result['pending'] = [e['script'] for e in entries
                             if e['state'] in (flyway_history.PENDING, flyway_history.OUTDATED)
                             and e['installed_rank'] is None]
        applied = [e for e in entries
                   if e['state'] in (flyway_history.SUCCESS, flyway_history.OUT_OF_ORDER, flyway_history.BASELINE)
                   and e['version'] is not None and e['category'] != 'schema']
        result['current_version'] = max(applied, key=lambda e: flyway.version_key(e['version'], 'history'))[
            'version'] if applied else None
        return entries

    def runner(self, schema):
        params = self.params
        placeholders = (params['placeholders'] or {}) if params['placeholder_replacement'] else None
        return flyway_runner.Runner(self.conn, self.history, placeholders, params['installed_by'], params['db'],
                                    _search_path(self.conn, schema, params['schema']))


def _search_path(conn, schema, wanted):
    """The search_path every script starts with. Flyway puts defaultSchema first while it migrates,
    for every migration, callback and repeatable, whatever the script before did to the session."""
    current = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
    if not wanted:
        return current
    quoted = sql.Identifier(schema).as_string(conn)
    return '%s, %s' % (quoted, current) if current else quoted


def baseline(ctx, conn, schema, result):
    params = ctx.params
    version = params['baseline_version']
    flyway.version_key(version, 'baseline_version')
    history = flyway_history.History(schema, params['table']).read(conn)
    done = _baseline(ctx, conn, history, version, params['baseline_description'], result)
    result['changed'] = done
    migrations = Migrations(ctx, conn, schema)
    migrations.report(result)


def _baseline(ctx, conn, history, version, description, result):
    """Create the history table with its baseline row; False when that baseline is already there."""
    existing = history.baseline_row()
    if history.rows:
        if existing is not None and existing['version'] == version and len(history.rows) == 1:
            result['actions'].append('baseline %s is already recorded' % version)
            return False
        raise LifeboatError('%s already holds %d row(s) (%s); baseline is only for a database without migration '
                            'history - use action=info to see it' % (history.qualified(), len(history.rows),
                                                                      ', '.join(_row_names(history.rows[:3]))))
    if ctx.check_mode:
        result['actions'].append('would record baseline %s in %s' % (version, history.qualified()))
        return True
    with flyway_runner.Lock(conn, history, ctx.params['lock_timeout']):
        with conn.transaction():
            if not history.exists:
                history.create(conn)
            history.add(conn, version, description, 'BASELINE', description, None, 0, True,
                        ctx.params['installed_by'])
    history.read(conn)
    result['actions'].append('recorded baseline %s in %s' % (version, history.qualified()))
    return True


def _row_names(rows):
    return ['%s %s' % (row['type'], row['version'] or row['description']) for row in rows]


def migrate(ctx, conn, schema, result):
    params = ctx.params
    specs = sequence_specs(params['sequences'])
    migrations = Migrations(ctx, conn, schema)
    history = migrations.history
    # Every script is parsed (placeholders too) before anything is written, the baseline included.
    runner = migrations.runner(schema)
    for script in migrations.versioned + migrations.repeatables + [
            c for event in flyway.MIGRATE_EVENTS for c in migrations.callbacks[event]]:
        runner.prepare(script)
    if not history.exists or not history.rows:
        if not flyway_runner.schema_is_empty(conn, schema) and not history.exists:
            if not params['baseline_on_migrate']:
                raise LifeboatError('schema %s has objects but no %s; run action=baseline first, or set '
                                    'baseline_on_migrate: true (with baseline_version) to record that the schema '
                                    'is at that version' % (schema, history.table))
            result['changed'] = _baseline(ctx, conn, history, params['baseline_version'],
                                          params['baseline_description'], result)
            if ctx.check_mode:
                # What migrate would see once the baseline row is there.
                history.rows = [dict(installed_rank=1, version=params['baseline_version'],
                                     description=params['baseline_description'], type='BASELINE',
                                     script=params['baseline_description'], checksum=None, installed_by=None,
                                     installed_on=None, execution_time=0, success=True)]
    entries = migrations.entries()
    problems = [p for p in flyway_history.problems(migrations.versioned, migrations.repeatables, history, entries,
                                                   ignore_pending=True, ignore_missing=params['ignore_missing'])]
    result['problems'] = problems
    if problems:
        migrations.report(result)
        raise LifeboatError('migrate refused: %s%s. Nothing was applied' % (
            problems[0]['message'], ' (and %d more problems: see problems)' % (len(problems) - 1)
            if len(problems) > 1 else ''), problems=problems, migrations=result['migrations'])
    todo = _to_run(migrations, entries)
    if ctx.check_mode:
        result['actions'].extend('would apply %s' % m.label() for m in todo)
        result['sequences'] = sequences_in_check_mode(conn, specs, result['actions'])
        result['changed'] = bool(todo) or any(s.get('changed') for s in result['sequences']) or result['changed']
        migrations.report(result)
        result['pending'] = [m.script for m in todo]
        return
    result['applied'], result['callbacks'] = [], []
    with flyway_runner.Lock(conn, history, params['lock_timeout']):
        if not history.exists:
            with conn.transaction():
                history.create(conn)
        _run_migrations(runner, migrations, todo, result)
        with conn.transaction():
            result['sequences'] = set_sequences(conn, specs, result['actions'])
    history.read(conn)
    migrations.report(result)
    result['changed'] = bool(result['applied']) or any(s['changed'] for s in result['sequences']) or \
        result['changed']


def _to_run(migrations, entries):
    """Pending versioned migrations in version order, then new or changed repeatables."""
    pending = set(e['script'] for e in entries
                  if e['state'] == flyway_history.PENDING and e['installed_rank'] is None)
    return [m for m in migrations.versioned if m.script in pending] + \
        [m for m in migrations.repeatables if m.script in pending]


def _run_migrations(runner, migrations, todo, result):
    callbacks = migrations.callbacks
    try:
        result['callbacks'] += runner.callbacks(callbacks, 'beforeMigrate')
        for migration in todo:
            result['callbacks'] += runner.callbacks(callbacks, 'beforeEachMigrate')
            try:
                result['applied'].append(runner.run(migration))
            except LifeboatError:
                result['callbacks'] += runner.callbacks(callbacks, 'afterEachMigrateError')
                raise
            result['actions'].append('applied %s' % migration.label())
            result['callbacks'] += runner.callbacks(callbacks, 'afterEachMigrate')
        result['callbacks'] += runner.callbacks(callbacks, 'afterMigrate')
    except LifeboatError as exc:
        try:
            result['callbacks'] += runner.callbacks(callbacks, 'afterMigrateError')
        except LifeboatError:
            pass  # the migration's own error is the one to report
        done = [m['script'] for m in result['applied']]
        raise LifeboatError('%s (applied before it: %s)' % (exc.msg, ', '.join(done) or 'none'),
                            applied=result['applied'], callbacks=result['callbacks'])


def info(ctx, conn, schema, result):
    migrations = Migrations(ctx, conn, schema)
    migrations.report(result)


def validate(ctx, conn, schema, result):
    params = ctx.params
    migrations = Migrations(ctx, conn, schema)
    entries = migrations.report(result)
    problems = flyway_history.problems(migrations.versioned, migrations.repeatables, migrations.history, entries,
                                       ignore_pending=params['ignore_pending'],
                                       ignore_missing=params['ignore_missing'])
    result['problems'] = problems
    if problems:
        raise LifeboatError('validate found %d problem(s): %s' % (len(problems), problems[0]['message']),
                            problems=problems, migrations=result['migrations'])
    result['actions'].append('%d migrations validated' % len(entries))


def repair(ctx, conn, schema, result):
    """Flyway's repair: drop failed rows, realign checksums and descriptions with the files."""
    migrations = Migrations(ctx, conn, schema)
    history = migrations.history
    failed, realign = flyway_history.repair_plan(migrations.versioned, history)
    result['repaired'] = dict(
        removed_failed=[dict(version=r['version'], script=r['script']) for r in failed],
        realigned=[dict(version=r['version'], script=r['script'], checksum_before=r['checksum'],
                        checksum=m.checksum) for r, m in realign])
    verb = 'would ' if ctx.check_mode else ''
    result['actions'].extend('%sremove failed %s' % (verb, r['script']) for r in failed)
    result['actions'].extend('%srealign %s to checksum %s' % (verb, r['script'], m.checksum) for r, m in realign)
    result['changed'] = bool(failed or realign)
    if result['changed'] and not ctx.check_mode:
        with flyway_runner.Lock(conn, history, ctx.params['lock_timeout']):
            history.repair(conn, failed, realign)
        history.read(conn)
    if not migrations.repeatables and not migrations.versioned and not history.rows:
        result['actions'].append('nothing to repair: no history and no migrations')
    migrations.report(result)


def smoke(ctx, conn, schema, result):
    if ctx.check_mode:
        # Even rolled back, the write would advance the table's sequences: check mode runs nothing.
        result['smoke'] = dict(statement=ctx.params['smoke_sql'], skipped=True)
        result['actions'].append('would run the smoke statement in a transaction and roll it back')
        return
    result['smoke'] = seed.smoke(conn, ctx.params['smoke_sql'])
    result['actions'].append('smoke statement wrote %d row(s) and was rolled back' % result['smoke']['rowcount'])


ACTIONS = dict(apply=apply, baseline=baseline, migrate=migrate, info=info, validate=validate, repair=repair,
               smoke=smoke, export_schema=export_schema)
