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

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.fault.run import run


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


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
