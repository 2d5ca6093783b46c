# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fault module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import split_name
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import database_exists, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError


def drop_database(ctx):
    db = ctx.params['db']
    conn = ctx.options.connect(ctx.params['maintenance_db'])
    try:
        if not database_exists(conn, db):
            raise LifeboatError('database %r does not exist; nothing to break' % db)
        if not ctx.check_mode:
            conn.execute(sql.SQL('DROP DATABASE {} WITH (FORCE)').format(sql.Identifier(db)))
    finally:
        conn.close()
    verb = 'Would drop' if ctx.check_mode else 'Dropped'
    return dict(changed=True, fault='drop_database', target=db, actions=['%s database %r' % (verb, db)])


def table_fault(ctx):
    p = ctx.params
    if not p['table']:
        raise LifeboatError('fault=%s needs table: the schema.table to break' % p['fault'])
    schema, table = split_name(p['table'])
    target = sql.SQL('{}.{}').format(sql.Identifier(schema), sql.Identifier(table))
    conn = ctx.options.connect(p['db'], autocommit=False)
    try:
        found = conn.execute("SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
                             (schema, table)).fetchone()
        if not found:
            raise LifeboatError('table %s.%s not found in database %r; name it as schema.table' % (schema, table, p['db']))
        rows = conn.execute(sql.SQL('SELECT count(*) FROM {}').format(target)).fetchone()[0]
        statement = sql.SQL('TRUNCATE {}' if p['fault'] == 'truncate' else 'DROP TABLE {}').format(target)
        if p['cascade']:
            statement += sql.SQL(' CASCADE')
        if ctx.check_mode:
            conn.rollback()
        else:
            conn.execute(statement)
            conn.commit()
    finally:
        conn.close()
    done, planned = {'truncate': ('Truncated', 'Would truncate'), 'drop_table': ('Dropped', 'Would drop')}[p['fault']]
    return dict(changed=True, fault=p['fault'], target='%s.%s' % (schema, table), rows_destroyed=rows,
                actions=['%s table %s.%s (%d rows)' % (planned if ctx.check_mode else done, schema, table, rows)])


def run(ctx):
    p = ctx.params
    if p['confirm'] != p['db']:
        raise LifeboatError('confirm must repeat the database name %r to inject a fault; nothing was changed' % p['db'])
    return drop_database(ctx) if p['fault'] == 'drop_database' else table_fault(ctx)
