# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of playbooks/fleet.yml and the drill role.

- fleet_summary(hostvars, hosts, unreachable): the fleet's state per host and database, from what
  fleet.yml's plays left in hostvars - lifeboat_backup_results and lifeboat_backup_inventory (role
  lifeboat_backup), lifeboat_fleet_backup_failure and lifeboat_fleet_drill_failure (fleet.yml), and
  every host's lifeboat_drill_summaries (role lifeboat_drill; a drill counts for the host that took
  the backup it proved).
  Hosts with lifeboat_pgbackrest_stanzas also get their pgBackRest stanzas (`physical`), from the
  lifeboat.db.pgbackrest_info results fleet.yml registered as lifeboat_fleet_physical.
- fleet_markdown(summary): that summary as a Markdown table and a list of problems.
- seconds_between([start, end]): seconds between two UTC times as the modules write them, or None.
- physical_views(results, host): pgbackrest_info results as the short views the summary and the
  reports keep (module_utils/common/report_physical.py).
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible.errors import AnsibleFilterError

from ansible_collections.lifeboat.db.plugins.module_utils.common.report_model import WrongShape
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_physical import physical_views as _views

TIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'


def _parse(text):
    return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)


def seconds_between(times):
    """[start, end] as UTC ISO 8601 texts: seconds from start to end, or None when either is empty."""
    start, end = times
    if not start or not end:
        return None
    return round((_parse(end) - _parse(start)).total_seconds(), 3)


def _get(variables, name, default):
    value = variables.get(name) if variables is not None else None
    return default if value is None else value


def _last_backup(inventory, database):
    for backup in _get(inventory, 'backups', []):
        if backup.get('database') == database:
            return backup
    return None


def _backup_state(host_vars, database):
    """(status, failure) of this run's backup of the database on the host."""
    for result in _get(host_vars, 'lifeboat_backup_results', []):
        if result.get('item') == database:
            if result.get('failed'):
                return 'failed', result.get('msg') or 'failed'
            return 'taken', None
    failure = _get(host_vars, 'lifeboat_fleet_backup_failure', None)
    return ('failed', failure) if failure else ('not run', None)


def _drill_view(drill):
    if drill is None:
        return None
    return dict((key, drill.get(key)) for key in (
        'status', 'run_id', 'backup_id', 'took_on', 'proved_on', 'rto_seconds', 'rpo_seconds', 'failed_step', 'failure'))


def physical_views(results, host=None):
    """pgbackrest_info results (a list, a loop's registered result, or one) as the summary's views."""
    try:
        return _views(results, host=host)
    except WrongShape as exc:
        raise AnsibleFilterError('physical_views: %s; pass lifeboat.db.pgbackrest_info results' % exc)


def _physical(host_vars, host):
    """The host's pgBackRest stanzas: [] unless the inventory set pgBackRest up there."""
    if _get(host_vars, 'lifeboat_pgbackrest_stanzas', None) is None:
        return []
    read = _get(host_vars, 'lifeboat_fleet_physical', None)
    if read is None:
        return [dict(host=host, stanza=None, status='not read', backups=0, oldest_at=None, latest=None, archive=None,
                     exposure_seconds=None, archiving_failing=None, failed_count=None, last_failed_wal=None,
                     verify=None, problems=['pgBackRest stanzas: not read (the host left the run before)'])]
    return physical_views(read, host)


def fleet_summary(hostvars, hosts, unreachable, now=None):
    unreachable = set(unreachable or [])
    drills = []
    for host in hosts:
        if host not in unreachable:
            drills.extend(_get(hostvars.get(host), 'lifeboat_drill_summaries', []))
    rows = []
    for host in hosts:
        if host in unreachable:
            rows.append(dict(host=host, state='unreachable', problems=['%s did not answer over SSH' % host], databases=[]))
            continue
        host_vars = hostvars.get(host)
        inventory = _get(host_vars, 'lifeboat_backup_inventory', {})
        mine = [drill for drill in drills if drill.get('took_on') == host]
        names = list(_get(host_vars, 'lifeboat_backup_databases', []))
        names += [drill.get('database') for drill in mine if drill.get('database') not in names]
        problems = []
        databases = []
        for name in names:
            status, failure = _backup_state(host_vars, name)
            if failure:
                problems.append('backup of %s: %s' % (name, failure))
            last = _last_backup(inventory, name) or {}
            proofs = [drill for drill in mine if drill.get('database') == name]
            drill = proofs[-1] if proofs else None
            if drill is not None and drill.get('status') != 'passed':
                problems.append('drill of %s on %s: %s' % (name, drill.get('proved_on'), drill.get('failure')))
            databases.append(dict(
                database=name, backup=status, last_backup_id=last.get('backup_id'), age_seconds=last.get('age_seconds'),
                size=last.get('size'), verified=last.get('verified'), drill=_drill_view(drill)))
        drill_failure = _get(host_vars, 'lifeboat_fleet_drill_failure', None)
        if drill_failure and not any(drill.get('proved_on') == host for drill in drills):
            problems.append('drill: %s' % drill_failure)
        physical = _physical(host_vars, host)
        problems += [problem for view in physical for problem in view['problems']]
        rows.append(dict(host=host, state='failed' if problems else 'ok', problems=problems, databases=databases,
                         physical=physical))
    counts = dict((state, sum(1 for row in rows if row['state'] == state)) for state in ('ok', 'failed', 'unreachable'))
    return dict(generated_at=(now or datetime.datetime.now(datetime.timezone.utc)).strftime(TIME_FORMAT),
                hosts=rows, counts=counts)


def _cell(value, suffix=''):
    if value is None or value == '':
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        value = round(value, 1)
    return ('%s%s' % (value, suffix)).replace('|', '\\|')


def fleet_markdown(summary):
    lines = ['# Fleet summary %s' % summary['generated_at'], '',
             '%(ok)d ok, %(failed)d failed, %(unreachable)d unreachable' % summary['counts'], '',
             '| Host | State | Database | Backup | Last backup | Age (s) | Size (bytes) | Verified | Drill | Proved on | RTO (s) | RPO (s) |',
             '|---|---|---|---|---|---:|---:|---|---|---|---:|---:|']
    for row in summary['hosts']:
        for database in row['databases'] or [None]:
            if database is None:
                lines.append('| %s | %s |%s' % (row['host'], row['state'], ' - |' * 10))
                continue
            drill = database['drill'] or {}
            lines.append('| %s |' % ' | '.join(_cell(value) for value in (
                row['host'], row['state'], database['database'], database['backup'], database['last_backup_id'],
                database['age_seconds'], database['size'], database['verified'], drill.get('status'),
                drill.get('proved_on'), drill.get('rto_seconds'), drill.get('rpo_seconds'))))
    stanzas = [view for row in summary['hosts'] for view in row.get('physical') or []]
    if stanzas:
        lines += ['', '## Physical backups (pgBackRest)', '',
                  '| Host | Stanza | Status | Latest backup | Type | Age (s) | WAL archive | Exposure (s) | Archiving |',
                  '|---|---|---|---|---|---:|---|---:|---|']
        for view in stanzas:
            latest, archive = view.get('latest') or {}, view.get('archive') or {}
            failing = view.get('archiving_failing')
            lines.append('| %s |' % ' | '.join(_cell(value) for value in (
                view['host'], view['stanza'], view['status'], latest.get('label'), latest.get('type'),
                latest.get('age_seconds'),
                '%s - %s' % (archive['min_wal'], archive['max_wal']) if archive.get('max_wal') else None,
                view.get('exposure_seconds'), None if failing is None else ('failing' if failing else 'ok'))))
    problems = [(row['host'], problem) for row in summary['hosts'] for problem in row['problems']]
    if problems:
        lines += ['', '## Problems', '']
        lines += ['- %s: %s' % (host, ' '.join(str(problem).split())) for host, problem in problems]
    return '\n'.join(lines) + '\n'


class FilterModule(object):
    def filters(self):
        return dict(fleet_summary=fleet_summary, fleet_markdown=fleet_markdown, seconds_between=seconds_between,
                    physical_views=physical_views)
