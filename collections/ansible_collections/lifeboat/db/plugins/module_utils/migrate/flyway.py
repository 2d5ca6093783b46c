# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL migrations the way Flyway runs them, so that one database can be managed by either tool.

Compatibility lives in four things, each kept exactly as Flyway has it:
- file names: `V<version>__<description>.sql` (version parts split on `.` or `_`, compared as
  numbers, trailing zero parts ignored), `R__<description>.sql`, callbacks `<event>.sql` and
  `<event>__<description>.sql`;
- the checksum: CRC32 over the file's lines in UTF-8, without their line endings, a leading BOM
  stripped, stored as a signed 32-bit integer (so line endings never change it);
- the history table `flyway_schema_history`: the same columns, types, primary key and index, and
  the same rows (`SQL`, `BASELINE` with `<< Flyway Baseline >>`, `success` false for a failed
  non-transactional migration);
- the lock: the same session advisory lock number, so lifeboat and Flyway never migrate at once.
Resolving files and reading history is pure Python (`resolve`, `states`); the rest talks to the
server through psycopg.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import time
import zlib

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg import sql_script

HISTORY_TABLE = 'flyway_schema_history'
BASELINE_DESCRIPTION = '<< Flyway Baseline >>'
MIGRATE_EVENTS = ('beforeMigrate', 'beforeEachMigrate', 'afterEachMigrate', 'afterEachMigrateError',
                  'afterMigrate', 'afterMigrateError')
OTHER_EVENTS = ('beforeValidate', 'afterValidate', 'afterValidateError', 'beforeBaseline', 'afterBaseline',
                'afterBaselineError', 'beforeRepair', 'afterRepair', 'afterRepairError', 'beforeInfo', 'afterInfo',
                'afterInfoError', 'beforeClean', 'afterClean', 'afterCleanError', 'beforeEachMigrateStatement',
                'afterEachMigrateStatement', 'afterEachMigrateStatementError', 'beforeUndo', 'afterUndo',
                'beforeEachUndo', 'afterEachUndo', 'afterUndoError', 'afterMigrateApplied', 'afterVersioned',
                'beforeConnect', 'afterConnect', 'beforeEachUndoStatement', 'afterEachUndoStatement',
                'createSchema', 'beforeCreateSchema')
# Flyway's PostgreSQL lock: "Flyway" in ASCII plus the Java hashCode of the quoted table name.
LOCK_MAGIC = (0x46 << 40) + (0x6C << 32) + (0x79 << 24) + (0x77 << 16) + (0x61 << 8) + 0x79
VERSIONED_NAME = re.compile(r'^V([^_]+(?:_[^_]+)*?)__(.*)\.sql$')
REPEATABLE_NAME = re.compile(r'^R__(.+)\.sql$')
PLACEHOLDER = re.compile(r'\$\{([^}]+)\}')

# States, lower-case versions of Flyway's MigrationState names.
PENDING, SUCCESS, FAILED, IGNORED, MISSING = 'pending', 'success', 'failed', 'ignored', 'missing'
OUTDATED, SUPERSEDED, BASELINE, BELOW_BASELINE = 'outdated', 'superseded', 'baseline', 'below_baseline'
ABOVE_TARGET, FUTURE, OUT_OF_ORDER, DELETED = 'above_target', 'future', 'out_of_order', 'deleted'


def checksum(text):
    """Flyway's checksum of a script's text (already BOM-stripped and decoded)."""
    crc = 0
    # Java's readLine() ends lines at \n, \r or \r\n only (str.splitlines() knows more endings).
    lines = re.split(r'\r\n|\r|\n', text)
    if lines[-1] == '':
        lines.pop()
    for line in lines:
        crc = zlib.crc32(line.encode('utf-8'), crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def java_hash(text):
    """Java's String.hashCode() (over UTF-16 code units), which Flyway's lock number is built from."""
    units = text.encode('utf-16-be')
    value = 0
    for index in range(0, len(units), 2):
        value = (31 * value + (units[index] << 8 | units[index + 1])) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def lock_number(schema, table):
    return LOCK_MAGIC + java_hash('"%s"."%s"' % (schema.replace('"', '""'), table.replace('"', '""')))


def version_key(text, where):
    """The comparable form of a version: numbers, trailing zero parts dropped (1.0 == 1)."""
    parts = re.split(r'[._]', text)
    if not text or not all(part.isdigit() for part in parts):
        raise LifeboatError('%s: version %r must be numbers separated by . or _ (e.g. V2_1__add_index.sql)'
                            % (where, text))
    numbers = [int(part) for part in parts]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


class Migration(object):
    """One resolved file: a versioned or repeatable migration, or a callback."""

    def __init__(self, path, script, category, version=None, description='', event=None):
        self.path = path
        self.script = script            # relative to its location, as Flyway records it
        self.category = category        # 'versioned', 'repeatable' or 'callback'
        self.version = version          # display text, e.g. '0002' or '1.1'
        self.key = version_key(version, script) if version is not None else None
        self.description = description
        self.event = event
        self.text = sql_script.read_script(path)
        self.checksum = checksum(self.text)
        self.in_transaction = _script_config(path)

    def label(self):
        return 'V%s %s' % (self.version, self.script) if self.version is not None else self.script


def _script_config(path):
    """Flyway's per-script config file `<script>.conf`: executeInTransaction=true|false, or None."""
    conf = path + '.conf'
    if not os.path.exists(conf):
        return None
    with open(conf) as handle:
        for line in handle:
            key, _, value = line.partition('=')
            if key.strip() == 'executeInTransaction':
                if value.strip().lower() not in ('true', 'false'):
                    raise LifeboatError('%s: executeInTransaction must be true or false, got %r'
                                        % (conf, value.strip()))
                return value.strip().lower() == 'true'
    return None


def resolve(locations):
    """Every migration and callback under `locations` (folders on the target, searched recursively).

    Returns (versioned sorted by version, repeatables sorted by description, callbacks by event).
    A file that is neither is an error, as it is with Flyway's validateMigrationNaming: a typo in
    a migration's name must not make it silently never run.
    """
    versioned, repeatables, callbacks = [], [], dict((event, []) for event in MIGRATE_EVENTS)
    for location in locations:
        if not os.path.isdir(location):
            raise LifeboatError('migrations folder %s does not exist on the target host; give the folder that holds '
                                'the V<version>__<description>.sql files' % location)
        for folder, dirs, files in os.walk(location):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith('.sql'):
                    continue
                path = os.path.join(folder, name)
                script = os.path.relpath(path, location).replace(os.sep, '/')
                migration = _classify(path, script, name)
                if migration is None:
                    continue
                if migration.category == 'versioned':
                    versioned.append(migration)
                elif migration.category == 'repeatable':
                    repeatables.append(migration)
                else:
                    callbacks[migration.event].append(migration)
    _refuse_duplicates(versioned, lambda m: m.key, 'version')
    _refuse_duplicates(repeatables, lambda m: m.description, 'repeatable description')
    versioned.sort(key=lambda m: m.key)
    repeatables.sort(key=lambda m: m.description)
    for event in callbacks:
        callbacks[event].sort(key=lambda m: m.script)
    return versioned, repeatables, callbacks


def _classify(path, script, name):
    match = VERSIONED_NAME.match(name)
    if match:
        return Migration(path, script, 'versioned', version=match.group(1).replace('_', '.'),
                         description=match.group(2).replace('_', ' '))
    match = REPEATABLE_NAME.match(name)
    if match:
        return Migration(path, script, 'repeatable', description=match.group(1).replace('_', ' '))
    event, _, description = name[:-len('.sql')].partition('__')
    if event in MIGRATE_EVENTS:
        return Migration(path, script, 'callback', description=description.replace('_', ' '), event=event)
    if event in OTHER_EVENTS:
        return None  # a Flyway callback for an action lifeboat does not run; Flyway's own runs stay intact
    raise LifeboatError('%s is not a migration name: use V<version>__<description>.sql, R__<description>.sql '
                        'or a callback such as afterMigrate.sql (e.g. V2__add_index.sql), or move the file out '
                        'of the migrations folder' % script)


def _refuse_duplicates(migrations, key, what):
    seen = {}
    for migration in migrations:
        other = seen.setdefault(key(migration), migration)
        if other is not migration:
            raise LifeboatError('%s and %s have the same %s; rename one (Flyway refuses this too)'
                                % (other.script, migration.script, what))


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
        return '"%s"."%s"' % (self.schema.replace('"', '""'), self.table.replace('"', '""'))

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


def states(versioned, repeatables, history, target=None, out_of_order=False):
    """Flyway's `info`: every applied row and every resolved file, with its state.

    Returns a list of dicts in Flyway's order: applied rows by installed_rank, then what is still
    to run in the order migrate would run it.
    """
    by_key = dict((m.key, m) for m in versioned)
    by_description = dict((m.description, m) for m in repeatables)
    target_key = None if target in (None, 'latest') else version_key(target, 'target')
    baseline = history.baseline_row()
    baseline_key = version_key(baseline['version'], 'baseline row') if baseline and baseline['version'] else None
    deleted = set(row['version'] for row in history.rows if row['type'] == 'DELETE')
    applied_keys = [version_key(row['version'], 'history') for row in history.rows
                    if row['version'] is not None and row['success'] and row['type'] not in ('DELETE', 'SCHEMA')]
    highest = max(applied_keys) if applied_keys else None
    highest_resolved = max(by_key) if by_key else None
    latest_repeatable = {}
    for row in history.rows:
        if row['version'] is None and row['type'] != 'DELETE':
            latest_repeatable[row['description']] = row['installed_rank']

    entries, applied_versions, seen_high = [], set(), None
    for row in history.rows:
        if row['type'] == 'DELETE':
            continue
        entry = dict(version=row['version'], description=row['description'], type=row['type'],
                     script=row['script'], checksum=row['checksum'], installed_rank=row['installed_rank'],
                     installed_on=str(row['installed_on']), installed_by=row['installed_by'],
                     execution_time=row['execution_time'], category='versioned')
        if row['type'] in ('BASELINE', 'SCHEMA'):
            entry['state'] = BASELINE if row['type'] == 'BASELINE' else SUCCESS
            entry['category'] = 'baseline' if row['type'] == 'BASELINE' else 'schema'
            if row['type'] == 'BASELINE' and row['version']:
                applied_versions.add(version_key(row['version'], 'history'))  # a file of that version is it
        elif row['version'] is not None:
            key = version_key(row['version'], 'history')
            applied_versions.add(key)
            if row['version'] in deleted:
                entry['state'] = DELETED
            elif not row['success']:
                entry['state'] = FAILED
            elif key not in by_key:
                entry['state'] = FUTURE if highest_resolved is None or key > highest_resolved else MISSING
            elif seen_high is not None and key < seen_high:
                entry['state'] = OUT_OF_ORDER
            else:
                entry['state'] = SUCCESS
            if row['success']:
                seen_high = key if seen_high is None or key > seen_high else seen_high
        else:
            entry['category'] = 'repeatable'
            resolved = by_description.get(row['description'])
            if not row['success']:
                entry['state'] = FAILED
            elif latest_repeatable.get(row['description']) != row['installed_rank']:
                entry['state'] = SUPERSEDED
            elif resolved is None:
                entry['state'] = MISSING
            elif resolved.checksum != row['checksum']:
                entry['state'] = OUTDATED
            else:
                entry['state'] = SUCCESS
        entries.append(entry)

    for migration in versioned:
        if migration.key in applied_versions:
            continue
        if baseline_key is not None and migration.key <= baseline_key:
            state = BELOW_BASELINE
        elif target_key is not None and migration.key > target_key:
            state = ABOVE_TARGET
        elif highest is not None and migration.key < highest and not out_of_order:
            state = IGNORED
        else:
            state = PENDING
        entries.append(_resolved_entry(migration, state))
    for migration in repeatables:
        rank = latest_repeatable.get(migration.description)
        row = next((r for r in history.rows if r['installed_rank'] == rank), None)
        if row is None or not row['success'] or row['checksum'] != migration.checksum:
            entries.append(_resolved_entry(migration, PENDING))
    return entries


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


class Runner(object):
    """Runs resolved scripts on one connection and records them in the history table."""

    def __init__(self, conn, history, placeholders, installed_by=None, database=None, search_path=None):
        self.conn = conn
        self.history = history
        self.placeholders = placeholders
        self.installed_by = installed_by
        self.database = database
        # What every script starts with (the schema first when one is set, as Flyway does), not
        # whatever the previous script left behind.
        self.search_path = search_path if search_path is not None else \
            conn.execute("SELECT current_setting('search_path')").fetchone()[0]
        self.prepared = {}

    def prepare(self, migration):
        """(statements, in a transaction?) of a script; called for every script before the first runs,
        so a file that does not parse stops the migrate before anything changed."""
        if migration.path not in self.prepared:
            statements = self.statements(migration)
            self.prepared[migration.path] = (statements, self.in_transaction(migration, statements))
        return self.prepared[migration.path]

    def statements(self, migration):
        """Parse with placeholders replaced (the checksum is of the file as written, as in Flyway)."""
        text = self.replace(migration.text, migration.script) if self.placeholders is not None else migration.text
        statements = sql_script.parse(text, migration.script)
        for statement in statements:
            if statement.control:
                raise LifeboatError('%s line %d: %s; a migration runs in its own transaction, so remove the '
                                    'transaction control statement' % (migration.script, statement.line,
                                                                       statement.summary(60)))
        return statements

    def replace(self, text, script):
        values = dict(self.placeholders)
        values.update({'flyway:defaultSchema': self.history.schema, 'flyway:table': self.history.table,
                       'flyway:filename': os.path.basename(script), 'flyway:database': self.database or '',
                       'flyway:user': self.installed_by or self.conn.info.user,
                       'flyway:timestamp': time.strftime('%Y-%m-%d %H:%M:%S')})

        def value(match):
            name = match.group(1)
            if name not in values:
                raise LifeboatError('%s uses placeholder ${%s} but no value is given; add it to placeholders, or '
                                    'set placeholder_replacement: false' % (script, name))
            return str(values[name])
        return PLACEHOLDER.sub(value, text)

    def in_transaction(self, migration, statements):
        """Whether to wrap the migration in a transaction; a mix PostgreSQL cannot honour is an error."""
        outside = [s for s in statements if not s.transactional]
        if migration.in_transaction is not None:
            if migration.in_transaction and outside:
                raise LifeboatError('%s line %d: %s cannot run inside a transaction, but %s.conf says '
                                    'executeInTransaction=true' % (migration.script, outside[0].line,
                                                                   outside[0].summary(60), migration.script))
            return migration.in_transaction
        if outside and len(outside) != len(statements):
            raise LifeboatError('%s mixes statements that cannot run in a transaction (line %d: %s) with others; '
                                'move it into a migration of its own (Flyway refuses this mix too)'
                                % (migration.script, outside[0].line, outside[0].summary(60)))
        return not outside

    def run(self, migration, record=True):
        """Apply one script; returns its history entry. Raises LifeboatError after recording a failure."""
        statements, transactional = self.prepare(migration)
        kind = 'SQL'
        self.restore_session()
        started = time.monotonic()
        try:
            if transactional:
                with self.conn.transaction():
                    sql_script.run_all(self.conn, statements, migration.script)
                    if record:
                        self._record(migration, kind, started, True)
            else:
                # Autocommit, statement by statement: PostgreSQL allows nothing else for these. A
                # failure half-way is recorded as failed, so validate and repair see it, as in Flyway.
                sql_script.run_all(self.conn, statements, migration.script)
                if record:
                    self._record(migration, kind, started, True)
        except LifeboatError as exc:
            if record and not transactional:
                self._record_failure(migration, kind, started)
            raise LifeboatError(exc.msg + ('' if transactional else '; %s is recorded as failed in %s: undo what it '
                                                                     'did, fix the file, then run action=repair'
                                           % (migration.script, self.history.table)))
        finally:
            self.restore_session()
        return dict(version=migration.version, description=migration.description, script=migration.script,
                    checksum=migration.checksum, transactional=transactional, statements=len(statements),
                    execution_time=int((time.monotonic() - started) * 1000))

    def _record(self, migration, kind, started, success):
        self.history.add(self.conn, migration.version, migration.description, kind, migration.script,
                         migration.checksum, (time.monotonic() - started) * 1000, success, self.installed_by)

    def _record_failure(self, migration, kind, started):
        try:
            if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self.conn.rollback()
            with self.conn.transaction():
                self._record(migration, kind, started, False)
        except psycopg.Error as exc:
            raise LifeboatError('%s failed and could not be recorded as failed in %s: %s'
                                % (migration.script, self.history.table, first_line(exc)))

    def restore_session(self):
        """Before the next script: no transaction left open, the session as it was."""
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.conn.rollback()
        sql_script.reset_session(self.conn, self.search_path)

    def callbacks(self, callbacks, event):
        ran = []
        for callback in callbacks.get(event, []):
            self.run(callback, record=False)
            ran.append(callback.script)
        return ran


def schema_is_empty(conn, schema):
    """Flyway's test before it creates a history table: no relation, routine or type in the schema."""
    query = ('SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace '
             'WHERE n.nspname = %(s)s) AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n '
             'ON n.oid = p.pronamespace WHERE n.nspname = %(s)s) AND NOT EXISTS (SELECT 1 FROM pg_type t '
             'JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %(s)s AND t.typtype IN '
             "('e', 'd', 'r', 'm') )")
    return conn.execute(query, dict(s=schema)).fetchone()[0]


class Lock(object):
    """Flyway's session advisory lock: wait for a running migration (lifeboat's or Flyway's) to end."""

    def __init__(self, conn, history, timeout):
        self.conn, self.number, self.timeout = conn, lock_number(history.schema, history.table), timeout

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        while not self.conn.execute('SELECT pg_try_advisory_lock(%s)', (self.number,)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise LifeboatError('another migration (lifeboat or Flyway) holds the migration lock %d for more '
                                    'than %d s; wait for it to finish, or raise lock_timeout' % (self.number,
                                                                                                self.timeout))
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.conn.rollback()
        self.conn.execute('SELECT pg_advisory_unlock(%s)', (self.number,))
