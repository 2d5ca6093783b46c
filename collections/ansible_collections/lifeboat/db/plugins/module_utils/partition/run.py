# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lifeboat.db.partition's two jobs: keep a table's partitions (create ahead and in gaps, retire
old ones), and bring an archived partition back (reattach.py)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible_collections.lifeboat.db.plugins.module_utils.backup.offsite import OffsiteRequest
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.partition.plan import (
    create_partition, plan_partitions, validate_extra_indexes)
from ansible_collections.lifeboat.db.plugins.module_utils.partition.table import PartitionedTable, set_time_zone
from ansible_collections.lifeboat.db.plugins.module_utils.partition.archive import (
    archive, drop_archived, find_archive, prove_archive, retire)
from ansible_collections.lifeboat.db.plugins.module_utils.partition.periods import Calendar, Namer
from ansible_collections.lifeboat.db.plugins.module_utils.partition.reattach import reattach

RETENTION_ACTIONS = ('detach', 'archive', 'archive_and_drop')


def run(ctx):
    p = ctx.params
    if p['restore_partition']:
        result = _with_table(ctx, reattach)
    else:
        if p['retention_action'] != 'detach' and p['retain'] is not None and ctx.repository is None:
            raise LifeboatError('retention_action %s needs repository: the folder on the target host that receives '
                                'the archives' % p['retention_action'])
        validate_extra_indexes(p['partition_indexes'])
        result = _with_table(ctx, _keep)
    if getattr(ctx, 'container', None) is not None:
        result['container'] = ctx.container_facts()
    return result


def _with_table(ctx, work):
    p = ctx.params
    if ctx.store is not None:
        raise LifeboatError('repository must be a local path for partition archives; copy them to S3 with offsite_url')
    conn = ctx.options.connect(p['db'])
    try:
        set_time_zone(conn, p['time_zone'])
        # Bounds are read from pg_get_expr's text (partition.Bounds.from_text): ISO dates, whatever
        # the server's default DateStyle.
        conn.execute("SELECT set_config('DateStyle', 'ISO, YMD', false)")
        table = PartitionedTable(conn, p['table'], p['time_zone'])
        locked = conn.execute('SELECT pg_try_advisory_lock(hashtextextended(%s, 0))',
                              ('lifeboat.partition ' + table.key,)).fetchone()[0]
        if not locked:
            raise LifeboatError('another lifeboat.db.partition run is working on %s; run again when it has finished'
                                % table.key)
        return work(ctx, conn, table)
    finally:
        conn.close()


def _now(p, table, calendar, conn):
    """The moment the plan is made for: `now`, else the clock (time keys) or the table's highest key."""
    if calendar.is_time:
        if p['now']:
            try:
                return datetime.datetime.fromisoformat(p['now'].replace('Z', '+00:00')).replace(tzinfo=None)
            except ValueError:
                raise LifeboatError('now must be a date or time like 2026-11-29 or 2026-11-29T10:00, got %r' % p['now'])
        return datetime.datetime.now(table.zone).replace(tzinfo=None)
    if p['now']:
        try:
            return int(p['now'])
        except ValueError:
            raise LifeboatError('now must be a key value (an integer) for %s, got %r' % (table.key, p['now']))
    highest = table.current_max(conn)
    return 0 if highest is None else highest


def _start(p, table, calendar):
    if not p['start']:
        return None
    try:
        return (datetime.datetime.fromisoformat(p['start']).replace(tzinfo=None) if calendar.is_time
                else int(p['start']))
    except ValueError:
        raise LifeboatError('start must be a %s like %s, got %r' % ('date' if calendar.is_time else 'key value',
                                                                     '2022-01-01' if calendar.is_time else '0',
                                                                     p['start']))


def _keep(ctx, conn, table):
    p = ctx.params
    calendar = Calendar(p['interval'], table.key_type)
    namer = Namer(p['name_pattern'], calendar, table.name)
    now = _now(p, table, calendar, conn)
    plan = plan_partitions(conn, table, calendar, namer, p['premake'], now, start=_start(p, table, calendar),
                           retain=p['retain'], default_rows=p['default_rows'])
    retiring = plan.finalize + plan.retire
    result = dict(table=table.key, column=table.column, key_type=table.key_type, interval=calendar.interval,
                  now=str(now), created=[_created(item) for item in plan.create], detached=[], archived=[],
                  dropped=[], actions=[])
    if plan.refused:
        result['warnings'] = ['%s has a lifeboat-retired mark naming %s that does not hold: %s; it is neither archived '
                              'nor dropped - if it is not a retired partition, remove its comment'
                              % (key, table.key, why) for key, why in plan.refused]
    if ctx.check_mode:
        return _would(result, plan, retiring, p['retention_action'], table)
    wanted, result['created'] = result['created'], []
    try:
        _apply(ctx, conn, table, plan, retiring, wanted, result)
    except (LifeboatError, psycopg.Error) as exc:
        # What was done before the failure is reported with it: those steps are committed.
        msg = exc.msg if isinstance(exc, LifeboatError) else 'PostgreSQL error: %s' % first_line(exc)
        facts = dict(getattr(exc, 'facts', {}), **result)
        facts['changed'] = bool(result['actions'])
        raise LifeboatError(msg, **facts)
    result['changed'] = bool(result['actions'])
    result['partitions'] = [part.key for part in table.read_partitions(conn)]
    return result


def _apply(ctx, conn, table, plan, retiring, wanted, result):
    actions = result['actions']
    for item, created in zip(plan.create, wanted):
        created['moved_rows'] = create_partition(conn, table, item, ctx.params['partition_indexes'])
        result['created'].append(created)
        actions.append('Created partition %s for %s (%s)%s'
                       % (created['name'], item['period'], item['reason'],
                          ', moving %d rows in from the default partition' % created['moved_rows']
                          if created['moved_rows'] else ''))
    detached = list(plan.detached)
    for part in retiring:
        detached.append(retire(conn, table, part, actions))
        result['detached'].append(part.key)
    action = ctx.params['retention_action']
    if action != 'detach':
        offsite = _offsite(ctx)
        for table_left in detached:
            _archive_and_drop(ctx, conn, table, table_left, action, offsite, result)


def _archive_and_drop(ctx, conn, table, detached, action, offsite, result):
    actions = result['actions']
    backup = None
    if detached.mark.backup_id:
        backup = find_archive(ctx, table, detached.schema, detached.name, detached.mark.backup_id, detached.oid)
        if backup is not None and action == 'archive':
            return  # archived by an earlier run and kept, as asked
    if backup is None:
        made = archive(ctx, table, detached, offsite, ctx.params['lock_timeout'])
        backup = ctx.repository.resolve(ctx.params['db'], made['backup_id'])
        detached.mark.backup_id = backup.backup_id
        detached.mark.write(conn, detached.schema, detached.name)
        entry = dict(partition=detached.key, backup_id=backup.backup_id, backup_path=backup.path,
                     rows=made['row_counts'].get(detached.key), size=made['size'],
                     offsite_url=(made.get('offsite') or {}).get('url'),
                     storage_class=(made.get('offsite') or {}).get('storage_class'))
        result['archived'].append(entry)
        result.setdefault('warnings', []).extend(made.get('warnings', []))
        actions.append('Archived %s (%d rows) as backup %s%s' % (detached.key, entry['rows'], backup.backup_id,
                                                                 ' and copied it to %s (%s)' % (
                                                                     entry['offsite_url'], entry['storage_class'])
                                                                 if entry['offsite_url'] else ''))
    rows = prove_archive(ctx, backup, detached.schema, detached.name)
    actions.append('Verified backup %s: checksums, table of contents and %d rows of %s read back'
                   % (backup.backup_id, rows, detached.key))
    if action == 'archive_and_drop':
        drop_archived(conn, detached, rows, backup.backup_id)
        result['dropped'].append(dict(partition=detached.key, backup_id=backup.backup_id, rows=rows))
        actions.append('Dropped %s (%d rows, archived in backup %s)' % (detached.key, rows, backup.backup_id))


def _offsite(ctx):
    store = ctx.offsite_store()
    if store is None:
        return None
    return OffsiteRequest(store, required=ctx.params['offsite'] == 'required')


def _would(result, plan, retiring, action, table):
    actions = result['actions']
    for item in result['created']:
        actions.append('Would create partition %s for %s (%s)%s'
                       % (item['name'], item['period'], item['reason'],
                          ', moving %d rows in from the default partition' % item['default_rows']
                          if item['default_rows'] else ''))
    result['detached'] = [p.key for p in retiring]
    actions.extend('Would detach partition %s (%s)' % (p.key, p.bound) for p in retiring)
    if action != 'detach':
        pending = [p.key for p in retiring] + [d.key for d in plan.detached
                                                if not (d.mark.backup_id and action == 'archive')]
        unarchived = [p.key for p in retiring] + [d.key for d in plan.detached if not d.mark.backup_id]
        result['archived'] = [dict(partition=key) for key in unarchived]
        actions.extend('Would archive %s into the repository and verify it' % key for key in unarchived)
        if action == 'archive_and_drop':
            result['dropped'] = [dict(partition=key) for key in pending]
            actions.extend('Would drop %s once its archive is verified' % key for key in pending)
    result['changed'] = bool(actions)
    result['partitions'] = sorted([p.key for p in table.partitions if p not in retiring]
                                  + ['%s.%s' % (table.schema, item['name']) for item in result['created']])
    return result


def _created(item):
    return dict(name='%s.%s' % (item['schema'], item['name']), period=item['period'], reason=item['reason'],
                default_rows=item['default_rows'], lower=str(item['lower']), upper=str(item['upper']))
