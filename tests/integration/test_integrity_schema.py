"""lifeboat.db.integrity compares schemas: with another database (parity_with) and with a baseline."""
import json
import re

import pytest

from conftest import assert_one_line


@pytest.fixture
def copy_db(server, sample_db):
    """A copy of sample_db made from it as a template: the same schema, dropped after the test."""
    other = sample_db[:40] + "_copy"
    server.drop_db(other)
    server.sql("postgres", f'CREATE DATABASE "{other}" TEMPLATE "{sample_db}"')
    yield other
    server.drop_db(other)


def parity_with(server, db):
    options = server.connection_options()
    return {"db": db, "host": options["login_host"], "port": options["port"], "user": options["login_user"],
            "password": options["login_password"]}


def check_named(result, name):
    matches = [check for check in result["checks"] if check["name"] == name]
    assert len(matches) == 1, [check["name"] for check in result["checks"]]
    return matches[0]


def test_parity_with_a_copy_passes_also_in_check_mode(server, ansible, sample_db, copy_db):
    for check_mode in (False, True):
        result = ansible.module("integrity", check=check_mode, db=sample_db, parity_with=parity_with(server, copy_db))
        assert not result["failed"], result.get("msg")
        parity = check_named(result, "schema_parity")
        assert parity["status"] == "passed" and parity["diff"] == []
        assert "schema_parity" not in result["failed_checks"] and result["changed"] is False


def test_parity_lists_a_dropped_column_a_changed_type_and_an_extra_index(server, ansible, sample_db, copy_db):
    server.sql(copy_db, "ALTER TABLE lifeboat_sample.customers DROP COLUMN country;"
                        "ALTER TABLE lifeboat_sample.events ALTER COLUMN kind TYPE varchar(20);"
                        "CREATE INDEX customers_full_name_idx ON lifeboat_sample.customers (full_name)")
    result = ansible.module("integrity", db=sample_db, parity_with=parity_with(server, copy_db))
    parity = check_named(result, "schema_parity")
    assert parity["status"] == "failed" and "schema_parity" in result["failed_checks"]
    assert parity["diff"] == [
        f"only in {sample_db}: column lifeboat_sample.customers.country character(2)",
        f"column lifeboat_sample.events.kind: type text in {sample_db}, character varying(20) in {copy_db}",
        f"only in {copy_db}: index lifeboat_sample.customers_full_name_idx",
    ]
    assert "\n" not in parity["summary"]
    assert_one_line(result, parity["diff"][0])


def test_parity_shows_a_constraint_that_is_not_valid_in_the_copy(server, ansible, sample_db, copy_db):
    server.sql(copy_db, "ALTER TABLE lifeboat_sample.orders DROP CONSTRAINT orders_customer_id_fkey;"
                        "ALTER TABLE lifeboat_sample.orders ADD CONSTRAINT orders_customer_id_fkey "
                        "FOREIGN KEY (customer_id) REFERENCES lifeboat_sample.customers(id) NOT VALID")
    result = ansible.module("integrity", db=sample_db, parity_with=parity_with(server, copy_db))
    assert result["failed"] and "schema_parity" in result["failed_checks"]
    definition = "FOREIGN KEY (customer_id) REFERENCES lifeboat_sample.customers(id)"
    assert check_named(result, "schema_parity")["diff"] == [
        f"constraint lifeboat_sample.orders.orders_customer_id_fkey: {definition} in {sample_db}, "
        f"{definition} NOT VALID in {copy_db}"]


def test_baseline_records_the_schema_and_its_fingerprint(ansible, sample_db, tmp_path):
    baseline = tmp_path / "b.json"
    ansible.module("integrity", db=sample_db, action="capture", baseline=str(baseline))
    captured = json.loads(baseline.read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", captured["schema_fingerprint"])
    assert captured["schema"]["tables"]["lifeboat_sample.customers"]["columns"]["email"]["type"] == "text"


def test_baseline_schema_check_fails_with_a_diff_once_the_schema_changes(server, ansible, sample_db, tmp_path):
    baseline = tmp_path / "b.json"
    ansible.module("integrity", db=sample_db, action="capture", baseline=str(baseline))
    unchanged = ansible.module("integrity", db=sample_db, baseline=str(baseline))
    schema = [check for check in unchanged["checks"] if check["kind"] == "schema"]
    assert len(schema) == 1 and schema[0]["status"] == "passed" and not unchanged["failed"]

    server.sql(sample_db, "ALTER TABLE lifeboat_sample.orders ADD COLUMN note text;"
                          "ALTER TABLE lifeboat_sample.order_items DROP CONSTRAINT order_items_quantity_check")
    changed = ansible.module("integrity", db=sample_db, baseline=str(baseline))
    schema = [check for check in changed["checks"] if check["kind"] == "schema"][0]
    assert schema["status"] == "failed" and schema["name"] in changed["failed_checks"]
    assert len(schema["diff"]) == 2, schema["diff"]
    assert re.fullmatch(r"only in .+: constraint lifeboat_sample\.order_items\.order_items_quantity_check \(check\)",
                        schema["diff"][0])
    assert re.fullmatch(r"only in .+: column lifeboat_sample\.orders\.note text", schema["diff"][1])
    assert_one_line(changed)
