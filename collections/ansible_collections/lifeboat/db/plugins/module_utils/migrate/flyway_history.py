# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flyway's history table `flyway_schema_history`: reading and writing its rows as Flyway does, and
what they say about each migration file - Flyway's `info` (states) and `validate` (problems).
Pure Python over rows already read, except History's own queries."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.migrate.flyway import version_key
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import quoted_key

HISTORY_TABLE = 'flyway_schema_history'
BASELINE_DESCRIPTION = '<< Flyway Baseline >>'

# States, lower-case versions of Flyway's MigrationState names.
PENDING, SUCCESS, FAILED, IGNORED, MISSING = 'pending', 'success', 'failed', 'ignored', 'missing'
OUTDATED, SUPERSEDED, BASELINE, BELOW_BASELINE = 'outdated', 'superseded', 'baseline', 'below_baseline'
ABOVE_TARGET, FUTURE, OUT_OF_ORDER, DELETED = 'above_target', 'future', 'out_of_order', 'deleted'


class History(object):
    """The rows of flyway_schema_history, read in installed_rank order."""

    COLUMNS = ('installed_rank', 'version', 'description', 'type', 'script', 'checksum', 'installed_by',
               'installed_on', 'execution_time', 'success')

    def __init__(self, schema, table=HISTORY_TABLE):
        self.schema, self.table = schema, table
        self.ident = sql.Identifier(schema, table)
        self.rows = []
        self.exists = False

    def read(self, conn):
        self.exists = conn.execute('SELECT to_regclass(%s) IS NOT NULL', (self.qualified(),)).fetchone()[0]
        self.rows = []
        if self.exists:
            query = sql.SQL('SELECT {} FROM {} ORDER BY installed_rank').format(
                sql.SQL(', ').join(sql.Identifier(c) for c in self.COLUMNS), self.ident)
            self.rows = [dict(zip(self.COLUMNS, row)) for row in conn.execute(query)]
        return self

    def qualified(self):
        return quoted_key(self.schema, self.table)

    def create(self, conn):
        """Flyway's own DDL for PostgreSQL, so Flyway finds the table it would have made."""
        name = self.table
        conn.execute(sql.SQL(
            'CREATE TABLE {} ("installed_rank" INT NOT NULL, "version" VARCHAR(50), '
            '"description" VARCHAR(200) NOT NULL, "type" VARCHAR(20) NOT NULL, "script" VARCHAR(1000) NOT NULL, '
            '"checksum" INTEGER, "installed_by" VARCHAR(100) NOT NULL, '
            '"installed_on" TIMESTAMP NOT NULL DEFAULT now(), "execution_time" INTEGER NOT NULL, '
            '"success" BOOLEAN NOT NULL)').format(self.ident))
        conn.execute(sql.SQL('ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ("installed_rank")').format(
            self.ident, sql.Identifier(name + '_pk')))
        conn.execute(sql.SQL('CREATE INDEX {} ON {} ("success")').format(sql.Identifier(name + '_s_idx'), self.ident))
        self.exists = True

    def add(self, conn, version, description, kind, script, crc, milliseconds, success, installed_by):
        rank = conn.execute(sql.SQL('SELECT coalesce(max(installed_rank), 0) + 1 FROM {}').format(
            self.ident)).fetchone()[0]
        conn.execute(sql.SQL(
            'INSERT INTO {} (installed_rank, version, description, type, script, checksum, installed_by, '
            'execution_time, success) VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, current_user), %s, %s)').format(
                self.ident), (rank, version, description[:200], kind, script[:1000], crc, installed_by,
                              int(milliseconds), success))

    def baseline_row(self):
        return next((row for row in self.rows if row['type'] == 'BASELINE'), None)

    def repair(self, conn, failed, realign):
        """Flyway's repair, in one transaction: failed rows removed, rows realigned with their files."""
        with conn.transaction():
            for row in failed:
                conn.execute(sql.SQL('DELETE FROM {} WHERE installed_rank = %s').format(self.ident),
                             (row['installed_rank'],))
            for row, migration in realign:
                conn.execute(sql.SQL('UPDATE {} SET checksum = %s, description = %s WHERE installed_rank = %s')
                             .format(self.ident), (migration.checksum, migration.description[:200],
                                                   row['installed_rank']))

def states(versioned, repeatables, history, target=None, out_of_order=False):
    """Flyway's `info`: every applied row and every resolved file, with its state.

    Returns a list of dicts in Flyway's order: applied rows by installed_rank, then what is still
    to run in the order migrate would run it.
    """
    # Versions are parsed in this order so a bad one is named as before: target, baseline, history.
    target_key = None if target in (None, 'latest') else version_key(target, 'target')
    baseline = history.baseline_row()
    baseline_key = version_key(baseline['version'], 'baseline row') if baseline and baseline['version'] else None
    applied_keys = [version_key(row['version'], 'history') for row in history.rows
                    if row['version'] is not None and row['success'] and row['type'] not in ('DELETE', 'SCHEMA')]
    highest = max(applied_keys) if applied_keys else None
    latest_repeatable = dict((row['description'], row['installed_rank']) for row in history.rows
                             if row['version'] is None and row['type'] != 'DELETE')
    entries, applied_versions = _applied_entries(versioned, repeatables, history, latest_repeatable)
    for migration in versioned:
        if migration.key not in applied_versions:
            state = _unapplied_state(migration.key, baseline_key, target_key, highest, out_of_order)
            entries.append(_resolved_entry(migration, state))
    for migration in repeatables:
        if _repeatable_due(migration, history, latest_repeatable):
            entries.append(_resolved_entry(migration, PENDING))
    return entries


def _applied_entries(versioned, repeatables, history, latest_repeatable):
    """(entries, versions accounted for): the history's rows, deleted ones left out, with their states."""
    by_key = dict((m.key, m) for m in versioned)
    by_description = dict((m.description, m) for m in repeatables)
    highest_resolved = max(by_key) if by_key else None
    deleted = set(row['version'] for row in history.rows if row['type'] == 'DELETE')
    entries, applied_versions, seen_high = [], set(), None
    for row in history.rows:
        if row['type'] == 'DELETE':
            continue
        entry = _applied_entry(row)
        if row['type'] in ('BASELINE', 'SCHEMA'):
            entry['state'] = BASELINE if row['type'] == 'BASELINE' else SUCCESS
            entry['category'] = 'baseline' if row['type'] == 'BASELINE' else 'schema'
            if row['type'] == 'BASELINE' and row['version']:
                applied_versions.add(version_key(row['version'], 'history'))  # a file of that version is it
        elif row['version'] is not None:
            key = version_key(row['version'], 'history')
            applied_versions.add(key)
            entry['state'] = _versioned_state(row, key, deleted, by_key, highest_resolved, seen_high)
            if row['success']:
                seen_high = key if seen_high is None or key > seen_high else seen_high
        else:
            entry['category'] = 'repeatable'
            entry['state'] = _repeatable_state(row, by_description.get(row['description']), latest_repeatable)
        entries.append(entry)
    return entries, applied_versions


def _applied_entry(row):
    return dict(version=row['version'], description=row['description'], type=row['type'], script=row['script'],
                checksum=row['checksum'], installed_rank=row['installed_rank'],
                installed_on=str(row['installed_on']), installed_by=row['installed_by'],
                execution_time=row['execution_time'], category='versioned')


def _versioned_state(row, key, deleted, by_key, highest_resolved, seen_high):
    """An applied versioned row; `seen_high` is the highest version applied before it."""
    if row['version'] in deleted:
        return DELETED
    if not row['success']:
        return FAILED
    if key not in by_key:
        return FUTURE if highest_resolved is None or key > highest_resolved else MISSING
    if seen_high is not None and key < seen_high:
        return OUT_OF_ORDER
    return SUCCESS


def _repeatable_state(row, resolved, latest_repeatable):
    """An applied repeatable row; `resolved` is the file of its description, or None."""
    if not row['success']:
        return FAILED
    if latest_repeatable.get(row['description']) != row['installed_rank']:
        return SUPERSEDED
    if resolved is None:
        return MISSING
    if resolved.checksum != row['checksum']:
        return OUTDATED
    return SUCCESS


def _unapplied_state(key, baseline_key, target_key, highest, out_of_order):
    """A versioned file no row accounts for."""
    if baseline_key is not None and key <= baseline_key:
        return BELOW_BASELINE
    if target_key is not None and key > target_key:
        return ABOVE_TARGET
    if highest is not None and key < highest and not out_of_order:
        return IGNORED
    return PENDING


def _repeatable_due(migration, history, latest_repeatable):
    """A repeatable runs again when its latest row failed or was of other contents (or there is none)."""
    rank = latest_repeatable.get(migration.description)
    row = next((r for r in history.rows if r['installed_rank'] == rank), None)
    return row is None or not row['success'] or row['checksum'] != migration.checksum


def _resolved_entry(migration, state):
    return dict(version=migration.version, description=migration.description, type='SQL', script=migration.script,
                checksum=migration.checksum, installed_rank=None, installed_on=None, installed_by=None,
                execution_time=None, category=migration.category, state=state)


def problems(versioned, repeatables, history, entries, ignore_pending=False, ignore_missing=False):
    """What Flyway's validate reports: [{kind, version, script, message}], empty when valid."""
    by_key = dict((m.key, m) for m in versioned)
    found = []

    def add(kind, entry, message):
        found.append(dict(kind=kind, version=entry['version'], script=entry['script'], message=message))
    for entry in entries:
        name = _name(entry)
        if entry['state'] == FAILED:
            add('failed', entry, '%s failed; remove what it half did, then run action=repair' % name)
        elif entry['state'] == MISSING:
            if not ignore_missing:
                add('missing', entry, '%s was applied but its file is not in the migrations folder; restore the '
                                      'file or set ignore_missing: true' % name)
        elif entry['state'] in (SUCCESS, OUT_OF_ORDER) and entry['category'] == 'versioned':
            migration = by_key.get(version_key(entry['version'], 'history'))
            if migration is not None and migration.checksum != entry['checksum']:
                add('checksum', entry, '%s checksum mismatch: applied %s, file %s; the file was changed after it '
                                       'ran - restore it, or run action=repair to accept the file as it is now'
                    % (name, entry['checksum'], migration.checksum))
            elif migration is not None and migration.description != entry['description']:
                add('description', entry, '%s description mismatch: applied %r, file %r; run action=repair'
                    % (name, entry['description'], migration.description))
        elif entry['state'] == IGNORED:
            add('ignored', entry, '%s is older than the newest applied version and was never applied; set '
                                  'out_of_order: true to apply it' % name)
        elif entry['state'] == PENDING and not ignore_pending:  # an outdated repeatable is pending too
            add('pending', entry, '%s is not applied yet; run action=migrate, or set ignore_pending: true'
                % name)
    return found


def _name(entry):
    return ('V%s (%s)' % (entry['version'], entry['script'])) if entry['version'] else entry['script']


def repair_plan(versioned, history):
    """(failed rows, [(row, file)] to realign): what Flyway's repair changes. A changed repeatable
    is re-run by migrate, not realigned."""
    by_key = dict((m.key, m) for m in versioned)
    failed = [row for row in history.rows if not row['success']]
    realign = []
    for row in history.rows:
        if not row['success'] or row['type'] != 'SQL' or row['version'] is None:
            continue
        migration = by_key.get(version_key(row['version'], 'history'))
        if migration is not None and (migration.checksum != row['checksum']
                                      or migration.description != row['description']):
            realign.append((row, migration))
    return failed, realign
