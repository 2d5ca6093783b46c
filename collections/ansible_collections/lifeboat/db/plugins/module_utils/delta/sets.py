# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Delta sets: what export writes and apply reads - the format, the tables a set names, the chain
of sets following one full backup, and the session settings both ends pin.

A delta set is an ordinary backup set (kind `delta`, format `delta`) holding one gzip-compressed
COPY file per table and, in its manifest, the watermark of every table: the largest value of the
table's change column in the snapshot exported. The next export of the same chain (the deltas
following one full backup) continues from that watermark, so the repository alone says where to
go on - there is no state anywhere else.

Applying upserts the rows (INSERT ... ON CONFLICT (key) DO UPDATE), so re-exporting a row twice
is harmless; that is what makes the overlap window cheap. Rows deleted from the source are not in
any delta: a change column cannot tell that a row is gone.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import parse_name, quoted_key, table_key
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

DELTA_FORMAT = 'delta'

TABLE = """
SELECT n.nspname, c.relname, c.oid, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass(%s)
"""
TABLE_BY_NAME = """
SELECT c.oid, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s
"""
# The type without its modifier: timestamptz(3) is a timestamptz change column all the same.
COLUMNS = """
SELECT a.attname, format_type(a.atttypid, NULL), a.attidentity, a.attgenerated
  FROM pg_attribute a
 WHERE a.attrelid = %s::oid AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""
# Column sets of the unique indexes ON CONFLICT can use: no expressions, no predicate.
UNIQUE_KEYS = """
SELECT i.indisprimary,
       ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
  FROM pg_index i
 WHERE i.indrelid = %s::oid AND i.indisunique AND i.indexprs IS NULL AND i.indpred IS NULL
 ORDER BY i.indisprimary DESC, i.indexrelid
"""


class Table(object):
    """One table as the catalog of a database describes it."""

    def __init__(self, conn, schema, name, oid, relkind):
        self.schema, self.name, self.oid = schema, name, oid
        if relkind not in ('r', 'p'):
            raise LifeboatError('%s is not a table (relkind %s); deltas export ordinary or partitioned tables'
                                % (self.qualified, relkind))
        self.columns = [tuple(row) for row in conn.execute(COLUMNS, (oid,)).fetchall()]
        self.types = dict((column[0], column[1]) for column in self.columns)

    @property
    def qualified(self):
        return table_key(self.schema, self.name)

    @property
    def identifier(self):
        return sql.Identifier(self.schema, self.name)

    def copyable_columns(self):
        # Generated columns are computed by the target itself and cannot be inserted.
        return [name for name, dummy, dummy2, generated in self.columns if not generated]

    def unique_keys(self, conn):
        rows = conn.execute(UNIQUE_KEYS, (self.oid,)).fetchall()
        return [(bool(primary), list(columns)) for primary, columns in rows]


def find_table(conn, name):
    """The table a user named (resolved like PostgreSQL resolves it: a bare name through the
    search_path), or a clear error."""
    # Read here, not by the server: a part over 63 bytes would be cut to another table's name.
    row = conn.execute(TABLE, (quoted_key(*parse_name(name)),)).fetchone()
    if row is None:
        raise LifeboatError('table %r does not exist in database %r; check the name (schema.table) in tables'
                            % (name, conn.info.dbname))
    return Table(conn, *row)


def table_by_name(conn, qualified_name, schema, name):
    row = conn.execute(TABLE_BY_NAME, (schema, name)).fetchone()
    if row is None:
        raise LifeboatError('table %s of the delta does not exist in database %r; restore the base backup into it first'
                            % (qualified_name, conn.info.dbname))
    return Table(conn, schema, name, *row)


def delta_chain(repository, database, base_id, kind):
    """Delta sets that follow the full backup `base_id`, oldest first."""
    sets = [b for b in repository.backups(database, kind=kind) if b.manifest.get('format') == DELTA_FORMAT
            and (b.manifest.get('delta') or {}).get('base_backup_id') == base_id]
    return list(reversed(sets))


def resolve_base(repository, database, reference, kind='full'):
    base = repository.resolve(database, reference, kind=kind)
    if base.manifest.get('format') == DELTA_FORMAT:
        raise LifeboatError('base %s is a delta set; name the full backup the deltas follow' % base.backup_id)
    return base


# Session settings of both ends of a delta: COPY's text form of dates, times, intervals and
# floats depends on them, so export and apply pin them (as pg_dump does) and the watermarks,
# PostgreSQL's text of a value, read the same whatever the server's or the role's defaults.
SESSION = (("TimeZone", "UTC"), ("DateStyle", "ISO"), ("IntervalStyle", "postgres"),
           ("extra_float_digits", "3"), ("client_encoding", "UTF8"))


def pin_session(conn, local=False):
    for name, value in SESSION:
        conn.execute('SELECT set_config(%s, %s, %s)', (name, value, local))
