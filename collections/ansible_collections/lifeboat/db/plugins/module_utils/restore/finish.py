# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a restore does to the restored database before it is handed over (in `swap`, before
the swap, so a failure here still leaves the live database untouched):

- grants: seed 003 re-runs `GRANT ALL PRIVILEGES ON ALL TABLES/SEQUENCES IN SCHEMA public TO
  mks_user` by hand after every restore made with --no-acl; `grants` says it once;
- materialized views refreshed (a view dumped WITH NO DATA, or one whose data should reflect
  functions that read the clock);
- sequences repaired: a sequence behind the largest value of the column it feeds makes the next
  insert fail on a duplicate key (plain dumps taken without a snapshot, rows loaded by hand).
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
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


# Ascending sequences that feed a column: owned by it (serial: dependency 'a'; identity: 'i'), or
# named in its DEFAULT nextval(...) without being owned (pagila's, and hand-written schemas).
FEEDING_SEQUENCES = """
SELECT sn.nspname, s.relname, tn.nspname, t.relname, a.attname
  FROM pg_depend d
  JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_sequence q ON q.seqrelid = s.oid AND q.seqincrement > 0
  JOIN pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p')
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
   AND sn.nspname NOT IN ('pg_catalog', 'information_schema')
UNION
SELECT sn.nspname, s.relname, tn.nspname, t.relname, a.attname
  FROM pg_attrdef ad
  JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'n'
  JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
  JOIN pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_sequence q ON q.seqrelid = s.oid AND q.seqincrement > 0
  JOIN pg_class t ON t.oid = ad.adrelid AND t.relkind IN ('r', 'p') AND NOT t.relispartition
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ad.adnum
 WHERE sn.nspname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1, 2, 3, 4, 5
"""


def next_value(last_value, is_called, increment=1):
    """The value nextval would return, from a sequence's last_value and is_called."""
    return last_value + increment if is_called else last_value


def behind_sequences(conn, only=None):
    """Sequences whose next value is not above the largest value of their column:
    [{sequence, column, last_value, is_called, next_value, max_value}]. Reads only (no nextval).
    `only` ('schema.sequence') looks at that sequence's columns alone."""
    found = []
    for seq_schema, seq, schema, table, column in conn.execute(FEEDING_SEQUENCES).fetchall():
        if only is not None and '%s.%s' % (seq_schema, seq) != only:
            continue
        sequence = sql.SQL('{}.{}').format(sql.Identifier(seq_schema), sql.Identifier(seq))
        last_value, is_called = conn.execute(sql.SQL('SELECT last_value, is_called FROM {}').format(sequence)).fetchone()
        top = conn.execute(sql.SQL('SELECT max({}) FROM {}.{}').format(
            sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table))).fetchone()[0]
        if top is None:
            continue
        upcoming = next_value(last_value, is_called)
        if upcoming <= top:
            found.append(dict(sequence='%s.%s' % (seq_schema, seq), column='%s.%s.%s' % (schema, table, column),
                              last_value=last_value, is_called=is_called, next_value=upcoming, max_value=top,
                              regclass=sequence.as_string(conn)))
    return found


def repair_sequences(conn):
    """Move every sequence that is behind its column to the column's largest value."""
    repaired = behind_sequences(conn)
    for item in repaired:
        conn.execute('SELECT setval(%s::regclass, %s, true)', (item.pop('regclass'), item['max_value']))
    return repaired
