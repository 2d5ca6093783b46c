# -*- coding: utf-8 -*-
"""The next value of a sequence and when it is behind its column, by its real increment and
direction (the server side is tests/integration/test_sequence_direction.py)."""
import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import edge_name, is_behind, next_value


@pytest.mark.parametrize('last_value, is_called, increment, expected', [
    (100, True, 1, 101),
    (100, False, 1, 100),      # setval(..., false) or never used: nextval returns last_value itself
    (100, True, 10, 110),
    (100, False, 10, 100),
    (1000, False, -1, 1000),
    (990, True, -1, 989),
    (-3, True, -1, -4),
    (-3, True, -5, -8),
    (9223372036854775000, True, 7, 9223372036854775007),  # Python ints: no overflow near bigint's top
])
def test_next_value_follows_the_increment_and_is_called(last_value, is_called, increment, expected):
    assert next_value(last_value, is_called, increment) == expected


def test_next_value_needs_the_increment():
    # No default of 1: every caller says which increment it read from pg_sequence.
    with pytest.raises(TypeError):
        next_value(100, True)  # pylint: disable=no-value-for-parameter


@pytest.mark.parametrize('upcoming, increment, edge, behind', [
    (110, 10, 105, False),   # INCREMENT 10 at 100: 110 is past a column up to 105 (1 would say 101: behind)
    (110, 10, 110, True),    # the next value is already in the column
    (101, 1, 100, False),
    (100, 1, 100, True),
    (1000, -1, 990, True),   # descending: the next value is not below the column's smallest
    (989, -1, 990, False),
    (990, -1, 990, True),
    (-4, -1, -3, False),     # descending below zero: -4 is past a column down to -3 (ascending rule: behind)
    (5, 1, None, False),     # an empty column is never in the way
    (5, -1, None, False),
])
def test_behind_is_judged_in_the_sequence_direction(upcoming, increment, edge, behind):
    assert is_behind(upcoming, increment, edge) is behind


def test_the_edge_is_the_largest_value_ascending_and_the_smallest_descending():
    assert edge_name(10) == ('max_value', 'max', 'largest')
    assert edge_name(-1) == ('min_value', 'min', 'smallest')


def test_a_sequence_behind_several_columns_moves_past_the_furthest():
    from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import furthest
    behind = [('"Shared"', 1, 500), ('"Shared"', 1, 300), ('down', -1, 990), ('down', -1, -7), ('other', 10, 110)]
    assert furthest(behind) == {'"Shared"': 500, 'down': -7, 'other': 110}
    assert list(furthest(behind)) == ['"Shared"', 'down', 'other']  # the order they were found in
    assert furthest([]) == {}
