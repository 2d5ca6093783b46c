# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A database's schema as plain data, so two databases (or a database and a baseline) can be
told apart without dumping them: a restored copy must have the schema of its source, and a
modernized database the schema of the legacy one.

describe() reads the catalog into a JSON-serialisable dict, fingerprint() hashes it so a baseline
can record it in one line, and diff() says what differs, one short line per difference, so the
integrity module can show the first few in its summary. Objects that belong to extensions are
left out: CREATE EXTENSION makes them, and their shape depends on the extension's version.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json

from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import USER_SCHEMAS
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import psycopg

# The catalog functions render names and literals by the session's settings: a table outside the
# search path is schema-qualified, a timestamptz partition bound is shown in the session's time
# zone. Fixed settings make two servers (and two sessions) describe the same schema alike.
RENDERING = (('search_path', ''), ('TimeZone', 'UTC'), ('DateStyle', 'ISO, YMD'),
             ('IntervalStyle', 'postgres'), ('extra_float_digits', '3'))


def _not_from_extension(catalog, alias):
    return ("NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '%s'::regclass AND e.objid = %s.oid "
            "AND e.deptype = 'e')" % (catalog, alias))


def _relations(kinds):
    """FROM and WHERE of the relations of the given kinds in user schemas, not made by extensions."""
    return """FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN (%s) AND %s AND %s""" % (kinds, USER_SCHEMAS, _not_from_extension('pg_class', 'c'))


TABLES = _relations("'r', 'p'")

QUERIES = dict(
    schemas="SELECT n.nspname FROM pg_namespace n WHERE %s AND %s ORDER BY 1"
            % (USER_SCHEMAS, _not_from_extension('pg_namespace', 'n')),
    extensions="SELECT extname FROM pg_extension ORDER BY 1",
    tables="""SELECT n.nspname || '.' || c.relname, c.relkind,
       (SELECT pn.nspname || '.' || p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
          JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE i.inhrelid = c.oid AND c.relispartition),
       pg_get_expr(c.relpartbound, c.oid),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END
  %s ORDER BY 1""" % TABLES,
    columns="""SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.oid IN (SELECT c.oid %s)
 ORDER BY 1, 2""" % TABLES,
    # A partition's copies of its parent's constraints (and, from PostgreSQL 18 on, the NOT NULL
    # constraints already told by the columns) would repeat each difference once per partition.
    constraints="""SELECT n.nspname || '.' || c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid),
       k.convalidated
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE k.conparentid = 0 AND k.conislocal AND (k.contype <> 'n' OR NOT k.convalidated)
   AND c.oid IN (SELECT c.oid %s)
 ORDER BY 1, 2""" % TABLES,
    triggers="""SELECT n.nspname || '.' || c.relname, t.tgname, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND c.oid IN (SELECT c.oid %s)
 ORDER BY 1, 2""" % TABLES,
    # An index behind a primary key, unique or exclusion constraint is told by its constraint;
    # a partition's index attached to its parent's follows from the parent's.
    indexes="""SELECT n.nspname || '.' || i.relname, n.nspname || '.' || c.relname, pg_get_indexdef(i.oid)
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = i.relnamespace
 WHERE NOT i.relispartition AND c.oid IN (SELECT c.oid %s)
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid AND k.conrelid = c.oid
                                                   AND k.contype IN ('p', 'u', 'x'))
 ORDER BY 1""" % _relations("'r', 'p', 'm'"),
    # The current value is data, not schema: it is left out on purpose.
    sequences="""SELECT n.nspname || '.' || c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
       (SELECT tn.nspname || '.' || t.relname || '.' || a.attname FROM pg_depend d
          JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
           AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0)
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid IN (SELECT c.oid %s)
 ORDER BY 1""" % _relations("'S'"),
    views="""SELECT n.nspname || '.' || c.relname, c.relkind, pg_get_viewdef(c.oid) %s ORDER BY 1"""
          % _relations("'v', 'm'"),
    # Functions by signature; the body only as a hash, it can be long.
    functions="""SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       p.prokind, pg_get_function_result(p.oid), l.lanname,
       md5(coalesce(p.prosrc, '') || coalesce(pg_get_function_sqlbody(p.oid), ''))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
 WHERE %s AND %s
 ORDER BY 1""" % (USER_SCHEMAS, _not_from_extension('pg_proc', 'p')),
)

TABLE_KINDS = {'r': 'table', 'p': 'partitioned table'}
VIEW_KINDS = {'v': 'view', 'm': 'materialized view'}
FUNCTION_KINDS = {'f': 'function', 'p': 'procedure', 'a': 'aggregate', 'w': 'window function'}
CONSTRAINT_KINDS = {'c': 'check', 'f': 'foreign key', 'n': 'not null', 'p': 'primary key', 'u': 'unique',
                    't': 'trigger', 'x': 'exclusion'}
IDENTITY = {'a': 'always', 'd': 'by default'}
GENERATED = {'s': 'stored', 'v': 'virtual'}


def describe(conn):
    """The user schemas of conn's database as a dict of plain values, in a deterministic order.

    Runs SELECTs only, in a savepoint (or its own transaction on an autocommit connection) that
    is rolled back, so the rendering settings it fixes do not outlive it and a caller's
    REPEATABLE READ snapshot is kept.
    """
    own_transaction = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        cur = conn.cursor(row_factory=psycopg.rows.tuple_row)
        if own_transaction:
            # One snapshot for every query: a table created meanwhile has no columns missing.
            cur.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY')
        for name, value in RENDERING:
            cur.execute('SELECT set_config(%s, %s, true)', (name, value))
        rows = dict((key, cur.execute(query).fetchall()) for key, query in QUERIES.items())
        raise psycopg.Rollback()
    return _shape(rows)


def _shape(rows):
    tables = {}
    for name, kind, parent, bound, key in rows['tables']:
        tables[name] = dict(kind=TABLE_KINDS[kind], partition_of=parent, partition_bound=bound, partition_key=key,
                            columns={}, constraints={}, triggers={})
    for table, column, type_name, not_null, default, identity, generated in rows['columns']:
        tables[table]['columns'][column] = dict(type=type_name, not_null=not_null, default=default,
                                                identity=IDENTITY.get(identity), generated=GENERATED.get(generated))
    for table, name, kind, definition, validated in rows['constraints']:
        tables[table]['constraints'][name] = dict(type=CONSTRAINT_KINDS.get(kind, kind), definition=definition,
                                                  validated=validated)
    for table, name, definition in rows['triggers']:
        tables[table]['triggers'][name] = dict(definition=definition)
    return dict(
        schemas=[row[0] for row in rows['schemas']],
        extensions=[row[0] for row in rows['extensions']],
        tables=tables,
        indexes=dict((name, dict(table=table, definition=definition)) for name, table, definition in rows['indexes']),
        sequences=dict((row[0], dict(type=row[1], start=row[2], increment=row[3], minimum=row[4], maximum=row[5],
                                     cache=row[6], cycle=row[7], owned_by=row[8])) for row in rows['sequences']),
        views=dict((name, dict(kind=VIEW_KINDS[kind], definition=definition)) for name, kind, definition in rows['views']),
        functions=dict((row[0], dict(kind=FUNCTION_KINDS.get(row[1], row[1]), returns=row[2], language=row[3],
                                     body_md5=row[4])) for row in rows['functions']),
    )


def fingerprint(description):
    """sha256 of the description's canonical JSON: equal schemas, equal fingerprints."""
    canonical = json.dumps(description, sort_keys=True, separators=(',', ':'), ensure_ascii=True)
    return hashlib.sha256(canonical.encode('ascii')).hexdigest()


# How one attribute's difference reads: the label before the left value, and how a value reads.
def _text(value):
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    return 'none' if value is None else str(value)


PHRASES = dict(
    type=('type ', _text),
    not_null=('', lambda value: 'not null' if value else 'nullable'),
    kind=('', _text),
    definition=('', _text),
    partition_of=('partition of ', _text),
    owned_by=('owned by ', _text),
)
# Keys that only repeat what another key of the same object says: a constraint's definition tells
# its type and ends in NOT VALID when it is not validated; an index's definition names its table.
REPEATS = dict(table=('columns', 'constraints', 'triggers'), constraint=('type', 'validated'), index=('table',))

# What of a table is compared, and what an 'only in' line adds after the name.
PARTS = (('columns', 'column', lambda column: column.get('type')),
         ('constraints', 'constraint', lambda constraint: '(%s%s)' % (
             constraint.get('type'), '' if constraint.get('validated', True) else ', not valid')),
         ('triggers', 'trigger', None))


def diff(left, right, left_name='left', right_name='right'):
    """What differs between two descriptions, one line per difference; [] when they are equal.

    Lines come by kind of object (schemas, extensions, tables with their columns, constraints
    and triggers, indexes, sequences, views, functions), then by name. An object on one side only
    is one line; its columns and constraints are not listed again.
    """
    sides = (left_name, right_name)
    lines = _names('schema', left.get('schemas', []), right.get('schemas', []), sides)
    lines += _names('extension', left.get('extensions', []), right.get('extensions', []), sides)
    ours, theirs = left.get('tables', {}), right.get('tables', {})
    inner = dict((table, _table_parts(table, ours[table], theirs[table], sides)) for table in set(ours) & set(theirs))
    for table in sorted(set(ours) | set(theirs)):
        if not _only('table', table, ours, theirs, sides, lines):
            lines += _changes('table', table, ours[table], theirs[table], sides)
            lines += [line for line in inner[table] if not _repeats_parent(line, table, ours[table], theirs[table], inner)]
    for section, kind in (('indexes', 'index'), ('sequences', 'sequence'), ('views', 'view'),
                          ('functions', 'function')):
        mine, yours = left.get(section, {}), right.get(section, {})
        for name in sorted(set(mine) | set(yours)):
            # A materialized view on one side only is called one.
            only_kind = (mine.get(name) or yours.get(name)).get('kind', kind) if kind == 'view' else kind
            if not _only(only_kind, name, mine, yours, sides, lines):
                lines += _changes(kind, name, mine[name], yours[name], sides)
    return lines


def _table_parts(table, ours, theirs, sides):
    lines = []
    for part, kind, detail in PARTS:
        mine, yours = ours.get(part, {}), theirs.get(part, {})
        for name in sorted(set(mine) | set(yours)):
            if not _only(kind, name, mine, yours, sides, lines, detail, table + '.'):
                lines += _changes(kind, table + '.' + name, mine[name], yours[name], sides)
    return lines


def _repeats_parent(line, table, ours, theirs, inner):
    """A partition's column line that its parent's says already: a partition has its parent's
    columns, so a column added to a partitioned table would otherwise be told once per partition."""
    parent = ours.get('partition_of')
    if parent is None or parent != theirs.get('partition_of') or parent not in inner:
        return False
    return line.replace('column %s.' % table, 'column %s.' % parent, 1) in inner[parent]


def _names(kind, ours, theirs, sides):
    return (['only in %s: %s %s' % (sides[0], kind, name) for name in sorted(set(ours) - set(theirs))] +
            ['only in %s: %s %s' % (sides[1], kind, name) for name in sorted(set(theirs) - set(ours))])


def _only(kind, name, ours, theirs, sides, lines, detail=None, prefix=''):
    """Adds the 'only in' line when name is on one side only; True when it did."""
    for side, present, absent in ((sides[0], ours, theirs), (sides[1], theirs, ours)):
        if name in present and name not in absent:
            extra = detail(present[name]) if detail else None
            lines.append(_one_line('only in %s: %s %s%s%s' % (side, kind, prefix, name, ' %s' % extra if extra else '')))
            return True
    return False


def _changes(kind, name, ours, theirs, sides):
    lines = []
    for key in sorted(set(ours) | set(theirs)):
        if key in REPEATS.get(kind, ()) or ours.get(key) == theirs.get(key):
            continue
        label, phrase = PHRASES.get(key, ('%s ' % key.replace('_', ' '), _text))
        before, after = phrase(ours.get(key)), phrase(theirs.get(key))
        if key == 'body_md5' or '\n' in before + after:
            # A function's body, a view's query: too long for a line; the two definitions tell how.
            what = 'body' if key == 'body_md5' else key.replace('_', ' ')
            lines.append('%s %s: %s differs between %s and %s' % (kind, name, what, sides[0], sides[1]))
        else:
            lines.append(_one_line('%s %s: %s%s in %s, %s in %s' % (kind, name, label, before, sides[0], after,
                                                                    sides[1])))
    return lines


def _one_line(text):
    return ' '.join(text.split())
