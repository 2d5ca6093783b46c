# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mode=tables: restoring chosen tables into the live database (seed 002's table restore).

Seed 002 runs `pg_restore --table=X --clean`, which restores the table's definition and rows but
silently skips its indexes, constraints, triggers and sequence values. Here the archive's table of
contents (`pg_restore --list`) is filtered into a `--use-list` that holds everything belonging to
each table, and pg_restore's SQL (`--file=-`) is streamed into ONE psql transaction between our own
preamble and epilogue:

- a table missing in the live database is recreated with its columns, defaults, owned sequences
  (and their values), rows, constraints, indexes, triggers, policies, comments and grants, plus
  the foreign keys to and from tables that exist;
- a table that exists keeps its live definition and everything depending on it (views, foreign
  keys from other tables): its rows are deleted and the backup's loaded, and its owned sequences
  are set to the backup's values.

Triggers are off for the whole load (session_replication_role = replica), so foreign keys are
checked by us, in both directions, before COMMIT, and the row counts against the manifest. COMMIT
is the last line we write and only after pg_restore finished cleanly: any failure leaves every
table as it was.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import difflib
import os
import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.backup.pg_dump import BackupRequest, take_backup
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import PassFile, database_exists, sql
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import parse_name, quoted_key, table_key, written
from ansible_collections.lifeboat.db.plugins.module_utils.backup.options import DumpOptions
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.stream import stream_into, tool_output
from ansible_collections.lifeboat.db.plugins.module_utils.pg.toc import parse_toc
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


def describe_archive(ctx, pg_restore, archive, toc, backup_id):
    entries = [entry for entry in toc if entry.desc in DESCRIBED]
    if not entries:
        return ArchiveObjects('')
    listing = _write_list(ctx, entries)
    try:
        text = run_tool(ctx.run_command, [pg_restore.path, '--file=-', '--use-list=%s' % listing, archive], None,
                        'reading the definitions in backup %s' % backup_id)
    finally:
        os.unlink(listing)
    return ArchiveObjects(text)


def _write_list(ctx, entries):
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


def restore_tables(ctx, conn, request, backup, pg_restore, archive, facts, actions, timings):
    """mode=tables (see the module docstring). `conn` is the maintenance connection: it holds the
    advisory lock (restore._restore) that keeps a swap, another restore or a backup of the same
    database away."""
    manifest = backup.manifest
    if manifest.get('format') not in ('custom', 'directory'):
        raise LifeboatError('backup %s is a %s dump; mode=tables needs a custom or directory archive (pg_restore '
                            'picks single tables out of those only)' % (backup.backup_id, manifest.get('format')))
    if not database_exists(conn, request.target_db):
        raise LifeboatError('database %r does not exist; mode=tables restores into an existing database (use '
                            'mode=new to restore the whole backup into a new one)' % request.target_db)
    # The table of contents check_backup read (and proved readable) before anything changed.
    toc = parse_toc(backup.toc)
    objects = describe_archive(ctx, pg_restore, archive, toc, backup.backup_id)
    target = ctx.options.connect(request.target_db)
    try:
        plan = TablesPlan(request.tables, toc, objects, LiveDatabase(target), manifest, backup.backup_id)
        facts['tables'] = plan.described()
        facts['safety_backup_id'] = None
        if ctx.check_mode:
            if plan.replaced and request.safety_backup:
                actions.append('Would take a safety backup (kind pre-restore) of table(s) %s'
                               % ', '.join(display(k) for k in _with_live_partitions(plan, target)))
            actions.extend(_sentences(plan, backup.backup_id, would=True))
            return
        if plan.replaced and request.safety_backup:
            kept = _with_live_partitions(plan, target)
            safety = take_backup(ctx, BackupRequest(
                request.target_db, kind='pre-restore', local=True,
                options=DumpOptions(tables=[quoted_key(s, t) for s, t in kept])))
            facts['safety_backup_id'] = safety['backup_id']
            timings['safety_backup_seconds'] = safety['duration_seconds']
            actions.append('Took safety backup %s of table(s) %s' % (safety['backup_id'],
                                                                    ', '.join(display(k) for k in kept)))
        step = time.monotonic()
        try:
            _load(ctx, request, backup, pg_restore, archive, plan, target)
        except LifeboatError as exc:
            detail = re.sub(r'\s+', ' ', re.sub(r'^psql:[^:]*:\d+: ', '', exc.msg.split(' failed: ', 1)[-1]))
            detail = detail.replace('ERROR: lifeboat: ', '')
            kept = facts['safety_backup_id']
            raise LifeboatError('restoring table(s) %s from backup %s into database %r failed: %s; nothing was '
                                'changed (the transaction was rolled back)%s'
                                % (', '.join(display(k) for k in request.tables), backup.backup_id,
                                   request.target_db, detail, '; safety backup %s is kept' % kept if kept else ''),
                                safety_backup_id=kept)
        timings['restore_seconds'] = round(time.monotonic() - step, 3)
        actions.extend(plan.skipped)
        actions.extend(_sentences(plan, backup.backup_id, would=False))
        actions.append('Checked the foreign keys to and from the restored table(s) and their row counts against '
                       'the manifest of backup %s before committing' % backup.backup_id)
        if request.analyze:
            step = time.monotonic()
            for key in plan.keys:
                target.execute(sql.SQL('ANALYZE {}.{}').format(sql.Identifier(key[0]), sql.Identifier(key[1])))
            timings['analyze_seconds'] = round(time.monotonic() - step, 3)
            actions.append('Analyzed %d table(s)' % len(plan.keys))
    finally:
        target.close()


def _with_live_partitions(plan, target):
    """The tables whose rows change, with every live partition of a replaced partitioned table
    (DELETE on it empties partitions the backup may not know)."""
    live = LiveDatabase(target)
    kept = []
    for key in plan.replaced:
        for member in [key] + (live.partitions(key) if plan.kinds[key] == 'p' else []):
            if member not in kept:
                kept.append(member)
    return kept


def _sentences(plan, backup_id, would):
    said = []
    for key in plan.keys:
        rows = '%s row(s)' % plan.rows[key] if plan.rows[key] is not None else 'its rows'
        if key in plan.recreated:
            said.append('%s table %s from backup %s with its indexes, constraints, triggers, comments, owned '
                        'sequences and %s' % ('Would recreate' if would else 'Recreated', display(key), backup_id,
                                              rows))
        else:
            said.append("%s the rows of table %s with backup %s's %s, keeping its definition and what depends on "
                        "it, and set its owned sequences to the backup's values"
                        % ('Would replace' if would else 'Replaced', display(key), backup_id, rows))
    return said


def _load(ctx, request, backup, pg_restore, archive, plan, target):
    """One psql transaction: our preamble, pg_restore's SQL for the chosen entries, our checks, COMMIT."""
    listing = _write_list(ctx, plan.entries + plan.late)
    psql = ctx.finder.find('psql', pg_restore.major, 'running the SQL of pg_restore %s' % pg_restore.version)
    restore_argv = [pg_restore.path, '--file=-', '--use-list=%s' % listing]
    if request.no_owner:
        restore_argv.append('--no-owner')
    if request.no_acl:
        restore_argv.append('--no-acl')
    restore_argv.append(archive)
    # The database comes from PGDATABASE: a name given as --dbname would be parsed as a
    # connection string if it held '='.
    psql_argv = [psql.path, '--no-psqlrc', '--no-password', '--quiet', '--set=ON_ERROR_STOP=1']
    preamble = _preamble(plan).as_string(target).encode('utf-8')
    epilogue = _epilogue(plan, backup, target).as_string(target).encode('utf-8')

    def script():
        yield preamble
        for block in tool_output(restore_argv, {}, 'pg_restore of backup %s' % backup.backup_id):
            yield block
        yield epilogue

    try:
        with PassFile(ctx.options, ctx.tmpdir) as passfile:
            env = ctx.options.tool_environment(request.target_db, passfile)
            stream_into(psql_argv, env, script(), 'psql into database %r' % request.target_db)
    finally:
        os.unlink(listing)


def _ident(key):
    return sql.SQL('{}.{}').format(sql.Identifier(key[0]), sql.Identifier(key[1]))


def _preamble(plan):
    # Replaced tables are locked against writers (readers keep seeing the old rows until COMMIT)
    # and emptied with DELETE, not TRUNCATE: TRUNCATE refuses tables other tables' foreign keys
    # point at and would block readers for the whole load. With triggers off, the DELETE does not
    # cascade into the tables that reference these.
    statements = [sql.SQL('BEGIN'), sql.SQL('SET LOCAL session_replication_role = replica')]
    if plan.replaced:
        statements.append(sql.SQL('LOCK TABLE {} IN EXCLUSIVE MODE').format(
            sql.SQL(', ').join(_ident(key) for key in plan.replaced)))
        for key in plan.replaced:
            # A partitioned table is emptied whole (partitions the backup does not know too);
            # a plain table ONLY, so tables inheriting from it keep their rows.
            only = sql.SQL('') if plan.kinds[key] == 'p' else sql.SQL('ONLY ')
            statements.append(sql.SQL('DELETE FROM {}{}').format(only, _ident(key)))
    return sql.SQL('').join(s + sql.SQL(';\n') for s in statements)


# Orphans of every foreign key from or to the restored tables (and their partition ancestors,
# where a partition's foreign keys are declared). MATCH SIMPLE skips a row with any NULL key
# column, MATCH FULL only a row whose key columns are all NULL.
FOREIGN_KEY_CHECK = """
DECLARE
    rels oid[];
    fk record;
    orphans bigint;
BEGIN
    -- pg_partition_ancestors() returns nothing for a table that is not a partition.
    rels := ARRAY(SELECT r.rel FROM unnest(@tables@::regclass[]) r(rel)
                  UNION SELECT a.relid FROM unnest(@tables@::regclass[]) r(rel), pg_partition_ancestors(r.rel) a);
    FOR fk IN
        SELECT c.conname, c.conrelid::regclass AS child, c.confrelid::regclass AS parent,
               (SELECT string_agg(format('c.%I IS NOT NULL', a.attname),
                                  CASE c.confmatchtype WHEN 'f' THEN ' OR ' ELSE ' AND ' END)
                  FROM unnest(c.conkey) k(attnum)
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS present,
               (SELECT string_agg(format('p.%I = c.%I', pa.attname, ca.attname), ' AND ')
                  FROM unnest(c.conkey, c.confkey) k(ck, pk)
                  JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.ck
                  JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.pk) AS matches
          FROM pg_constraint c
         WHERE c.contype = 'f' AND c.conparentid = 0 AND (c.conrelid = ANY (rels) OR c.confrelid = ANY (rels))
         ORDER BY c.conname
    LOOP
        EXECUTE format('SELECT count(*) FROM %s c WHERE (%s) AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)',
                       fk.child, fk.present, fk.parent, fk.matches) INTO orphans;
        IF orphans > 0 THEN
            RAISE EXCEPTION 'lifeboat: foreign key % on % has % row(s) without a match in %; restore % too, or '
                'fix those rows first', fk.conname, fk.child, orphans, fk.parent, fk.parent;
        END IF;
    END LOOP;
END
"""

ROW_COUNT_CHECK = """
    SELECT count(*) INTO n FROM ONLY {table};
    IF n <> {expected} THEN
        RAISE EXCEPTION 'lifeboat: % holds % row(s) after the load, the manifest of backup % says %',
            {name}, n, {backup}, {expected};
    END IF;
"""


def _epilogue(plan, backup, conn):
    """The checks that decide whether we COMMIT, then COMMIT. DO takes its body as a string
    literal, so quoting the body with sql.Literal needs no dollar quotes."""
    tables = sql.SQL('ARRAY[{}]').format(sql.SQL(', ').join(
        sql.Literal(_ident(key).as_string(conn)) for key in plan.keys)).as_string(conn)
    bodies = [FOREIGN_KEY_CHECK.replace('@tables@', tables)]
    counts = backup.manifest.get('row_counts') or {}
    loaded = set((e.schema, e.tag) for e in plan.entries if e.desc == 'TABLE DATA')
    checks = [sql.SQL(ROW_COUNT_CHECK).format(table=_ident(key), expected=sql.Literal(counts[display(key)]),
                                              name=sql.Literal(display(key)), backup=sql.Literal(backup.backup_id))
              for key in plan.keys if key in loaded and display(key) in counts]
    if checks:
        bodies.append(sql.SQL('DECLARE n bigint; BEGIN {} END').format(sql.SQL('').join(checks)).as_string(conn))
    statements = [sql.SQL('DO {}').format(sql.Literal(body)) for body in bodies] + [sql.SQL('COMMIT')]
    return sql.SQL('\n') + sql.SQL('').join(s + sql.SQL(';\n') for s in statements)
