#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: sample_data
short_description: Load a generated, realistic sample dataset for drills and tests
version_added: 0.1.0
description:
  - Creates schema O(schema) in database O(db) (the database too, if missing) holding a small
    shop - C(customers), C(products), C(orders), C(order_items) and an append-only C(events) log -
    with foreign keys and text, numeric, timestamptz and jsonb columns.
  - The content is a pure function of O(scale), so loading the same scale twice gives the same
    rows. With O(scale) customers there are 3 x O(scale) orders, 9 x O(scale) order items and
    5 x O(scale) events.
  - Loading happens in one transaction. A schema of the same name that this module did not
    create is never touched.
  - Idempotent - when the schema already holds the sample at this scale nothing changes.
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  db:
    description: Database to load the sample into; created when missing.
    type: str
    required: true
    aliases: [login_db, database]
  schema:
    description: Schema holding the sample tables.
    type: str
    default: lifeboat_sample
  scale:
    description: Number of customers; every other table grows with it.
    type: int
    default: 1000
  force:
    description: Reload the sample even when it is already there at this scale.
    type: bool
    default: false
  maintenance_db:
    description: Database to connect to when O(db) has to be created.
    type: str
    default: postgres
attributes:
  check_mode:
    support: full
    description: Reports whether the sample would be (re)loaded; changes nothing.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Load 2000 customers' worth of sample data into a drill database
  lifeboat.db.sample_data:
    db: drill
    scale: 2000
'''

RETURN = r'''
schema:
  description: Schema holding the sample.
  returned: always
  type: str
scale:
  description: Scale loaded.
  returned: always
  type: int
row_counts:
  description: Rows per table (C(schema.table)) of the sample at this scale.
  returned: always
  type: dict
actions:
  description: What the task did (or would do), in plain sentences.
  returned: always
  type: list
  elements: str
timing:
  description: Start and end of the task (ISO 8601 and epoch seconds) and its duration in seconds.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.sample.run import run


def argument_spec():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', required=True, aliases=['login_db', 'database'])
    spec.update(
        schema=dict(type='str', default='lifeboat_sample'),
        scale=dict(type='int', default=1000),
        force=dict(type='bool', default=False),
        maintenance_db=dict(type='str', default='postgres'),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
