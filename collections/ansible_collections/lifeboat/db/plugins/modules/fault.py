#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: fault
short_description: Inject a fault into a PostgreSQL database for a recovery drill
version_added: 0.1.0
description:
  - Destroys data on purpose, the way seed 001's drill does, so that a restore can be proven -
    C(TRUNCATE) a table, C(DROP TABLE), or C(DROP DATABASE ... WITH (FORCE)).
  - Refuses to run unless O(confirm) repeats the database name, so a stray variable cannot
    aim it at the wrong database.
  - Refuses any host whose inventory sets C(lifeboat_production) to true (or to something that is
    neither true nor false), check mode included, before anything is sent to the host (an action
    plugin checks the host's variables).
  - Take a backup first; this module does not.
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  db:
    description: Database to break.
    type: str
    required: true
    aliases: [login_db, database]
  fault:
    description: What to break.
    type: str
    default: truncate
    choices: [truncate, drop_table, drop_database]
  table:
    description: Table (C(schema.table), or C(table) in C(public)) for O(fault=truncate) and O(fault=drop_table).
    type: str
  cascade:
    description: Add C(CASCADE), for tables other tables refer to.
    type: bool
    default: false
  confirm:
    description: Must equal O(db).
    type: str
    required: true
  maintenance_db:
    description: Database to connect to for O(fault=drop_database).
    type: str
    default: postgres
attributes:
  check_mode:
    support: full
    description: Reports the fault it would inject and the rows it would destroy; changes nothing.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Simulate the incident of seed 001 - the events table emptied
  lifeboat.db.fault:
    db: drill
    fault: truncate
    table: lifeboat_sample.events
    confirm: drill
'''

RETURN = r'''
fault:
  description: The fault injected.
  returned: always
  type: str
target:
  description: The table or database broken.
  returned: always
  type: str
rows_destroyed:
  description: Rows the table held before the fault (table faults only).
  returned: when a table fault was injected or would be
  type: int
actions:
  description: What the task did (or would do), in plain sentences.
  returned: always
  type: list
  elements: str
timing:
  description: Start and end of the task (ISO 8601 and epoch seconds); the start is the moment of the fault.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.catalog import split_name
from ansible_collections.lifeboat.db.plugins.module_utils.connection import (
    connection_argument_spec, database_exists, sql)
from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.task import run_module


def argument_spec():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', required=True, aliases=['login_db', 'database'])
    spec.update(
        fault=dict(type='str', default='truncate', choices=['truncate', 'drop_table', 'drop_database']),
        table=dict(type='str'),
        cascade=dict(type='bool', default=False),
        confirm=dict(type='str', required=True),
        maintenance_db=dict(type='str', default='postgres'),
    )
    return spec


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


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
