# -*- coding: utf-8 -*-
"""Parsing pgBackRest 2.45's `info --output=json` and `verify --output=text`, captured from a real stanza
(tests/tools/pgbackrest_stanza.py), and refusing what pgBackRest does not print."""
import json
from pathlib import Path

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.command import PgBackRest
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.info import ShapeError, parse_info, parse_verify
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

from ..conftest import subprocess_run_command

FIXTURES = Path(__file__).parent / 'fixtures'
INFO = (FIXTURES / 'info-2.45.json').read_text()
FULL, INCR = '20261205-093344F', '20261205-093344F_20261205-093348I'


def with_change(change):
    data = json.loads(INFO)
    change(data[0])
    return json.dumps(data)


def refused(text, *fragments):
    with pytest.raises(ShapeError) as caught:
        parse_info(text, 'lifeboat')
    msg = caught.value.msg
    assert '\n' not in msg and 'check pgbackrest_bin' in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def test_info_of_a_real_stanza():
    facts = parse_info(INFO, 'lifeboat')
    assert facts['stanza']['name'] == 'lifeboat'
    assert facts['stanza']['status'] == {'code': 0, 'message': 'ok'}
    assert facts['stanza']['repos'] == [{'key': 1, 'cipher': 'none', 'status': {'code': 0, 'message': 'ok'}}]
    assert facts['stanza']['databases'] == [{'id': 1, 'repo_key': 1, 'system_id': 7715750784407606010,
                                             'version': '15'}]
    full, incr = facts['backups']
    assert (full['label'], full['type'], full['prior'], full['reference']) == (FULL, 'full', None, [])
    assert (incr['label'], incr['type'], incr['prior'], incr['reference']) == (INCR, 'incr', FULL, [FULL])
    assert full['started_at'] == '2026-12-05T09:33:44Z' and full['started_epoch'] == 1796463224
    assert full['stopped_at'] == '2026-12-05T09:33:47Z' and full['duration_seconds'] == 3
    assert (full['database_size'], full['backup_size'], full['repository_size']) == (22992636, 22992636, 4522951)
    assert (incr['database_size'], incr['backup_size'], incr['repository_size'],
            incr['repository_backup_size']) == (28022524, 6553866, 4635945, 393260)
    assert (full['wal_start'], full['wal_stop']) == ('000000010000000000000002', '000000010000000000000003')
    assert (incr['lsn_start'], incr['lsn_stop']) == ('0/5000028', '0/5000100')
    assert full['error'] is False and full['pgbackrest_version'] == '2.45'
    assert facts['archives'] == [{'id': '15-1', 'db_id': 1, 'repo_key': 1, 'min_wal': '000000010000000000000001',
                                  'max_wal': '000000010000000000000006'}]


def test_missing_stanza_is_a_status_not_a_shape_error():
    facts = parse_info((FIXTURES / 'info-2.45-missing-stanza.json').read_text(), 'nope')
    assert facts['stanza']['status'] == {'code': 1, 'message': 'missing stanza path'}
    assert facts['backups'] == [] and facts['archives'] == []


def test_fields_older_versions_lack_are_optional():
    def strip(stanza):
        for backup in stanza['backup']:
            for key in ('error', 'lsn', 'backrest', 'reference'):
                del backup[key]
        del stanza['status']['lock']
    facts = parse_info(with_change(strip), 'lifeboat')
    assert [b['error'] for b in facts['backups']] == [False, False]
    assert facts['backups'][1]['lsn_start'] is None


@pytest.mark.parametrize('text, fragments', [
    ('Usage: pgbackrest [options] [command]', ['did not print JSON', '"Usage: pgbackrest']),
    ('', ['did not print JSON']),
    ('{"name": "lifeboat"}', ['the reply is an object, not a list of stanzas']),
    ('[]', ['holds 0 stanzas']),
    ('[1]', ['stanza is not an object']),
])
def test_not_info_json_is_refused(text, fragments):
    refused(text, *fragments)


@pytest.mark.parametrize('change, fragments', [
    (lambda s: s.update(name='other'), ['stanza.name is "other", not the stanza asked for']),
    (lambda s: s.pop('backup'), ['stanza.backup is missing']),
    (lambda s: s.update(backup={}), ['stanza.backup is an object, not a list']),
    (lambda s: s['backup'].append('x'), ['stanza.backup[2] is a string, not an object']),
    (lambda s: s['backup'][0].update(type='snapshot'), ['backup "%s".type is "snapshot", not one of' % FULL]),
    (lambda s: s['backup'][0]['timestamp'].update(start='yesterday'),
     ['.timestamp.start is a string, not an integer']),
    (lambda s: s['backup'][0]['timestamp'].update(stop=True), ['.timestamp.stop is true, not an integer']),
    (lambda s: s['backup'][0]['timestamp'].update(stop=1), ['ends (1) before it starts']),
    (lambda s: s['backup'][1]['info'].update(size=-5), ['info.size is negative']),
    (lambda s: s['backup'][1]['info']['repository'].pop('size'), ['info.repository.size is missing']),
    (lambda s: s['backup'][1].update(prior=None), ['but this incr backup must be based on a prior backup']),
    (lambda s: s['backup'][1].update(prior='20200101-000000F'), ['which is not a backup of this stanza']),
    (lambda s: s['backup'][0].update(prior=INCR), ['a full backup has no prior backup']),
    (lambda s: s['backup'][0].update(label=7), ['backup[0].label is an integer, not a string']),
    (lambda s: s['archive'][0].update(max=6), ['archive "15-1".max is an integer, not a string']),
    (lambda s: s['status'].update(code='0'), ['stanza.status.code is a string, not an integer']),
    (lambda s: s['db'][0].update({'system-id': 1.5}), ['db[0].system-id is a number, not an integer']),
])
def test_a_wrong_shape_names_the_field(change, fragments):
    refused(with_change(change), *fragments)


def test_verify_ok():
    result = parse_verify((FIXTURES / 'verify-2.45-ok.txt').read_text(), 'lifeboat')
    assert result['status'] == 'ok' and result['ok'] and result['problems'] == 0
    assert result['archives'] == [{'id': '15-1', 'checked': 6, 'valid': 6, 'missing': 0, 'checksum_invalid': 0,
                                   'size_invalid': 0, 'other': 0}]
    assert [(b['label'], b['status'], b['checked'], b['valid']) for b in result['backups']] == [
        (FULL, 'valid', 964, 964), (INCR, 'valid', 968, 968)]


@pytest.mark.parametrize('name', ['verify-2.45-damaged-wal.txt', 'verify-2.45-damaged-wal-brief.txt'])
def test_verify_finds_a_damaged_wal_segment(name):
    result = parse_verify((FIXTURES / name).read_text(), 'lifeboat')
    assert result['status'] == 'error' and not result['ok'] and result['problems'] == 1
    assert (result['archives'][0]['valid'], result['archives'][0]['other']) == (5, 1)


@pytest.mark.parametrize('text, fragment', [
    ('', 'printed no stanza and status lines'),
    ('stanza: other\nstatus: ok\n', 'a result for stanza "other" on line 1'),
    ('status: ok\n', 'text before the stanza line on line 1'),
    ('stanza: lifeboat\nstatus: ok\n  all good, trust me\n', 'a line pgbackrest verify does not print on line 3'),
    ('stanza: lifeboat\n    missing: 1\nstatus: ok\n', 'on line 2'),
])
def test_verify_refuses_what_pgbackrest_does_not_print(text, fragment):
    with pytest.raises(ShapeError) as caught:
        parse_verify(text, 'lifeboat')
    assert fragment in caught.value.msg and '\n' not in caught.value.msg


def script(tmp_path, body):
    path = tmp_path / 'pgbackrest'
    path.write_text('#!/bin/sh\n' + body)
    path.chmod(0o755)
    return str(path)


def test_command_is_an_argument_list_with_an_absolute_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'pgbackrest.conf').write_text('[global]\n')
    seen = []

    def run_command(argv, environ_update=None):
        seen.append(argv)
        return 0, '[]', ''
    command = PgBackRest(run_command, 'main', config='pgbackrest.conf', repo=2, binary=script(tmp_path, 'exit 0\n'))
    command.check_inputs()
    command.run('info', '--output=json')
    assert seen == [[str(tmp_path / 'pgbackrest'), '--config=%s' % (tmp_path / 'pgbackrest.conf'), '--stanza=main',
                     '--repo=2', '--log-level-console=off', '--log-level-stderr=error', '--log-level-file=off', 'info',
                     '--output=json']]


def test_pgbackrest_error_is_one_line_with_its_code(tmp_path):
    binary = script(tmp_path, 'echo "ERROR: [055]: unable to open missing file \'/x.conf\' for read" >&2\nexit 55\n')
    command = PgBackRest(subprocess_run_command, 'main', binary=binary)
    command.check_inputs()
    with pytest.raises(LifeboatError) as caught:
        command.run('info', '--output=json')
    assert caught.value.msg == ("pgbackrest info for stanza 'main' failed (rc 55): [055] unable to open missing file "
                                "'/x.conf' for read; check config (the pgbackrest.conf path) and the repository path "
                                "in it")


@pytest.mark.parametrize('kwargs, fragment', [
    (dict(binary='/nonexistent/pgbackrest'), 'cannot run /nonexistent/pgbackrest: no such executable; install'),
    (dict(binary='no-such-pgbackrest-here'), 'no such executable in PATH'),
    (dict(config='/nonexistent/pgbackrest.conf'), 'pgBackRest configuration /nonexistent/pgbackrest.conf does not'),
    (dict(repo=0), 'repo must be a pgBackRest repository index from 1 to 256'),
])
def test_bad_inputs_are_refused_before_running(tmp_path, kwargs, fragment):
    kwargs.setdefault('binary', script(tmp_path, 'exit 0\n'))
    command = PgBackRest(subprocess_run_command, 'main', **kwargs)
    with pytest.raises(LifeboatError) as caught:
        command.check_inputs()
    assert fragment in caught.value.msg
