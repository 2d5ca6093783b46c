# -*- coding: utf-8 -*-
"""Row-count comparison between a baseline (or manifest) and the database."""
import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import FAILED, PASSED, compare_row_counts
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.custom import normalize_checks
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

BASELINE = {'public.customers': 1000, 'public.orders': 3000, 'public.empty': 0}


def by_table(result):
    return dict((row['table'], row) for row in result['tables'])


def test_all_equal_passes():
    result = compare_row_counts(BASELINE, dict(BASELINE))
    assert result['status'] == PASSED and result['failures'] == 0
    assert result['summary'] == '3 of 3 tables match'
    assert set(row['status'] for row in result['tables']) == {'ok'}
    assert [row['table'] for row in result['tables']] == sorted(BASELINE)
    assert result['name'] == 'row_counts' and result['severity'] == 'error'


def test_mismatch_fails_with_counts_in_summary():
    actual = dict(BASELINE, **{'public.orders': 0})
    result = compare_row_counts(BASELINE, actual)
    assert result['status'] == FAILED and result['failures'] == 1
    assert 'public.orders (expected 3000, found 0)' in result['summary']
    assert by_table(result)['public.orders'] == dict(table='public.orders', expected=3000, actual=0, status='mismatch')


def test_missing_table_fails():
    actual = dict(BASELINE)
    del actual['public.customers']
    result = compare_row_counts(BASELINE, actual)
    assert result['status'] == FAILED and result['failures'] == 1
    assert 'public.customers (expected 1000' in result['summary']
    assert by_table(result)['public.customers']['status'] == 'missing'


def test_empty_table_that_vanished_is_missing_not_ok():
    # A baseline count of 0 must not be confused with "not in the baseline".
    actual = dict(BASELINE)
    del actual['public.empty']
    result = compare_row_counts(BASELINE, actual)
    assert result['status'] == FAILED
    assert by_table(result)['public.empty']['status'] == 'missing'


def test_several_failures_are_all_named():
    result = compare_row_counts(BASELINE, {'public.customers': 999})
    assert result['failures'] == 3
    assert result['summary'].startswith('3 table(s) differ')
    for name in BASELINE:
        assert name in result['summary']


def test_extra_tables_do_not_fail():
    actual = dict(BASELINE, **{'public.audit': 7})
    result = compare_row_counts(BASELINE, actual)
    assert result['status'] == PASSED and result['failures'] == 0
    assert by_table(result)['public.audit'] == dict(table='public.audit', expected=None, actual=7, status='extra')


def test_tables_restricts_the_comparison():
    actual = dict(BASELINE, **{'public.orders': 1, 'public.audit': 7})
    result = compare_row_counts(BASELINE, actual, tables=['public.customers'])
    assert result['status'] == PASSED
    assert [row['table'] for row in result['tables']] == ['public.customers']
    failed = compare_row_counts(BASELINE, actual, tables=['public.orders', 'public.customers'])
    assert failed['status'] == FAILED
    assert [row['table'] for row in failed['tables']] == ['public.customers', 'public.orders']


def test_empty_tables_list_means_every_table():
    actual = dict(BASELINE, **{'public.orders': 1})
    assert compare_row_counts(BASELINE, actual, tables=[])['status'] == FAILED


def test_unknown_table_in_tables_raises():
    with pytest.raises(LifeboatError) as info:
        compare_row_counts(BASELINE, BASELINE, tables=['public.customers', 'orders'])
    assert 'orders' in info.value.msg and 'not in the baseline' in info.value.msg
    blamed = info.value.msg.split(';')[0]
    assert blamed == 'table(s) orders are not in the baseline'  # only the unknown one is blamed


def test_duplicate_tables_are_compared_once():
    result = compare_row_counts(BASELINE, dict(BASELINE, **{'public.orders': 0}),
                                tables=['public.orders', 'public.orders'])
    assert result['failures'] == 1
    assert [row['table'] for row in result['tables']] == ['public.orders']


def test_tolerance_parses_percent_and_rows_and_refuses_anything_else():
    from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import parse_tolerance
    assert parse_tolerance('5%') == ('percent', 5.0) and parse_tolerance(' 0.5 % ') == ('percent', 0.5)
    assert parse_tolerance('100') == ('rows', 100) and parse_tolerance(None) is None and parse_tolerance('') is None
    for bad in ('lots', '-5%', '5%%', '1e3'):
        with pytest.raises(LifeboatError, match='tolerance must be a percentage'):
            parse_tolerance(bad)


def test_a_count_within_the_tolerance_passes_and_says_so():
    actual = dict(BASELINE, **{'public.orders': 2900})
    assert compare_row_counts(BASELINE, actual, tolerance=('percent', 5.0))['status'] == PASSED
    result = compare_row_counts(BASELINE, actual, tolerance=('rows', 100))
    assert result['summary'] == '3 of 3 tables match (1 within the tolerance of 100 row(s))'
    assert by_table(result)['public.orders']['status'] == 'within_tolerance'
    assert compare_row_counts(BASELINE, actual, tolerance=('rows', 99))['status'] == FAILED
    # A missing table is never within a tolerance.
    missing = dict(BASELINE)
    del missing['public.empty']
    assert compare_row_counts(BASELINE, missing, tolerance=('percent', 100.0))['status'] == FAILED


def test_custom_check_value_is_the_last_column_of_the_single_row():
    from ansible_collections.lifeboat.db.plugins.module_utils.integrity.custom import evaluate
    check = {'name': 'bc004', 'value': 0}
    passed = evaluate(check, 'bc004: teams without leaders', ['check_name', 'count'], [('teams without leaders', 0)])
    assert passed['status'] == PASSED and passed['summary'] == 'expected value 0, found value 0'
    failed = evaluate(check, 'x', ['check_name', 'count'], [('teams without leaders', 2)])
    assert failed['status'] == FAILED and failed['sample'] == [{'check_name': 'teams without leaders', 'count': 2}]
    assert evaluate(check, 'x', ['n'], [(0,), (0,)])['summary'] == 'expected value 0, found 2 row(s)'
    assert evaluate({'name': 'y'}, 'y', ['id'], [])['status'] == PASSED


# Custom SQL checks: split like PostgreSQL does before anything runs (the server is in the
# integration tests, tests/integration/test_custom_checks_readonly.py).

def test_a_check_is_one_statement_whatever_its_quotes_and_comments_hold():
    for text in ("SELECT ';' AS a, $x$;$x$ AS b, \"c;\" FROM t -- ; comment\n",
                 "/* ; */ SELECT 'it''s; fine', E'\\';' ;", "WITH x AS (SELECT 1) SELECT * FROM x; ;"):
        assert normalize_checks([{'name': 'q', 'sql': text}])[0]['sql'] == text


def test_several_statements_or_transaction_control_are_refused_in_one_line():
    cases = {"COMMIT; DELETE FROM t; SELECT 1": "holds 3 statements",
             "SET TRANSACTION READ WRITE; DELETE FROM t": "holds 2 statements",
             "SELECT 1; /* ; */ SELECT 2": "holds 2 statements",
             "COMMIT": "controls the transaction", "end": "controls the transaction",
             "set statement_timeout = 0": "controls the transaction or the session",
             "/* lead */ RESET ALL": "controls", "START TRANSACTION READ WRITE": "controls",
             "PREPARE TRANSACTION 'x'": "controls", "COPY t FROM STDIN;\n1\n\\.\n": "controls"}
    for text, fragment in cases.items():
        with pytest.raises(LifeboatError) as raised:
            normalize_checks([{'name': 'evil', 'sql': text}])
        assert fragment in raised.value.msg and "\n" not in raised.value.msg, (text, raised.value.msg)
