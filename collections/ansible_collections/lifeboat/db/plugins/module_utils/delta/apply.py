# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""action=apply: upserting the rows of a base's delta sets (sets.py) into a database restored
from that base, in one transaction, parents before children, then moving sequences past them."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import os

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import table_key
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.delta.sets import (
    delta_chain, pin_session, resolve_base, table_by_name)
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import feeding, furthest, is_behind
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import verify_files

CHUNK = 1024 * 1024

FOREIGN_KEYS = """
SELECT conrelid, confrelid FROM pg_constraint
 WHERE contype = 'f' AND conrelid = ANY(%s::oid[]) AND confrelid = ANY(%s::oid[]) AND conrelid <> confrelid
"""
# User triggers that fire now; internal ones (foreign keys) are never touched.
ENABLED_TRIGGERS = """
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = %s::oid AND NOT tgisinternal AND tgenabled <> 'D'
 ORDER BY tgname
"""
ENABLE = {'O': 'ENABLE TRIGGER', 'A': 'ENABLE ALWAYS TRIGGER', 'R': 'ENABLE REPLICA TRIGGER'}


class ApplyRequest(object):
    def __init__(self, database, backup_db, base='latest', deltas=None, kind='delta', lock_timeout=0,
                 disable_triggers=True, base_kind='full'):
        self.base_kind = base_kind
        self.disable_triggers = disable_triggers
        self.database = database
        self.backup_db = backup_db or database
        self.base = base
        self.deltas = deltas
        self.kind = kind
        self.lock_timeout = lock_timeout


def _select_deltas(repository, request, base):
    """The deltas to apply, oldest first, refusing a chain with a gap (its rows would be lost)."""
    chain = delta_chain(repository, request.backup_db, base.backup_id, request.kind)
    # A refused set (manifest.InvalidSet, naming it) may be a delta of this base: applying the
    # chain around it would lose its rows without a word, so nothing is applied.
    refused = repository.refused.get(request.backup_db)
    if refused:
        raise refused[0]
    present = set(d.backup_id for d in chain)
    if request.deltas:
        unknown = [i for i in request.deltas if i not in present]
        if unknown:
            raise LifeboatError('delta(s) %s are not deltas of base %s in repository %s (its deltas: %s)'
                                % (', '.join(unknown), base.backup_id, repository.root,
                                   ', '.join(d.backup_id for d in chain) or 'none'))
        # Oldest first whatever order they were given in: an older delta applied last would put
        # back values a newer one had replaced.
        selected = [d for d in chain if d.backup_id in set(request.deltas)]
        # The first one named may continue from a delta applied earlier; the others may not skip one.
        expected = selected[0].manifest['delta'].get('previous_delta_id')
    else:
        selected, expected = chain, None
    for delta in selected:
        previous = delta.manifest['delta'].get('previous_delta_id')
        if previous != expected:
            where = 'not in the repository' if previous not in present else 'not among the deltas to apply'
            raise LifeboatError('the deltas of base %s have a gap: delta %s continues from delta %s, which is %s; '
                                'its rows would be lost' % (base.backup_id, delta.backup_id, previous, where))
        expected = delta.backup_id
    return selected


def _dependency_order(conn, tables):
    """Tables with the referenced (parent) tables first, so foreign keys hold row by row."""
    oids = [t.oid for t in tables]
    parents = dict((oid, set()) for oid in oids)
    for child, parent in conn.execute(FOREIGN_KEYS, (oids, oids)).fetchall():
        parents[child].add(parent)
    ordered, placed = [], set()
    while len(ordered) < len(tables):
        ready = [t for t in tables if t.oid not in placed and parents[t.oid] <= placed]
        if not ready:
            # A cycle of foreign keys: no order satisfies it row by row; keep the given order and
            # let a violation, if any, fail (and roll back) the whole apply.
            ready = [t for t in tables if t.oid not in placed]
        for table in ready:
            ordered.append(table)
            placed.add(table.oid)
    return ordered


def _upsert_statement(table, columns, key, temp, ordinal):
    """Upsert the newest version of each key in `temp` into the table; the statement returns
    (distinct keys, inserted, updated)."""
    cols = sql.SQL(', ').join(sql.Identifier(c) for c in columns)
    keys = sql.SQL(', ').join(sql.Identifier(c) for c in key)
    always = [name for name, dummy, identity, dummy2 in table.columns if identity == 'a' and name in columns]
    # An identity ALWAYS column can only be updated to DEFAULT; its value never changes anyway.
    others = [c for c in columns if c not in key and c not in always]
    # A key carried by several deltas is applied once, as the newest delta has it: the older
    # versions would only be overwritten again.
    source = sql.SQL('SELECT DISTINCT ON ({}) {} FROM {} ORDER BY {}, {} DESC').format(
        keys, cols, sql.Identifier(temp), keys, sql.Identifier(ordinal))
    statement = sql.SQL('INSERT INTO {} AS t ({}) {}SELECT {} FROM src ON CONFLICT ({}) ').format(
        table.identifier, cols, sql.SQL('OVERRIDING SYSTEM VALUE ' if always else ''), cols, keys)
    if others:
        # Compared as text, which every type has (json and point have no equality operator): a
        # row that already holds these values is left alone, so re-applying changes nothing.
        statement += sql.SQL('DO UPDATE SET {} WHERE ROW({}) IS DISTINCT FROM ROW({}) ').format(
            sql.SQL(', ').join(sql.SQL('{} = EXCLUDED.{}').format(sql.Identifier(c), sql.Identifier(c))
                               for c in others),
            sql.SQL(', ').join(sql.SQL('t.{}::text').format(sql.Identifier(c)) for c in others),
            sql.SQL(', ').join(sql.SQL('EXCLUDED.{}::text').format(sql.Identifier(c)) for c in others))
    else:
        statement += sql.SQL('DO NOTHING ')
    return sql.SQL('WITH src AS MATERIALIZED ({}), applied AS ({} RETURNING (t.xmax = 0) AS inserted) '
                   'SELECT (SELECT count(*) FROM src), count(*) FILTER (WHERE inserted), '
                   'count(*) FILTER (WHERE NOT inserted) FROM applied').format(source, statement)


def _check_target(conn, table, columns, key):
    unknown = [c for c in columns + key if c not in table.types]
    if unknown:
        raise LifeboatError('table %s in database %r has no column(s) %s that the delta holds; the target does not '
                            'have the schema of the base backup' % (table.qualified, conn.info.dbname, ', '.join(unknown)))
    generated = [name for name, dummy, dummy2, gen in table.columns if gen and name in columns]
    if generated:
        raise LifeboatError('column(s) %s of table %s are generated in database %r but not in the delta'
                            % (', '.join(generated), table.qualified, conn.info.dbname))


def _load(conn, table, parts, temp):
    """COPY the table's rows of every delta into one temporary table, then upsert them."""
    columns, key = parts[0][1]['columns'], parts[0][1]['key']
    _check_target(conn, table, columns, key)
    cols = sql.SQL(', ').join(sql.Identifier(c) for c in columns)
    ordinal = 'lifeboat_delta_ordinal'
    while ordinal in columns:
        ordinal += '_'
    # Only the delta's columns and their types, no constraints: the table's own constraints are
    # checked by the INSERT. The ordinal column tells which delta a row came from.
    conn.execute(sql.SQL('CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {}, 0 AS {} FROM {} WITH NO DATA')
                 .format(sql.Identifier(temp), cols, sql.Identifier(ordinal), table.identifier))
    for index, (delta, entry) in enumerate(parts):
        conn.execute(sql.SQL('ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}').format(
            sql.Identifier(temp), sql.Identifier(ordinal), sql.Literal(index)))
        with conn.cursor() as cur:
            with cur.copy(sql.SQL('COPY {} ({}) FROM STDIN').format(sql.Identifier(temp), cols)) as copy:
                with gzip.open(os.path.join(delta.path, entry['file']), 'rb') as source:
                    for block in iter(lambda: source.read(CHUNK), b''):
                        copy.write(block)
    distinct, inserted, updated = conn.execute(_upsert_statement(table, columns, key, temp, ordinal)).fetchone()
    conn.execute(sql.SQL('DROP TABLE {}').format(sql.Identifier(temp)))
    rows = sum(entry['rows'] for dummy, entry in parts)
    return dict(deltas=[d.backup_id for d, dummy in parts], rows=rows, superseded=rows - distinct,
                inserted=inserted, updated=updated, unchanged=distinct - inserted - updated)


def _sequences_behind(conn, tables):
    """Sequences feeding a column of `tables` whose next value may be among the rows, each to be
    moved past the furthest of those columns (pg/sequences.py)."""
    found = feeding(conn, table_oids=set(table.oid for table in tables))
    behind = [(table, f) for table in tables for f in found
              if f.table_oid == table.oid and is_behind(f.next_value, f.increment, f.edge)]
    value = furthest((f.seq_oid, f.increment, f.edge) for dummy, f in behind)
    return [dict(sequence=table_key(f.seq_schema, f.seq), oid=f.seq_oid, table=table.qualified, column=f.column,
                 value=value[f.seq_oid]) for table, f in behind]


def apply_deltas(ctx, request):
    """Verify the base's deltas, then apply them to the target in one transaction."""
    repository = ctx.repository
    # Resolved once before locking too: a wrong backup_db or base then fails without the lock
    # creating a folder for a database the repository does not hold.
    resolve_base(repository, request.backup_db, request.base, request.base_kind)
    with repository.lock(request.backup_db, request.lock_timeout, 'applying deltas to %r' % request.database) as lock:
        base = resolve_base(repository, request.backup_db, request.base, request.base_kind)
        deltas = _select_deltas(repository, request, base)
        verified = _verify(deltas)
        actions = ['Verified %d file(s) of %d delta(s) of base %s against their manifests'
                   % (len(verified), len(deltas), base.backup_id)]
        facts = dict(base_backup_id=base.backup_id, deltas=[d.backup_id for d in deltas], target_db=request.database,
                     verified_files=verified, lock_waited_seconds=lock.waited)
        if not deltas:
            return dict(changed=False, applied={}, sequences=[], row_count_differences=[], actions=actions + [
                'Base %s has no deltas of kind %s; nothing to apply' % (base.backup_id, request.kind)], **facts)
        applied, sequences, steps, differences = _apply_to_target(ctx, request, deltas)
    actions.extend(_applied_actions(ctx.check_mode, steps, sequences))
    return _apply_result(applied, sequences, differences, actions, facts)


def _verify(deltas):
    """Every file of every delta is checked before the target is touched: a damaged delta
    applies nothing at all, not the deltas before it."""
    verified = []
    for delta in deltas:
        verified.extend('%s/%s' % (delta.backup_id, name) for name in verify_files(delta.path, delta.manifest))
    return verified


def _apply_to_target(ctx, request, deltas):
    """Apply, compare row counts, then commit with the sequences moved (or, in check mode, roll
    back); returns (per table, sequences without their oids, steps, row count differences)."""
    conn = ctx.options.connect(request.database, autocommit=False)
    try:
        applied, sequences, steps = _apply_in_transaction(conn, deltas, request.disable_triggers)
        differences = _row_count_differences(conn, deltas)
        if ctx.check_mode:
            # Everything ran and is now undone: the counts are what a real run would do.
            conn.rollback()
        else:
            for entry in sequences:
                # setval is not transactional; done last, when nothing can fail but COMMIT,
                # and a sequence moved ahead needlessly is harmless.
                conn.execute('SELECT setval(%s::oid::regclass, %s, true)', (entry['oid'], entry['value']))
            conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    for entry in sequences:
        del entry['oid']
    return applied, sequences, steps, differences


def _applied_actions(check_mode, steps, sequences):
    if check_mode:
        return (['Would %s' % would for would, dummy in steps]
                + ['Would advance sequence %s of %s.%s to %d' % (s['sequence'], s['table'], s['column'], s['value'])
                   for s in sequences]
                + ['Rolled back: check mode changes nothing'])
    return ([did for dummy, did in steps]
            + ['Advanced sequence %s of %s.%s to %d' % (s['sequence'], s['table'], s['column'], s['value'])
               for s in sequences])


def _apply_result(applied, sequences, differences, actions, facts):
    changed = bool(sequences) or any(c['inserted'] or c['updated'] for c in applied.values())
    result = dict(changed=changed, applied=applied, sequences=sequences, actions=actions,
                  row_count_differences=differences, **facts)
    if differences:
        result['warnings'] = [
            'table %s has %d row(s) after applying, the source had %d when delta %s was taken: rows deleted on '
            'the source (deltas carry no deletes) or changed here; restore a newer full backup to match it'
            % (d['table'], d['rows'], d['source_rows'], d['delta']) for d in differences]
    return result


def _row_count_differences(conn, deltas):
    """Tables whose row count, after applying, differs from the count the newest delta that
    carries them recorded in its snapshot (older deltas recorded none: not compared)."""
    newest = {}
    for delta in deltas:
        for name, entry in delta.manifest['delta']['tables'].items():
            if isinstance(entry.get('table_rows'), int):
                newest[name] = (delta, entry)
    differences = []
    for name, (delta, entry) in sorted(newest.items()):
        table = table_by_name(conn, name, entry['schema'], entry['table'])
        rows = conn.execute(sql.SQL('SELECT count(*) FROM {}').format(table.identifier)).fetchone()[0]
        if rows != entry['table_rows']:
            differences.append(dict(table=name, delta=delta.backup_id, source_rows=entry['table_rows'], rows=rows))
    return differences


def _disable_triggers(conn, table):
    """Disable the table's enabled user triggers until the end of the apply; returns them.

    A trigger that stamps updated_at (or writes an audit row) would otherwise rewrite the values
    the delta carries, and the rebuilt table would differ from the source. ALTER TABLE is
    transactional: a failed apply rolls the disabling back with everything else.
    """
    triggers = [tuple(row) for row in conn.execute(ENABLED_TRIGGERS, (table.oid,)).fetchall()]
    for name, dummy in triggers:
        conn.execute(sql.SQL('ALTER TABLE {} DISABLE TRIGGER {}').format(table.identifier, sql.Identifier(name)))
    return triggers


def _enable_triggers(conn, table, triggers):
    for name, state in triggers:
        conn.execute(sql.SQL('ALTER TABLE {} {} {}').format(table.identifier, sql.SQL(ENABLE[state]),
                                                            sql.Identifier(name)))


def _apply_in_transaction(conn, deltas, disable_triggers):
    """Apply the deltas table by table, parents first; returns (per table, sequences, steps)."""
    pin_session(conn, local=True)
    parts = {}
    for delta in deltas:
        for name, entry in delta.manifest['delta']['tables'].items():
            earlier = parts.setdefault(name, [])
            if earlier and (earlier[0][1]['columns'], earlier[0][1]['key']) != (entry['columns'], entry['key']):
                raise LifeboatError('table %s has other columns or another key in delta %s than in delta %s; apply '
                                    'them in separate runs with deltas' % (name, delta.backup_id, earlier[0][0].backup_id))
            earlier.append((delta, entry))
    tables = [table_by_name(conn, name, p[-1][1]['schema'], p[-1][1]['table']) for name, p in sorted(parts.items())]
    applied, steps = {}, []
    for index, table in enumerate(_dependency_order(conn, tables)):
        try:
            triggers = _disable_triggers(conn, table) if disable_triggers else []
            counts = _load(conn, table, parts[table.qualified], 'lifeboat_delta_%d' % index)
            _enable_triggers(conn, table, triggers)
        except psycopg.Error as exc:
            raise LifeboatError('applying the deltas to table %s failed: %s; nothing was applied'
                                % (table.qualified, first_line(exc)))
        applied[table.qualified] = counts
        if triggers:
            what = 'trigger(s) %s of %s while loading' % (', '.join(n for n, dummy in triggers), table.qualified)
            steps.append(('disable ' + what, 'Disabled ' + what))
        what = '%d row(s) of %d delta(s) to %s: %d inserted, %d updated, %d already current, %d superseded by a ' \
               'later delta' % (counts['rows'], len(counts['deltas']), table.qualified, counts['inserted'],
                                counts['updated'], counts['unchanged'], counts['superseded'])
        steps.append(('apply ' + what, 'Applied ' + what))
    return applied, _sequences_behind(conn, tables), steps
