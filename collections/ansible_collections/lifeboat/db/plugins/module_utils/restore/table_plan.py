# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mode=tables, what to restore: the tables option, which archive entries belong to each chosen
table (read from the table of contents and pg_dump's SQL), what the live database holds, and the
plan that says which tables are recreated or replaced and the `--use-list` that does it.
tables.py runs that plan."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import difflib
import os
import re

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import parse_name, quoted_key, table_key, written
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import PassFile
from ansible_collections.lifeboat.db.plugins.module_utils.pg.stream import stream_into, tool_output
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import run_tool

RECREATED, REPLACED = 'recreated', 'replaced'

# Entries whose tag is "<table> <name>".
TABLE_PREFIXED = ('DEFAULT', 'CONSTRAINT', 'FK CONSTRAINT', 'TRIGGER', 'POLICY', 'RULE')
# Entries whose tag names an object but not the table it belongs to: their SQL says which.
DESCRIBED = ('INDEX', 'INDEX ATTACH', 'TABLE ATTACH', 'FK CONSTRAINT', 'SEQUENCE', 'SEQUENCE OWNED BY',
             'STATISTICS')
# Comments, grants and labels name their object as "<KIND> <name>" or "<KIND> <name> ON <table>".
ABOUT = ('COMMENT', 'ACL', 'SECURITY LABEL')

# An identifier as pg_dump writes it (fmtId): lower-case letters, digits and _, or double-quoted.
IDENT = r'(?:"(?:[^"]|"")*"|[a-z_][a-z0-9_$]*)'
QNAME = r'(%s)\.(%s)' % (IDENT, IDENT)
SQL_FORMS = dict(
    index=re.compile(r'^CREATE (?:UNIQUE )?INDEX (%s) ON (?:ONLY )?%s USING' % (IDENT, QNAME), re.M),
    table_attach=re.compile(r'^ALTER TABLE ONLY %s ATTACH PARTITION %s ' % (QNAME, QNAME), re.M),
    foreign_key=re.compile(r'^ALTER TABLE (?:ONLY )?%s\s+ADD CONSTRAINT (%s) FOREIGN KEY [^\n]*? REFERENCES %s\('
                           % (QNAME, IDENT, QNAME), re.M),
    identity=re.compile(r'^ALTER TABLE (?:ONLY )?%s ALTER COLUMN %s ADD GENERATED (?:ALWAYS|BY DEFAULT) AS IDENTITY '
                        r'\(\s*SEQUENCE NAME %s' % (QNAME, IDENT, QNAME), re.M),
    owned_by=re.compile(r'^ALTER SEQUENCE %s OWNED BY %s\.%s;' % (QNAME, QNAME, IDENT), re.M),
    statistics=re.compile(r'^CREATE STATISTICS %s[^\n]* FROM %s;$' % (QNAME, QNAME), re.M),
)


def _unquote(ident):
    """The name an identifier of pg_dump's SQL (quoted where needed) stands for."""
    return parse_name(ident)[1]


def _pair(schema, name):
    return (_unquote(schema), _unquote(name))


def display(key):
    return table_key(*key)


def table_keys(mode, tables):
    """The `tables` option as (schema, table) pairs: required with mode=tables, refused otherwise."""
    if mode != 'tables':
        if tables:
            raise LifeboatError('tables is only used with mode=tables (mode=%s restores the whole database); set '
                                'mode: tables or leave tables out' % mode)
        return []
    if not tables:
        raise LifeboatError('mode=tables needs tables: the tables to restore, as schema.table')
    keys = []
    for name in tables:
        # Read as SQL reads it (as every module does): Public.Orders is public.orders.
        schema, table = parse_name(name)
        if schema is None:
            raise LifeboatError('tables: %r is not schema.table; name each table with its schema, e.g. public.orders'
                                % (name,))
        if (schema, table) not in keys:
            keys.append((schema, table))
    return keys


class ArchiveObjects(object):
    """What the table of contents does not say: which table an index, sequence, partition or
    extended statistics object belongs to, and where a foreign key points. Read from the SQL
    pg_restore writes for those entries (pg_dump's fixed forms, see SQL_FORMS)."""

    def __init__(self, text):
        self.index_table, self.partition_parent = {}, {}
        self.sequence_table, self.statistics_table, self.foreign_keys = {}, {}, {}
        for m in SQL_FORMS['index'].finditer(text):
            schema = _unquote(m.group(2))
            self.index_table[(schema, _unquote(m.group(1)))] = _pair(m.group(2), m.group(3))
        for m in SQL_FORMS['table_attach'].finditer(text):
            self.partition_parent[_pair(m.group(3), m.group(4))] = _pair(m.group(1), m.group(2))
        for m in SQL_FORMS['foreign_key'].finditer(text):
            self.foreign_keys[(_pair(m.group(1), m.group(2)), _unquote(m.group(3)))] = _pair(m.group(4), m.group(5))
        for m in SQL_FORMS['identity'].finditer(text):
            self.sequence_table[_pair(m.group(3), m.group(4))] = _pair(m.group(1), m.group(2))
        for m in SQL_FORMS['owned_by'].finditer(text):
            self.sequence_table[_pair(m.group(1), m.group(2))] = _pair(m.group(3), m.group(4))
        for m in SQL_FORMS['statistics'].finditer(text):
            self.statistics_table[_pair(m.group(1), m.group(2))] = _pair(m.group(3), m.group(4))

    def partitions(self, key):
        """Every partition below `key` (sub-partitions too), parents first."""
        found = []
        for child, parent in sorted(self.partition_parent.items()):
            if parent == key:
                found.append(child)
                found.extend(self.partitions(child))
        return found


def describe_archive(ctx, source, pg_restore, toc, backup_id):
    """The definitions of the archive's described entries, read by pg_restore from `source`
    (HostArchive, or restore/container.ArchiveInside in a container)."""
    entries = [entry for entry in toc if entry.desc in DESCRIBED]
    if not entries:
        return ArchiveObjects('')
    listing = write_list(ctx, entries)
    try:
        text = source.text([pg_restore.path, '--file=-'], listing, 'reading the definitions in backup %s' % backup_id)
    finally:
        os.unlink(listing)
    return ArchiveObjects(text)


class HostArchive(object):
    """The archive as this host's pg_restore and psql use it for mode=tables: pg_restore picks the
    listed entries out of it, its SQL goes into psql (restore/container.ArchiveInside is the same
    in a container)."""

    def __init__(self, ctx, archive):
        self.ctx = ctx
        self.archive = archive

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def text(self, argv, listing, what):
        return run_tool(self.ctx.run_command, list(argv) + ['--use-list=%s' % listing, self.archive], None, what)

    def sql_blocks(self, argv, listing, what):
        return tool_output(list(argv) + ['--use-list=%s' % listing, self.archive], {}, what)

    def apply(self, psql_argv, db, script, what):
        with PassFile(self.ctx.options, self.ctx.tmpdir) as passfile:
            stream_into(psql_argv, self.ctx.options.tool_environment(db, passfile), script, what)


def write_list(ctx, entries):
    path = os.path.join(ctx.tmpdir, 'lifeboat-tables-%d.list' % os.getpid())
    with open(path, 'w') as handle:
        handle.write(''.join(entry.line + '\n' for entry in entries))
    return path


class LiveDatabase(object):
    """What the target database holds now."""

    def __init__(self, conn):
        self.conn = conn

    def _oid_kind(self, key):
        row = self.conn.execute('SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace '
                                'WHERE n.nspname = %s AND c.relname = %s', key).fetchone()
        return row if row else (None, None)

    def kind(self, key):
        return self._oid_kind(key)[1]

    def is_table(self, key):
        return self.kind(key) in ('r', 'p')

    def schema_exists(self, schema):
        return self.conn.execute('SELECT 1 FROM pg_namespace WHERE nspname = %s', (schema,)).fetchone() is not None

    def owned_sequences(self, key):
        """Sequences of a serial or identity column of the table."""
        rows = self.conn.execute(
            "SELECT n.nspname, s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "JOIN pg_namespace n ON n.oid = s.relnamespace WHERE d.classid = 'pg_class'::regclass "
            "AND d.refclassid = 'pg_class'::regclass AND d.refobjid = %s AND d.deptype IN ('a', 'i')",
            (self._oid_kind(key)[0],)).fetchall()
        return set(tuple(row) for row in rows)

    def partitions(self, key):
        rows = self.conn.execute(
            'SELECT n.nspname, c.relname FROM pg_partition_tree(%s) t JOIN pg_class c ON c.oid = t.relid '
            'JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.level > 0 ORDER BY t.level, 1, 2',
            (self._oid_kind(key)[0],)).fetchall()
        return [tuple(row) for row in rows]

    def has_constraint(self, key, name):
        return self.conn.execute('SELECT 1 FROM pg_constraint WHERE conrelid = %s AND conname = %s',
                                 (self._oid_kind(key)[0], name)).fetchone() is not None


class TablesPlan(object):
    """Which tables are recreated and which replaced, and the `--use-list` that does it."""

    def __init__(self, requested, toc, objects, live, manifest, backup_id):
        self.objects = objects
        self.archived = [(e.schema, e.tag) for e in toc if e.desc == 'TABLE']
        unknown = [key for key in requested if key not in self.archived]
        if unknown:
            raise LifeboatError(_unknown_message(unknown, self.archived, backup_id))
        self.keys = []
        for key in requested:
            for member in [key] + objects.partitions(key):
                if member not in self.keys:
                    self.keys.append(member)
        self.kinds = {}
        for key in self.keys:
            kind = live.kind(key)
            if kind not in (None, 'r', 'p'):
                raise LifeboatError('%s exists in the database but is not a table (relkind %s); rename or drop it '
                                    'before restoring the table' % (display(key), kind))
            self.kinds[key] = kind
        self.recreated = [key for key in self.keys if self.kinds[key] is None]
        self.replaced = [key for key in self.keys if self.kinds[key] is not None]
        # A partition whose parent stays (exists live): attaching it to that parent would make the
        # parent's indexes create their own copies on it, so it is attached after its indexes
        # and constraints exist, and ATTACH adopts them instead.
        self.attached_late = []
        for key in self.recreated:
            parent = objects.partition_parent.get(key)
            if parent is None or parent in self.recreated:
                continue
            if not live.is_table(parent):
                raise LifeboatError('%s is a partition of %s, which is missing from the database too; list %s to '
                                    'restore it with its partitions' % (display(key), display(parent), display(parent)))
            self.attached_late.append(key)
        self.rows = self._rows(manifest)
        self.skipped = []
        self.entries, self.late = self._select(toc, live)

    def _rows(self, manifest):
        counts = manifest.get('row_counts') or {}
        rows = {}
        for key in self.keys:
            leaves = [k for k in [key] + self.objects.partitions(key) if display(k) in counts]
            rows[key] = sum(counts[display(k)] for k in leaves) if leaves else None
        return rows

    def _select(self, toc, live):
        recreated = set(self.recreated)
        replaced_sequences = set()
        for key in self.replaced:
            replaced_sequences |= live.owned_sequences(key)
        # (schema, object name) -> table, for what the tag alone does not tie to a table. The index
        # of a primary key or unique constraint has the constraint's name (INDEX ATTACH names it).
        owners = {}
        for mapping in (self.objects.index_table, self.objects.sequence_table, self.objects.statistics_table):
            owners.update((name, table) for name, table in mapping.items() if table in recreated)
        for entry in toc:
            if entry.desc == 'CONSTRAINT':
                for schema, name in recreated:
                    if schema == entry.schema and entry.tag.startswith(name + ' '):
                        owners[(schema, entry.tag[len(name) + 1:])] = (schema, name)
        fks = dict(((table[0], '%s %s' % (table[1], name)), (table, name, target))
                   for (table, name), target in self.objects.foreign_keys.items())
        missing_schemas = set(s for s, _ in self.recreated if not live.schema_exists(s))
        entries, late = [], []
        skipped_fks = set()
        for entry in toc:
            if entry.desc == 'SCHEMA' and entry.tag in missing_schemas:
                entries.append(entry)
                continue
            if entry.schema is None:
                continue
            key = (entry.schema, entry.tag)
            if entry.desc == 'TABLE DATA' and key in self.keys:
                entries.append(entry)
            elif entry.desc == 'SEQUENCE SET' and key in replaced_sequences:
                entries.append(entry)
            elif entry.desc == 'FK CONSTRAINT':
                if key in fks and self._wanted_fk(fks[key], live, recreated, skipped_fks):
                    entries.append(entry)
            elif entry.desc == 'TABLE ATTACH' and key in recreated:
                (late if key in self.attached_late else entries).append(entry)
            elif entry.desc == 'INDEX ATTACH' and key in owners:
                late_child = owners[key] in self.attached_late
                (late if late_child else entries).append(entry)
            elif self._belongs(entry, key, recreated, owners, skipped_fks):
                entries.append(entry)
        return entries, late

    def _belongs(self, entry, key, recreated, owners, skipped_fks):
        """Whether a definition entry belongs to a table being recreated."""
        if entry.desc in ('TABLE', 'ROW SECURITY'):
            return key in recreated
        if entry.desc in TABLE_PREFIXED:
            return any(entry.tag.startswith(name + ' ') for schema, name in recreated if schema == entry.schema)
        if entry.desc in ('INDEX', 'SEQUENCE', 'SEQUENCE OWNED BY', 'SEQUENCE SET', 'STATISTICS'):
            return key in owners
        if entry.desc in ABOUT:
            kind, _, named = entry.tag.partition(' ')
            if kind == 'CONSTRAINT' and any(named.startswith(tuple(f + ' ON ' for f in _quoted_forms(fk)))
                                            for fk in skipped_fks):
                return False
            for schema, name in recreated:
                if schema != entry.schema:
                    continue
                forms = _quoted_forms(name)
                if (kind == 'TABLE' and named in forms) or (kind == 'COLUMN' and named.startswith(
                        tuple(form + '.' for form in forms))) or named.endswith(tuple(' ON ' + f for f in forms)):
                    return True
            return (kind in ('INDEX', 'SEQUENCE', 'STATISTICS')
                    and any((entry.schema, n) in owners for n in _unquoted_forms(named)))
        return False

    def _wanted_fk(self, fk, live, recreated, skipped_fks):
        """A recreated table's own foreign keys when what they point at exists; and the foreign keys
        of live tables pointing at a recreated table (DROP TABLE ... CASCADE removed them)."""
        table, name, target = fk
        if table in recreated:
            if target in recreated or live.is_table(target):
                return True
            skipped_fks.add(name)
            self.skipped.append('Skipped foreign key %s of %s: the table it references, %s, is not in the '
                                'database' % (name, display(table), display(target)))
            return False
        return target in recreated and live.is_table(table) and not live.has_constraint(table, name)

    def described(self):
        return [dict(name=display(key), action=RECREATED if key in self.recreated else REPLACED, rows=self.rows[key])
                for key in self.keys]


def _quoted_forms(name):
    """How a name may appear in a comment or grant tag (pg_dump quotes only where needed)."""
    return (name, quoted_key(None, name))


def _unquoted_forms(named):
    return (named, _unquote(named)) if named.startswith('"') else (named,)


def _unknown_message(unknown, archived, backup_id):
    # Names as they are written in `tables` (public."MixedCase"), the nearest ignoring case.
    names = sorted(written(*key) for key in archived)
    folded = dict((name.lower(), name) for name in names)
    near = [folded[n] for n in difflib.get_close_matches(written(*unknown[0]).lower(), folded, n=3)] or names[:5]
    return ('table(s) %s are not in backup %s; it holds %d table(s), e.g. %s (name tables as schema.table, read as '
            'SQL reads them: double-quote a part with capitals, spaces, dots or quotes)'
            % (', '.join(written(*key) for key in unknown), backup_id, len(names), ', '.join(near) or 'none'))
