# -*- coding: utf-8 -*-
"""Schema descriptions compared: diff() lines and fingerprint(), on hand-made descriptions."""
import copy
import json

from ansible_collections.lifeboat.db.plugins.module_utils.pg.schema import diff, fingerprint

USERS_INDEX = 'CREATE INDEX d_users_idx ON public.d_users USING btree (name)'
ORDERS_FKEY = 'FOREIGN KEY (user_id) REFERENCES public.d_users(id)'


def column(type_name, not_null=False, default=None, identity=None, generated=None):
    return dict(type=type_name, not_null=not_null, default=default, identity=identity, generated=generated)


def table(columns, constraints=None, kind='table', partition_of=None, partition_bound=None, partition_key=None):
    return dict(kind=kind, partition_of=partition_of, partition_bound=partition_bound, partition_key=partition_key,
                columns=columns, constraints=constraints or {}, triggers={})


def legacy():
    return dict(
        schemas=['public'],
        extensions=['plpgsql'],
        tables={
            'public.d_users': table(
                {'id': column('bigint', True, identity='always'), 'name': column('character varying(100)', True)},
                {'d_users_pkey': dict(type='primary key', definition='PRIMARY KEY (id)', validated=True)}),
            'public.d_orders': table(
                {'id': column('bigint', True), 'user_id': column('bigint'),
                 'placed': column('date', True, default='CURRENT_DATE')},
                {'d_orders_user_id_fkey': dict(type='foreign key', definition=ORDERS_FKEY, validated=True)},
                kind='partitioned table', partition_key='RANGE (placed)'),
            'public.d_orders_2024': table(
                {'id': column('bigint', True), 'user_id': column('bigint'),
                 'placed': column('date', True, default='CURRENT_DATE')},
                partition_of='public.d_orders', partition_bound="FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')"),
            'public.d_old': table({'id': column('integer')}),
        },
        indexes={'public.d_users_idx': dict(table='public.d_users', definition=USERS_INDEX)},
        sequences={'public.d_users_id_seq': dict(type='bigint', start=1, increment=1, minimum=1,
                                                  maximum=9223372036854775807, cache=1, cycle=False,
                                                  owned_by='public.d_users.id')},
        views={'public.v_names': dict(kind='view', definition=' SELECT d_users.name\n   FROM public.d_users;')},
        functions={'public.touch(integer)': dict(kind='function', returns='integer', language='sql',
                                                 body_md5='0123456789abcdef0123456789abcdef')},
    )


def modernized(change):
    """A copy of legacy() with change(description) applied."""
    description = copy.deepcopy(legacy())
    change(description)
    return description


def compare(change):
    return diff(legacy(), modernized(change), 'legacy', 'modernized')


def test_equal_descriptions_have_no_difference_and_one_fingerprint():
    assert diff(legacy(), legacy(), 'legacy', 'modernized') == []
    assert fingerprint(legacy()) == fingerprint(legacy())


def test_fingerprint_ignores_key_order_and_survives_a_json_round_trip():
    described = legacy()
    reordered = json.loads(json.dumps(described, sort_keys=True), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert list(reordered) != list(described)
    assert fingerprint(reordered) == fingerprint(described)
    assert len(fingerprint(described)) == 64 and int(fingerprint(described), 16) >= 0


def test_fingerprint_changes_with_the_schema():
    changed = modernized(lambda d: d['tables']['public.d_users']['columns']['name'].update(not_null=False))
    assert fingerprint(changed) != fingerprint(legacy())


def test_a_table_on_one_side_is_one_line_without_its_columns():
    assert compare(lambda d: d['tables'].pop('public.d_old')) == ['only in legacy: table public.d_old']
    lines = compare(lambda d: d['tables'].update({'public.d_new': table({'id': column('integer')})}))
    assert lines == ['only in modernized: table public.d_new']


def test_columns_added_dropped_and_changed():
    def change(d):
        users = d['tables']['public.d_users']['columns']
        users['email'] = column('text')
        users['name'] = column('text')
        d['tables']['public.d_orders']['columns']['placed']['default'] = None
        del d['tables']['public.d_old']['columns']['id']
    assert compare(change) == [
        'only in legacy: column public.d_old.id integer',
        'column public.d_orders.placed: default CURRENT_DATE in legacy, none in modernized',
        'only in modernized: column public.d_users.email text',
        'column public.d_users.name: not null in legacy, nullable in modernized',
        'column public.d_users.name: type character varying(100) in legacy, text in modernized',
    ]


def test_identity_change_is_named():
    lines = compare(lambda d: d['tables']['public.d_users']['columns']['id'].update(identity='by default'))
    assert lines == ['column public.d_users.id: identity always in legacy, by default in modernized']


def test_constraints_dropped_and_not_valid():
    def change(d):
        d['tables']['public.d_users']['constraints'].clear()
        d['tables']['public.d_orders']['constraints']['d_orders_user_id_fkey'].update(
            definition=ORDERS_FKEY + ' NOT VALID', validated=False)
        d['tables']['public.d_old']['constraints']['d_old_id_check'] = dict(
            type='check', definition='CHECK ((id > 0)) NOT VALID', validated=False)
    assert compare(change) == [
        'only in modernized: constraint public.d_old.d_old_id_check (check, not valid)',
        'constraint public.d_orders.d_orders_user_id_fkey: %s in legacy, %s NOT VALID in modernized'
        % (ORDERS_FKEY, ORDERS_FKEY),
        'only in legacy: constraint public.d_users.d_users_pkey (primary key)',
    ]


def test_indexes_changed_and_added():
    def change(d):
        d['indexes']['public.d_users_idx']['definition'] = USERS_INDEX.replace('(name)', '(lower((name)::text))')
        d['indexes']['public.d_orders_user_idx'] = dict(
            table='public.d_orders', definition='CREATE INDEX d_orders_user_idx ON ONLY public.d_orders USING btree '
                                                '(user_id)')
    assert compare(change) == [
        'only in modernized: index public.d_orders_user_idx',
        'index public.d_users_idx: %s in legacy, %s in modernized'
        % (USERS_INDEX, 'CREATE INDEX d_users_idx ON public.d_users USING btree (lower((name)::text))'),
    ]


def test_a_partition_does_not_repeat_its_parents_column_difference():
    def change(d):
        for name in ('public.d_orders', 'public.d_orders_2024'):
            d['tables'][name]['columns']['note'] = column('text')
        d['tables']['public.d_orders_2024']['columns']['placed']['default'] = "'2024-01-01'::date"
    assert compare(change) == [
        'only in modernized: column public.d_orders.note text',
        "column public.d_orders_2024.placed: default CURRENT_DATE in legacy, '2024-01-01'::date in modernized",
    ]


def test_sequences_views_functions_schemas_and_extensions():
    def change(d):
        d['schemas'].append('audit')
        d['extensions'].append('pgcrypto')
        d['sequences']['public.d_users_id_seq'].update(increment=10, cycle=True)
        d['views']['public.v_names']['definition'] = ' SELECT d_users.name,\n    d_users.id\n   FROM public.d_users;'
        d['views']['public.mv_totals'] = dict(kind='materialized view', definition=' SELECT 1;')
        d['functions']['public.touch(integer)'].update(returns='bigint', body_md5='f' * 32)
    assert compare(change) == [
        'only in modernized: schema audit',
        'only in modernized: extension pgcrypto',
        'sequence public.d_users_id_seq: cycle no in legacy, yes in modernized',
        'sequence public.d_users_id_seq: increment 1 in legacy, 10 in modernized',
        'only in modernized: materialized view public.mv_totals',
        'view public.v_names: definition differs between legacy and modernized',
        'function public.touch(integer): body differs between legacy and modernized',
        'function public.touch(integer): returns integer in legacy, bigint in modernized',
    ]


def test_every_line_is_one_line_even_for_multiline_values():
    def change(d):
        d['tables']['public.d_old']['columns']['id']['default'] = "'a\nb'::text"
        d['tables']['public.d_old']['kind'] = 'partitioned table'
    lines = compare(change)
    assert lines == ['table public.d_old: table in legacy, partitioned table in modernized',
                     'column public.d_old.id: default differs between legacy and modernized']
    assert all('\n' not in line for line in diff(legacy(), {}, 'legacy', 'empty'))


def test_default_side_names():
    assert diff(legacy(), modernized(lambda d: d['tables'].pop('public.d_old'))) == ['only in left: table public.d_old']
