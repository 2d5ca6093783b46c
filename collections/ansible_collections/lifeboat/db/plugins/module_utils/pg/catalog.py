# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Questions answered from the PostgreSQL catalog: which tables hold data, and how many rows."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import row_count_keys

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


def exact_row_counts(conn, selects=None):
    """{'schema.table': rows} by count(*), in the connection's current snapshot; with `selects`
    (schema, table -> bool), of the tables it selects only. Keys are row_count_keys'."""
    counts = {}
    tables = data_tables(conn)
    keys = row_count_keys(tables)
    for schema, table in tables:
        if selects is not None and not selects(schema, table):
            continue
        query = sql.SQL('SELECT count(*) FROM {}.{}').format(sql.Identifier(schema), sql.Identifier(table))
        counts[keys[(schema, table)]] = conn.execute(query).fetchone()[0]
    return counts


# pg_database.datlocprovider's letters, as CREATE DATABASE's LOCALE_PROVIDER names them (PostgreSQL 15+).
LOCALE_PROVIDERS = {'c': 'libc', 'i': 'icu', 'b': 'builtin'}


def database_settings(conn, dbname):
    """Encoding and locale of a database, recorded so a restore can recreate it alike: libc's
    collate and ctype, and on 15+ the locale provider with its ICU or builtin locale (the
    catalog's columns differ between versions - daticulocale, datlocale - so the row is read
    whole, as JSON)."""
    row = conn.execute('SELECT pg_encoding_to_char(encoding), datcollate, datctype, to_jsonb(d) FROM pg_database d '
                       'WHERE datname = %s', (dbname,)).fetchone()
    if not row:
        return {}
    settings = dict(encoding=row[0], lc_collate=row[1], lc_ctype=row[2])
    provider = LOCALE_PROVIDERS.get(row[3].get('datlocprovider'))
    if provider and provider != 'libc':
        settings.update(locale_provider=provider, locale=row[3].get('datlocale') or row[3].get('daticulocale'))
    return settings


def database_size(conn, dbname):
    """Bytes the database takes on disk: what restoring it needs free (recorded in the manifest)."""
    row = conn.execute('SELECT pg_database_size(oid) FROM pg_database WHERE datname = %s', (dbname,)).fetchone()
    return row[0] if row else None
