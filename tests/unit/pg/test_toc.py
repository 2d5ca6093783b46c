# -*- coding: utf-8 -*-
"""The one reader of `pg_restore --list` output (pg/toc.py)."""
import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.pg.toc import (
    TocEntry, dumped_by, dumped_database, extensions, parse_toc)


@pytest.mark.parametrize('line, desc, schema, tag', [
    ('215; 1259 16390 TABLE public orders owner', 'TABLE', 'public', 'orders'),
    ('3460; 0 16390 TABLE DATA public orders owner', 'TABLE DATA', 'public', 'orders'),
    ('228; 1259 16449 TABLE s Odd Name postgres', 'TABLE', 's', 'Odd Name'),
    ('2469; 2606 16409 FK CONSTRAINT s orders orders_customer_id_fkey postgres', 'FK CONSTRAINT', 's',
     'orders orders_customer_id_fkey'),
    ('2635; 0 0 SEQUENCE OWNED BY s orders_id_seq postgres', 'SEQUENCE OWNED BY', 's', 'orders_id_seq'),
    ('2636; 0 0 COMMENT s COLUMN "Odd Name".id postgres', 'COMMENT', 's', 'COLUMN "Odd Name".id'),
    ('6; 2615 16385 SCHEMA - s postgres', 'SCHEMA', None, 's'),
])
def test_toc_lines(line, desc, schema, tag):
    entry = TocEntry.parse(line)
    assert (entry.desc, entry.schema, entry.tag) == (desc, schema, tag)


def test_comments_and_unknown_kinds_of_lines_are_skipped():
    assert TocEntry.parse('; Archive created at 2026-11-23 07:20:00 UTC') is None
    assert TocEntry.parse('229; 1255 16415 FUNCTION s touch() postgres') is None


LISTING = """;
; Archive created at 2026-11-23 07:20:00 UTC
;     dbname: shop db
;     Dumped by pg_dump version: 17.2
;
4; 3079 16386 EXTENSION - pgcrypto 
5; 0 0 COMMENT - EXTENSION pgcrypto 
6; 3079 16400 EXTENSION - vector postgres
215; 1259 16390 TABLE public orders owner
3460; 0 16390 TABLE DATA public orders owner
"""


def test_extensions_and_the_header():
    assert extensions(LISTING) == ['pgcrypto', 'vector']
    assert [(e.desc, e.schema, e.tag) for e in parse_toc(LISTING)][-2:] == [('TABLE', 'public', 'orders'),
                                                                            ('TABLE DATA', 'public', 'orders')]
    assert dumped_by(LISTING) == '17.2' and dumped_database(LISTING) == 'shop db'
    assert dumped_by('; nothing') is None and dumped_database('') is None
