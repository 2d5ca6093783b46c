"""restore mode=tables: chosen tables back into the live database, whole and in one transaction.

Seed 002 restores a table with `pg_restore --table`, which brings back its columns and rows but not
its indexes, constraints, triggers or sequence value; every test here compares those too.
"""
import json

import psycopg
import pytest

from conftest import assert_one_line, backup_sets

S = "lifeboat_sample"


def digest(server, db, table):
    """Row count and a checksum of every row, in a stable order."""
    return tuple(server.sql(db, f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                                f"FROM {table} t")[0])


def definition(server, db, table):
    """What `pg_restore --table` alone leaves out: indexes, constraints (from and to the table),
    triggers (and whether they are enabled), the comment."""
    return {
        "indexes": server.sql(db, "SELECT indexname, indexdef FROM pg_indexes "
                                  "WHERE schemaname || '.' || tablename = %s ORDER BY 1", (table,)),
        "constraints": server.sql(db, "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid), "
                                      "convalidated FROM pg_constraint "
                                      "WHERE conrelid = %s::regclass OR confrelid = %s::regclass ORDER BY 1, 2",
                                  (table, table)),
        "triggers": server.sql(db, "SELECT tgname, pg_get_triggerdef(oid), tgenabled FROM pg_trigger "
                                   "WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY 1", (table,)),
        "comment": server.sql(db, "SELECT obj_description(%s::regclass, 'pg_class')", (table,)),
    }


def sequence(server, db, table, column="id"):
    """The value of the sequence behind a serial or identity column."""
    name = server.sql(db, "SELECT pg_get_serial_sequence(%s, %s)", (table, column))[0][0]
    return server.sql(db, f"SELECT last_value, is_called FROM {name}")[0]


def missing(server, db, table):
    return server.sql(db, "SELECT to_regclass(%s)", (table,))[0][0] is None


def restore_tables(ansible, db, tables, **extra):
    return ansible.module("restore", db=db, repository=str(ansible.repository), mode="tables", tables=tables, **extra)


REFUSE_INSERTS = f"""
CREATE FUNCTION {S}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'insert refused'; END$$;
CREATE TRIGGER orders_guard BEFORE INSERT ON {S}.orders FOR EACH ROW EXECUTE FUNCTION {S}.refuse();
COMMENT ON TABLE {S}.orders IS 'one row per order';
CREATE TABLE {S}.tickets (id serial PRIMARY KEY, customer_id bigint REFERENCES {S}.customers(id),
                          subject text NOT NULL DEFAULT 'none');
CREATE INDEX tickets_subject_idx ON {S}.tickets (subject);
INSERT INTO {S}.tickets (customer_id, subject) SELECT i, 'subject ' || i FROM generate_series(1, 50) i;
"""


def test_dropped_tables_come_back_with_indexes_constraints_triggers_and_sequences(server, ansible, sample_db):
    # orders: identity column, a trigger that refuses every insert (so it must be off during the
    # load and on afterwards), a comment, and order_items' foreign key pointing at it, which
    # DROP ... CASCADE removes. tickets: a serial column (DEFAULT nextval + OWNED BY).
    server.sql(sample_db, REFUSE_INSERTS)
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    before = {t: (definition(server, sample_db, t), digest(server, sample_db, t), sequence(server, sample_db, t))
              for t in (f"{S}.orders", f"{S}.tickets")}
    server.sql(sample_db, f"DROP TABLE {S}.orders, {S}.tickets CASCADE")

    result = restore_tables(ansible, sample_db, [f"{S}.orders", f"{S}.tickets"])
    assert not result["failed"], result.get("msg")
    assert result["changed"] is True and result["safety_backup_id"] is None, "nothing existed, nothing to save"
    assert result["tables"] == [{"name": f"{S}.orders", "action": "recreated", "rows": 600},
                                {"name": f"{S}.tickets", "action": "recreated", "rows": 50}]
    after = {t: (definition(server, sample_db, t), digest(server, sample_db, t), sequence(server, sample_db, t))
             for t in before}
    assert after == before
    assert any(c[0] == "order_items_order_id_fkey" for c in after[f"{S}.orders"][0]["constraints"])
    assert server.sql(sample_db, f"INSERT INTO {S}.tickets (subject) VALUES ('new') RETURNING id") == [(51,)]
    with pytest.raises(psycopg.errors.RaiseException, match="insert refused"):
        server.sql(sample_db, f"INSERT INTO {S}.orders (customer_id, status, ordered_at) VALUES (1, 'new', now())")


def test_existing_table_gets_the_backup_rows_and_keeps_its_dependents(server, ansible, sample_db):
    server.sql(sample_db, f"CREATE VIEW {S}.order_totals AS SELECT customer_id, sum(total) AS total "
                          f"FROM {S}.orders GROUP BY customer_id")
    ansible.module("dump", db=sample_db, repository=str(ansible.repository), format="directory")
    backup_rows, backup_sequence = digest(server, sample_db, f"{S}.orders"), sequence(server, sample_db, f"{S}.orders")
    # Live changes since the backup; deleting orders cascades to their items.
    server.sql(sample_db, f"UPDATE {S}.orders SET status = 'cancelled' WHERE id <= 100; "
                          f"DELETE FROM {S}.orders WHERE id > 550; "
                          f"INSERT INTO {S}.orders (customer_id, status, ordered_at) VALUES (1, 'new', now())")
    # A trigger added since (the live definition): it must not fire during the load, and stays.
    server.sql(sample_db, REFUSE_INSERTS.split("COMMENT")[0])
    items = digest(server, sample_db, f"{S}.order_items")
    oids = server.sql(sample_db, "SELECT oid FROM pg_class WHERE relname IN ('order_totals', 'orders') "
                                 "UNION ALL SELECT oid FROM pg_constraint WHERE conname = 'order_items_order_id_fkey'")

    result = restore_tables(ansible, sample_db, [f"{S}.orders"])
    assert not result["failed"], result.get("msg")
    assert result["tables"] == [{"name": f"{S}.orders", "action": "replaced", "rows": 600}]
    assert digest(server, sample_db, f"{S}.orders") == backup_rows
    assert sequence(server, sample_db, f"{S}.orders") == backup_sequence
    # Same view, same table, same foreign key (nothing dropped and recreated), and the DELETE of
    # the old rows did not cascade into order_items: triggers were off.
    assert server.sql(sample_db, "SELECT oid FROM pg_class WHERE relname IN ('order_totals', 'orders') UNION ALL "
                                 "SELECT oid FROM pg_constraint WHERE conname = 'order_items_order_id_fkey'") == oids
    assert digest(server, sample_db, f"{S}.order_items") == items
    assert server.count(sample_db, f"{S}.order_totals") > 0
    with pytest.raises(psycopg.errors.RaiseException, match="insert refused"):
        server.sql(sample_db, f"INSERT INTO {S}.orders (customer_id, status, ordered_at) VALUES (1, 'new', now())")
    safety = json.loads((ansible.repository / sample_db / result["safety_backup_id"] / "manifest.json").read_text())
    assert safety["kind"] == "pre-restore"
    assert safety["row_counts"] == {f"{S}.orders": 551}, "the live rows were saved first"


PARTITIONED = f"""
CREATE TABLE {S}.readings (id bigint GENERATED BY DEFAULT AS IDENTITY, taken_on date NOT NULL,
                           customer_id bigint REFERENCES {S}.customers(id), value int CHECK (value >= 0),
                           PRIMARY KEY (id, taken_on)) PARTITION BY RANGE (taken_on);
CREATE TABLE {S}.readings_2024 PARTITION OF {S}.readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE {S}.readings_2025 PARTITION OF {S}.readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE INDEX readings_value_idx ON {S}.readings (value);
INSERT INTO {S}.readings (taken_on, customer_id, value)
SELECT date '2024-01-01' + i, 1 + i % 200, i FROM generate_series(0, 699) i;
"""


def tree(server, db):
    """The partitions and the partition indexes under readings, and whether those are valid."""
    return server.sql(db, f"""
        SELECT t.relid::regclass::text, t.parentrelid::regclass::text, coalesce(i.indisvalid, true)
          FROM (SELECT * FROM pg_partition_tree('{S}.readings')
                UNION ALL SELECT * FROM pg_partition_tree('{S}.readings_pkey')
                UNION ALL SELECT * FROM pg_partition_tree('{S}.readings_value_idx')) t
          LEFT JOIN pg_index i ON i.indexrelid = t.relid ORDER BY 1""")


def test_partitioned_table_with_its_partitions_and_one_partition_alone(server, ansible, sample_db):
    server.sql(sample_db, PARTITIONED)
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    shape = tree(server, sample_db)
    rows = {p: digest(server, sample_db, f"{S}.{p}") for p in ("readings_2024", "readings_2025")}
    server.sql(sample_db, f"UPDATE {S}.readings SET value = value + 1")

    # One partition alone, dropped: recreated and attached to the live parent, whose indexes adopt
    # its own (no duplicates); the other partition is not touched.
    server.sql(sample_db, f"DROP TABLE {S}.readings_2024")
    result = restore_tables(ansible, sample_db, [f"{S}.readings_2024"])
    assert not result["failed"], result.get("msg")
    assert result["tables"] == [{"name": f"{S}.readings_2024", "action": "recreated", "rows": 366}]
    assert tree(server, sample_db) == shape
    assert digest(server, sample_db, f"{S}.readings_2024") == rows["readings_2024"]
    assert digest(server, sample_db, f"{S}.readings_2025") != rows["readings_2025"]

    # The parent: every partition's rows replaced, one that was dropped recreated on the way.
    server.sql(sample_db, f"DROP TABLE {S}.readings_2025; UPDATE {S}.readings SET value = value + 1")
    result = restore_tables(ansible, sample_db, [f"{S}.readings"])
    assert not result["failed"], result.get("msg")
    assert result["tables"] == [{"name": f"{S}.readings", "action": "replaced", "rows": 700},
                                {"name": f"{S}.readings_2024", "action": "replaced", "rows": 366},
                                {"name": f"{S}.readings_2025", "action": "recreated", "rows": 334}]
    assert tree(server, sample_db) == shape
    assert {p: digest(server, sample_db, f"{S}.{p}") for p in rows} == rows

    # The parent dropped with all its partitions: all of it comes back, identity value included.
    server.sql(sample_db, f"DROP TABLE {S}.readings")
    result = restore_tables(ansible, sample_db, [f"{S}.readings"])
    assert not result["failed"], result.get("msg")
    assert [t["action"] for t in result["tables"]] == ["recreated"] * 3
    assert tree(server, sample_db) == shape
    assert {p: digest(server, sample_db, f"{S}.{p}") for p in rows} == rows
    assert server.sql(sample_db, f"INSERT INTO {S}.readings (taken_on, value) VALUES ('2025-06-01', 1) "
                                 f"RETURNING id") == [(701,)]


def test_orphans_roll_everything_back(server, ansible, sample_db):
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    # After the backup: a new customer with an order. Restoring customers would orphan that order.
    server.sql(sample_db, f"INSERT INTO {S}.customers (id, email, full_name, country, created_at) "
                          f"VALUES (9999, 'late@example.com', 'Late', 'JP', now()); "
                          f"INSERT INTO {S}.orders (customer_id, status, ordered_at) VALUES (9999, 'new', now()); "
                          f"UPDATE {S}.products SET name = 'renamed'")
    before = {t: digest(server, sample_db, f"{S}.{t}") for t in ("customers", "products", "orders")}
    result = restore_tables(ansible, sample_db, [f"{S}.products", f"{S}.customers"])
    assert_one_line(result, "foreign key orders_customer_id_fkey on lifeboat_sample.orders has 1 row(s) without a "
                            "match in lifeboat_sample.customers", "nothing was changed")
    assert {t: digest(server, sample_db, f"{S}.{t}") for t in before} == before
    assert result["safety_backup_id"] in backup_sets(ansible.repository / sample_db)


def test_a_table_failing_half_way_leaves_every_table_as_it_was(server, ansible, sample_db):
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    server.sql(sample_db, f"UPDATE {S}.orders SET status = 'cancelled'; DROP TABLE {S}.events; "
                          # takes the name of the events index the restore has to create
                          f"CREATE TABLE {S}.events_occurred_at_idx (x int)")
    orders = digest(server, sample_db, f"{S}.orders")
    result = restore_tables(ansible, sample_db, [f"{S}.orders", f"{S}.events"])
    assert_one_line(result, "events_occurred_at_idx", "already exists", "nothing was changed")
    assert digest(server, sample_db, f"{S}.orders") == orders, "the rows deleted before the error are back"
    assert missing(server, sample_db, f"{S}.events")


def test_bad_input_is_refused_in_one_line(server, ansible, sample_db):
    repo = str(ansible.repository)
    backup = ansible.module("dump", db=sample_db, repository=repo)
    cases = {
        "unknown": dict(mode="tables", tables=[f"{S}.order"]),
        "no schema": dict(mode="tables", tables=["orders"]),
        "other mode": dict(mode="swap", tables=[f"{S}.orders"]),
        "no tables": dict(mode="tables"),
    }
    tasks = [{"name": name, "lifeboat.db.restore": dict(db=sample_db, repository=repo, **args), "ignore_errors": True}
             for name, args in cases.items()]
    tasks.append({"name": "plain", "lifeboat.db.dump": dict(db=sample_db, repository=repo, format="plain")})
    tasks.append({"name": "from plain", "lifeboat.db.restore": dict(db=sample_db, repository=repo, mode="tables",
                                                                    tables=[f"{S}.orders"]), "ignore_errors": True})
    play = ansible.play(tasks)
    assert_one_line(play.result("unknown"), "lifeboat_sample.order are not in backup " + backup["backup_id"],
                    "lifeboat_sample.orders")
    assert_one_line(play.result("no schema"), "'orders' is not schema.table")
    assert_one_line(play.result("other mode"), "tables is only used with mode=tables")
    assert_one_line(play.result("no tables"), "mode=tables needs tables")
    assert_one_line(play.result("from plain"), "is a plain dump; mode=tables needs a custom or directory archive")
    assert server.count(sample_db, f"{S}.orders") == 600


def test_check_mode_reports_and_changes_nothing(server, ansible, sample_db):
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    server.sql(sample_db, f"DROP TABLE {S}.events; UPDATE {S}.orders SET status = 'cancelled'")
    orders = digest(server, sample_db, f"{S}.orders")
    result = restore_tables(ansible, sample_db, [f"{S}.orders", f"{S}.events"], check=True)
    assert not result["failed"] and result["changed"] is True, result
    assert result["tables"] == [{"name": f"{S}.orders", "action": "replaced", "rows": 600},
                                {"name": f"{S}.events", "action": "recreated", "rows": 1000}]
    assert any(a.startswith("Would take a safety backup") for a in result["actions"])
    assert any(a.startswith("Would recreate table lifeboat_sample.events") for a in result["actions"])
    assert digest(server, sample_db, f"{S}.orders") == orders and missing(server, sample_db, f"{S}.events")
    assert len(backup_sets(ansible.repository / sample_db)) == 1, "no safety backup either"


def test_waits_for_no_one_while_a_swap_holds_the_database(server, ansible, sample_db):
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    with server.connect() as swap:
        swap.execute("SELECT pg_advisory_lock(hashtext('lifeboat restore ' || %s))", (sample_db,))
        server.sql(sample_db, f"UPDATE {S}.orders SET status = 'cancelled'")
        result = restore_tables(ansible, sample_db, [f"{S}.orders"])
    assert_one_line(result, f"a restore or a backup of database '{sample_db}' is running")
    assert server.sql(sample_db, f"SELECT DISTINCT status FROM {S}.orders") == [("cancelled",)]
