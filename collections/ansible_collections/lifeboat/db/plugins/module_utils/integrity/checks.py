# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The integrity checks of a database, and exact or estimated row counts.

A restore that "succeeded" can still leave orphan rows, sequences behind their column, invalid
indexes or missing rows: the runbooks end with hand-written queries for these. Here each check
is a `Check` that runner.py's `run_checks` executes read-only in one snapshot.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import USER_SCHEMAS, table_statistics
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import (
    quoted_key, row_count_keys, split_name, written)
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg, sql
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import FAILED, PASSED, SKIPPED
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.runner import Check, run_jobs, wrap
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.custom import plain
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import (
    behind_sequences, edge_name, next_value, read_state)

BUILTINS = ('foreign_keys', 'sequences', 'invalid_indexes', 'not_valid_constraints', 'amcheck')


# -- row counts ------------------------------------------------------------------------------

def count_tables(snapshot, timeout, tables=None):
    """Exact {'schema.table': rows} by count(*), the biggest tables first so that parallel
    connections finish together; all counts are taken in the snapshot."""
    statistics = table_statistics(snapshot.first)
    keys = row_count_keys((s, t) for s, t, dummy, dummy, dummy in statistics)
    sized = [(pages, s, t) for s, t, pages, dummy, dummy in statistics if tables is None or keys[(s, t)] in tables]
    names = [(s, t) for pages, s, t in sorted(sized, key=lambda item: -item[0])]

    def counter(schema, table):
        query = sql.SQL('SELECT count(*) FROM {}').format(_qualified(schema, table))
        return lambda conn: conn.execute(query).fetchone()[0]
    outcomes = run_jobs(snapshot, [counter(s, t) for s, t in names], timeout)
    counts = {}
    for (schema, table), (value, error, dummy) in zip(names, outcomes):
        if error is not None:
            raise LifeboatError('counting the rows of %s.%s %s' % (schema, table, error))
        counts[keys[(schema, table)]] = value
    return counts


def estimate_tables(conn, tables=None):
    """{'schema.table': rows} from the planner's statistics: reltuples where the table was
    analyzed or vacuumed, 0 for an empty file, else the planner's own estimate (EXPLAIN)."""
    counts = {}
    statistics = table_statistics(conn)
    keys = row_count_keys((s, t) for s, t, dummy, dummy, dummy in statistics)
    for schema, table, dummy, tuples, size in statistics:
        key = keys[(schema, table)]
        if tables is not None and key not in tables:
            continue
        if tuples >= 0:
            counts[key] = int(tuples)
        elif not size:
            counts[key] = 0
        else:
            plan = conn.execute(sql.SQL('EXPLAIN (FORMAT JSON) SELECT 1 FROM {}').format(
                _qualified(schema, table))).fetchone()[0]
            counts[key] = int(plan[0]['Plan']['Plan Rows'])
    return counts


# -- foreign keys and declared relationships -------------------------------------------------

FOREIGN_KEYS = """
SELECT con.conname, n.nspname, c.relname, rn.nspname, rc.relname, con.convalidated, con.confmatchtype,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord),
       ARRAY(SELECT a.attname::text FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
              WHERE i.indrelid = con.conrelid AND i.indisprimary ORDER BY a.attnum)
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
 WHERE con.contype = 'f' AND con.conparentid = 0 AND %s
 ORDER BY 2, 3, 1
""" % USER_SCHEMAS


def orphans(conn, child, columns, parent, parent_columns, shown, limit, full_match=False):
    """(orphan count, sample rows) of `child` rows whose `columns` match no `parent` row.
    MATCH SIMPLE (the default) ignores a row with any NULL key column; MATCH FULL only one
    whose key columns are all NULL."""
    c = [sql.SQL('c.{}').format(sql.Identifier(col)) for col in columns]
    matches = sql.SQL(' AND ').join(sql.SQL('p.{} = {}').format(sql.Identifier(pc), cc)
                                    for pc, cc in zip(parent_columns, c))
    missing = sql.SQL('NOT EXISTS (SELECT 1 FROM {} p WHERE {})').format(parent, matches)
    if full_match:
        where = sql.SQL('NOT ({all_null}) AND ({any_null} OR {missing})').format(
            all_null=sql.SQL(' AND ').join(sql.SQL('{} IS NULL').format(x) for x in c),
            any_null=sql.SQL(' OR ').join(sql.SQL('{} IS NULL').format(x) for x in c), missing=missing)
    else:
        where = sql.SQL('{} AND {}').format(
            sql.SQL(' AND ').join(sql.SQL('{} IS NOT NULL').format(x) for x in c), missing)
    # count(*) OVER () counts every orphan while LIMIT keeps the sample small: one scan.
    query = sql.SQL('SELECT {}, count(*) OVER () FROM {} c WHERE {} LIMIT {}').format(
        sql.SQL(', ').join(sql.SQL('c.{}').format(sql.Identifier(col)) for col in shown), child, where,
        sql.Literal(max(limit, 1)))
    rows = conn.execute(query).fetchall()
    total = rows[0][-1] if rows else 0
    sample = [dict(zip(shown, [plain(v) for v in row[:-1]])) for row in rows[:limit]]
    return total, sample


def _qualified(schema, table):
    return sql.SQL('{}.{}').format(sql.Identifier(schema), sql.Identifier(table))


def foreign_key_checks(conn):
    checks = []
    for name, schema, table, rschema, rtable, validated, match, cols, rcols, pk in conn.execute(FOREIGN_KEYS).fetchall():
        label = '%s.%s.%s' % (schema, table, name)
        target = '%s.%s(%s)' % (rschema, rtable, ', '.join(rcols))
        shown = list(pk) + [col for col in cols if col not in pk]

        def run(conn, limit, label=label, schema=schema, table=table, rschema=rschema, rtable=rtable,
                validated=validated, match=match, cols=cols, rcols=rcols, shown=shown, target=target):
            total, sample = orphans(conn, _qualified(schema, table), cols, _qualified(rschema, rtable), rcols,
                                    shown, limit, full_match=(match == 'f'))
            state = '' if validated else ' (NOT VALID)'
            summary = ('no orphan rows' if not total else
                       '%d row(s) of %s.%s reference no row of %s' % (total, schema, table, target)) + state
            return dict(status=FAILED if total else PASSED, summary=summary, orphans=total, sample=sample,
                        table='%s.%s' % (schema, table), columns=cols, references=target, validated=validated)
        checks.append(wrap(Check('foreign_key %s' % label, 'foreign_key', run)))
    return checks


def _as_list(value):
    return [value] if isinstance(value, str) else list(value or [])


def _regclass(name):
    """The name as to_regclass must get it: read as SQL reads it (a bare name is public's), each
    part quoted, so that the search path, three-part names and names over 63 bytes (which
    PostgreSQL would cut to another name) never pick another object - those are refused."""
    return quoted_key(*split_name(name))


def _resolve_table(conn, name, what):
    """(schema, table) of an existing table or partitioned table, or a one-line error."""
    row = conn.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                       (_regclass(name),)).fetchone()
    if row is None:
        raise LifeboatError('%s: table %s does not exist; name an existing table as schema.table' % (what, name))
    return row


def _columns(conn, schema, table):
    return [r[0] for r in conn.execute(
        'SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped '
        'ORDER BY attnum', (_qualified(schema, table).as_string(conn),)).fetchall()]


def relationship_checks(relationships):
    checks = []
    for number, item in enumerate(relationships or [], 1):
        if not isinstance(item, dict) or not item.get('table') or not item.get('columns') or not item.get('references'):
            raise LifeboatError('relationships item %d needs table, columns and references, e.g. {table: '
                                'public.org_hierarchies, columns: ancestor_unit_id, references: public.org_units}'
                                % number)
        unknown = sorted(set(item) - {'name', 'table', 'columns', 'references', 'referenced_columns'})
        if unknown:
            raise LifeboatError('relationships item %d has unknown key(s) %s; use name, table, columns, references, '
                                'referenced_columns' % (number, ', '.join(unknown)))
        _regclass(item['table']), _regclass(item['references'])  # a bad name is refused before any check runs
        cols = _as_list(item['columns'])
        rcols = _as_list(item.get('referenced_columns') or ['id'] * len(cols))
        if len(cols) != len(rcols):
            raise LifeboatError('relationships item %d: %d column(s) but %d referenced column(s); give one referenced '
                                'column per column' % (number, len(cols), len(rcols)))
        label = item.get('name') or '%s(%s) -> %s(%s)' % (item['table'], ', '.join(cols), item['references'],
                                                           ', '.join(rcols))

        def run(conn, limit, item=item, cols=cols, rcols=rcols, label=label):
            what = 'relationship %s' % label
            schema, table = _resolve_table(conn, item['table'], what)
            rschema, rtable = _resolve_table(conn, item['references'], what)
            for (s, t), wanted in (((schema, table), cols), ((rschema, rtable), rcols)):
                absent = [c for c in wanted if c not in _columns(conn, s, t)]
                if absent:
                    raise LifeboatError('%s: %s.%s has no column %s; check the column names'
                                        % (what, s, t, ', '.join(absent)))
            target = '%s.%s(%s)' % (rschema, rtable, ', '.join(rcols))
            total, sample = orphans(conn, _qualified(schema, table), cols, _qualified(rschema, rtable), rcols,
                                    cols, limit)
            summary = 'no orphan rows' if not total else '%d row(s) of %s.%s reference no row of %s' % (
                total, schema, table, target)
            return dict(status=FAILED if total else PASSED, summary=summary, orphans=total, sample=sample,
                        table='%s.%s' % (schema, table), columns=cols, references=target)
        checks.append(wrap(Check('relationship %s' % label, 'relationship', run)))
    return checks


# -- sequences, indexes, constraints ---------------------------------------------------------

def sequences_check():
    def run(conn, limit):
        behind = behind_sequences(conn)
        for item in behind:
            item.pop('regclass', None)
        summary = 'no sequence is behind its column' if not behind else \
            '%d sequence(s) behind their column, the next insert reuses a value: %s' % (
                len(behind), ', '.join('%s (next %s, %s %s %s)' % (
                    b['sequence'], b['next_value'], b['column'], edge_name(b['increment'])[1],
                    b[edge_name(b['increment'])[0]]) for b in behind[:5]))
        return dict(status=FAILED if behind else PASSED, summary=summary, sample=behind[:limit], behind=len(behind))
    return wrap(Check('sequences', 'sequences', run))


INVALID_INDEXES = """
SELECT n.nspname AS schema, ci.relname AS index, ct.relname AS table, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = ci.relnamespace
 WHERE (NOT i.indisvalid OR NOT i.indisready) AND %s
 ORDER BY 1, 2
""" % USER_SCHEMAS


def listing_check(name, query, clean, problem, label, count_key, severity='error'):
    """A check whose query lists findings from the catalog: it passes when there are none.
    `problem` is a template for the count and the first few findings' labels."""
    def run(conn, limit):
        cur = conn.execute(query)
        rows = [dict(zip([c.name for c in cur.description], row)) for row in cur.fetchall()]
        summary = clean if not rows else problem % (len(rows), ', '.join(label(r) for r in rows[:5]))
        return {'status': FAILED if rows else PASSED, 'summary': summary, 'sample': rows[:limit], count_key: len(rows)}
    return wrap(Check(name, name, run, severity=severity))


def invalid_indexes_check():
    return listing_check(
        'invalid_indexes', INVALID_INDEXES, 'every index is valid',
        '%d invalid index(es), queries cannot use them and unique ones do not enforce uniqueness: %s; '
        'REINDEX them or drop and recreate', lambda r: '%s.%s' % (r['schema'], r['index']), 'invalid')


NOT_VALID = """
SELECT n.nspname AS schema, c.relname AS table, con.conname AS constraint, pg_get_constraintdef(con.oid) AS definition
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT con.convalidated AND con.conparentid = 0 AND %s
 ORDER BY 1, 2, 3
""" % USER_SCHEMAS


def not_valid_check():
    return listing_check(
        'not_valid_constraints', NOT_VALID, 'every constraint is validated',
        '%d NOT VALID constraint(s), existing rows were never checked against them: %s; ALTER TABLE ... '
        'VALIDATE CONSTRAINT once the rows are clean', lambda r: '%s.%s.%s' % (r['schema'], r['table'], r['constraint']),
        'not_valid', severity='warning')


BTREE_INDEXES = """
SELECT n.nspname, ci.relname, ci.oid
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ci.relnamespace
  JOIN pg_am am ON am.oid = ci.relam
 WHERE am.amname = 'btree' AND ci.relkind = 'i' AND i.indisvalid AND i.indisready AND ci.relpersistence <> 't'
 ORDER BY 1, 2
"""


def amcheck_check():
    """bt_index_check on every btree index: the structure of each index is consistent (what
    pg_amcheck does for indexes). Needs the amcheck extension in the database; AccessShareLock only."""
    def run(conn, limit):
        row = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                           "WHERE e.extname = 'amcheck'").fetchone()
        if row is None:
            return dict(status=SKIPPED, summary='the amcheck extension is not installed in this database; '
                                                'CREATE EXTENSION amcheck to have indexes verified')
        check_fn = sql.SQL('{}.bt_index_check').format(sql.Identifier(row[0]))
        corrupt, checked = [], 0
        for schema, index, oid in conn.execute(BTREE_INDEXES).fetchall():
            try:
                with conn.transaction():
                    conn.execute(sql.SQL('SELECT {}(%s::oid)').format(check_fn), (oid,))
                checked += 1
            except psycopg.errors.QueryCanceled:
                raise
            except psycopg.Error as exc:
                corrupt.append(dict(index='%s.%s' % (schema, index), error=first_line(exc)))
        summary = '%d btree index(es) verified' % checked if not corrupt else \
            '%d of %d btree index(es) are corrupt: %s; REINDEX them' % (
                len(corrupt), checked + len(corrupt), ', '.join(c['index'] for c in corrupt[:5]))
        return dict(status=FAILED if corrupt else PASSED, summary=summary, sample=corrupt[:limit], checked=checked)
    return wrap(Check('amcheck', 'amcheck', run))


BUILTIN_FACTORIES = dict(sequences=sequences_check, invalid_indexes=invalid_indexes_check,
                         not_valid_constraints=not_valid_check, amcheck=amcheck_check)


# -- gates: required objects, minimum rows, sequence state ------------------------------------

def _qualify(name):
    """How a check names a table: the shortest spelling of the table the name denotes."""
    return written(*split_name(name))


def required_tables_check(tables):
    names = [_regclass(t) for t in tables]

    def run(conn, limit):
        missing = [t for t, name in zip(tables, names)
                   if conn.execute('SELECT to_regclass(%s)', (name,)).fetchone()[0] is None]
        summary = 'all %d required table(s) exist' % len(tables) if not missing else \
            '%d required table(s) missing: %s' % (len(missing), ', '.join(missing))
        return dict(status=FAILED if missing else PASSED, summary=summary, missing=missing)
    return wrap(Check('required_tables', 'required', run))


def required_columns_check(columns):
    for table in columns:
        _regclass(table)

    def run(conn, limit):
        missing = []
        for table, wanted in sorted(columns.items()):
            if conn.execute('SELECT to_regclass(%s)', (_regclass(table),)).fetchone()[0] is None:
                missing.extend('%s.%s' % (_qualify(table), c) for c in _as_list(wanted))
                continue
            schema, name = _resolve_table(conn, table, 'required_columns')
            present = _columns(conn, schema, name)
            missing.extend('%s.%s.%s' % (schema, name, c) for c in _as_list(wanted) if c not in present)
        total = sum(len(_as_list(w)) for w in columns.values())
        summary = 'all %d required column(s) exist' % total if not missing else \
            '%d required column(s) missing: %s' % (len(missing), ', '.join(missing))
        return dict(status=FAILED if missing else PASSED, summary=summary, missing=missing)
    return wrap(Check('required_columns', 'required', run))


def min_rows_checks(minimums):
    checks = []
    for table, minimum in sorted((minimums or {}).items()):
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 0:
            raise LifeboatError('min_rows for %s must be a whole number of rows, got %r' % (table, minimum))
        _regclass(table)

        def run(conn, limit, table=table, minimum=minimum):
            schema, name = _resolve_table(conn, table, 'min_rows %s' % table)
            rows = conn.execute(sql.SQL('SELECT count(*) FROM {}').format(_qualified(schema, name))).fetchone()[0]
            return dict(status=PASSED if rows >= minimum else FAILED, rows=rows, minimum=minimum,
                        summary='%d row(s), at least %d required' % (rows, minimum))
        checks.append(wrap(Check('min_rows %s' % _qualify(table), 'min_rows', run)))
    return checks


SEQUENCE_STATE = """
SELECT n.nspname, c.relname, s.seqincrement, s.seqmax, s.seqmin
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
 WHERE c.oid = to_regclass(%s) AND c.relkind = 'S'
"""


def read_sequence(conn, name):
    """The state of a sequence read from the sequence itself: nextval would consume a value (and
    is not allowed in a read-only transaction), which is why seed 000 had to setval it back."""
    row = conn.execute(SEQUENCE_STATE, (_regclass(name),)).fetchone()
    if row is None:
        raise LifeboatError('sequence %s does not exist; name an existing sequence as schema.name' % name)
    schema, seq, increment, maximum, minimum = row
    last_value, is_called = read_state(conn, schema, seq)
    return dict(sequence='%s.%s' % (schema, seq), last_value=last_value, is_called=is_called,
                next_value=next_value(last_value, is_called, increment),
                increment=increment, max_value=maximum, min_value=minimum)


def sequence_state_checks(sequences):
    checks = []
    for number, item in enumerate(sequences or [], 1):
        item = dict(name=item) if isinstance(item, str) else item
        if not isinstance(item, dict) or not item.get('name') or set(item) - {'name', 'next_at_least'}:
            raise LifeboatError('sequences item %d must be a name or {name, next_at_least}' % number)
        _regclass(item['name'])

        def run(conn, limit, item=item):
            state = read_sequence(conn, item['name'])
            problems = []
            if state['next_value'] > state['max_value'] or state['next_value'] < state['min_value']:
                problems.append('exhausted: the next value %d is outside %d..%d' % (
                    state['next_value'], state['min_value'], state['max_value']))
            if item.get('next_at_least') is not None and state['next_value'] < int(item['next_at_least']):
                problems.append('next value %d is below %s' % (state['next_value'], item['next_at_least']))
            behind = behind_sequences(conn, only=state['sequence'])
            if behind:
                key, short, dummy = edge_name(behind[0]['increment'])
                problems.append('behind %s (%s %s)' % (behind[0]['column'], short, behind[0][key]))
            summary = '; '.join(problems) if problems else 'next value %d (last_value %d, is_called %s)' % (
                state['next_value'], state['last_value'], str(state['is_called']).lower())
            return dict(status=FAILED if problems else PASSED, summary=summary, **state)
        checks.append(wrap(Check('sequence %s' % _qualify(item['name']), 'sequence', run)))
    return checks
