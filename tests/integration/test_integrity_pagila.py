"""lifeboat.db.integrity on pagila (tests/fixtures/pagila) with our generated data.sql.

pagila-schema.sql creates the `vector` extension and uses PostgreSQL 18 features (uuidv7(),
virtual generated columns): these tests run on the embedded server and skip elsewhere.
pagila's payment partitions 2022-01..2022-06 carry their own foreign keys while the partitioned
parent has none, so payment's references are also declared as relationships.
"""
import json

from conftest import the_check, with_status

MIN_ROWS = {"public.payment": 1500, "public.rental": 1500, "public.customer": 300, "public.film": 200,
            "public.film_embedding": 200, "public.inventory": 600}

FOREIGN_KEYS_SQL = """
SELECT 'foreign_key ' || n.nspname || '.' || c.relname || '.' || con.conname
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE con.contype = 'f' AND con.conparentid = 0
"""


def options(**overrides):
    opts = dict(
        relationships=[
            dict(name="payment_rental", table="public.payment", columns="rental_id", references="public.rental",
                 referenced_columns="rental_id"),
            # Unnamed: its check is called `relationship <table>(<cols>) -> <references>(<cols>)`.
            dict(table="public.payment", columns=["customer_id"], references="public.customer",
                 referenced_columns=["customer_id"]),
        ],
        checks=[
            dict(name="payment_after_rental",
                 sql="SELECT p.payment_id, p.payment_date, r.rental_date FROM public.payment p "
                     "JOIN public.rental r USING (rental_id) WHERE p.payment_date < r.rental_date"),
            dict(name="rental_by_category", sql="SELECT count(*) FROM public.rental_by_category", value=16),
        ],
        min_rows=dict(MIN_ROWS),
        required_tables=["public.payment", "public.rental", "public.film_embedding", "store", "staff"],
        required_columns={"public.payment": ["payment_id", "customer_id", "staff_id", "rental_id", "amount",
                                             "payment_date"]},
        sequences=[dict(name="public.payment_payment_id_seq", next_at_least=1501), "public.rental_rental_id_seq"],
    )
    opts.update(overrides)
    return opts


def run(ansible, db, **overrides):
    return ansible.module("integrity", db=db, **options(**overrides))


def test_pagila_with_its_data_passes_every_check(server, ansible, pagila):
    server.sql(pagila, "CREATE EXTENSION IF NOT EXISTS amcheck")
    result = run(ansible, pagila)
    assert not result["failed"], result.get("msg")
    assert result["passed"] is True and result["failed_checks"] == [] and result["changed"] is False
    assert with_status(result, "failed") == [] and with_status(result, "error") == []
    assert with_status(result, "skipped") == []
    names = [check["name"] for check in result["checks"]]
    assert len(names) == len(set(names))

    # One check per foreign key of the catalog, the leaf partitions' own ones included.
    foreign_keys = sorted(row[0] for row in server.sql(pagila, FOREIGN_KEYS_SQL))
    assert len(foreign_keys) == 37 and "foreign_key public.payment_p2022_03.payment_p2022_03_rental_id_fkey" in foreign_keys
    assert sorted(name for name in names if name.startswith("foreign_key ")) == foreign_keys

    for name in ("sequences", "invalid_indexes", "not_valid_constraints", "amcheck", "required_tables",
                 "required_columns", "relationship payment_rental", "payment_after_rental", "rental_by_category",
                 "sequence public.payment_payment_id_seq", "sequence public.rental_rental_id_seq"):
        assert the_check(result, name)["status"] == "passed"
    assert len([name for name in names if name.startswith("relationship ")]) == 2
    for table in MIN_ROWS:
        assert the_check(result, "min_rows " + table)["status"] == "passed"
    sequence = the_check(result, "sequence public.payment_payment_id_seq")
    assert (sequence["last_value"], sequence["is_called"], sequence["next_value"]) == (1500, True, 1501)


def test_orphan_payment_in_a_partition_with_its_own_foreign_key(server, ansible, pagila):
    """payment_p2022_03 has its own foreign key to rental: an orphan slipped in with the FK
    triggers off (replica role) is caught by that constraint's check and by the relationship
    declared on the partitioned parent."""
    server.sql(pagila, "SET session_replication_role = replica; "
                       "INSERT INTO public.payment (customer_id, staff_id, rental_id, amount, payment_date) "
                       "VALUES (1, 1, 99999, 1.99, '2022-03-15 12:00:00+00')")
    result = run(ansible, pagila)
    fk = "foreign_key public.payment_p2022_03.payment_p2022_03_rental_id_fkey"
    assert result["failed"] and result["passed"] is False
    assert with_status(result, "failed") == sorted([fk, "relationship payment_rental"])
    assert with_status(result, "error") == []
    for name in (fk, "relationship payment_rental"):
        assert name in result["msg"] and "\n" not in result["msg"]
        assert any(row.get("rental_id") == 99999 for row in the_check(result, name)["sample"]), \
            json.dumps(the_check(result, name)["sample"])
    assert the_check(result, fk)["orphans"] == 1


def test_a_sequence_fed_through_its_default_alone_is_found_behind(server, ansible, pagila):
    """pagila's sequences are not OWNED BY their column: only the column's DEFAULT nextval()
    ties them, and the sequences check follows that tie too."""
    assert server.sql(pagila, "SELECT pg_get_serial_sequence('public.actor', 'actor_id')") == [(None,)]
    server.sql(pagila, "SELECT setval('public.actor_actor_id_seq', 3)")
    result = run(ansible, pagila, fail_on="never")
    sequences = the_check(result, "sequences")
    assert sequences["status"] == "failed" and sequences["behind"] == 1
    assert sequences["sample"][0]["sequence"] == "public.actor_actor_id_seq"
    assert sequences["sample"][0]["column"] == "public.actor.actor_id"
