# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance module's task: routine upkeep of one database (seed 002) - materialized views
refreshed, tables vacuumed and analyzed, rows past their retention purged in small batches.

Everything a task names is looked up, and every purge condition is planned by EXPLAIN, before
anything runs: a typo fails the task with nothing done. The work then runs in this order - purges
(each followed by its VACUUM ANALYZE when asked), VACUUM, ANALYZE, refreshes - so that the views
are refreshed from the purged data.

The work itself is in refresh.py, vacuum.py and purge.py; relations.py looks up what a task names.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.maintenance.purge import plan_purge, purges_of, run_purge
from ansible_collections.lifeboat.db.plugins.module_utils.maintenance.refresh import plan_refreshes, refresh
from ansible_collections.lifeboat.db.plugins.module_utils.maintenance.relations import ANALYZABLE_KINDS, resolve
from ansible_collections.lifeboat.db.plugins.module_utils.maintenance.vacuum import analyze, vacuum


class Maintenance(object):
    """Plans a task (every lookup and check), then does it, keeping the results as it goes: the
    work functions record into it (conn, check_mode, changed, actions and the result lists)."""

    def __init__(self, conn, params, check_mode):
        self.conn = conn
        self.params = params
        self.check_mode = check_mode
        self.changed = False
        self.actions = []
        self.refreshed, self.analyzed, self.vacuumed, self.purged = [], [], [], []
        # What plan() found: (view, index, reason) triples, tables, Purges.
        self.views, self.vacuum_tables, self.analyze_tables, self.purges = [], [], [], []

    def facts(self):
        return dict(changed=self.changed, refreshed=self.refreshed, analyzed=self.analyzed, vacuumed=self.vacuumed,
                    purged=self.purged, actions=self.actions)

    def plan(self, purges):
        """Every lookup and check; nothing here changes the database."""
        p, db = self.params, self.params['db']
        self.views = plan_refreshes(self.conn, p)
        self.vacuum_tables = resolve(self.conn, p['vacuum'], ANALYZABLE_KINDS, 'vacuum', db)
        self.analyze_tables = resolve(self.conn, p['analyze'], ANALYZABLE_KINDS, 'analyze', db)
        for purge in purges:
            plan_purge(self.conn, purge, db)
        self.purges = purges

    def run(self):
        vacuumed = set()
        for purge in self.purges:
            run_purge(self, purge)
            if purge.vacuum:
                vacuum(self, purge.table)
                vacuumed.add(purge.table.oid)
        for table in self.vacuum_tables:
            if table.oid not in vacuumed:
                vacuum(self, table)
        for table in self.analyze_tables:
            analyze(self, table)
        for view, index, reason in self.views:
            refresh(self, view, index, reason)
        return self.facts()


def run(ctx):
    p = ctx.params
    if not (p['refresh'] or p['refresh_all'] or p['analyze'] or p['vacuum'] or p['purge']):
        raise LifeboatError('nothing to do: give refresh, refresh_all, analyze, vacuum or purge')
    purges = purges_of(p)
    conn = ctx.options.connect(p['db'])
    try:
        work = Maintenance(conn, p, ctx.check_mode)
        work.plan(purges)
        try:
            return work.run()
        except LifeboatError as exc:
            # What was done before the failure stays done: the failure reports it too.
            raise LifeboatError(exc.msg, **work.facts())
    finally:
        conn.close()
