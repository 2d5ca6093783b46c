# -*- coding: utf-8 -*-
"""An exec's output proven whole (exec.WholeOutput): an engine that loses the start of a command's
stdout, its end, or all of it while reporting exit code 0 must never pass for a whole output, and
the sink - the repository's file and its hash - only ever sees the command's own bytes.

The engine here is a fake of the Docker API's exec calls, but the command is real: the wrapped
argv (the shell script printing the markers around the tool) runs in this host's sh with the
exec's environment, and the fake only frames its stdout - cut where the test says - as the engine
would."""
import hashlib
import os
import random
import struct
import subprocess

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container import archive, tools
from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import ContainerExec, LostOutput

# Bytes a tool might well write: binary, newlines, and the markers' own prefix.
PAYLOAD = os.urandom(300000) + b'lifeboat-end-\n' + os.urandom(1000)


def frame(kind, payload):
    return struct.pack('>BxxxL', kind, len(payload)) + payload


class FakeSocket(object):
    """The exec's attached socket: the framed output, handed out in random pieces."""

    def __init__(self, data, rng):
        self.data, self.rng = data, rng

    def recv(self, size):
        piece = self.data[:min(size, self.rng.randint(1, 70000))]
        self.data = self.data[len(piece):]
        return piece

    def sendall(self, block):
        pass

    def shutdown(self, how):
        pass

    def close(self):
        pass


class LossyEngine(object):
    """exec_create/exec_start/exec_inspect. Each exec runs for real here; `losses` (one per exec,
    the last repeated) says what the engine drops of its stdout: None, ('start', n), ('end', n)
    or 'all'. `missing` names a program the container does not have (the runtime's 127)."""

    def __init__(self, losses=(None,), missing=None):
        self.losses = list(losses)
        self.missing = missing
        self.created = []
        self.rng = random.Random(7)
        self.results = {}

    def exec_create(self, container_id, argv, environment=None, **kwargs):
        self.created.append((argv, environment))
        exec_id = 'exec-%d' % len(self.created)
        loss = self.losses[min(len(self.created), len(self.losses)) - 1]
        if argv[0] == self.missing:
            stdout, stderr = b'', (b'OCI runtime exec failed: exec: "%s": executable file not found in $PATH'
                                   % argv[0].encode())
            code = 127
        else:
            env = dict(os.environ, **(environment or {}))
            done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            stdout, stderr, code = done.stdout, done.stderr, done.returncode
        if loss == 'all':
            stdout = b''
        elif loss and loss[0] == 'start':
            stdout = stdout[loss[1]:]
        elif loss and loss[0] == 'end':
            stdout = stdout[:-loss[1]]
        framed = b''
        for start in range(0, len(stdout), 8192):
            framed += frame(1, stdout[start:start + 8192])
        if stderr:
            framed += frame(2, stderr)
        self.results[exec_id] = (framed, code)
        return {'Id': exec_id}

    def exec_start(self, exec_id, socket=False):
        return FakeSocket(self.results[exec_id][0], self.rng)

    def exec_inspect(self, exec_id):
        return {'Running': False, 'ExitCode': self.results[exec_id][1]}


class Container(object):
    id = 'c0ffee'
    name = 'legacy-db'

    def __init__(self, api):
        self.api = api


def execer(**kwargs):
    return ContainerExec(Container(LossyEngine(**kwargs)))


def payload_file(tmp_path):
    path = tmp_path / 'payload'
    path.write_bytes(PAYLOAD)
    return str(path)


LOST = "the engine lost part of cat's output in container 'legacy-db'; nothing of it is used, run again"


def test_a_whole_output_reaches_the_sink_exactly_and_the_markers_stay_out_of_argv(tmp_path):
    run = execer()
    target = tmp_path / 'dump'
    digest = tools.stream_to_file(run, ['cat', payload_file(tmp_path)], {'PGPASSWORD': 's3cret'}, str(target),
                                  'pg_dump of database app')
    assert target.read_bytes() == PAYLOAD and digest == hashlib.sha256(PAYLOAD).hexdigest()
    argv, env = run.api.created[0]
    assert argv[0] == 'sh' and argv[3:] == ['cat', payload_file(tmp_path)]
    assert not any('lifeboat-start-' in word or 'lifeboat-end-' in word for word in argv)
    assert env['PGPASSWORD'] == 's3cret' and env['LIFEBOAT_OUTPUT_START'].startswith('lifeboat-start-')
    # A nonce per exec.
    run.run(['true'], whole=True)
    assert run.api.created[1][1]['LIFEBOAT_OUTPUT_END'] != env['LIFEBOAT_OUTPUT_END']
    # Collected output, and an empty one, come back as the command wrote them.
    assert run.run(['cat', payload_file(tmp_path)], whole=True).stdout == PAYLOAD
    assert run.run(['true'], whole=True).stdout == b''


@pytest.mark.parametrize('loss', [('start', 1), ('start', 20), ('start', 8192 * 3), ('end', 1), ('end', 30),
                                  ('end', 70000), 'all'])
def test_a_stream_the_engine_cut_is_refused_and_the_sink_never_sees_a_marker(tmp_path, loss):
    run = execer(losses=[loss])
    seen = bytearray()
    with pytest.raises(LostOutput) as caught:
        run.run(['cat', payload_file(tmp_path)], on_stdout=seen.extend)
    assert caught.value.msg == LOST
    assert b'lifeboat-start-' not in seen and PAYLOAD.startswith(bytes(seen))
    if loss[0] == 'start':
        assert not seen  # refused at the first bytes: nothing of it was passed on
    # stream_to_file: the same line, after which the caller throws the set away.
    target = tmp_path / 'dump'
    with pytest.raises(LifeboatError) as caught:
        tools.stream_to_file(execer(losses=[loss]), ['cat', payload_file(tmp_path)], {}, str(target), 'pg_dump')
    assert caught.value.msg == LOST
    # Collected output too (pg_restore --list, mktemp).
    with pytest.raises(LostOutput):
        execer(losses=[loss]).run(['cat', payload_file(tmp_path)], whole=True)


def test_a_lost_answer_to_a_small_question_is_asked_again_once():
    # `id -u` answered nothing with exit code 0: asked again, the second answer is used.
    run = execer(losses=['all', None])
    uid, gid = archive.exec_user(run)
    assert (uid, gid) == (os.getuid(), os.getgid()) and len(run.api.created) == 3
    # Lost twice: one line, no third try.
    run = execer(losses=['all'])
    with pytest.raises(LostOutput) as caught:
        archive.exec_user(run)
    assert caught.value.msg == ("the engine lost part of id's output in container 'legacy-db'; nothing of it is "
                                "used, run again") and len(run.api.created) == 2
    # mktemp makes a folder: never asked twice.
    run = execer(losses=['all'])
    with pytest.raises(LostOutput):
        archive.scratch_dir(run, 'a dump')
    assert len(run.api.created) == 1


def test_a_failing_command_stays_the_callers_to_report(tmp_path):
    # Its markers whole: its own exit code and error line.
    failed = execer().run(['sh', '-c', 'echo partial; echo "pg_dump: error: gone" >&2; exit 1'], whole=True)
    assert (failed.exit_code, failed.stdout, failed.stderr) == (1, b'partial\n', 'pg_dump: error: gone\n')
    # Its end lost as well: still its failure, not the engine's (the caller fails on the exit code).
    failed = execer(losses=[('end', 3)]).run(['sh', '-c', 'echo partial; exit 1'], whole=True)
    assert failed.exit_code == 1
    with pytest.raises(LifeboatError) as caught:
        tools.stream_to_file(execer(), ['sh', '-c', 'echo partial; echo "pg_dump: error: gone" >&2; exit 1'], {},
                             str(tmp_path / 'dump'), 'pg_dump of database app')
    assert caught.value.msg == ("pg_dump of database app failed in container 'legacy-db' (exit code 1): "
                                "pg_dump: error: gone")


def test_a_missing_tool_or_shell_is_one_line():
    # The tool missing: the shell says so, and the message names the tool.
    run = execer()
    with pytest.raises(LifeboatError) as caught:
        run.check(['lifeboat-no-such-tool', '--list'], 'pg_restore --list', whole=True)
    assert caught.value.msg.startswith("container 'legacy-db' has no lifeboat-no-such-tool (not found in its PATH)")
    # The shell missing (an image without sh): said in one line.
    with pytest.raises(LifeboatError) as caught:
        execer(missing='sh').run(['pg_dump', 'app'], on_stdout=lambda block: None)
    assert caught.value.msg == ("container 'legacy-db' has no sh, which lifeboat runs pg_dump under to prove its "
                                "output arrived whole; use an image with a POSIX shell (every official PostgreSQL "
                                "image has one)")
