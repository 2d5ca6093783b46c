# -*- coding: utf-8 -*-
"""The Docker API's multiplexed output (an exec attached with stdin), split however it arrives, and the one-line
messages of a command that failed in a container."""
import struct

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import (
    STREAM_STDERR, STREAM_STDOUT, ContainerExec, ExecResult, FrameReader)


def frame(kind, payload):
    return struct.pack('>BxxxL', kind, len(payload)) + payload


STREAM = frame(1, b'first ') + frame(2, b'ERROR: oops\n') + frame(1, b'x' * 70000) + frame(1, b'') + frame(0, b'end')


@pytest.mark.parametrize('size', [1, 7, 8, 9, 4096, len(STREAM)])
def test_frames_split_at_any_boundary_come_out_whole(size):
    reader = FrameReader()
    frames = []
    for start in range(0, len(STREAM), size):
        frames.extend(reader.feed(STREAM[start:start + size]))
    reader.close()
    stdout = b''.join(block for kind, block in frames if kind == STREAM_STDOUT)
    stderr = b''.join(block for kind, block in frames if kind == STREAM_STDERR)
    assert stdout == b'first ' + b'x' * 70000 + b'end' and stderr == b'ERROR: oops\n'


def test_a_stream_that_is_not_multiplexed_or_cut_short_is_refused():
    with pytest.raises(LifeboatError) as caught:
        FrameReader().feed(b'PGDMP\x01\x0e\x00\x04\x08')
    assert 'not a Docker stream (frame type 80)' in caught.value.msg
    reader = FrameReader()
    reader.feed(frame(1, b'whole') + frame(1, b'cut short')[:10])
    with pytest.raises(LifeboatError) as caught:
        reader.close()
    assert 'cut the command\'s output short (10 bytes of a frame)' in caught.value.msg


class Named(object):
    name = 'legacy-db'
    api = None


EXECER = ContainerExec(Named())


@pytest.mark.parametrize('code, stderr', [
    (127, 'Error: runc: exec failed: unable to start container process: exec: "pg_dump": executable file not found '
          'in $PATH: OCI runtime attempted to invoke a command that was not found\n'),
    # Docker's own words for it
    (126, 'OCI runtime exec failed: exec failed: unable to start container process: exec: "pg_dump": executable '
          'file not found in $PATH: unknown\n'),
    (127, 'sh: pg_dump: command not found\n'),
])
def test_a_missing_program_is_named(code, stderr):
    msg = EXECER.failure('pg_dump', 'pg_dump of database \'app\'', ExecResult('id', code, stderr))
    assert msg == ("container 'legacy-db' has no pg_dump (not found in its PATH); run it against the container of "
                   "the PostgreSQL server itself, whose image holds the client tools")


def test_a_failing_command_is_quoted_by_its_error_line():
    stderr = ('pg_dump: warning: something\npg_dump: error: connection to server on socket "/tmp/.s.PGSQL.5432" '
              'failed: FATAL:  database "nosuch" does not exist\n')
    msg = EXECER.failure('pg_dump', 'pg_dump of database \'nosuch\'', ExecResult('id', 1, stderr))
    assert msg == ("pg_dump of database 'nosuch' failed in container 'legacy-db' (exit code 1): pg_dump: error: "
                   "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: FATAL:  database \"nosuch\" does not "
                   "exist")
    # exit code 127 of the program itself (not the runtime's): its own words
    assert EXECER.failure('psql', 'psql', ExecResult('id', 127, 'psql: error: other\n')).endswith(
        '(exit code 127): psql: error: other')
    assert EXECER.failure('sh', 'a script', ExecResult('id', 3, '')).endswith('(exit code 3): no error message')


def test_a_command_whose_output_was_cut_says_so():
    cut = ExecResult('id', 3, '', cut=True)
    assert EXECER.failure('psql', 'applying the script', cut) == (
        "applying the script failed in container 'legacy-db' (exit code 3): no error message (it stopped reading its "
        "input; the rest of its messages were lost)")
