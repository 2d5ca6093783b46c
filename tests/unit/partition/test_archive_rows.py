# -*- coding: utf-8 -*-
"""The rows of an archived partition are counted from pg_restore's output as it arrives - from a
pipe on the host or from the engine's frames of a container's pg_restore, cut anywhere - one per
line of COPY data, a value's newline escaped by COPY's text format."""
from ansible_collections.lifeboat.db.plugins.module_utils.partition.archive import _RowCounter

OUTPUT = (b'--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n'
          b'COPY public.events_2026_01 (id, at, what) FROM stdin;\n'
          b'1\t2026-01-02\tfirst\n2\t2026-01-03\ttwo\\nlines\n3\t2026-01-04\t\\\\.\n\\.\n\n'
          b'SELECT pg_catalog.setval(\'x\', 1);\n')


def test_rows_are_counted_however_the_output_is_cut():
    for size in (1, 2, 3, 7, 64, len(OUTPUT)):
        counter = _RowCounter()
        for start in range(0, len(OUTPUT), size):
            counter.feed(OUTPUT[start:start + size])
        assert counter.rows == 3, size
