# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed 000's baseline steps other than migrations: reset a schema, apply schema and seed files,
set sequences, export a schema-only dump, and a write smoke test that leaves nothing behind.

`apply` runs in ONE transaction: the reset, every schema file, every seed file and the sequence
settings commit together or not at all. So a schema file that fails half-way after a reset
leaves the old schema and its rows exactly as they were; "keep the previous state until the new
one is proven" costs nothing here because PostgreSQL's DDL is transactional.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import time

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import parse_column
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import psycopg, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import next_value
from ansible_collections.lifeboat.db.plugins.module_utils.pg import sql_script

SEED_TABLE = 'lifeboat_seed_history'
SYSTEM_SCHEMAS = ('pg_catalog', 'information_schema', 'pg_toast')
DEFAULT_ACL_OBJECTS = dict(r='TABLES', S='SEQUENCES', f='FUNCTIONS', T='TYPES')
# pg_dump 17.6+ writes a random key on these lines of every dump; a new dump of the same schema
# must not count as a changed file.
RESTRICT_LINES = ('\\restrict', '\\unrestrict')


class ScriptFile(object):
    """A schema or seed file, read and parsed before anything touches the database."""

    def __init__(self, kind, path):
        self.kind, self.path, self.name = kind, path, os.path.basename(path)
        self.text = sql_script.read_script(path)
        self.checksum = hashlib.sha256(''.join(
            line for line in self.text.splitlines(True) if not line.startswith(RESTRICT_LINES)).encode('utf-8')).hexdigest()
        self.statements = [s for s in sql_script.parse(self.text, self.name) if s.control != 'begin'
                           and s.control != 'commit']
        for statement in self.statements:
            if statement.control == 'rollback':
                raise LifeboatError('%s line %d: ROLLBACK would undo the file; remove it' % (self.name, statement.line))
            if not statement.transactional:
                raise LifeboatError('%s line %d: %s cannot run inside the one transaction a %s file is applied in; '
                                    'drop CONCURRENTLY (the tables are new) or move it into a migration of its own'
                                    % (self.name, statement.line, statement.summary(60), self.kind))


def load_files(kind, paths):
    files = [ScriptFile(kind, path) for path in paths or []]
    names = [f.name for f in files]
    for name in set(names):
        if names.count(name) > 1:
            raise LifeboatError('two %s files are named %s; the history keys files by name, so rename one'
                                % (kind, name))
    return files


def describe_schema(conn, schema):
    """What a reset must put back (owner, grants, comment, default privileges) and what it drops."""
    row = conn.execute(
        'SELECT n.oid, pg_get_userbyid(n.nspowner), obj_description(n.oid, %s), '
        "(SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p')), "
        "(SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c WHERE c.relnamespace = n.oid "
        "AND c.relkind = 'r'), (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid) "
        'FROM pg_namespace n WHERE n.nspname = %s', ('pg_namespace', schema)).fetchone()
    if row is None:
        return None
    oid, owner, comment, tables, rows, relations = row
    grants = [dict(grantee=g, privilege=p, grantable=o) for g, p, o in conn.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, "
        'a.is_grantable FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.oid = %s ORDER BY 1, 2', (oid,))]
    defaults = [dict(role=r, objects=DEFAULT_ACL_OBJECTS.get(t, t), grantee=g, privilege=p, grantable=o)
                for r, t, g, p, o in conn.execute(
        "SELECT pg_get_userbyid(d.defaclrole), d.defaclobjtype, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE "
        'pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable FROM pg_default_acl d, '
        'aclexplode(d.defaclacl) a WHERE d.defaclnamespace = %s ORDER BY 1, 2, 3, 4', (oid,))]
    return dict(schema=schema, owner=owner, comment=comment, grants=grants, default_privileges=defaults,
                tables=tables, estimated_rows=int(rows), relations=relations)


def reset_schema(conn, schema):
    """DROP SCHEMA ... CASCADE and CREATE it again as it was (owner, grants, comment, default privileges).

    Runs inside the caller's transaction. The new schema's grants are compared with the old ones
    before returning; a difference raises, so the caller's rollback keeps the old schema.
    """
    if schema in SYSTEM_SCHEMAS or schema.startswith('pg_'):
        raise LifeboatError('reset_schema %s is a system schema; name a schema of your own' % schema)
    before = describe_schema(conn, schema)
    ident = sql.Identifier(schema)
    if before is None:
        conn.execute(sql.SQL('CREATE SCHEMA {}').format(ident))
        return dict(schema=schema, existed=False)
    conn.execute(sql.SQL('DROP SCHEMA {} CASCADE').format(ident))
    conn.execute(sql.SQL('CREATE SCHEMA {} AUTHORIZATION {}').format(ident, _role(before['owner'])))
    if before['grants']:
        # A schema made with AUTHORIZATION starts with the default ACL; the old ACL replaces it
        # entirely, owner entries included (an owner may have revoked rights from itself).
        conn.execute(sql.SQL('REVOKE ALL ON SCHEMA {} FROM {}').format(ident, _role(before['owner'])))
    for grant in before['grants']:
        conn.execute(sql.SQL('GRANT {} ON SCHEMA {} TO {}{}').format(
            sql.SQL(grant['privilege']), ident, _role(grant['grantee']),
            sql.SQL(' WITH GRANT OPTION' if grant['grantable'] else '')))
    if before['comment'] is not None:
        conn.execute(sql.SQL('COMMENT ON SCHEMA {} IS {}').format(ident, sql.Literal(before['comment'])))
    for grant in before['default_privileges']:
        conn.execute(sql.SQL('ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT {} ON {} TO {}{}').format(
            _role(grant['role']), ident, sql.SQL(grant['privilege']), sql.SQL(grant['objects']),
            _role(grant['grantee']), sql.SQL(' WITH GRANT OPTION' if grant['grantable'] else '')))
    after = describe_schema(conn, schema)
    for key in ('owner', 'comment', 'grants', 'default_privileges'):
        if after[key] != before[key]:
            raise LifeboatError('reset_schema %s could not restore its %s (before %r, after %r); nothing was '
                                'changed' % (schema, key.replace('_', ' '), before[key], after[key]))
    return dict(before, existed=True)


def _role(name):
    return sql.SQL('PUBLIC') if name == 'PUBLIC' else sql.Identifier(name)


class SeedHistory(object):
    """`<schema>.lifeboat_seed_history`: which schema and seed files were applied, with their sha256."""

    def __init__(self, schema):
        self.schema = schema
        self.ident = sql.Identifier(schema, SEED_TABLE)

    def applied(self, conn):
        """{(kind, name): row} or {} when the table is not there (yet)."""
        exists = conn.execute('SELECT to_regclass(%s) IS NOT NULL', ('%s.%s' % (
            sql.Identifier(self.schema).as_string(conn), SEED_TABLE),)).fetchone()[0]
        if not exists:
            return {}
        query = sql.SQL('SELECT kind, script, checksum, applied_on FROM {}').format(self.ident)
        return dict(((k, s), dict(checksum=c, applied_on=str(a))) for k, s, c, a in conn.execute(query))

    def record(self, conn, script, statements, milliseconds):
        conn.execute(sql.SQL(
            'CREATE TABLE IF NOT EXISTS {} (kind text NOT NULL, script text NOT NULL, checksum text NOT NULL, '
            'statements integer NOT NULL, applied_by text NOT NULL DEFAULT current_user, '
            'applied_on timestamptz NOT NULL DEFAULT now(), execution_ms integer NOT NULL, '
            'PRIMARY KEY (kind, script))').format(self.ident))
        conn.execute(sql.SQL(
            'INSERT INTO {} (kind, script, checksum, statements, execution_ms) VALUES (%s, %s, %s, %s, %s) '
            'ON CONFLICT (kind, script) DO UPDATE SET checksum = EXCLUDED.checksum, statements = '
            'EXCLUDED.statements, applied_by = current_user, applied_on = now(), execution_ms = '
            'EXCLUDED.execution_ms').format(self.ident),
            (script.kind, script.name, script.checksum, statements, int(milliseconds)))


def plan_files(files, applied, reapply_changed, reset):
    """(file, status) for each file: apply (new), unchanged, changed (kept, reported) or reapply."""
    plan = []
    for script in files:
        previous = None if reset else applied.get((script.kind, script.name))
        if previous is None:
            status = 'apply'
        elif previous['checksum'] == script.checksum:
            status = 'unchanged'
        else:
            status = 'reapply' if reapply_changed else 'changed'
        plan.append((script, status))
    return plan


def run_file(conn, script, search_path):
    """Apply one file inside the caller's transaction; its session settings do not outlive it."""
    started = time.monotonic()
    sql_script.run_all(conn, script.statements, script.name)
    sql_script.reset_session(conn, search_path)
    return (time.monotonic() - started) * 1000


def sequence_plan(conn, spec):
    """What setting one sequence means: {name, last_value, is_called, wanted_value, wanted_called}."""
    name = spec['name']
    found = conn.execute("SELECT c.oid::regclass::text FROM pg_class c WHERE c.oid = to_regclass(%s) AND "
                         "c.relkind = 'S'", (name,)).fetchone()
    if found is None:
        raise LifeboatError('sequence %s does not exist (or is not a sequence); check its name (schema.name) or '
                            'create it in a schema or seed file' % name)
    regclass = found[0]
    last_value, is_called, start, increment = conn.execute(
        sql.SQL('SELECT s.last_value, s.is_called, q.seqstart, q.seqincrement FROM {} s, pg_sequence q '
                'WHERE q.seqrelid = %s::regclass')
        .format(sql.SQL(regclass)), (regclass,)).fetchone()
    if spec.get('value') is not None:
        wanted, called = int(spec['value']), True
    else:
        table, column = _column(spec['column'])
        top = conn.execute(sql.SQL('SELECT max({}) FROM {}').format(sql.Identifier(column), table)).fetchone()[0]
        # max(column) used: the next value follows it; an empty table starts the sequence afresh.
        wanted, called = (int(top), True) if top is not None else (start, False)
    return dict(name=regclass, last_value=last_value, is_called=is_called, value=wanted, is_called_after=called,
                next_value=next_value(wanted, called, increment), changed=(last_value, is_called) != (wanted, called))


def _column(text):
    schema, table, column = parse_column(text)
    return sql.Identifier(*[part for part in (schema, table) if part is not None]), column


def set_sequence(conn, plan):
    conn.execute('SELECT setval(%s::regclass, %s, %s)', (plan['name'], plan['value'], plan['is_called_after']))


def smoke(conn, statement_text):
    """Run a write statement in a transaction that is always rolled back: proves the write path
    (permissions, constraints, triggers) and leaves no row behind."""
    statements = sql_script.parse(statement_text, 'smoke_sql')
    if len(statements) != 1:
        raise LifeboatError('smoke_sql must be exactly one statement, got %d' % len(statements))
    statement = statements[0]
    rows, rowcount = [], 0
    try:
        with conn.transaction(force_rollback=True):
            with conn.cursor() as cursor:
                sql_script.execute(cursor, statement, 'smoke_sql')
                rowcount = cursor.rowcount
                if cursor.description:
                    rows = [[None if v is None else str(v) for v in row] for row in cursor.fetchmany(5)]
    except psycopg.Error as exc:  # raised by the rollback itself, not by the statement
        raise LifeboatError('smoke_sql could not be rolled back: %s' % exc)
    if rowcount < 1:
        raise LifeboatError('smoke_sql ran but wrote no row (%s); it must insert or update at least one row'
                            % statement.summary(80))
    return dict(statement=statement.summary(), rowcount=rowcount, rows=rows, rolled_back=True)
