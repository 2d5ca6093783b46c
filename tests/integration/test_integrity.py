"""lifeboat.db.integrity, sample_data and fault against a real server."""
import json
import stat

from conftest import assert_one_line


def test_capture_then_compare_passes_and_is_idempotent(server, ansible, sample_db, tmp_path):
    baseline = tmp_path / "baselines" / "b.json"
    captured = ansible.module("integrity", db=sample_db, action="capture", baseline=str(baseline))
    assert captured["changed"] and captured["row_counts"]["lifeboat_sample.events"] == 1000
    assert json.loads(baseline.read_text())["row_counts"] == captured["row_counts"]
    assert stat.S_IMODE(baseline.stat().st_mode) == 0o600
    again = ansible.module("integrity", db=sample_db, action="capture", baseline=str(baseline))
    assert again["changed"] is False

    compared = ansible.module("integrity", db=sample_db, baseline=str(baseline))
    assert compared["passed"] and not compared["failed"] and compared["changed"] is False
    assert compared["checks"][0]["summary"].startswith("5 of 5 tables match (exact counts against")


def test_compare_fails_on_missing_rows_and_names_the_table(server, ansible, sample_db, tmp_path):
    baseline = tmp_path / "b.json"
    ansible.module("integrity", db=sample_db, action="capture", baseline=str(baseline))
    server.sql(sample_db, "DELETE FROM lifeboat_sample.events WHERE id <= 10")
    result = ansible.module("integrity", db=sample_db, baseline=str(baseline))
    assert result["failed"]
    assert "1 table(s) differ: lifeboat_sample.events (expected 1000, found 990)" in result["msg"]
    assert "\n" not in result["msg"]
    table = [t for t in result["checks"][0]["tables"] if t["table"] == "lifeboat_sample.events"][0]
    assert table == {"table": "lifeboat_sample.events", "expected": 1000, "actual": 990, "status": "mismatch"}

    reported = ansible.module("integrity", db=sample_db, baseline=str(baseline), fail_on="never")
    assert not reported["failed"] and reported["passed"] is False


def test_compare_with_a_backup_manifest_and_a_dropped_table(server, ansible, sample_db):
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    server.sql(sample_db, "DROP TABLE lifeboat_sample.order_items")
    result = ansible.module("integrity", db=sample_db, repository=str(ansible.repository), backup="latest")
    assert result["failed"]
    assert "lifeboat_sample.order_items (expected 1800, found None)" in result["msg"]


def test_expected_row_counts_given_directly(server, ansible, sample_db, tmp_path):
    """As the restore role passes a backup's counts (expected_row_counts): no file to compare with."""
    counts = ansible.module("integrity", db=sample_db, action="capture", baseline=str(tmp_path / "b.json"))["row_counts"]
    server.sql(sample_db, "DELETE FROM lifeboat_sample.events WHERE id <= 10")
    tasks = [{"name": name, "lifeboat.db.integrity": dict(db=sample_db, **args), "ignore_errors": True}
             for name, args in (
                 ("differ", dict(expected_row_counts=counts)),
                 ("match", dict(expected_row_counts={**counts, "lifeboat_sample.events": 990})),
                 ("with a baseline too", dict(expected_row_counts=counts, baseline=str(tmp_path / "b.json"))),
                 ("with capture", dict(expected_row_counts=counts, action="capture")),
                 ("not a count", dict(expected_row_counts={"lifeboat_sample.events": "many"})),
                 ("negative", dict(expected_row_counts={"lifeboat_sample.events": -1})))]
    play = ansible.play(tasks)
    differ = play.result("differ")
    assert differ["failed"]
    assert_one_line(differ, "lifeboat_sample.events (expected 1000, found 990)", "against the expected row counts given")
    match = play.result("match")
    assert match["passed"] and not match["failed"], match
    assert match["checks"][0]["summary"].startswith("5 of 5 tables match")
    for name in ("with a baseline too", "with capture"):
        assert_one_line(play.result(name), "expected_row_counts is a reference to compare with")
        assert not play.result(name).get("checks"), name
    assert_one_line(play.result("not a count"), "must map table names to numbers of rows", "'lifeboat_sample.events'")
    assert_one_line(play.result("negative"), "must map table names to numbers of rows")
    assert server.count(sample_db, "lifeboat_sample.events") == 990


def test_capture_in_check_mode_writes_nothing(ansible, sample_db, tmp_path):
    baseline = tmp_path / "b.json"
    result = ansible.module("integrity", check=True, db=sample_db, action="capture", baseline=str(baseline))
    assert result["changed"] and not baseline.exists()


def test_baseline_of_another_database_is_refused(server, ansible, sample_db, tmp_path):
    baseline = tmp_path / "b.json"
    ansible.module("integrity", db="postgres", action="capture", baseline=str(baseline))
    result = ansible.module("integrity", db=sample_db, baseline=str(baseline))
    assert result["failed"] and "describes database 'postgres'" in result["msg"]
    # Nothing of the other database's baseline is compared: not its sequences, not its schema.
    assert not [c for c in result["checks"] if c["kind"] in ("baseline_sequences", "schema")]


def test_sample_data_is_idempotent_and_deterministic(server, ansible, sample_db):
    again = ansible.module("sample_data", db=sample_db, scale=200)
    assert again["changed"] is False
    checksum = "SELECT md5(string_agg(email || credit::text, ',' ORDER BY id)) FROM lifeboat_sample.customers"
    first = server.sql(sample_db, checksum)
    forced = ansible.module("sample_data", db=sample_db, scale=200, force=True)
    assert forced["changed"] and server.sql(sample_db, checksum) == first
    check = ansible.module("sample_data", check=True, db=sample_db, scale=300)
    assert check["changed"] and server.count(sample_db, "lifeboat_sample.customers") == 200


def test_sample_data_never_touches_a_foreign_schema(server, ansible, sample_db):
    server.sql(sample_db, "CREATE SCHEMA precious; CREATE TABLE precious.t (id int); INSERT INTO precious.t VALUES (1)")
    result = ansible.module("sample_data", db=sample_db, schema="precious", scale=10)
    assert result["failed"] and "was not made by lifeboat.db.sample_data" in result["msg"]
    assert server.count(sample_db, "precious.t") == 1


def test_fault_needs_confirmation_and_reports_what_it_destroyed(server, ansible, sample_db):
    refused = ansible.module("fault", db=sample_db, table="lifeboat_sample.events", confirm="production")
    assert refused["failed"] and "confirm must repeat the database name" in refused["msg"]
    assert server.count(sample_db, "lifeboat_sample.events") == 1000

    dry = ansible.module("fault", check=True, db=sample_db, table="lifeboat_sample.events", confirm=sample_db)
    assert dry["actions"] == ["Would truncate table lifeboat_sample.events (1000 rows)"]
    assert server.count(sample_db, "lifeboat_sample.events") == 1000

    done = ansible.module("fault", db=sample_db, table="lifeboat_sample.events", confirm=sample_db)
    assert done["rows_destroyed"] == 1000 and server.count(sample_db, "lifeboat_sample.events") == 0

    missing = ansible.module("fault", db=sample_db, table="lifeboat_sample.nope", confirm=sample_db)
    assert missing["failed"] and "table lifeboat_sample.nope not found" in missing["msg"]
