# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running Flyway migrations: each script in its own transaction (or statement by statement when
PostgreSQL allows nothing else), recorded in the history table, placeholders replaced, under
Flyway's own advisory lock so that lifeboat and Flyway never migrate at once."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg import sql_script
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import quoted_key

# Flyway's PostgreSQL lock: "Flyway" in ASCII plus the Java hashCode of the quoted table name.
LOCK_MAGIC = (0x46 << 40) + (0x6C << 32) + (0x79 << 24) + (0x77 << 16) + (0x61 << 8) + 0x79
PLACEHOLDER = re.compile(r'\$\{([^}]+)\}')


def java_hash(text):
    """Java's String.hashCode() (over UTF-16 code units), which Flyway's lock number is built from."""
    units = text.encode('utf-16-be')
    value = 0
    for index in range(0, len(units), 2):
        value = (31 * value + (units[index] << 8 | units[index + 1])) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def lock_number(schema, table):
    return LOCK_MAGIC + java_hash(quoted_key(schema, table))


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
