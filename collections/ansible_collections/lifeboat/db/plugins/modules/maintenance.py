#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: maintenance
short_description: Refresh materialized views, vacuum and analyze tables, purge old rows in small batches
version_added: 0.1.0
description:
  - Seed 002's upkeep in one task - the hourly C(REFRESH MATERIALIZED VIEW CONCURRENTLY) of its views, and the
    monthly deletion of rows past their retention followed by C(VACUUM ANALYZE).
  - Every view and table named is looked up, and every purge condition planned by C(EXPLAIN), before anything
    runs; a name that does not exist or a condition that does not work fails the task with nothing done.
  - The work runs in this order - purges (each followed by its C(VACUUM ANALYZE) when asked), O(vacuum),
    O(analyze), then the refreshes, so that the views show the purged data.
  - A view is refreshed C(CONCURRENTLY) (readers are not blocked) when it is populated and has a unique index
    C(CONCURRENTLY) can use - unique, valid, btree, without C(WHERE), on plain columns; otherwise by a plain
    C(REFRESH), and the result says why.
  - A purge deletes in batches, each its own short transaction deleting at most O(purge[].batch_size) matching
    rows by their C(ctid) under a C(lock_timeout), so it never holds many row locks for long nor queues long
    behind another session's locks. It goes on until a pass from the start of the table finds nothing left.
    A partitioned table is purged one leaf partition at a time (foreign partitions are left alone).
  - A batch that cannot get its locks in time is tried three more times; then the task fails saying how many
    rows were already removed. Those stay removed (each batch committed); running the task again goes on.
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  db:
    description: Database to maintain.
    type: str
    required: true
    aliases: [login_db, database]
  refresh:
    description:
      - Materialized views to refresh (C(schema.name), or C(name) in C(public)), in this order.
    type: list
    elements: str
    default: []
  refresh_all:
    description:
      - Refresh every materialized view of the database's own schemas (not those of extensions), oldest first,
        after those of O(refresh).
    type: bool
    default: false
  vacuum:
    description:
      - Tables (or materialized views) to C(VACUUM (ANALYZE)), outside any transaction.
    type: list
    elements: str
    default: []
  analyze:
    description: Tables (or materialized views) to C(ANALYZE).
    type: list
    elements: str
    default: []
  purge:
    description:
      - Rows to delete, each entry a table and the condition of its rows.
    type: list
    elements: dict
    default: []
    suboptions:
      table:
        description: The table (C(schema.table), or C(table) in C(public)); a partitioned table is purged leaf by leaf.
        type: str
        required: true
      where:
        description:
          - The condition of the rows to delete, as written after C(WHERE) - the operator's own SQL, for example
            C(status = 'inactive' AND left_at < now() - interval '3 years').
          - It is planned by C(EXPLAIN) before anything is deleted; one condition only (no C(;) and a second
            statement).
        type: str
        required: true
      batch_size:
        description: Most rows one batch (one transaction) deletes; 1 or more.
        type: int
        default: 1000
      pause:
        description: Seconds to wait between batches, so that other sessions and replication keep up.
        type: float
        default: 0.1
      lock_timeout:
        description:
          - How long one batch may wait for a lock (C(250ms), C(5s), C(1min); a bare number is seconds).
          - A batch that times out is rolled back and tried again three times, waiting longer each time.
        type: raw
        default: 5s
      vacuum:
        description: C(VACUUM (ANALYZE)) the table after its purge, as the runbook does.
        type: bool
        default: false
attributes:
  check_mode:
    support: full
    description:
      - Reports the views it would refresh and how, the tables it would vacuum and analyze, and for each purge the
        exact number of rows its condition matches now (C(count(*))); changes nothing.
  diff_mode:
    support: none
notes:
  - O(changed) is true when something was done - a view refreshed, a table vacuumed or analyzed, or a purge that
    removed rows. A purge that found nothing to remove, alone, reports no change.
  - The login role must own the views and tables (or be a superuser); a purge needs C(DELETE) and C(SELECT) on
    the table.
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Hourly refresh of seed 002's views (readers are not blocked)
  lifeboat.db.maintenance:
    db: consulting_tool
    refresh:
      - mv_user_allocation_summary
      - mv_team_statistics

- name: Monthly retention of seed 002 - rows left more than 3 years ago, then VACUUM ANALYZE
  lifeboat.db.maintenance:
    db: consulting_tool
    purge:
      - table: organization_members
        where: status = 'inactive' AND left_at < now() - interval '3 years'
        vacuum: true
      - table: team_members
        where: status = 'inactive' AND left_at < now() - interval '3 years'
        vacuum: true
      - table: team_leaders
        where: status = 'inactive' AND removed_at < now() - interval '3 years'
        batch_size: 500
        lock_timeout: 2s
        vacuum: true
  register: retention

- name: How many rows the retention would remove, without removing them
  lifeboat.db.maintenance:
    db: consulting_tool
    purge:
      - table: organization_members
        where: status = 'inactive' AND left_at < now() - interval '3 years'
  check_mode: true
'''

RETURN = r'''
refreshed:
  description: The materialized views refreshed (or that would be), in order.
  returned: always
  type: list
  elements: dict
  contains:
    view:
      description: The view, as C(schema.name).
      type: str
    concurrently:
      description: Whether it was refreshed C(CONCURRENTLY).
      type: bool
    index:
      description: The unique index that allowed C(CONCURRENTLY), or null.
      type: str
    reason:
      description: Why it was not refreshed C(CONCURRENTLY), or null.
      type: str
    seconds:
      description: How long the refresh took; null in check mode.
      type: float
  sample: [{view: public.mv_team_statistics, concurrently: true, index: idx_mv_team_statistics_team, reason: null,
            seconds: 0.021}]
vacuumed:
  description: Tables vacuumed and analyzed (O(vacuum) and purges with O(purge[].vacuum)), each C(table) and C(seconds) (null in check mode).
  returned: always
  type: list
  elements: dict
analyzed:
  description: Tables analyzed, each C(table) and C(seconds) (null in check mode).
  returned: always
  type: list
  elements: dict
purged:
  description: One entry per purge, in order.
  returned: always
  type: list
  elements: dict
  contains:
    table:
      description: The table, as C(schema.table).
      type: str
    where:
      description: The condition.
      type: str
    rows:
      description: Rows removed; in check mode, the rows the condition matches now.
      type: int
    batches:
      description: Batches (DELETE transactions) run, the last finding nothing left; null in check mode.
      type: int
    longest_batch_seconds:
      description: The longest batch - the longest any batch held its row locks; null in check mode.
      type: float
    seconds:
      description: The whole purge, pauses included; null in check mode.
      type: float
  sample: [{table: public.organization_members, where: "status = 'inactive' AND left_at < now() - interval '3 years'",
            rows: 12000, batches: 14, longest_batch_seconds: 0.041, seconds: 1.9}]
actions:
  description: What the task did (or would do), in plain sentences; on failure, also what was done before it.
  returned: always
  type: list
  elements: str
  sample: ["Refreshed materialized view public.mv_team_statistics in 0.021 s, concurrently, by unique index idx_mv_team_statistics_team"]
timing:
  description: Start and end of the task (ISO 8601 and epoch seconds) and its seconds.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.maintenance.run import run
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module


def argument_spec():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', required=True, aliases=['login_db', 'database'])
    spec.update(
        refresh=dict(type='list', elements='str', default=[]),
        refresh_all=dict(type='bool', default=False),
        vacuum=dict(type='list', elements='str', default=[]),
        analyze=dict(type='list', elements='str', default=[]),
        purge=dict(type='list', elements='dict', default=[], options=dict(
            table=dict(type='str', required=True),
            where=dict(type='str', required=True),
            batch_size=dict(type='int', default=1000),
            pause=dict(type='float', default=0.1),
            lock_timeout=dict(type='raw', default='5s'),
            vacuum=dict(type='bool', default=False),
        )),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
