# -*- coding: utf-8 -*-
"""Manifest files: checking a backup's files against it, reading it, writing it atomically."""
import hashlib
import json
import os
import stat

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import (
    InvalidSet, describe_files, read_manifest, sha256_of, validate_manifest, verify_files, write_json_atomic)

CONTENT = b'PGDMP' + bytes(range(256)) * 40


@pytest.fixture
def backup(tmp_path):
    """A backup folder with one dump file and the manifest describing it."""
    (tmp_path / 'app.dump').write_bytes(CONTENT)
    manifest = dict(backup_id='20261120T030000Z-abcdef', row_counts={},
                    files=describe_files(str(tmp_path), ['app.dump']))
    return tmp_path, manifest


def test_describe_files_records_size_and_sha256(backup):
    directory, manifest = backup
    assert manifest['files'] == [dict(name='app.dump', size=len(CONTENT), sha256=hashlib.sha256(CONTENT).hexdigest())]
    assert sha256_of(str(directory / 'app.dump')) == hashlib.sha256(CONTENT).hexdigest()


def test_intact_backup_verifies(backup):
    directory, manifest = backup
    assert verify_files(str(directory), manifest) == ['app.dump']


def test_flipped_byte_is_a_sha256_mismatch(backup):
    directory, manifest = backup
    damaged = bytearray(CONTENT)
    damaged[len(damaged) // 2] ^= 0x01  # same size, one bit different
    (directory / 'app.dump').write_bytes(bytes(damaged))
    with pytest.raises(LifeboatError) as info:
        verify_files(str(directory), manifest)
    assert 'sha256' in info.value.msg and 'damaged' in info.value.msg
    assert manifest['files'][0]['sha256'] in info.value.msg
    assert '20261120T030000Z-abcdef' in info.value.msg


def test_truncated_file_is_a_size_mismatch(backup):
    directory, manifest = backup
    (directory / 'app.dump').write_bytes(CONTENT[:-100])
    with pytest.raises(LifeboatError) as info:
        verify_files(str(directory), manifest)
    assert '%d bytes, the manifest says %d' % (len(CONTENT) - 100, len(CONTENT)) in info.value.msg


def test_missing_file_is_reported(backup):
    directory, manifest = backup
    (directory / 'app.dump').unlink()
    with pytest.raises(LifeboatError, match='incomplete: app.dump is missing'):
        verify_files(str(directory), manifest)


def test_every_listed_file_is_checked(backup):
    directory, manifest = backup
    (directory / 'extra.toc').write_bytes(b'toc')
    manifest['files'] += describe_files(str(directory), ['extra.toc'])
    (directory / 'extra.toc').write_bytes(b'TOC')  # the second file is the damaged one
    with pytest.raises(LifeboatError, match='extra.toc'):
        verify_files(str(directory), manifest)


@pytest.mark.parametrize('files', [[], None])
def test_manifest_without_files_does_not_verify(backup, files):
    directory, manifest = backup
    if files is None:
        del manifest['files']
    else:
        manifest['files'] = files
    with pytest.raises(LifeboatError, match='lists no files'):
        verify_files(str(directory), manifest)


@pytest.mark.parametrize('text, expected', [
    ('{"row_counts": {', 'is not valid JSON'),
    ('', 'is not valid JSON'),
    (b'\xff\xfe\x00garbage', 'is not valid JSON'),
    ('[1, 2, 3]', 'not a lifeboat manifest'),
    ('{"backup_id": "x"}', 'not a lifeboat manifest'),
    ('"row_counts"', 'not a lifeboat manifest'),
])
def test_read_manifest_refuses_damaged_or_foreign_json(tmp_path, text, expected):
    path = tmp_path / 'manifest.json'
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(LifeboatError) as info:
        read_manifest(str(path))
    assert expected in info.value.msg
    assert str(path) in info.value.msg
    assert '\n' not in info.value.msg


def test_read_manifest_missing_file(tmp_path):
    with pytest.raises(LifeboatError) as info:
        read_manifest(str(tmp_path / 'nope.json'))
    assert info.value.msg.startswith('cannot read ') and '\n' not in info.value.msg


def test_read_manifest_accepts_a_baseline(tmp_path):
    path = tmp_path / 'baseline.json'
    path.write_text(json.dumps(dict(kind='baseline', row_counts={'public.t': 3})))
    assert read_manifest(str(path))['row_counts'] == {'public.t': 3}


def test_write_json_atomic_mode_content_and_no_temp_file(tmp_path):
    path = tmp_path / 'manifest.json'
    path.write_text('old')
    os.chmod(str(path), 0o644)
    data = dict(row_counts={'public.b': 2, 'public.a': 1}, backup_id='x')
    write_json_atomic(str(path), data)
    assert os.listdir(str(tmp_path)) == ['manifest.json']
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    assert json.loads(path.read_text()) == data
    assert read_manifest(str(path)) == data


def test_write_json_atomic_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / 'manifest.json'
    path.write_text('{"row_counts": {}}')
    with pytest.raises(TypeError):
        write_json_atomic(str(path), dict(row_counts={'bad': object()}))
    assert os.listdir(str(tmp_path)) == ['manifest.json']
    assert json.loads(path.read_text()) == {'row_counts': {}}


def test_write_json_atomic_never_writes_through_a_planted_temporary_name(tmp_path):
    """The temporary name of old (`<path>.tmp-<pid>`) could be planted as a link to any file."""
    target = tmp_path / 'elsewhere'
    path = tmp_path / 'verification.json'
    os.symlink(target, '%s.tmp-%d' % (path, os.getpid()))
    write_json_atomic(str(path), dict(status='passed'))
    assert not target.exists()
    assert json.loads(path.read_text()) == dict(status='passed')


def test_write_json_atomic_replaces_a_link_at_the_path_itself(tmp_path):
    target = tmp_path / 'elsewhere'
    path = tmp_path / '.progress.json'
    os.symlink(target, path)
    write_json_atomic(str(path), dict(phase='done'))
    assert not target.exists() and not os.path.islink(path)


GOOD = dict(backup_id='20261120T030000Z-abcdef', database='app', kind='full', format='custom', archive='app.dump',
            started_at='2026-11-20T03:00:00.000000Z', row_counts={'public.t': 1},
            files=[dict(name='app.dump', size=10, sha256='0' * 64)])


@pytest.mark.parametrize('change, reason', [
    (dict(archive='../x.dump'), 'not a plain name'),
    (dict(archive='/etc/passwd'), 'not a plain name'),
    (dict(files=[dict(name='a\0b', size=1, sha256='0' * 64)]), 'NUL'),
    (dict(files=[dict(name='..\\x', size=1, sha256='0' * 64)]), 'climbs out'),
    (dict(files=[dict(name='app.dir/../x', size=1, sha256='0' * 64)], format='directory', archive='app.dir'),
     'not a plain name'),
    (dict(files=[dict(name='app.dir/..', size=1, sha256='0' * 64)], format='directory', archive='app.dir'),
     'climbs out'),
    (dict(files=[dict(name='app.dir/x.sh', size=1, sha256='0' * 64)], format='directory', archive='app.dir'),
     'not a member of its directory archive'),
    (dict(files=[dict(name='manifest.json', size=1, sha256='0' * 64)]), 'its own records'),
    (dict(files=[dict(name='app.dump', size=-1, sha256='0' * 64)]), 'a size of -1'),
    (dict(files=[dict(name='app.dump', size=True, sha256='0' * 64)]), 'a size of True'),
    (dict(files=[dict(name='app.dump', size=1, sha256='zz')]), 'no sha256'),
    (dict(files='app.dump'), 'no list of files'),
    (dict(backup_id='20261120T030000Z-000000'), 'but it is stored as'),
    (dict(database='other'), "stored under 'app'"),
    (dict(started_at='yesterday'), 'not a time'),
    (dict(pg_dump_version='x'), 'pg_dump_version'),
    (dict(row_counts={'public.t': '1'}), 'row counts'),
])
def test_validate_manifest_refuses_what_lifeboat_never_writes(change, reason):
    with pytest.raises(InvalidSet, match=reason) as caught:
        validate_manifest(dict(GOOD, **change), GOOD['backup_id'], 'app', '/repo/app')
    assert GOOD['backup_id'] in caught.value.msg and '\n' not in caught.value.msg


def test_validate_manifest_accepts_what_the_writers_produce():
    directory = dict(GOOD, format='directory', archive='app.dir', globals='globals.sql',
                     files=[dict(name=n, size=1, sha256='0' * 64) for n in
                            ('app.dir/toc.dat', 'app.dir/3456.dat.gz', 'app.dir/blobs_12.toc', 'app.dir/blob_1.dat.zst',
                             'globals.sql')])
    for manifest in (GOOD, directory, dict(GOOD, archive='my db;=\u00e9.sql.gz')):
        assert validate_manifest(manifest, GOOD['backup_id'], 'app', '/repo/app') is manifest
    with pytest.raises(InvalidSet, match='not an object'):
        validate_manifest([GOOD], GOOD['backup_id'], 'app', '/repo/app')


DELTA_TABLE = dict(schema='public', table='t', file='000-public.t.copy.gz', rows=1, columns=['id', 'v'], key=['id'])
DELTA = dict(GOOD, kind='delta', format='delta', archive=None,
             files=[dict(name='000-public.t.copy.gz', size=10, sha256='0' * 64)])


def delta_with(**entry):
    return dict(DELTA, delta=dict(base_backup_id='20261120T020000Z-abcdef', tables={'public.t': dict(
        DELTA_TABLE, **entry)}))


@pytest.mark.parametrize('manifest, reason', [
    (delta_with(file='../20261120T020000Z-abcdef/000-public.t.copy.gz'), 'not one of its listed files'),
    (delta_with(file='/var/tmp/planted.copy.gz'), 'not one of its listed files'),
    (delta_with(file='001-public.t.copy.gz'), 'not one of its listed files'),
    (delta_with(file=['000-public.t.copy.gz']), 'a file of'),
    (delta_with(columns='id'), 'a columns of'),
    (delta_with(key=[1]), 'columns that are not names'),
    (delta_with(rows=True), 'a rows of'),
    (dict(DELTA, delta=dict(tables=['public.t'])), 'not an object of tables'),
    (dict(DELTA, delta='public.t'), 'not an object of tables'),
])
def test_a_delta_table_is_loaded_only_from_one_of_the_sets_own_files(manifest, reason):
    """Issue 15 item 1: delta apply opens each table's `file`; only a listed (checked) file will do."""
    with pytest.raises(InvalidSet, match=reason):
        validate_manifest(manifest, GOOD['backup_id'], 'app', '/repo/app')
    assert validate_manifest(delta_with(), GOOD['backup_id'], 'app', '/repo/app')
