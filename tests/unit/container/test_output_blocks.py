# -*- coding: utf-8 -*-
"""One command's output carried into another's input (tools.output_blocks), as mode=tables in a
container feeds pg_restore --file=- into psql: every block in order, a failure raised only after
the last block (so psql never reaches the COMMIT that follows), and a consumer that stops early
closing the command's output instead of leaving it blocked."""
import threading

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import ExecResult
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import PIPE_BLOCKS, output_blocks


class FakeExec:
    """ContainerExec's run() as the engine drives it: on_stdout called from the reading thread."""

    def __init__(self, blocks, exit_code=0, stderr=''):
        self.blocks, self.exit_code, self.stderr = blocks, exit_code, stderr
        self.raised = None
        self.done = threading.Event()

    def run(self, argv, environment=None, on_stdout=None, whole=None):
        # The output carried into psql must be proven whole (exec.WholeOutput, test_whole_output).
        assert whole is True
        try:
            for block in self.blocks:
                on_stdout(block)
        except Exception as exc:  # the caller's own error comes back as it is, the output closed
            self.raised = exc
            raise
        finally:
            self.done.set()
        return ExecResult('id', self.exit_code, self.stderr)

    def failure(self, program, what, result):
        return '%s failed in container (exit code %d): %s' % (what, result.exit_code, result.stderr.strip())


def test_every_block_in_order():
    blocks = [b'%d\n' % n for n in range(200)]
    assert list(output_blocks(FakeExec(blocks), ['pg_restore'], 'pg_restore of x')) == blocks


def test_a_failure_comes_after_the_last_block():
    seen = []
    failing = FakeExec([b'BEGIN;\n', b'COPY ...\n'], exit_code=1, stderr='pg_restore: error: corrupt archive\n')
    with pytest.raises(LifeboatError) as caught:
        for block in output_blocks(failing, ['pg_restore'], 'pg_restore of x'):
            seen.append(block)
    assert seen == [b'BEGIN;\n', b'COPY ...\n']
    assert caught.value.msg == 'pg_restore of x failed in container (exit code 1): pg_restore: error: corrupt archive'


def test_a_consumer_that_stops_closes_the_commands_output():
    endless = FakeExec(iter(lambda: b'x' * 1024, None))
    blocks = output_blocks(endless, ['pg_restore'], 'pg_restore of x')
    for _ in range(PIPE_BLOCKS * 3):
        next(blocks)
    blocks.close()
    assert endless.done.wait(5) and endless.raised is not None
