# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sample_data module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import check_name
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.sample.data import (
    current_scale, ensure_database, expected_rows, load)


def run(ctx):
    p = ctx.params
    check_name('schema', p['schema'])  # db and maintenance_db: run_module checks them for every module
    if p['scale'] < 1:
        raise LifeboatError('scale must be at least 1, got %d' % p['scale'])
    counts = dict(('%s.%s' % (p['schema'], table), rows) for table, rows in expected_rows(p['scale']).items())
    result = dict(schema=p['schema'], scale=p['scale'], row_counts=counts)
    maintenance = ctx.options.connect(p['maintenance_db'])
    try:
        created_db = ensure_database(maintenance, p['db'], ctx.check_mode)
    finally:
        maintenance.close()
    if created_db and ctx.check_mode:
        return dict(changed=True, actions=['Would create database %r and load the sample at scale %d'
                                           % (p['db'], p['scale'])], **result)
    conn = ctx.options.connect(p['db'])
    try:
        present = current_scale(conn, p['schema'])
        if present == p['scale'] and not p['force']:
            return dict(changed=False, actions=['Sample at scale %d already in %s.%s' % (present, p['db'], p['schema'])],
                        **result)
        action = 'load the sample (%d rows) into %s.%s' % (sum(counts.values()), p['db'], p['schema'])
        if present is not None:
            action = 're' + action + ' replacing scale %d' % present
        if ctx.check_mode:
            return dict(changed=True, actions=['Would ' + action], **result)
        load(conn, p['schema'], p['scale'])
    finally:
        conn.close()
    actions = (['Created database %r' % p['db']] if created_db else []) + [action[0].upper() + action[1:]]
    return dict(changed=True, actions=actions, **result)
