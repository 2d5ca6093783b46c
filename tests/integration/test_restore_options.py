"""restore's finishing steps (grants, materialized views, sequences, role) and its progress file."""
import json

from conftest import assert_one_line


def test_grants_and_role_are_applied_before_the_database_is_handed_over(server, ansible, sample_db):
    repo = str(ansible.repository)
    for role in ("lb_app", "lb_restorer"):
        server.sql("postgres", f"DO $$BEGIN CREATE ROLE {role}; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
    ansible.module("dump", db=sample_db, repository=repo)
    grants = [{"to": "lb_app", "objects": "tables", "privileges": "SELECT, INSERT"},
              {"to": "lb_app", "objects": "sequences", "privileges": ["USAGE"]},
              {"to": "lb_app", "objects": "schema", "privileges": "USAGE", "schema": "lifeboat_sample"}]
    result = ansible.module("restore", db=sample_db, repository=repo, keep_previous=0,
                            grants=[dict(g, schema="lifeboat_sample") for g in grants[:2]] + grants[2:])
    assert not result["failed"], result.get("msg")
    assert "GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA lifeboat_sample TO lb_app" in result["grants_applied"]
    assert server.sql(sample_db, "SELECT has_table_privilege('lb_app', 'lifeboat_sample.orders', 'INSERT'), "
                                 "has_table_privilege('lb_app', 'lifeboat_sample.orders', 'DELETE'), "
                                 "has_schema_privilege('lb_app', 'lifeboat_sample', 'USAGE')") == [(True, False, True)]
    copy = f"{sample_db}_as_role"
    server.drop_db(copy)
    try:
        made = ansible.module("restore", db=copy, backup_db=sample_db, repository=repo, mode="new", role="lb_restorer")
        assert not made["failed"], made.get("msg")
        owners = server.sql(copy, "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n "
                                  "ON n.oid = c.relnamespace WHERE n.nspname = 'lifeboat_sample'")
        assert owners == [("lb_restorer",)]
    finally:
        server.drop_db(copy)
    # A role that does not exist is found before anything changes.
    before = server.sql("postgres", "SELECT oid FROM pg_database WHERE datname = %s", (sample_db,))
    missing = ansible.module("restore", db=sample_db, repository=repo, grants=[{"to": "lb_nobody"}])
    assert_one_line(missing, "role(s) lb_nobody", "nothing was changed")
    assert server.sql("postgres", "SELECT oid FROM pg_database WHERE datname = %s", (sample_db,)) == before


def test_bad_grants_are_one_line_errors(server, ansible, sample_db):
    repo = str(ansible.repository)
    ansible.module("dump", db=sample_db, repository=repo)
    for grants, fragment in (([{"objects": "tables"}], "must be a dict with at least `to`"),
                             ([{"to": "x", "objects": "views"}], "objects must be one of"),
                             ([{"to": "x", "privileges": "EXECUTE"}], "cannot be granted on tables"),
                             ([{"to": "x", "with": "admin"}], "unknown key(s) with")):
        assert_one_line(ansible.module("restore", db=sample_db, repository=repo, grants=grants), fragment)
    tables = ansible.module("restore", db=sample_db, repository=repo, mode="tables",
                            tables=["lifeboat_sample.orders"], refresh_matviews=True)
    assert_one_line(tables, "not to mode=tables")


def test_matviews_refreshed_and_sequences_repaired(server, ansible, sample_db, tmp_path):
    repo = str(ansible.repository)
    server.sql(sample_db, "CREATE MATERIALIZED VIEW lifeboat_sample.order_totals AS SELECT status, count(*) AS n "
                          "FROM lifeboat_sample.orders GROUP BY status WITH NO DATA")
    # Rows written with explicit ids, as a hand load does: the serial's sequence stays behind them.
    server.sql(sample_db, "CREATE TABLE lifeboat_sample.notes (id serial PRIMARY KEY, body text)")
    server.sql(sample_db, "INSERT INTO lifeboat_sample.notes (id, body) VALUES (1, 'a'), (500, 'b')")
    ansible.module("dump", db=sample_db, repository=repo)
    plain = ansible.module("restore", db=sample_db, repository=repo, keep_previous=0, repair_sequences=False)
    assert not plain["failed"], plain.get("msg")
    assert "sequences_repaired" not in plain
    assert server.sql(sample_db, "SELECT ispopulated FROM pg_matviews WHERE matviewname = 'order_totals'") == [(False,)]
    result = ansible.module("restore", db=sample_db, repository=repo, keep_previous=0, refresh_matviews=True)
    assert not result["failed"], result.get("msg")
    assert result["matviews_refreshed"] == ["lifeboat_sample.order_totals"]
    assert server.sql(sample_db, "SELECT sum(n) FROM lifeboat_sample.order_totals")[0][0] == \
        server.count(sample_db, "lifeboat_sample.orders")
    assert [(s["sequence"], s["max_value"]) for s in result["sequences_repaired"]] == \
        [("lifeboat_sample.notes_id_seq", 500)]
    assert server.sql(sample_db, "INSERT INTO lifeboat_sample.notes (body) VALUES ('c') RETURNING id") == [(501,)]


def test_progress_file_follows_the_restore(server, ansible, sample_db):
    repo = ansible.repository
    ansible.module("dump", db=sample_db, repository=str(repo))
    result = ansible.module("restore", db=sample_db, repository=str(repo), keep_previous=0)
    assert not result["failed"], result.get("msg")
    progress = json.loads((repo / sample_db / ".restore-progress.json").read_text())
    assert progress["phase"] == "done" and progress["backup_id"] == result["backup_id"]
    assert progress["target_db"] == sample_db and progress["tables_total"] == 5
    assert progress["tables_done"] == 5
    failed = ansible.module("restore", db=sample_db, repository=str(repo), backup="20990101T000000Z-ffffff")
    assert failed["failed"]
    progress = json.loads((repo / sample_db / ".restore-progress.json").read_text())
    assert progress["phase"] == "failed" and "not found" in progress["error"]


def test_custom_checks_gate_the_swap(server, ansible, sample_db):
    repo = str(ansible.repository)
    backup = ansible.module("dump", db=sample_db, repository=repo)
    orders = backup["row_counts"]["lifeboat_sample.orders"]
    good = [{"name": "no_orphan_items", "sql": "SELECT i.order_id FROM lifeboat_sample.order_items i "
                                               "LEFT JOIN lifeboat_sample.orders o ON o.id = i.order_id "
                                               "WHERE o.id IS NULL"},
            {"name": "orders", "sql": "SELECT count(*) FROM lifeboat_sample.orders", "value": orders},
            {"name": "statuses", "sql": "SELECT DISTINCT status FROM lifeboat_sample.orders WHERE false", "rows": 0}]
    result = ansible.module("restore", db=sample_db, repository=repo, keep_previous=0, checks=good)
    assert not result["failed"], result.get("msg")
    assert [c["status"] for c in result["custom_checks"]] == ["passed"] * 3
    server.sql(sample_db, "CREATE TABLE public.live_marker (n int)")  # not in the backup
    bad = good[:1] + [{"name": "too_many", "sql": "SELECT id FROM lifeboat_sample.orders", "rows": 1}]
    failed = ansible.module("restore", db=sample_db, repository=repo, keep_previous=0, checks=bad)
    assert_one_line(failed, "check(s) failed on the restored copy: too_many (expected 1 row(s), found", "was not touched")
    assert server.sql(sample_db, "SELECT to_regclass('public.live_marker') IS NOT NULL") == [(True,)]
    assert server.sql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                      (sample_db + "_lbstage_%",)) == []
    broken = ansible.module("restore", db=sample_db, repository=repo, checks=[{"name": "typo", "sql": "SELEC 1"}])
    assert_one_line(broken, "check 'typo' could not run", "was not touched")
    for checks, fragment in (([{"sql": "SELECT 1"}], "must be a dict with name and sql"),
                             ([{"name": "a", "sql": "SELECT 1", "rows": 1, "value": 1}], "both rows and value"),
                             ([{"name": "a", "sql": "SELECT 1"}, {"name": "a", "sql": "SELECT 2"}], "two checks")):
        assert_one_line(ansible.module("restore", db=sample_db, repository=repo, checks=checks), fragment)
    assert server.sql(sample_db, "SELECT to_regclass('public.live_marker') IS NOT NULL") == [(True,)]
