# -*- coding: utf-8 -*-
"""Partition bounds read back from marks and manifests: typed values of the key, or nothing.

A table comment is written by the table's owner and a manifest by anyone with the repository, so
what they say a partition's bounds are is parsed as values of the key's type and reaches SQL only
as literals (partition.Bounds). The integration tests (test_partition_marks.py) run the hostile
cases through ansible-playbook; these cover the parser's edges.
"""
import datetime
import json

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.partition.bounds import Bounds, RetiredMark, parse_value

TSTZ, TS, DATE = 'timestamp with time zone', 'timestamp without time zone', 'date'
UTC = datetime.timezone.utc


@pytest.mark.parametrize('key_type, text, lower, upper', [
    (TSTZ, "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')",
     datetime.datetime(2024, 1, 1, tzinfo=UTC), datetime.datetime(2025, 1, 1, tzinfo=UTC)),
    (TSTZ, "FOR VALUES FROM ('2024-01-01 00:00:00+05:30') TO ('2024-02-01 00:00:00-03')",
     datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))),
     datetime.datetime(2024, 2, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=-3)))),
    (TS, "FOR VALUES FROM ('2024-01-01 00:00:00') TO ('2024-01-01 12:00:00.5')",
     datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 1, 12, 0, 0, 500000)),
    (DATE, "FOR VALUES FROM ('2024-01-01') TO ('2024-04-01')", datetime.date(2024, 1, 1), datetime.date(2024, 4, 1)),
    ('bigint', "FOR VALUES FROM (-100) TO ('0')", -100, 0),
    ('integer', "FOR VALUES FROM (0) TO (1000)", 0, 1000),
])
def test_plain_bound_text_is_read_as_values_and_written_back_as_literals(key_type, text, lower, upper):
    bounds = Bounds.from_text(key_type, text)
    assert (bounds.lower, bounds.upper) == (lower, upper)
    again = Bounds.from_record(key_type, json.loads(json.dumps(bounds.record())))
    assert (again.lower, again.upper) == (lower, upper)
    assert again.text().startswith('FOR VALUES FROM (') and ';' not in again.text()


INJECTION = "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01'); ALTER ROLE x SUPERUSER; SELECT ('x')"
HOSTILE_TEXT = [
    INJECTION,
    "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') -- ')",
    "FOR VALUES FROM ('2024-01-01'::date) TO ('2025-01-01')",
    "FOR VALUES FROM (now()) TO ('2025-01-01')",
    "FOR VALUES FROM (MINVALUE) TO ('2025-01-01')",
    "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')\n",
    "FOR VALUES FROM ('2024-01-01'') TO (''2025-01-01')",
    "FOR VALUES IN ('2024-01-01')",
    "FOR VALUES FROM ('2025-01-01') TO ('2024-01-01')",  # empty range
    "FOR VALUES FROM ('2024-13-01') TO ('2025-01-01')",  # no such month
    "FOR VALUES FROM ('infinity') TO ('2025-01-01')",
    None, 42, ['FOR VALUES'], '',
]


@pytest.mark.parametrize('text', HOSTILE_TEXT)
def test_bound_text_that_is_not_plain_values_is_refused(text):
    with pytest.raises(ValueError):
        Bounds.from_text(DATE, text)


@pytest.mark.parametrize('key_type, value', [
    (TSTZ, '2024-01-01 00:00:00'),  # no offset: which instant?
    (TSTZ, "2024-01-01 00:00:00+00'); DROP TABLE x; --"),
    (TSTZ, '2024-01-01 00:00:00+24'),  # an offset of a day
    (TS, '2024-01-01 00:00:00+00'),
    (TS, '2024-01-01 25:00:00'),
    (DATE, '2024-02-30'),
    (DATE, '24-01-01'),
    (DATE, 20240101),
    ('smallint', 32768), ('integer', 2 ** 31), ('bigint', 2 ** 63), ('bigint', True), ('bigint', 1.5),
    ('bigint', '1e3'), ('bigint', '0 OR 1=1'), ('bigint', None),
    ('text', 'a'),  # not a key type lifeboat keeps
])
def test_a_stored_value_that_is_not_exactly_one_of_the_key_type_is_refused(key_type, value):
    assert parse_value(key_type, value) is None
    with pytest.raises(ValueError):
        Bounds.from_values(key_type, value, value)


def test_a_record_of_another_key_type_is_refused_and_typed_values_win_over_the_text():
    with pytest.raises(ValueError, match='bigint'):
        Bounds.from_record(DATE, dict(key_type='bigint', lower=0, upper=10))
    # lower/upper present: the bound text is never read, so it cannot smuggle anything in.
    bounds = Bounds.from_record(DATE, dict(key_type=DATE, lower='2024-01-01', upper='2025-01-01', bound=INJECTION))
    assert bounds.text() == "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')"
    with pytest.raises(ValueError, match='upper bound'):
        Bounds.from_record(DATE, dict(lower='2024-01-01', bound="FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')"))


def test_a_mark_keeps_its_identity_and_one_that_claims_an_identity_it_does_not_give_matches_no_table():
    bounds = Bounds.from_text(DATE, "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
    mark = RetiredMark('public.t', 'public', 't_2024', 16400, bounds.record(), '2028-02-01T00:00:00Z', 'own comment')
    read = RetiredMark.parse(mark.text())
    assert (read.parent, read.schema, read.name, read.oid, read.comment) == ('public.t', 'public', 't_2024', 16400,
                                                                            'own comment')
    assert Bounds.from_record(DATE, read.bounds).text() == bounds.text()
    forged = json.loads(mark.text()[len('lifeboat-retired '):])
    forged.update(oid='16400 OR true', comment={'not': 'text'}, backup_id=['x'])
    read = RetiredMark.parse('lifeboat-retired ' + json.dumps(forged))
    assert read.oid == -1 and read.comment is None and read.backup_id is None
    legacy = RetiredMark.parse('lifeboat-retired ' + json.dumps(dict(parent='public.t', bound=INJECTION)))
    assert legacy.oid is None  # no identity recorded: the owner, columns and bounds checks still apply
    for text in ('lifeboat-retired [1]', 'lifeboat-retired {"parent": 1}', 'lifeboat-retired {', 'other'):
        assert RetiredMark.parse(text) is None
