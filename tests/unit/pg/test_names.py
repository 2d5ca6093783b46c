# -*- coding: utf-8 -*-
"""The one reader of schema.table (pg/names.py): as PostgreSQL reads a name, and written back."""
import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import (
    check_name, parse_column, parse_name, quoted_key, row_count_keys, split_name, table_key, written)


@pytest.mark.parametrize('text, pair', [
    ('Public.Orders', ('public', 'orders')),
    ('public."MixedCase"', ('public', 'MixedCase')),
    ('"My ""S"".x"."Tab.le"', ('My "S".x', 'Tab.le')),
    ('"日本"."表"', ('日本', '表')),
    ('Ärger.ÖL', ('Ärger', 'Öl')),              # only A-Z fold, as in a UTF-8 database
    (' public . orders ', ('public', 'orders')),  # spaces around the parts, as to_regclass allows
    ('Orders', (None, 'orders')),
    ('"a.b"', (None, 'a.b')),
    ('s.a$1', ('s', 'a$1')),
])
def test_names_are_read_as_postgresql_reads_them(text, pair):
    assert parse_name(text) == pair


def test_a_bare_name_is_public_for_split_name():
    assert split_name('Orders') == ('public', 'orders')
    assert split_name('"a.b"') == ('public', 'a.b')
    assert split_name('S.T') == ('s', 't')


@pytest.mark.parametrize('text, reason', [
    ('a.b.c', '3 parts'), ('"a"."b"."c"', '3 parts'), ('', 'a part is empty'), ('"a".', 'a part is empty'),
    ('.a', 'a part is empty'), ('public.Odd Name', 'a space inside an unquoted part'),
('public."Mixed"x', 'text right before or after a quoted part'),
    ('pub"lic".x', 'text right before or after a quoted part'), ('public.""', 'a quoted part is empty'),
])
def test_what_is_not_one_table_name_is_refused(text, reason):
    with pytest.raises(LifeboatError, match='is not a table name .*%s.*; write it as schema.table' % reason):
        parse_name(text)


def test_an_unclosed_quote_is_refused():
    with pytest.raises(LifeboatError, match='is not a name: a double quote is not closed'):
        parse_name('public."Mixed')


def test_names_over_63_bytes_are_refused_not_cut():
    check_name('db', 'x' * 63)
    check_name('db', 'データ' * 7)                       # 63 bytes
    with pytest.raises(LifeboatError, match="db 'x+' is 64 bytes, longer than the 63 bytes"):
        check_name('db', 'x' * 64)
    with pytest.raises(LifeboatError, match='is 66 bytes'):
        parse_name('public."%s"' % ('データ' * 7 + '表'))


@pytest.mark.parametrize('pair', [('public', 'orders'), ('public', 'MixedCase'), ('My "S".x', 'Tab.le'),
                                  ('日本', '表'), ('s', 'a$1'), ('s', '1a'), ('Odd', 'Name here')])
def test_written_forms_read_back_as_the_same_table(pair):
    assert parse_name(written(*pair)) == pair
    assert parse_name(quoted_key(*pair)) == pair


def test_written_forms():
    assert table_key('My "S"', 'x.y') == 'My "S".x.y'
    assert quoted_key('My "S"', 'x') == '"My ""S"""."x"'
    assert quoted_key(None, 'Orders') == '"Orders"'
    assert written('public', 'orders') == 'public.orders'
    assert written('public', 'MixedCase') == 'public."MixedCase"'


def test_row_count_keys_never_share_a_key():
    keys = row_count_keys([('a', 'b.c'), ('a.b', 'c'), ('public', 'orders')])
    assert keys == {('a', 'b.c'): '"a"."b.c"', ('a.b', 'c'): '"a.b"."c"', ('public', 'orders'): 'public.orders'}


@pytest.mark.parametrize('text, triple', [
    ('D_Facility.Id', (None, 'd_facility', 'id')),
    ('Opendolphin."D_Facility".id', ('opendolphin', 'D_Facility', 'id')),
    ('"a.b"."c.d"', (None, 'a.b', 'c.d')),
])
def test_a_sequence_column_is_read_by_the_same_rules(text, triple):
    assert parse_column(text) == triple


@pytest.mark.parametrize('text', ['id', 'a.b.c.d', 'a..id', 'a."b', '"a"x.id'])
def test_a_bad_column_is_refused_in_one_line(text):
    with pytest.raises(LifeboatError) as raised:
        parse_column(text)
    assert repr(text) in raised.value.msg and '\n' not in raised.value.msg
    assert 'schema.table.column' in raised.value.msg or 'not closed' in raised.value.msg
