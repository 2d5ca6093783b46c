# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Questions answered from the PostgreSQL catalog: which tables hold data, and how many rows."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError

# The schemas that hold a database's own objects (a condition on pg_namespace n).
USER_SCHEMAS = """n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"""

# A relation c that no extension owns (CREATE EXTENSION makes those again).
NOT_EXTENSION_MEMBER = """NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"""

# Tables that hold rows: ordinary tables and leaf partitions (a partitioned parent would count
# its partitions' rows twice), not an extension's.
_DATA_TABLES = """
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r'
   AND %s
   AND %s
 ORDER BY 1, 2
""" % (USER_SCHEMAS, NOT_EXTENSION_MEMBER)
DATA_TABLES = 'SELECT n.nspname, c.relname' + _DATA_TABLES
# What the planner knows of their size: pages and rows as of the last ANALYZE or VACUUM
# (reltuples -1: never), and the file's size now.
TABLE_STATISTICS = 'SELECT n.nspname, c.relname, c.relpages, c.reltuples::bigint, pg_relation_size(c.oid)' + \
    _DATA_TABLES


def data_tables(conn):
    return [tuple(row) for row in conn.execute(DATA_TABLES).fetchall()]


def table_statistics(conn):
    """[(schema, table, relpages, reltuples, bytes)] of the data tables."""
    return [tuple(row) for row in conn.execute(TABLE_STATISTICS).fetchall()]


def split_name(qualified):
    """'schema.table' or 'table' (in public) -> (schema, table), read as SQL reads a name: unquoted
    letters fold to lower case, double quotes keep case and dots."""
    qualified = qualified.strip()
    parts, current, quoted, i = [], [], False, 0
    while i < len(qualified):
        char = qualified[i]
        if char == '"':
            if quoted and qualified[i + 1:i + 2] == '"':
                current.append('"')
                i += 1
            else:
                quoted = not quoted
        elif char == '.' and not quoted:
            parts.append(''.join(current))
            current = []
        else:
            current.append(char if quoted else char.lower())
        i += 1
    parts.append(''.join(current))
    if len(parts) == 1:
        parts.insert(0, 'public')
    if len(parts) != 2 or not all(parts):
        raise LifeboatError('%r is not a table name; write it as schema.table' % (qualified,))
    return tuple(parts)


def table_key(schema, table):
    return '%s.%s' % (schema, table)


def exact_row_counts(conn, selects=None):
    """{'schema.table': rows} by count(*), in the connection's current snapshot; with `selects`
    (schema, table -> bool), of the tables it selects only."""
    counts = {}
    for schema, table in data_tables(conn):
        if selects is not None and not selects(schema, table):
            continue
        query = sql.SQL('SELECT count(*) FROM {}.{}').format(sql.Identifier(schema), sql.Identifier(table))
        counts[table_key(schema, table)] = conn.execute(query).fetchone()[0]
    return counts


def database_settings(conn, dbname):
    """Encoding and locale of a database, recorded so a restore can recreate it alike."""
    row = conn.execute('SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database '
                       'WHERE datname = %s', (dbname,)).fetchone()
    return dict(encoding=row[0], lc_collate=row[1], lc_ctype=row[2]) if row else {}


def database_size(conn, dbname):
    """Bytes the database takes on disk: what restoring it needs free (recorded in the manifest)."""
    row = conn.execute('SELECT pg_database_size(oid) FROM pg_database WHERE datname = %s', (dbname,)).fetchone()
    return row[0] if row else None
