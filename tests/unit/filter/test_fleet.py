# -*- coding: utf-8 -*-
"""lifeboat.db's fleet filters (playbooks/fleet.yml): the summary per host and database from the
hostvars the fleet's plays leave, its Markdown, and seconds between two UTC times."""
import datetime

from ansible_collections.lifeboat.db.plugins.filter.fleet import fleet_markdown, fleet_summary, seconds_between

NOW = datetime.datetime(2026, 12, 5, 3, 0, tzinfo=datetime.timezone.utc)


def drill(took_on, database, status='passed', **extra):
    return dict(dict(status=status, run_id='r-%s' % took_on, backup_id='b-%s' % took_on, took_on=took_on,
                     proved_on='db2', database=database, rto_seconds=12.5, rpo_seconds=30.0, failed_step=None,
                     failure=None), **extra)


HOSTVARS = {
    'db1': {'lifeboat_backup_databases': ['app'],
            'lifeboat_backup_results': [{'item': 'app', 'backup_id': 'b-db1'}],
            'lifeboat_backup_inventory': {'backups': [
                {'backup_id': 'b-db1', 'database': 'app', 'age_seconds': 5.0, 'size': 100, 'verified': True},
                {'backup_id': 'b-old', 'database': 'app', 'age_seconds': 90000.0, 'size': 90, 'verified': True}]}},
    'db2': {'lifeboat_backup_databases': ['stage'],
            'lifeboat_backup_results': [{'item': 'stage', 'backup_id': 'b-db2'}],
            'lifeboat_backup_inventory': {'backups': [
                {'backup_id': 'b-db2', 'database': 'stage', 'age_seconds': 2.0, 'size': 50, 'verified': True}]},
            'lifeboat_drill_summaries': [
                drill('db1', 'app'),
                drill('db3', 'app', status='failed', failed_step='(1) Find the backup on the source host',
                      failure='Permission denied | /var/backups/lifeboat')]},
    'db3': {'lifeboat_backup_databases': ['app'],
            'lifeboat_fleet_backup_failure': "app: [Errno 13] Permission denied: '/var/backups/lifeboat'"},
    'db4': {'lifeboat_backup_databases': ['app']},
}


def test_each_host_and_database_has_its_backup_and_the_drill_of_its_backup():
    summary = fleet_summary(HOSTVARS, ['db1', 'db2', 'db3', 'db4'], ['db4'], now=NOW)
    assert summary['generated_at'] == '2026-12-05T03:00:00.000000Z'
    assert summary['counts'] == {'ok': 2, 'failed': 1, 'unreachable': 1}
    rows = {row['host']: row for row in summary['hosts']}
    (app,) = rows['db1']['databases']
    # The newest set of that database, not an older one; the drill proved on db2 counts for db1.
    assert (app['last_backup_id'], app['age_seconds'], app['size'], app['verified'], app['backup']) == (
        'b-db1', 5.0, 100, True, 'taken')
    assert app['drill']['status'] == 'passed' and app['drill']['proved_on'] == 'db2'
    assert app['drill']['rto_seconds'] == 12.5 and app['drill']['rpo_seconds'] == 30.0
    assert rows['db2']['state'] == 'ok' and rows['db2']['databases'][0]['drill'] is None
    broken = rows['db3']
    assert broken['state'] == 'failed' and broken['databases'][0]['backup'] == 'failed'
    assert broken['problems'] == ["backup of app: app: [Errno 13] Permission denied: '/var/backups/lifeboat'",
                                  'drill of app on db2: Permission denied | /var/backups/lifeboat']
    assert rows['db4'] == {'host': 'db4', 'state': 'unreachable', 'problems': ['db4 did not answer over SSH'],
                           'databases': []}


def test_a_host_with_no_result_at_all_is_not_run_and_a_drill_failure_without_summary_is_a_problem():
    hostvars = {'db5': {'lifeboat_backup_databases': ['app'], 'lifeboat_fleet_drill_failure': 'boom'}, 'db6': None}
    rows = {row['host']: row for row in fleet_summary(hostvars, ['db5', 'db6'], [], now=NOW)['hosts']}
    assert rows['db5']['databases'][0]['backup'] == 'not run'
    assert rows['db5']['state'] == 'failed' and rows['db5']['problems'] == ['drill: boom']
    assert rows['db6'] == {'host': 'db6', 'state': 'ok', 'problems': [], 'databases': [], 'physical': []}


def test_a_one_host_drill_counts_for_its_own_database():
    hostvars = {'db2': {'lifeboat_drill_summaries': [drill('db2', 'app_drill', proved_on='db2')]}}
    (row,) = fleet_summary(hostvars, ['db2'], [], now=NOW)['hosts']
    assert [d['database'] for d in row['databases']] == ['app_drill']
    assert row['databases'][0]['backup'] == 'not run' and row['databases'][0]['drill']['status'] == 'passed'


def test_markdown_has_a_row_per_host_and_database_and_escapes_cells():
    markdown = fleet_markdown(fleet_summary(HOSTVARS, ['db1', 'db2', 'db3', 'db4'], ['db4'], now=NOW))
    lines = markdown.splitlines()
    assert lines[0] == '# Fleet summary 2026-12-05T03:00:00.000000Z'
    assert '2 ok, 1 failed, 1 unreachable' in lines
    assert '| db1 | ok | app | taken | b-db1 | 5.0 | 100 | yes | passed | db2 | 12.5 | 30.0 |' in lines
    assert '| db3 | failed | app | failed | - | - | - | - | failed | db2 | 12.5 | 30.0 |' in lines
    assert '| db4 | unreachable | - | - | - | - | - | - | - | - | - | - |' in lines
    assert '- db3: drill of app on db2: Permission denied | /var/backups/lifeboat' in lines
    summary = fleet_summary({'db1': {'lifeboat_backup_databases': ['a|b']}}, ['db1'], [], now=NOW)
    assert '| db1 | ok | a\\|b | not run |' in fleet_markdown(summary)


def test_seconds_between_two_utc_times_or_none():
    assert seconds_between(['2026-12-05T02:00:00.000000Z', '2026-12-05T02:01:01.250000Z']) == 61.25
    assert seconds_between(['', '2026-12-05T02:01:01.250000Z']) is None
    assert seconds_between(['2026-12-05T02:00:00.000000Z', None]) is None


def stanza(name, failing=False, exposure=3.5):
    """A lifeboat.db.pgbackrest_info result as fleet.yml's loop registers it."""
    return {'item': {'name': name}, 'changed': False, 'status': {'code': 0, 'message': 'ok'},
            'stanza': {'name': name, 'status': {'code': 0, 'message': 'ok'}},
            'backups': [{'label': '20261205-010000F', 'type': 'full', 'started_at': '2026-12-05T01:00:00Z',
                         'stopped_at': '2026-12-05T01:00:10Z', 'stopped_epoch': 1796432410, 'database_size': 10,
                         'repository_size': 5},
                        {'label': '20261205-010000F_20261205-020000D', 'type': 'diff',
                         'started_at': '2026-12-05T02:00:00Z', 'stopped_at': '2026-12-05T02:00:05Z',
                         'stopped_epoch': 1796436005, 'database_size': 11, 'repository_size': 6}],
            'archives': [{'id': '15-1', 'min_wal': '000000010000000000000001', 'max_wal': '00000001000000000000000A'}],
            'exposure_seconds': exposure,
            'archiver': {'failing': failing, 'failed_count': 4 if failing else 0,
                         'last_failed_wal': '00000001000000000000000B' if failing else None},
            'timing': {'finished_epoch': 1796439605}}


def test_hosts_with_pgbackrest_show_their_stanzas_beside_the_logical_backups():
    hostvars = {
        'db1': dict(HOSTVARS['db1'], lifeboat_pgbackrest_stanzas=[{'name': 'main'}],
                    lifeboat_fleet_physical={'results': [stanza('main')]}),
        'db2': dict(HOSTVARS['db2'], lifeboat_pgbackrest_stanzas=[{'name': 'main'}, {'name': 'reports'}],
                    lifeboat_fleet_physical={'results': [stanza('main', failing=True, exposure=1800.0),
                                                         {'item': {'name': 'reports'}, 'failed': True,
                                                          'msg': 'stanza reports does not exist: run stanza-create'}]}),
        # pgBackRest not set up there: no stanzas, even with a result lying around.
        'db5': {'lifeboat_backup_databases': [], 'lifeboat_fleet_physical': {'results': [stanza('main')]}},
    }
    summary = fleet_summary(hostvars, ['db1', 'db2', 'db5'], [], now=NOW)
    rows = {row['host']: row for row in summary['hosts']}
    (main,) = rows['db1']['physical']
    assert rows['db1']['state'] == 'ok' and rows['db1']['databases'][0]['last_backup_id'] == 'b-db1'
    assert (main['host'], main['stanza'], main['status'], main['backups']) == ('db1', 'main', 'ok', 2)
    # The newest backup, its type and its age when the stanza was read; the archive's range; the exposure.
    assert main['latest'] == {'label': '20261205-010000F_20261205-020000D', 'type': 'diff',
                              'stopped_at': '2026-12-05T02:00:05Z', 'age_seconds': 3600.0, 'database_size': 11,
                              'repository_size': 6}
    assert main['archive'] == {'min_wal': '000000010000000000000001', 'max_wal': '00000001000000000000000A'}
    assert (main['exposure_seconds'], main['archiving_failing'], main['oldest_at']) == (3.5, False, '2026-12-05T01:00:00Z')
    assert rows['db2']['state'] == 'failed'
    assert rows['db2']['problems'] == [
        'stanza main: WAL archiving is failing (4 failure(s), the last on 00000001000000000000000B): what was '
        'written since the last archived segment is not in the archive',
        'stanza reports: stanza reports does not exist: run stanza-create']
    assert rows['db5']['physical'] == [] and rows['db5']['state'] == 'ok'

    lines = fleet_markdown(summary).splitlines()
    assert '## Physical backups (pgBackRest)' in lines
    assert ('| db1 | main | ok | 20261205-010000F_20261205-020000D | diff | 3600.0 | 000000010000000000000001 - '
            '00000001000000000000000A | 3.5 | ok |') in lines
    assert '| db2 | main | ok | 20261205-010000F_20261205-020000D | diff | 3600.0 |' in ' '.join(lines)
    assert any(line.startswith('| db2 | main |') and line.endswith('| 1800.0 | failing |') for line in lines)
    assert '| db2 | reports | failed | - | - | - | - | - | - |' in lines


def test_a_host_with_stanzas_that_left_the_run_before_they_were_read_says_so():
    hostvars = {'db1': {'lifeboat_pgbackrest_stanzas': [{'name': 'main'}]}}
    (row,) = fleet_summary(hostvars, ['db1'], [], now=NOW)['hosts']
    assert row['state'] == 'failed' and row['problems'] == ['pgBackRest stanzas: not read (the host left the run before)']
