# -*- coding: utf-8 -*-
"""Tar streams into and out of a container: the one lifeboat makes as it reads a file, and the engine's, taken
as untrusted input (only regular files and folders under the name asked for)."""
import hashlib
import io
import os
import tarfile

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container.archive import (
    extract_safely, tar_folder_stream, tar_stream)


@pytest.mark.parametrize('size', [0, 1, 511, 512, 513, 3 * 1024 * 1024 + 5])
def test_a_file_becomes_a_tar_stream_as_it_is_read(tmp_path, size):
    source = tmp_path / 'app.dump'
    payload = os.urandom(size)
    source.write_bytes(payload)
    stream = b''.join(tar_stream(str(source), 'app.dump', mode=0o640, uid=999, gid=999))
    assert len(stream) % tarfile.BLOCKSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.size, member.mode, member.uid, member.gid) == ('app.dump', size, 0o640, 999, 999)
        assert member.isfile() and tar.extractfile(member).read() == payload


def test_a_file_that_grows_while_it_is_sent_is_refused(tmp_path):
    source = tmp_path / 'app.dump'
    source.write_bytes(b'a' * 100)
    blocks = tar_stream(str(source), 'app.dump')
    next(blocks)  # the header, with the size as it was
    with open(source, 'ab') as more:
        more.write(b'b' * 100)
    with pytest.raises(LifeboatError) as caught:
        list(blocks)
    assert 'changed size while it was copied into the container (100 bytes, then 200)' in caught.value.msg


def test_a_folder_becomes_a_tar_stream_of_its_files_and_folders(tmp_path):
    # A directory-format set going into the container for pg_restore -j: folders 0700, files 0600,
    # owned by the container's user, every byte as on disk - and what the extraction accepts.
    folder = tmp_path / 'app.dir'
    (folder / 'sub').mkdir(parents=True)
    payloads = {'toc.dat': os.urandom(700), '3456.dat.gz': os.urandom(3 * 1024 * 1024 + 1), 'sub/x': b''}
    for name, payload in payloads.items():
        (folder / name).write_bytes(payload)
    stream = b''.join(tar_folder_stream(str(folder), 'app.dir', uid=999, gid=998))
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {'app.dir', 'app.dir/sub', 'app.dir/toc.dat', 'app.dir/3456.dat.gz', 'app.dir/sub/x'}
        for name, member in members.items():
            assert (member.uid, member.gid, member.mode) == (999, 998, 0o700 if member.isdir() else 0o600), name
            if member.isfile():
                assert tar.extractfile(member).read() == payloads[name[len('app.dir/'):]]
    out = tmp_path / 'out'
    out.mkdir()
    written = extract_safely(io.BytesIO(stream), 'app.dir', str(out), 'x')
    assert {w['name']: w['sha256'] for w in written} == {
        'app.dir/' + name: hashlib.sha256(payload).hexdigest() for name, payload in payloads.items()}


def test_a_link_in_a_folder_is_never_sent(tmp_path):
    folder = tmp_path / 'app.dir'
    folder.mkdir()
    (folder / 'toc.dat').write_bytes(b'toc')
    (folder / 'passwd').symlink_to('/etc/passwd')
    with pytest.raises(LifeboatError) as caught:
        list(tar_folder_stream(str(folder), 'app.dir'))
    assert caught.value.msg == ('%s is not a regular file or folder; a backup set holds nothing else, so it is not '
                                'copied into the container' % (folder / 'passwd'))


def tar_of(*members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.linkname = data or ''
                tar.addfile(info)
    buffer.seek(0)
    return buffer


def test_files_and_folders_under_the_name_asked_for_are_written_private(tmp_path):
    written = extract_safely(tar_of(('app.dir', tarfile.DIRTYPE, None), ('app.dir/toc.dat', tarfile.REGTYPE, b'toc'),
                                    ('app.dir/3456.dat.gz', tarfile.REGTYPE, b'rows')), 'app.dir', str(tmp_path), 'x')
    assert written == [dict(name='app.dir/toc.dat', size=3, sha256=hashlib.sha256(b'toc').hexdigest()),
                       dict(name='app.dir/3456.dat.gz', size=4, sha256=hashlib.sha256(b'rows').hexdigest())]
    assert (tmp_path / 'app.dir' / 'toc.dat').read_bytes() == b'toc'
    assert (tmp_path / 'app.dir').stat().st_mode & 0o777 == 0o700
    assert (tmp_path / 'app.dir' / 'toc.dat').stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize('members, fragment', [
    ([('/etc/cron.d/x', tarfile.REGTYPE, b'x')], "names '/etc/cron.d/x', outside the folder"),
    ([('app.dir/../../x', tarfile.REGTYPE, b'x')], "names 'app.dir/../../x', outside the folder"),
    ([('other/x', tarfile.REGTYPE, b'x')], "holds 'other/x', which is not under 'app.dir'"),
    ([('app.dir', tarfile.DIRTYPE, None), ('app.dir/toc.dat', tarfile.SYMTYPE, '/etc/shadow')],
     'holds app.dir/toc.dat, which is not a regular file or folder'),
    ([('app.dir', tarfile.DIRTYPE, None), ('app.dir/x', tarfile.LNKTYPE, 'app.dir/y')],
     'holds app.dir/x, which is not a regular file or folder'),
    ([('app.dir', tarfile.DIRTYPE, None), ('app.dir/x', tarfile.FIFOTYPE, None)],
     'holds app.dir/x, which is not a regular file or folder'),
])
def test_anything_else_is_refused_in_one_line(tmp_path, members, fragment):
    with pytest.raises(LifeboatError) as caught:
        extract_safely(tar_of(*members), 'app.dir', str(tmp_path), 'the copy out of container \'db\'')
    msg = caught.value.msg
    assert '\n' not in msg and msg.startswith("the copy out of container 'db' ") and fragment in msg, msg
    assert not os.path.exists('/etc/cron.d/x') and not (tmp_path.parent / 'x').exists()


def test_an_existing_file_is_never_overwritten_and_garbage_is_no_tar(tmp_path):
    (tmp_path / 'app.dump').write_bytes(b'mine')
    with pytest.raises(LifeboatError) as caught:
        extract_safely(tar_of(('app.dump', tarfile.REGTYPE, b'theirs')), 'app.dump', str(tmp_path), 'the copy')
    assert 'could not be written into' in caught.value.msg and 'File exists' in caught.value.msg
    assert (tmp_path / 'app.dump').read_bytes() == b'mine'
    with pytest.raises(LifeboatError) as caught:
        extract_safely(io.BytesIO(b'\x01' * 1024), 'app.dump', str(tmp_path), 'the copy')
    assert caught.value.msg.startswith('the copy is not a readable tar stream')


def _dump_folder_tar():
    """A directory-format dump as the engine's get_archive sends it, and the offset right after its
    toc.dat: where a stream cut between two files stops."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w', format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo('app.dir')
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in (('app.dir/toc.dat', b'toc' * 300), ('app.dir/3456.dat.gz', os.urandom(5000))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            if name.endswith('toc.dat'):
                after_toc = tar.offset
    return buffer.getvalue(), after_toc


@pytest.mark.parametrize('tail', [b'', b'\0' * 100, b'\x01' * tarfile.BLOCKSIZE],
                         ids=['clean stop', 'part of a block', 'no header'])
def test_a_stream_cut_between_two_files_is_refused(tmp_path, tail):
    # tarfile's stream mode ends quietly where the data ends at a member's boundary: the copy out of a
    # directory dump would hold toc.dat and no table data, and pg_restore --list reads toc.dat only.
    whole, after_toc = _dump_folder_tar()
    (tmp_path / 'whole').mkdir()
    (tmp_path / 'cut').mkdir()
    assert [f['name'] for f in extract_safely(io.BytesIO(whole), 'app.dir', str(tmp_path / 'whole'), 'x')] == [
        'app.dir/toc.dat', 'app.dir/3456.dat.gz']
    with pytest.raises(LifeboatError) as caught:
        extract_safely(io.BytesIO(whole[:after_toc] + tail), 'app.dir', str(tmp_path / 'cut'),
                       "the copy of /tmp/lifeboat.x/app.dir out of container 'db'")
    assert caught.value.msg == ("the copy of /tmp/lifeboat.x/app.dir out of container 'db' stopped before the end of "
                                "its tar stream (after app.dir/toc.dat), so files may be missing; nothing of it is "
                                "used, run again")
