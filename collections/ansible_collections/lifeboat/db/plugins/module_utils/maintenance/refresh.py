# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refreshing materialized views: CONCURRENTLY (readers not blocked) when the view is populated
and has a unique index CONCURRENTLY can use, otherwise a plain REFRESH, saying why."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import NOT_EXTENSION_MEMBER, USER_SCHEMAS
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.maintenance.relations import Relation, resolve, timed

# Every materialized view of the user schemas, oldest first (one built on another came after it).
ALL_MATVIEWS = """SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispopulated
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'm' AND %s
   AND %s
 ORDER BY c.oid""" % (USER_SCHEMAS, NOT_EXTENSION_MEMBER)

# The index REFRESH ... CONCURRENTLY can use, by the server's own rule (matview.c,
# is_usable_unique_index): unique, immediate, valid, btree, no WHERE, every column a plain column.
USABLE_UNIQUE_INDEX = """SELECT ic.relname
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE i.indrelid = %s AND i.indisunique AND i.indimmediate AND i.indisvalid
   AND i.indpred IS NULL AND i.indexprs IS NULL AND am.amname = 'btree'
   AND NOT (0 = ANY (i.indkey::int2[]))
 ORDER BY ic.relname
 LIMIT 1"""


def plan_refreshes(conn, params):
    """(view, index or None, why not concurrently or None) for each view to refresh, in order:
    those named by refresh, then with refresh_all every other one of the user schemas."""
    views = resolve(conn, params['refresh'], ('m',), 'refresh', params['db'])
    if params['refresh_all']:
        labels = [view.label for view in views]
        views += [Relation(*row) for row in conn.execute(ALL_MATVIEWS).fetchall()
                  if '%s.%s' % (row[1], row[2]) not in labels]
    return [_refresh_method(conn, view) for view in views]


def _refresh_method(conn, view):
    """(view, index CONCURRENTLY would use or None, why not concurrently or None)."""
    if not view.populated:
        return view, None, 'it is not populated yet and CONCURRENTLY needs a populated view'
    row = conn.execute(USABLE_UNIQUE_INDEX, (view.oid,)).fetchone()
    if row is None:
        return view, None, ('it has no unique index CONCURRENTLY can use (unique, valid, btree, without WHERE, '
                            'on plain columns)')
    return view, row[0], None


def refresh(work, view, index, reason):
    """Refresh one view (check mode: say how it would be). `work` is the task's run.Maintenance."""
    how = 'concurrently, by unique index %s' % index if index else 'not concurrently: %s' % reason
    entry = dict(view=view.label, concurrently=bool(index), index=index, reason=reason, seconds=None)
    if work.check_mode:
        work.actions.append('Would refresh materialized view %s %s' % (view.label, how))
    else:
        statement = sql.SQL('REFRESH MATERIALIZED VIEW {}{}').format(
            sql.SQL('CONCURRENTLY ') if index else sql.SQL(''), view.ident)
        entry['seconds'] = timed(work.conn, statement, 'refresh of materialized view %s' % view.label)
        work.actions.append('Refreshed materialized view %s in %.3f s, %s' % (view.label, entry['seconds'], how))
    work.refreshed.append(entry)
    work.changed = True
