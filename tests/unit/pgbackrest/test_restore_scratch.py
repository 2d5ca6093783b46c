# -*- coding: utf-8 -*-
"""pgbackrest_restore's scratch directory and instance, on files only: where a restore may go, the marker, removal
that never follows a link, the socket folder, the port check, the settings that win over a restored
postgresql.conf, and reading PostgreSQL 15's log and timeline history as a restore writes them."""
import json
import os
import socket

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest import instance, scratch

# A recovery to a time past a damaged WAL segment, as lifeboat's scratch instance logged it (log_line_prefix '%m [%p] ').
DAMAGED_LOG = '''2026-12-05 12:00:01.593 UTC [29868] LOG:  starting archive recovery
2026-12-05 12:00:01.628 UTC [29868] LOG:  redo starts at 0/5000028
2026-12-05 12:00:01.644 UTC [29920] FATAL:  the database system is not yet accepting connections
2026-12-05 12:00:01.644 UTC [29920] DETAIL:  Consistent recovery state has not been yet reached.
ERROR: [042]: unable to get 000000010000000000000006:
       repo1: 15-1/0000000100000000/000000010000000000000006-189e.lz4 [FormatError] lz4 error: [-18] ERROR_contentChecksum_invalid
2026-12-05 12:00:01.679 UTC [29868] LOG:  consistent recovery state reached at 0/5000100
2026-12-05 12:00:01.702 UTC [29868] LOG:  redo done at 0/5000100 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.07 s
2026-12-05 12:00:01.702 UTC [29868] FATAL:  recovery ended before configured recovery target was reached
2026-12-05 12:00:01.705 UTC [29861] LOG:  startup process (PID 29868) exited with exit code 1
'''


def refused(function, *args, **fragments):
    with pytest.raises(LifeboatError) as caught:
        function(*args)
    msg = caught.value.msg
    assert '\n' not in msg, msg
    for fragment in fragments.get('say', ()):
        assert fragment in msg, msg
    return msg


def test_the_stanzas_data_paths_come_from_its_sections_only(tmp_path):
    config = tmp_path / 'pgbackrest.conf'
    config.write_text('[global]\nrepo1-path=/repo\n\n[main]\npg1-path=/var/lib/postgresql/15/main\n'
                      'pg2-path=/srv/standby/\npg1-port=5432\n\n[other]\npg1-path=/var/lib/postgresql/15/other\n')
    assert scratch.stanza_data_paths(str(config), 'main') == ['/var/lib/postgresql/15/main', '/srv/standby']
    assert scratch.stanza_data_paths(str(config), 'nope') == []
    # A configuration that cannot be read is refused, never taken as naming no live directory.
    (tmp_path / 'unreadable.conf').mkdir()
    refused(scratch.stanza_data_paths, str(tmp_path / 'unreadable.conf'), 'main', say=['cannot read pgBackRest '
                                                                                      'configuration'])
    config.write_text('pg1-path=/before/any/section\n')
    refused(scratch.stanza_data_paths, str(config), 'main', say=['check config'])


def test_data_dir_must_not_be_the_live_cluster_nor_inside_it(tmp_path):
    live = str(tmp_path / 'main')
    refused(scratch.check_data_dir_place, live, [live], say=["is the stanza's own data directory", 'set data_dir'])
    refused(scratch.check_data_dir_place, live + '/pitr', [live], say=["is inside the stanza's own data directory"])
    refused(scratch.check_data_dir_place, 'pitr', [live], say=['must be an absolute path'])
    # A sibling that only starts with the same name is another directory.
    scratch.check_data_dir_place(live + '-pitr', [live])
    os.symlink(str(tmp_path), str(tmp_path / 'link'))
    refused(scratch.check_data_dir_place, str(tmp_path / 'link'), [live], say=['is a symbolic link'])
    # A link elsewhere that leads into the live directory is caught by its real path.
    os.makedirs(live)
    os.symlink(live, str(tmp_path / 'to-live'))
    refused(scratch.check_data_dir_place, str(tmp_path / 'to-live') + '/pitr', [live], say=['inside'])


def test_marker_round_trip_and_what_is_not_a_marker(tmp_path):
    assert scratch.read_marker(str(tmp_path)) is None
    written = scratch.write_marker(str(tmp_path), dict(state='restoring', pid=1))
    assert scratch.read_marker(str(tmp_path)) == written and written['kind'] == scratch.MARKER_KIND
    assert not (tmp_path / (scratch.MARKER + '.tmp')).exists()
    assert oct((tmp_path / scratch.MARKER).stat().st_mode & 0o777) == '0o600'
    (tmp_path / scratch.MARKER).write_text('{"state": "comp')  # cut short by a kill
    assert scratch.read_marker(str(tmp_path)) == dict(kind=scratch.MARKER_KIND, state='unreadable')
    (tmp_path / scratch.MARKER).write_text(json.dumps({'state': 'complete'}))  # someone else's file
    assert scratch.read_marker(str(tmp_path)) is None
    other = tmp_path / 'other'
    other.mkdir()
    scratch.write_marker(str(other), dict(state='complete'))
    (tmp_path / scratch.MARKER).unlink()
    os.symlink(str(other / scratch.MARKER), str(tmp_path / scratch.MARKER))
    assert scratch.read_marker(str(tmp_path)) is None


def test_only_one_run_claims_a_directory(tmp_path):
    assert scratch.claim(str(tmp_path), dict(state='restoring'))
    assert not scratch.claim(str(tmp_path), dict(state='restoring'))
    assert scratch.read_marker(str(tmp_path))['state'] == 'restoring'


def test_removal_never_follows_a_link(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'precious').write_text('x')
    doomed = tmp_path / 'scratch'
    (doomed / 'pg_tblspc').mkdir(parents=True)
    os.symlink(str(outside), str(doomed / 'pg_tblspc' / '16384'))
    os.symlink(str(outside / 'precious'), str(doomed / 'file-link'))
    scratch.remove_tree(str(doomed))
    assert not doomed.exists() and (outside / 'precious').read_text() == 'x'
    os.symlink(str(outside), str(tmp_path / 'link'))
    refused(scratch.remove_tree, str(tmp_path / 'link'), say=['is a symbolic link'])
    assert (outside / 'precious').exists()


def test_socket_folder_falls_back_to_a_short_private_one(tmp_path):
    assert scratch.socket_dir_for('/var/lib/postgresql/15/pitr', 5499) == ('/var/lib/postgresql/15/pitr', False)
    long_dir = '/srv/' + 'x' * 89
    assert len(long_dir + '/.s.PGSQL.5499') == 108
    folder, short = scratch.socket_dir_for(long_dir, 5499)
    assert short and folder.startswith('/tmp/lifeboat-sock-') and scratch.socket_dir_for(long_dir, 5499)[0] == folder
    assert scratch.socket_dir_for('/srv/' + 'x' * 88, 5499) == ('/srv/' + 'x' * 88, False)
    private = tmp_path / 'sock'
    private.mkdir(mode=0o755)
    scratch.make_private_dir(str(private))
    assert oct(private.stat().st_mode & 0o777) == '0o700'
    os.symlink(str(private), str(tmp_path / 'sock-link'))
    refused(scratch.make_private_dir, str(tmp_path / 'sock-link'), say=['is not a directory of this user'])


def test_a_port_something_listens_on_is_taken(tmp_path):
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        refused(scratch.check_port_free, port, (), say=['port %d is taken on this host' % port,
                                                        'set port to a free one'])
    scratch.check_port_free(port, (str(tmp_path),))
    (tmp_path / ('.s.PGSQL.%d.lock' % port)).write_text('')
    refused(scratch.check_port_free, port, (str(tmp_path),), say=['a PostgreSQL socket .s.PGSQL.%d.lock' % port])
    refused(scratch.check_port_free, 70000, (), say=['from 1 to 65535'])


def test_scratch_settings_come_last_and_settings_may_add_but_not_take_over():
    text = scratch.scratch_settings(5499, '/srv/pitr', '/srv/pitr', {'shared_buffers': '256MB', 'work_mem': 4096,
                                                                     'listen_addresses': 'localhost', 'jit': False})
    lines = [line for line in text.splitlines() if line and not line.startswith('#')]
    assert lines[:5] == ["port = 5499", "listen_addresses = 'localhost'", "unix_socket_directories = '/srv/pitr'",
                         "archive_mode = 'off'", "hba_file = '/srv/pitr/lifeboat_hba.conf'"]
    assert "external_pid_file = '/srv/pitr/lifeboat-scratch.pid'" in lines and "lc_messages = 'C'" in lines
    assert lines[-3:] == ['jit = off', "shared_buffers = '256MB'", 'work_mem = 4096']
    assert "listen_addresses = ''" in scratch.scratch_settings(5499, '/s', '/s', {})
    assert scratch.quote("it's") == "'it''s'" and scratch.quote('a\\b') == "'a\\\\b'"
    scratch.check_settings({'shared_buffers': '1GB', 'listen_addresses': '*'})
    for name in ('port', 'archive_mode', 'archive_command', 'restore_command', 'recovery_target_time',
                 'external_pid_file', 'logging_collector'):
        refused(scratch.check_settings, {name: 'x'}, say=['settings.%s is set by lifeboat' % name])
    refused(scratch.check_settings, {'a b': 1}, say=['is not a PostgreSQL setting name'])
    refused(scratch.check_settings, {'work_mem': [1]}, say=['must be a string, number or boolean'])
    refused(scratch.check_settings, {'work_mem': 'a\nb'}, say=['control character'])


def test_hba_lets_in_local_connections_only_unless_settings_listen():
    assert scratch.hba_text('postgres', {}).splitlines()[1:] == ['local all all trust']
    assert 'host all all 127.0.0.1/32 scram-sha-256' in scratch.hba_text('postgres', {'listen_addresses': '*'})


def test_why_recovery_stopped_is_the_fatal_line_with_pgbackrests_error(tmp_path):
    log = tmp_path / 'scratch.log'
    log.write_text(DAMAGED_LOG)
    assert instance.archive_get_errors(str(log), 0) == [
        '[042] unable to get 000000010000000000000006: repo1: 15-1/0000000100000000/000000010000000000000006-189e.lz4 '
        '[FormatError] lz4 error: [-18] ERROR_contentChecksum_invalid']
    scratch_instance = instance.Instance(None, '/bin', str(tmp_path), 5499, str(tmp_path), str(log), 'postgres',
                                         'postgres')
    scratch_instance.recovery_hint = 'run pgbackrest verify'
    msg = scratch_instance.why_it_stopped(0)
    # Not the refused connection of lifeboat's own polling: the startup process's FATAL line.
    assert msg.startswith('recovery of the scratch instance stopped: recovery ended before configured recovery '
                          'target was reached (redo done at 0/5000100) - pgBackRest archive-get: [042] unable to get '
                          '000000010000000000000006:'), msg
    assert msg.endswith('; run pgbackrest verify; the live cluster was not touched') and '\n' not in msg
    # Only what was logged since the offset counts: an earlier run's lines in the same file do not.
    assert instance.archive_get_errors(str(log), len(DAMAGED_LOG)) == []
    assert instance.log_lines(str(tmp_path / 'missing.log'), 0) == []


def test_a_configuration_error_is_said_as_such(tmp_path):
    log = tmp_path / 'scratch.log'
    log.write_text('2026-12-05 12:18:01.377 GMT [15381] LOG:  invalid value for parameter "shared_buffers": "lots"\n'
                   '2026-12-05 12:18:01.377 GMT [15381] FATAL:  configuration file "/srv/pitr/postgresql.auto.conf" '
                   'contains errors\n')
    msg = instance.Instance(None, '/bin', '/srv/pitr', 5499, '/srv/pitr', str(log), 'postgres',
                            'postgres').why_it_stopped(0)
    assert msg == ('the scratch instance did not start: invalid value for parameter "shared_buffers": "lots" '
                   '(configuration file "/srv/pitr/postgresql.auto.conf" contains errors); fix settings, or the '
                   'restored postgresql.conf in /srv/pitr - the live cluster was not touched')


def test_the_timeline_history_file_gives_where_recovery_ended(tmp_path):
    (tmp_path / 'pg_wal').mkdir()
    (tmp_path / 'pg_wal' / '00000002.history').write_text('1\t0/6000148\tbefore 2026-12-05 10:01:59+00\n')
    assert instance.read_history(str(tmp_path), 2) == dict(lsn='0/6000148', reason='before 2026-12-05 10:01:59+00')
    assert instance.read_history(str(tmp_path), 3) is None
