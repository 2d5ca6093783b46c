# -*- coding: utf-8 -*-
"""stream_into: what a consumer (psql) sees when its producer (pg_restore) or itself fails."""
import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.stream import stream_into, tool_output


def test_the_consumer_gets_every_block_in_order(tmp_path):
    out = tmp_path / 'out'
    stream_into(['sh', '-c', 'cat > "$0"', str(out)], {}, iter([b'BEGIN;\n', b'COPY ...\n', b'COMMIT;\n']), 'cat')
    assert out.read_bytes() == b'BEGIN;\nCOPY ...\nCOMMIT;\n'


def test_a_failing_producer_kills_the_consumer_before_its_input_ends(tmp_path):
    # psql commits a --single-transaction script at the end of its input: a truncated script must
    # never reach its end. The marker is written only if the consumer saw end of input.
    marker = tmp_path / 'saw-the-end'

    def script():
        yield b'BEGIN;\n'
        for block in tool_output(['sh', '-c', 'echo "COPY ..."; echo "pg_restore: error: boom" >&2; exit 1'], {},
                                 'pg_restore'):
            yield block
        yield b'COMMIT;\n'

    with pytest.raises(LifeboatError, match='pg_restore failed: pg_restore: error: boom'):
        stream_into(['sh', '-c', 'cat > /dev/null && touch "$0"', str(marker)], {}, script(), 'psql')
    assert not marker.exists()


def test_a_consumer_that_stops_reading_stops_the_producer_and_says_why():
    # `yes` never ends by itself: the test would hang if the producer were not killed.
    consumer = ['sh', '-c', 'head -c 100 > /dev/null; echo "psql:<stdin>:1: ERROR:  syntax error"; exit 3']
    with pytest.raises(LifeboatError, match='psql failed: psql:<stdin>:1: ERROR:  syntax error'):
        stream_into(consumer, {}, tool_output(['yes'], {}, 'yes'), 'psql')
