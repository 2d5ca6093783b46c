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
    assert rows['db6'] == {'host': 'db6', 'state': 'ok', 'problems': [], 'databases': []}


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
