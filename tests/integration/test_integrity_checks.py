"""lifeboat.db.integrity's built-in checks, its runner (snapshot, parallel connections, timeouts)
and baselines, on the sample data against a real server. The BC-004 and pagila fixtures have
their own files."""
import json
import os

from conftest import assert_one_line

S = "lifeboat_sample"


def by_name(result):
    return {c["name"]: c for c in result["checks"]}


def test_clean_sample_passes_every_builtin_check_on_two_connections(server, ansible, sample_db):
    result = ansible.module("integrity", db=sample_db, parallel=2)
    assert result["passed"] and not result["failed"] and result["failed_checks"] == [], result["summary"]
    checks = by_name(result)
    fks = [c for c in result["checks"] if c["kind"] == "foreign_key"]
    assert len(fks) == 4 and all(c["status"] == "passed" and c["orphans"] == 0 for c in fks)
    assert checks[f"foreign_key {S}.orders.orders_customer_id_fkey"]["references"] == f"{S}.customers(id)"
    for name in ("sequences", "invalid_indexes", "not_valid_constraints"):
        assert checks[name]["status"] == "passed", checks[name]
    # amcheck is not installed in the sample database: skipped, and saying how to enable it.
    assert checks["amcheck"]["status"] == "skipped" and "CREATE EXTENSION amcheck" in checks["amcheck"]["summary"]
    assert result["counts"] == {"passed": 7, "failed": 0, "error": 0, "skipped": 1}
    assert result["summary"].startswith(f"integrity of '{sample_db}': 8 check(s), 7 passed, 0 failed")


def test_orphans_under_a_not_valid_foreign_key_are_found_with_a_sample(server, ansible, sample_db):
    server.sql(sample_db, f"ALTER TABLE {S}.events DROP CONSTRAINT events_customer_id_fkey;"
                          f"INSERT INTO {S}.events (id, customer_id, kind, payload, occurred_at) VALUES (900001, 77777, 'x', '{{}}', now()),"
                          f" (900002, 77778, 'x', '{{}}', now());"
                          f"ALTER TABLE {S}.events ADD CONSTRAINT events_customer_id_fkey FOREIGN KEY (customer_id)"
                          f" REFERENCES {S}.customers(id) NOT VALID")
    result = ansible.module("integrity", db=sample_db, sample_rows=1)
    fk = by_name(result)[f"foreign_key {S}.events.events_customer_id_fkey"]
    assert fk["status"] == "failed" and fk["orphans"] == 2 and fk["validated"] is False
    assert fk["sample"] == [{"id": 900001, "customer_id": 77777}]
    assert fk["summary"] == f"2 row(s) of {S}.events reference no row of {S}.customers(id) (NOT VALID)"
    not_valid = by_name(result)["not_valid_constraints"]
    assert not_valid["status"] == "failed" and not_valid["severity"] == "warning"
    assert not_valid["sample"][0]["constraint"] == "events_customer_id_fkey"
    assert_one_line(result, f"foreign_key {S}.events.events_customer_id_fkey: 2 row(s)")


def test_sequence_behind_and_sequence_state_read_without_consuming(server, ansible, sample_db):
    server.sql(sample_db, f"SELECT setval(pg_get_serial_sequence('{S}.orders', 'id'), 10)")
    result = ansible.module("integrity", db=sample_db, fail_on="never",
                            sequences=[f"{S}.orders_id_seq", {"name": f"{S}.customers_id_seq", "next_at_least": 201}])
    checks = by_name(result)
    assert checks["sequences"]["status"] == "failed" and checks["sequences"]["behind"] == 1
    assert checks["sequences"]["sample"][0]["sequence"] == f"{S}.orders_id_seq"
    assert checks["sequences"]["sample"][0]["next_value"] == 11
    state = checks[f"sequence {S}.orders_id_seq"]
    assert state["status"] == "failed" and state["next_value"] == 11 and "behind" in state["summary"]
    customers = checks[f"sequence {S}.customers_id_seq"]
    assert customers["status"] == "passed" and customers["next_value"] == 201 and customers["last_value"] == 200
    # Reading the state consumed nothing (seed 000 needed setval to undo its nextval).
    assert server.sql(sample_db, f"SELECT last_value, is_called FROM {S}.orders_id_seq") == [(10, True)]


def test_gates_required_objects_and_minimum_rows(server, ansible, sample_db):
    result = ansible.module("integrity", db=sample_db, skip=["foreign_keys", "amcheck"],
                            required_tables=[f"{S}.customers", f"{S}.d_users"],
                            required_columns={f"{S}.customers": ["id", "email", "userid"]},
                            min_rows={f"{S}.customers": 3, f"{S}.products": 100000})
    checks = by_name(result)
    assert checks["required_tables"]["missing"] == [f"{S}.d_users"]
    assert checks["required_columns"]["missing"] == [f"{S}.customers.userid"]
    assert checks[f"min_rows {S}.customers"]["status"] == "passed"
    assert checks[f"min_rows {S}.customers"]["rows"] == 200
    products = checks[f"min_rows {S}.products"]
    assert products["status"] == "failed" and products["summary"].endswith("at least 100000 required")
    assert result["failed"] and sorted(result["failed_checks"]) == sorted(
        ["required_tables", "required_columns", f"min_rows {S}.products"])


def test_custom_checks_inline_and_from_a_file_with_one_that_does_not_parse(server, ansible, sample_db, tmp_path):
    sql_file = tmp_path / "checks.sql"
    sql_file.write_text("-- the runbook's style: a label, then a count that must be 0\n"
                        f"SELECT 'negative credit' AS check_name, COUNT(*) AS count FROM {S}.customers WHERE credit < 0;\n"
                        f"SELECT 'all customers' AS check_name, COUNT(*) AS count FROM {S}.customers;\n")
    result = ansible.module("integrity", db=sample_db, skip=["foreign_keys", "amcheck"], checks=[
        {"name": "file", "file": str(sql_file), "value": 0},
        {"name": "broken", "sql": "SELEC 1"},
        {"name": "two customers", "sql": f"SELECT id FROM {S}.customers WHERE id <= 2", "rows": 2},
        {"name": "soft", "sql": f"SELECT id FROM {S}.customers LIMIT 1", "severity": "warning"},
    ])
    checks = by_name(result)
    assert checks["file: negative credit"]["status"] == "passed"
    wrong = checks["file: all customers"]
    assert wrong["status"] == "failed" and wrong["summary"] == "expected value 0, found value 200"
    assert wrong["sample"] == [{"check_name": "all customers", "count": 200}]
    assert checks["broken"]["status"] == "error"
    assert checks["broken"]["summary"].startswith("check 'broken' could not run: syntax error at or near \"SELEC\"")
    assert checks["two customers"]["status"] == "passed"
    assert checks["soft"]["status"] == "failed" and checks["soft"]["severity"] == "warning"
    # The other checks still ran and are reported; the task names what failed in one line.
    assert checks["sequences"]["status"] == "passed"
    assert_one_line(result, "check 'broken' could not run", "file: all customers")


def test_read_only_and_timeout_per_check(server, ansible, sample_db):
    result = ansible.module("integrity", db=sample_db, skip=["foreign_keys", "amcheck"], timeout=1, checks=[
        {"name": "slow", "sql": "SELECT 1 FROM pg_sleep(3)"},
        {"name": "writer", "sql": f"DELETE FROM {S}.events RETURNING id"},
    ])
    checks = by_name(result)
    assert checks["slow"]["status"] == "error" and "did not finish within 1s (timeout)" in checks["slow"]["summary"]
    assert checks["writer"]["status"] == "error" and "read-only transaction" in checks["writer"]["summary"]
    assert server.count(sample_db, f"{S}.events") == 1000
    assert checks["sequences"]["status"] == "passed"


def test_amcheck_verifies_every_btree_index_when_installed(server, ansible, sample_db):
    server.sql(sample_db, "CREATE EXTENSION IF NOT EXISTS amcheck")
    result = ansible.module("integrity", db=sample_db, skip=["foreign_keys"])
    amcheck = by_name(result)["amcheck"]
    assert amcheck["status"] == "passed" and amcheck["checked"] >= 5, amcheck


def test_counts_in_one_snapshot_exact_and_estimated_with_tolerance(server, ansible, sample_db, tmp_path):
    baseline = tmp_path / "b.json"
    ansible.module("integrity", db=sample_db, action="capture", baseline=str(baseline))
    captured = json.loads(baseline.read_text())
    assert captured["sequences"][f"{S}.orders_id_seq"]["last_value"] > 0 and len(captured["schema_fingerprint"]) == 64
    server.sql(sample_db, f"DELETE FROM {S}.events WHERE id <= 30")
    exact = ansible.module("integrity", db=sample_db, baseline=str(baseline), parallel=2, skip=["foreign_keys"])
    assert_one_line(exact, f"{S}.events (expected 1000, found 970)")
    tolerant = ansible.module("integrity", db=sample_db, baseline=str(baseline), tolerance="5%")
    row_counts = by_name(tolerant)["row_counts"]
    assert tolerant["passed"] and "(1 within the tolerance of 5%)" in row_counts["summary"]
    assert {"table": f"{S}.events", "expected": 1000, "actual": 970, "status": "within_tolerance"} in row_counts["tables"]
    too_far = ansible.module("integrity", db=sample_db, baseline=str(baseline), tolerance="10")
    assert too_far["failed"] and "events (expected 1000, found 970)" in too_far["msg"]

    server.sql(sample_db, f"ANALYZE {S}.customers")
    estimated = ansible.module("integrity", db=sample_db, baseline=str(baseline), count="estimate")
    assert estimated["row_counts"][f"{S}.customers"] == 200
    assert "estimate counts" in by_name(estimated)["row_counts"]["summary"]


def test_baseline_in_the_repository_catches_a_sequence_gone_back_and_a_schema_change(server, ansible, sample_db):
    repo = str(ansible.repository)
    first = ansible.module("integrity", db=sample_db, action="capture", repository=repo)
    assert first["changed"] and first["source"].startswith(os.path.join(repo, sample_db, ".baselines"))
    assert oct(os.stat(first["source"]).st_mode & 0o777) == "0o600"
    again = ansible.module("integrity", db=sample_db, action="capture", repository=repo)
    assert again["changed"] is False
    assert len(os.listdir(os.path.join(repo, sample_db, ".baselines"))) == 1
    clean = ansible.module("integrity", db=sample_db, baseline="latest", repository=repo)
    assert clean["passed"], clean["summary"]
    assert by_name(clean)["baseline sequences"]["status"] == "passed"
    assert by_name(clean)["schema fingerprint"]["status"] == "passed"

    server.sql(sample_db, f"SELECT setval('{S}.orders_id_seq', 5); ALTER TABLE {S}.customers ADD COLUMN note text")
    changed = ansible.module("integrity", db=sample_db, baseline="latest", repository=repo, skip=["sequences"])
    checks = by_name(changed)
    assert checks["baseline sequences"]["status"] == "failed"
    assert checks["baseline sequences"]["sample"][0]["sequence"] == f"{S}.orders_id_seq"
    assert checks["schema fingerprint"]["status"] == "failed" and checks["schema fingerprint"]["diff"]
    assert checks["row_counts"]["status"] == "passed"


def test_check_mode_runs_the_checks(server, ansible, sample_db):
    server.sql(sample_db, f"SELECT setval('{S}.orders_id_seq', 5)")
    result = ansible.module("integrity", db=sample_db, check=True)
    assert result["failed"] and result["failed_checks"] == ["sequences"]


def test_bad_options_are_one_line_errors(server, ansible, sample_db):
    assert_one_line(ansible.module("integrity", db=sample_db, tolerance="lots"), "tolerance must be a percentage")
    assert_one_line(ansible.module("integrity", db=sample_db, parallel=0), "parallel must be 1 or more")
    assert_one_line(ansible.module("integrity", db=sample_db, relationships=[{"table": "x"}]),
                    "relationships item 1 needs table, columns and references")
    assert_one_line(ansible.module("integrity", db=sample_db, min_rows={"public.users": "three"}),
                    "min_rows for public.users must be a whole number")
    assert_one_line(ansible.module("integrity", db=sample_db, action="compare"), "action=compare needs baseline")
    assert_one_line(ansible.module("integrity", db=sample_db, checks=[{"name": "x", "file": "/nonexistent.sql"}]),
                    "check 'x': cannot read /nonexistent.sql")
