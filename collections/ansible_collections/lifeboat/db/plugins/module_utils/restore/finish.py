# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a restore does to the restored database before it is handed over (in `swap`, before
the swap, so a failure here still leaves the live database untouched):

- grants: seed 003 re-runs `GRANT ALL PRIVILEGES ON ALL TABLES/SEQUENCES IN SCHEMA public TO
  mks_user` by hand after every restore made with --no-acl; `grants` says it once;
- materialized views refreshed (a view dumped WITH NO DATA, or one whose data should reflect
  functions that read the clock);
- sequences repaired: a sequence behind the column it feeds (pg/sequences.py says when) makes the
  next insert fail on a duplicate key (plain dumps taken without a snapshot, rows loaded by hand).
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import (
    behind_sequences, edge_name, furthest, move_to)
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

# What `objects` may name, and the privileges that make sense there. (Not `on`: YAML 1.1 reads an
# unquoted `on:` key as the boolean true.)
GRANT_TARGETS = {
    'tables': ('ALL TABLES IN SCHEMA', ('ALL', 'SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                                        'TRIGGER', 'MAINTAIN')),
    'sequences': ('ALL SEQUENCES IN SCHEMA', ('ALL', 'USAGE', 'SELECT', 'UPDATE')),
    'functions': ('ALL FUNCTIONS IN SCHEMA', ('ALL', 'EXECUTE')),
    'schema': ('SCHEMA', ('ALL', 'USAGE', 'CREATE')),
}


def normalize_grants(grants):
    """Check the `grants` option; returns [{to, privileges: [...], on, schema}] or raises."""
    normalized = []
    for number, grant in enumerate(grants or [], 1):
        if not isinstance(grant, dict) or not grant.get('to'):
            raise LifeboatError('grants item %d must be a dict with at least `to` (a role), e.g. {to: app_user, '
                                'objects: tables, privileges: ALL, schema: public}' % number)
        unknown = sorted(str(key) for key in set(grant) - set(('to', 'objects', 'privileges', 'schema')))
        if unknown:
            raise LifeboatError('grants item %d has unknown key(s) %s; use to, objects, privileges, schema (an '
                                'unquoted on: key reads as True in YAML)' % (number, ', '.join(unknown)))
        on = grant.get('objects', 'tables')
        if on not in GRANT_TARGETS:
            raise LifeboatError('grants item %d: objects must be one of %s, got %r'
                                % (number, ', '.join(sorted(GRANT_TARGETS)), on))
        privileges = grant.get('privileges', 'ALL')
        if isinstance(privileges, str):
            privileges = privileges.split(',')
        privileges = [p.strip().upper() for p in privileges if p.strip()]
        allowed = GRANT_TARGETS[on][1]
        wrong = [p for p in privileges if p not in allowed]
        if wrong or not privileges:
            raise LifeboatError('grants item %d: privileges %s cannot be granted on %s; use %s'
                                % (number, ', '.join(wrong) or '(none)', on, ', '.join(allowed)))
        normalized.append(dict(to=str(grant['to']), objects=on, privileges=privileges,
                               schema=str(grant.get('schema', 'public'))))
    return normalized


def missing_roles(conn, grants):
    """Roles `grants` names that do not exist on the server (checked before anything changes)."""
    names = sorted(set(g['to'] for g in grants) - set(['PUBLIC', 'public']))
    if not names:
        return []
    found = set(r[0] for r in conn.execute('SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)', (names,)))
    return [name for name in names if name not in found]


def apply_grants(conn, grants):
    done = []
    for grant in grants:
        target, dummy = GRANT_TARGETS[grant['objects']]
        grantee = sql.SQL('PUBLIC') if grant['to'].upper() == 'PUBLIC' else sql.Identifier(grant['to'])
        conn.execute(sql.SQL('GRANT {} ON {} {} TO {}').format(
            sql.SQL(', ').join(sql.SQL(p) for p in grant['privileges']), sql.SQL(target),
            sql.Identifier(grant['schema']), grantee))
        done.append('GRANT %s ON %s %s TO %s' % (', '.join(grant['privileges']), target, grant['schema'], grant['to']))
    return done


def refresh_matviews(conn):
    """REFRESH every materialized view, oldest first (one built on another was created after it)."""
    names = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'm' ORDER BY c.oid").fetchall()
    for schema, name in names:
        conn.execute(sql.SQL('REFRESH MATERIALIZED VIEW {}.{}').format(sql.Identifier(schema), sql.Identifier(name)))
    return ['%s.%s' % (schema, name) for schema, name in names]


def repair_sequences(conn):
    """Move every sequence that is behind its column to the column's edge (its largest value, or
    its smallest for a descending sequence; of several columns, the furthest), so that the next
    value is past every row. Returns one entry per sequence and column it was behind."""
    repaired = behind_sequences(conn)
    for regclass, value in furthest((item['regclass'], item['increment'], item[edge_name(item['increment'])[0]])
                                    for item in repaired).items():
        move_to(conn, regclass, value)
    for item in repaired:
        del item['regclass']
    return repaired
