# -*- coding: utf-8 -*-
"""A directory-format archive's table of contents read by the container's pg_restore (tools.read_toc_dir): only
toc.dat goes into a scratch folder there, never through a link the archive holds, and the folder is removed
afterwards - a removal that fails is a warning when the caller takes warnings, a failure when not.

The engine is played by FakeExec (its answers are what a Debian container gives); test_container_engine and
test_container_modules run the same code against a real engine."""
import io
import os
import tarfile
import threading

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container import archive
from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import ContainerExec, ExecResult
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import read_toc_dir

SCRATCH = '/tmp/lifeboat.Ab3dEf9h'
LISTING = ';\n; Archive created at 2026-12-05 12:00:00 UTC\n3456; 0 16390 TABLE DATA public item lifeboat\n'
RM_REFUSED = "rm: cannot remove '%s/toc.dat': Operation not permitted\n" % SCRATCH


class FakeExec(object):
    """ContainerExec and its container's API as read_toc_dir uses them: mktemp, id, put_archive, pg_restore --list
    (which answers only once toc.dat was put in), rm - which fails when told to."""

    failure = ContainerExec.failure  # the real one-line message for a failed command

    def __init__(self, rm_fails=False):
        self.container = self
        self.api = self
        self.name, self.id = 'db', 'c0ffee'
        self.rm_fails = rm_fails
        self.commands, self.put = [], {}
        self.whole = set()  # the commands whose output was to be proven whole (exec.WholeOutput)

    def put_archive(self, container_id, directory, stream):
        data = b''.join(stream)  # as the engine reads it: a refused file raises here
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                self.put[directory + '/' + member.name] = tar.extractfile(member).read()
        return True

    def run(self, argv, **kwargs):
        self.commands.append(argv[0])
        if kwargs.get('whole'):
            self.whole.add(argv[0])
        if argv[0] == 'mktemp':
            return ExecResult('x', 0, '', stdout=(SCRATCH + '\n').encode())
        if argv[0] == 'id':
            return ExecResult('x', 0, '', stdout=b'999\n')
        if argv[0] == 'pg_restore':
            found = (argv[-1] + '/toc.dat') in self.put
            return ExecResult('x', 0 if found else 1, '' if found else 'pg_restore: error: no toc.dat\n',
                              stdout=LISTING.encode() if found else b'')
        if argv[0] == 'rm':
            return ExecResult('x', 1, RM_REFUSED, stdout=b'') if self.rm_fails else ExecResult('x', 0, '', stdout=b'')
        raise AssertionError('read_toc_dir ran %r' % (argv,))

    def check(self, argv, what, **kwargs):
        result = self.run(argv, **kwargs)
        if result.exit_code != 0:
            raise LifeboatError(self.failure(argv[0], what, result))
        return result

    def ask(self, argv, what):
        return self.check(argv, what, whole=True)


@pytest.fixture
def dump_dir(tmp_path):
    folder = tmp_path / 'app.dir'
    folder.mkdir()
    (folder / 'toc.dat').write_bytes(b'PGDMP toc')
    (folder / '3456.dat.gz').write_bytes(b'rows')
    return folder


def test_only_toc_dat_goes_in_and_the_scratch_folder_is_removed(dump_dir):
    engine = FakeExec()
    assert read_toc_dir(engine, 'pg_restore', str(dump_dir), 'reading x') == LISTING
    assert engine.put == {SCRATCH + '/toc.dat': b'PGDMP toc'} and engine.commands[-1] == 'rm'
    # Every output read back is proven whole; rm's is not read.
    assert engine.whole == {'mktemp', 'id', 'pg_restore'}


def test_a_linked_toc_dat_is_never_copied_into_the_container(dump_dir, tmp_path):
    # An archive someone else made: toc.dat pointing at a host file would carry that file into the container.
    secret = tmp_path / 'shadow'
    secret.write_bytes(b'root:$6$secret')
    (dump_dir / 'toc.dat').unlink()
    (dump_dir / 'toc.dat').symlink_to(secret)
    engine = FakeExec()
    with pytest.raises(LifeboatError) as caught:
        read_toc_dir(engine, 'pg_restore', str(dump_dir), 'reading the table of contents of %s' % dump_dir)
    assert caught.value.msg == ('reading the table of contents of %s: %s/toc.dat is not a regular file (a symbolic '
                                'link?), so nothing of it is copied into the container - put the file itself in its '
                                'place' % (dump_dir, dump_dir))
    assert engine.commands == [] and engine.put == {}
    # Below that check too (a link swapped in after it): the file is opened without following a link.
    with pytest.raises(LifeboatError) as caught:
        archive.copy_in(engine, str(dump_dir / 'toc.dat'), SCRATCH, 'toc.dat', follow=False)
    assert caught.value.msg.startswith('%s/toc.dat is not a regular file (a symbolic link?); a link in an archive '
                                       'would copy whatever it points at' % dump_dir)
    assert engine.put == {}


def test_a_link_the_operator_named_is_followed_and_a_fifo_is_refused(tmp_path):
    # src: /backups/latest.dump -> app-2026.dump is the operator's own choice, as pg_restore on a host follows it.
    (tmp_path / 'app-2026.dump').write_bytes(b'PGDMP custom')
    (tmp_path / 'latest.dump').symlink_to(tmp_path / 'app-2026.dump')
    engine = FakeExec()
    assert archive.copy_in(engine, str(tmp_path / 'latest.dump'), SCRATCH, 'latest.dump') == SCRATCH + '/latest.dump'
    assert engine.put == {SCRATCH + '/latest.dump': b'PGDMP custom'}
    fifo = tmp_path / 'fifo'
    os.mkfifo(str(fifo))
    outcome = {}

    def copy():
        try:
            archive.copy_in(engine, str(fifo), SCRATCH, 'fifo')
        except LifeboatError as exc:
            outcome['msg'] = exc.msg
    worker = threading.Thread(target=copy, daemon=True)
    worker.start()
    worker.join(5)
    try:
        # Refused at once: an open that waits for a writer would hold the task for ever.
        assert not worker.is_alive() and outcome['msg'].startswith('%s is not a regular file' % fifo), outcome
    finally:
        if worker.is_alive():  # let an open that waits go
            os.close(os.open(str(fifo), os.O_WRONLY | os.O_NONBLOCK))


def test_a_scratch_folder_the_container_keeps_is_a_warning_given_warnings(dump_dir):
    # A good directory backup (pg_dump._verify_archive) and a restore's check (restore/container.check_backup) take
    # warnings: the table of contents read, so the set is good; the folder left is named with how to remove it.
    warnings = []
    assert read_toc_dir(FakeExec(rm_fails=True), 'pg_restore', str(dump_dir), 'reading x', warnings) == LISTING
    assert warnings == ["removing %s failed in container 'db' (exit code 1): %s; remove it by hand (docker exec db "
                        "rm -rf %s)" % (SCRATCH, RM_REFUSED.strip(), SCRATCH)]
    # Without warnings to carry it (an external archive, before anything changed), the read fails in that one line.
    with pytest.raises(LifeboatError) as caught:
        read_toc_dir(FakeExec(rm_fails=True), 'pg_restore', str(dump_dir), 'reading x')
    assert caught.value.msg == warnings[0]
