# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sequences: the value one hands out next, and whether it is behind the column it feeds.

One rule for every check and repair (integrity, restore, delta, seed, baselines), by the
sequence's real increment and direction: an ascending sequence is behind when its next value is
not above the column's largest value, a descending one when its next value is not below the
column's smallest - either way the next default value may already be in the column. Everything
here reads a sequence's state without nextval, which would consume a value.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from collections import namedtuple

from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import USER_SCHEMAS
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql

# Sequences that feed a column of numbers: owned by it (serial: dependency 'a'; identity: 'i'), or
# named in its DEFAULT nextval(...) without being owned (pagila's, and hand-written schemas).
FEEDING_SEQUENCES = """
SELECT sn.nspname, s.relname, s.oid, q.seqincrement, tn.nspname, t.relname, t.oid, a.attname
  FROM pg_depend d
  JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_sequence q ON q.seqrelid = s.oid
  JOIN pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p')
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid AND {numeric}
 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
   AND sn.nspname NOT IN ('pg_catalog', 'information_schema')
UNION
SELECT sn.nspname, s.relname, s.oid, q.seqincrement, tn.nspname, t.relname, t.oid, a.attname
  FROM pg_attrdef ad
  JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'n'
  JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
  JOIN pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_sequence q ON q.seqrelid = s.oid
  JOIN pg_class t ON t.oid = ad.adrelid AND t.relkind IN ('r', 'p') AND NOT t.relispartition
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ad.adnum AND {numeric}
 WHERE sn.nspname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1, 2, 5, 6, 8
""".format(
    # Only a column of numbers (or a domain over one) can have a sequence behind it: a text column
    # filled with nextval()::text has no numeric order ('99' > '100').
    numeric="(SELECT coalesce(nullif(ty.typbasetype, 0), ty.oid) FROM pg_type ty WHERE ty.oid = a.atttypid) "
            "IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype)")

# One sequence and the column it feeds, with the sequence's state and the column's edge: its
# largest value for an ascending sequence, its smallest for a descending one (None: no rows).
Feeding = namedtuple('Feeding', 'seq_schema seq seq_oid increment schema table table_oid column '
                                'last_value is_called next_value edge')


def next_value(last_value, is_called, increment):
    """The value nextval would return, from a sequence's last_value, is_called and increment."""
    return last_value + increment if is_called else last_value


def is_behind(upcoming, increment, edge):
    """Whether the next value `upcoming` may already be in the column whose edge (largest value
    for increment > 0, smallest for increment < 0) is `edge`; an empty column (None) never is."""
    if edge is None:
        return False
    return upcoming <= edge if increment > 0 else upcoming >= edge


def edge_name(increment):
    """What the column's edge is called: (key in results, short, long), e.g. ('max_value', 'max', 'largest')."""
    return ('max_value', 'max', 'largest') if increment > 0 else ('min_value', 'min', 'smallest')


def read_state(conn, schema, name):
    """(last_value, is_called) of a sequence, read from the sequence itself."""
    return tuple(conn.execute(sql.SQL('SELECT last_value, is_called FROM {}').format(
        sql.Identifier(schema, name))).fetchone())


def feeding(conn, table_oids=None, sequence=None):
    """Every sequence that feeds a column, as Feeding - of the tables `table_oids` only, or of the
    sequence `sequence` ('schema.sequence') only, when given. The filters apply before a sequence
    is read or its column scanned for its edge."""
    found = []
    for seq_schema, seq, seq_oid, increment, schema, table, table_oid, column in conn.execute(
            FEEDING_SEQUENCES).fetchall():
        if table_oids is not None and table_oid not in table_oids:
            continue
        if sequence is not None and '%s.%s' % (seq_schema, seq) != sequence:
            continue
        last_value, is_called = read_state(conn, seq_schema, seq)
        edge = conn.execute(sql.SQL('SELECT {}({}) FROM {}').format(
            sql.SQL('max' if increment > 0 else 'min'), sql.Identifier(column),
            sql.Identifier(schema, table))).fetchone()[0]
        found.append(Feeding(seq_schema, seq, seq_oid, increment, schema, table, table_oid, column, last_value,
                             is_called, next_value(last_value, is_called, increment), edge))
    return found


def behind_sequences(conn, only=None):
    """Sequences whose next value may already be in their column: [{sequence, column, last_value,
    is_called, next_value, increment, max_value (ascending) or min_value (descending), regclass}].
    Reads only (no nextval). `only` ('schema.sequence') looks at that sequence's columns alone."""
    found = []
    for f in feeding(conn, sequence=only):
        if is_behind(f.next_value, f.increment, f.edge):
            entry = dict(sequence='%s.%s' % (f.seq_schema, f.seq), column='%s.%s.%s' % (f.schema, f.table, f.column),
                         last_value=f.last_value, is_called=f.is_called, next_value=f.next_value,
                         increment=f.increment, regclass=sql.Identifier(f.seq_schema, f.seq).as_string(conn))
            entry[edge_name(f.increment)[0]] = f.edge
            found.append(entry)
    return found


def furthest(behind):
    """{sequence: value} from (sequence, increment, edge) of each column a sequence is behind: the
    edge it must move to is the furthest of them - one sequence can feed several tables, and moving
    it to each column's edge in turn would leave it behind the one with the furthest."""
    found = {}
    for sequence, increment, edge in behind:
        further = max if increment > 0 else min
        found[sequence] = further(found.get(sequence, edge), edge)
    return found


def move_to(conn, regclass, value):
    """setval so that the next value follows `value` in the sequence's direction (not
    transactional: a caller does it when nothing but its COMMIT can fail any more)."""
    conn.execute('SELECT setval(%s::regclass, %s, true)', (regclass, value))


def sequence_states(conn):
    """{schema.sequence: {last_value, is_called, increment}} of every sequence in the user schemas."""
    states = {}
    for schema, name, increment in conn.execute(
            "SELECT n.nspname, c.relname, q.seqincrement FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_sequence q ON q.seqrelid = c.oid WHERE c.relkind = 'S' AND %s ORDER BY 1, 2"
            % USER_SCHEMAS).fetchall():
        last_value, is_called = read_state(conn, schema, name)
        states['%s.%s' % (schema, name)] = dict(last_value=last_value, is_called=is_called, increment=increment)
    return states
