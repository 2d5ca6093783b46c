# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bringing a retired partition back (restore_partition): the detached table attached again if it is
still there, else restored from its partition-archive set - proven first, its rows counted after the
restore, and dropped again if it cannot be attached."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.partition.bounds import RetiredMark, qualified
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import parse_name, quoted_key, table_key
from ansible_collections.lifeboat.db.plugins.module_utils.partition.archive import (
    archived_bounds, attach, find_archive, prove_archive, restore_archive, table_comment)


def reattach(ctx, conn, table):
    """Attach `restore_partition` to `table` again; returns the module's result."""
    p = ctx.params
    schema, name = parse_name(p['restore_partition'])
    schema = schema or table.schema  # a bare name is a partition in its parent's schema
    key = table_key(schema, name)
    result = dict(table=table.key, restored=key, backup_id=None, rows=None, actions=[], changed=False)
    if any((part.schema, part.name) == (schema, name) for part in table.partitions):
        result['actions'].append('%s is already a partition of %s' % (key, table.key))
        return result
    found, refused = table.detached(conn)
    detached = [d for d in found if (d.schema, d.name) == (schema, name)]
    if detached:
        return _attach_detached(ctx, conn, table, detached[0], result)
    for refused_key, why in refused:
        if refused_key == key:
            raise LifeboatError('refusing to attach %s to %s: its lifeboat-retired mark does not hold - %s; nothing '
                                'was changed' % (key, table.key, why))
    if conn.execute('SELECT to_regclass(%s)', (quoted_key(schema, name),)).fetchone()[0] is not None:
        raise LifeboatError('%s exists but is not a partition retention detached from %s; rename or drop it before '
                            'restoring the archive' % (key, table.key))
    return _from_archive(ctx, conn, table, schema, name, result)


def _attach_detached(ctx, conn, table, detached, result):
    """The detached table is still there: attach it with the bounds its mark recorded."""
    bounds = detached.bounds
    if not ctx.check_mode:
        attach(conn, table, detached.schema, detached.name, bounds, detached.mark.comment)
    result.update(changed=True, bound=bounds.text(), actions=['%s the detached table %s to %s again (%s)'
                                                              % ('Would attach' if ctx.check_mode else 'Attached',
                                                                 result['restored'], table.key, bounds.text())])
    return result


def _from_archive(ctx, conn, table, schema, name, result):
    """Restore the table from its partition archive (proven first), then attach it."""
    key = result['restored']
    if ctx.repository is None:
        raise LifeboatError('%s is not in the database: give repository, the folder holding its partition archive'
                            % key)
    backup_id = ctx.params['backup_id']
    backup = find_archive(ctx, table, schema, name, backup_id)
    if backup is None:
        raise LifeboatError('no partition archive of %s%s in %s; list them with lifeboat.db.backup_info'
                            % (key, ' with id %s' % backup_id if backup_id else '', ctx.repository.root))
    bounds = archived_bounds(table, backup, key)
    bound = bounds.text()
    result.update(changed=True, backup_id=backup.backup_id, bound=bound)
    if ctx.check_mode:
        result['actions'].append('Would restore %s from backup %s and attach it to %s (%s)'
                                 % (key, backup.backup_id, table.key, bound))
        return result
    rows = prove_archive(ctx, backup, schema, name)
    restore_archive(ctx, backup, schema, name)
    _count_and_attach(conn, table, schema, name, bounds, rows, backup)
    result.update(rows=rows, actions=['Restored %s (%d rows) from backup %s and attached it to %s (%s)'
                                      % (key, rows, backup.backup_id, table.key, bound)])
    return result


def _count_and_attach(conn, table, schema, name, bounds, rows, backup):
    """The restored table holds the archive's rows, and is attached; if not, it is dropped again."""
    key = table_key(schema, name)
    try:
        live = conn.execute(sql.SQL('SELECT count(*) FROM {}').format(qualified(schema, name))).fetchone()[0]
        if live != rows:
            raise LifeboatError('restoring %s from backup %s gave %d rows, the archive holds %d'
                                % (key, backup.backup_id, live, rows))
        comment = table_comment(conn, schema, name)
        mark = RetiredMark.parse(comment)
        attach(conn, table, schema, name, bounds, mark.comment if mark else comment)
    except LifeboatError as exc:
        _drop_restored(conn, schema, name)
        raise LifeboatError('%s; the restored copy was dropped again and backup %s is unchanged'
                            % (exc.msg, backup.backup_id))
    except Exception as exc:
        _drop_restored(conn, schema, name)
        raise LifeboatError('cannot attach %s to %s (%s): %s; the restored copy was dropped again and backup %s is '
                            'unchanged' % (key, table.key, bounds.text(), str(exc).splitlines()[0], backup.backup_id))


def _drop_restored(conn, schema, name):
    conn.execute(sql.SQL('DROP TABLE IF EXISTS {}').format(qualified(schema, name)))
