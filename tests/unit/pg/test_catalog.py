# -*- coding: utf-8 -*-
"""Names as PostgreSQL reads them: schema.table parsing, the 63-byte limit, row-count keys."""
import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import (
    check_name, quoted_key, row_count_keys, split_name)
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError


def test_split_name_reads_names_as_sql_does():
    assert split_name('Orders') == ('public', 'orders')
    assert split_name('"My ""S"".x"."Tab.le"') == ('My "S".x', 'Tab.le')
    assert split_name('"日本"."表"') == ('日本', '表')


@pytest.mark.parametrize('name', ['a.b.c', '"a".', '', '"a"."b"."c"'])
def test_split_name_refuses_what_is_not_one_table(name):
    with pytest.raises(LifeboatError, match='is not a table name'):
        split_name(name)


def test_names_over_63_bytes_are_refused_not_cut():
    check_name('db', 'x' * 63)
    check_name('db', 'データ' * 7)                       # 63 bytes
    with pytest.raises(LifeboatError, match="db 'x+' is 64 bytes, longer than the 63 bytes"):
        check_name('db', 'x' * 64)
    with pytest.raises(LifeboatError, match='is 66 bytes'):
        split_name('public."%s"' % ('データ' * 7 + '表'))


def test_row_count_keys_never_share_a_key():
    keys = row_count_keys([('a', 'b.c'), ('a.b', 'c'), ('public', 'orders')])
    assert keys == {('a', 'b.c'): '"a"."b.c"', ('a.b', 'c'): '"a.b"."c"', ('public', 'orders'): 'public.orders'}
    assert quoted_key('My "S"', 'x') == '"My ""S"""."x"'
