# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""VACUUM (ANALYZE) and ANALYZE of tables and materialized views, timed."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.maintenance.relations import KIND_NAMES, timed


def vacuum(work, table):
    """`work` is the task's run.Maintenance (connection, check_mode, the record it keeps)."""
    _maintain(work, table, work.vacuumed, 'VACUUM (ANALYZE) {}', 'vacuum and analyze', 'Vacuumed and analyzed')


def analyze(work, table):
    _maintain(work, table, work.analyzed, 'ANALYZE {}', 'analyze', 'Analyzed')


def _maintain(work, table, done, statement, planned, did):
    entry = dict(table=table.label, seconds=None)
    if work.check_mode:
        work.actions.append('Would %s %s %s' % (planned, KIND_NAMES[table.kind], table.label))
    else:
        # VACUUM cannot run inside a transaction: the connection is in autocommit.
        entry['seconds'] = timed(work.conn, sql.SQL(statement).format(table.ident), '%s of %s' % (planned, table.label))
        work.actions.append('%s %s %s in %.3f s' % (did, KIND_NAMES[table.kind], table.label, entry['seconds']))
    done.append(entry)
    work.changed = True
