"""lifeboat.db.seed action=apply: schema and seed files, reset_schema, sequences, smoke, export_schema.

The project is tests/fixtures/opendolphin (seed 000's databases, synthetic). Apply runs in one
transaction, so every failure test also shows that nothing of the run is left behind.
"""
import json
import os
import stat

import pytest

from conftest import PROJECT, assert_one_line, embedded_only

FIXTURE = PROJECT / "tests" / "fixtures" / "opendolphin"
SCHEMA = str(FIXTURE / "legacy_schema.sql")
SEED = str(FIXTURE / "local_synthetic_seed.sql")

# Most of these tests run on the embedded server only: what differs between 15 and 18 is covered
# by the migration tests, and make test has a time budget.


@pytest.fixture
def db(empty_db):
    return empty_db


def tables(server, db, schema="public"):
    return sorted(r[0] for r in server.sql(db, "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)))


def test_schema_and_seed_apply_once_then_nothing(server, ansible, db):
    result = ansible.module("seed", check=True, db=db, schema_files=[SCHEMA], seed_files=[SEED],
                            sequences=[{"name": "facility_num", "value": 103}])
    assert result["changed"] and not result["failed"], result
    assert [f["status"] for f in result["files"]] == ["applied", "applied"]
    assert tables(server, db) == [], "check mode created tables"

    result = ansible.module("seed", db=db, schema_files=[SCHEMA], seed_files=[SEED],
                            sequences=[{"name": "facility_num", "value": 103}])
    assert result["changed"] and not result["failed"], result
    assert [(f["kind"], f["status"]) for f in result["files"]] == [("schema", "applied"), ("seed", "applied")]
    assert server.count(db, "d_users") == 3
    assert server.sql(db, "SELECT nextval('facility_num')")[0][0] == 104
    recorded = server.sql(db, "SELECT kind, script, checksum FROM lifeboat_seed_history ORDER BY kind")
    assert recorded == [(f["kind"], f["file"], f["checksum"]) for f in result["files"]]

    again = ansible.module("seed", db=db, schema_files=[SCHEMA], seed_files=[SEED],
                           sequences=[{"name": "facility_num", "value": 104}])
    assert not again["changed"] and not again["failed"], again
    assert [f["status"] for f in again["files"]] == ["unchanged", "unchanged"]
    assert server.count(db, "d_users") == 3


@embedded_only
def test_changed_seed_is_reported_and_reapplied_only_when_asked(server, ansible, db, tmp_path):
    seed = tmp_path / "seed.sql"
    seed.write_text("CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v int);\n"
                    "INSERT INTO kv VALUES ('a', 1) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;\n")
    assert ansible.module("seed", db=db, seed_files=[str(seed)])["changed"]
    seed.write_text(seed.read_text().replace("('a', 1)", "('a', 2)"))
    result = ansible.module("seed", db=db, seed_files=[str(seed)])
    assert not result["changed"] and result["files"][0]["status"] == "changed", result
    assert any("changed since it was applied" in a for a in result["actions"])
    # An Ansible warning too (shown at the end of the run), not only a line in the result.
    assert [w for w in result.get("warnings", []) if "seed file seed.sql changed since it was applied" in w], result
    assert server.sql(db, "SELECT v FROM kv")[0][0] == 1
    result = ansible.module("seed", db=db, seed_files=[str(seed)], reapply_changed=True)
    assert result["changed"] and result["files"][0]["status"] == "reapplied", result
    assert server.sql(db, "SELECT v FROM kv")[0][0] == 2


@embedded_only
def test_reset_schema_keeps_owner_grants_and_default_privileges(server, ansible, db):
    server.sql("postgres", "DO $$ BEGIN CREATE ROLE seed_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    server.sql("postgres", "DO $$ BEGIN CREATE ROLE seed_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    server.sql(db, "CREATE SCHEMA app AUTHORIZATION seed_owner; GRANT USAGE ON SCHEMA app TO seed_reader;"
                   "COMMENT ON SCHEMA app IS 'the app';"
                   "ALTER DEFAULT PRIVILEGES FOR ROLE seed_owner IN SCHEMA app GRANT SELECT ON TABLES TO seed_reader;"
                   "CREATE TABLE app.old (id int); INSERT INTO app.old SELECT generate_series(1, 50); ANALYZE app.old")
    acl = "SELECT nspowner::regrole::text, nspacl::text, obj_description(oid, 'pg_namespace') FROM pg_namespace " \
          "WHERE nspname = 'app'"
    defaults = "SELECT defaclacl::text FROM pg_default_acl WHERE defaclnamespace = 'app'::regnamespace"
    before = server.sql(db, acl), server.sql(db, defaults)

    preview = ansible.module("seed", check=True, db=db, reset_schema="app", confirm_reset="app")
    assert preview["changed"] and preview["reset"]["tables"] == 1 and preview["reset"]["estimated_rows"] == 50
    assert server.count(db, "app.old") == 50

    result = ansible.module("seed", db=db, reset_schema="app", confirm_reset="app", schema="app",
                            schema_files=[SCHEMA])
    assert result["changed"] and not result["failed"], result
    assert "old" not in tables(server, db, "app") and "d_users" in tables(server, db, "app")
    assert (server.sql(db, acl), server.sql(db, defaults)) == before


@embedded_only
def test_reset_with_a_schema_file_failing_half_way_loses_nothing(server, ansible, db, tmp_path):
    ansible.module("seed", db=db, schema_files=[SCHEMA], seed_files=[SEED])
    broken = tmp_path / "broken_schema.sql"
    broken.write_text("CREATE TABLE first_ok (id int);\n\nCREATE TABLE second_bad (\n  id int REFERENCES nowhere(id)\n);\n"
                      "CREATE TABLE never (id int);\n")
    result = ansible.module("seed", db=db, reset_schema="public", confirm_reset="public", schema_files=[str(broken)],
                            seed_files=[SEED])
    assert_one_line(result, "broken_schema.sql line 3", 'relation "nowhere" does not exist', "CREATE TABLE second_bad")
    # The reset was rolled back with the file: the old tables and every row are still there.
    assert server.count(db, "d_users") == 3 and "first_ok" not in tables(server, db)
    assert server.sql(db, "SELECT count(*) FROM lifeboat_seed_history")[0][0] == 2


@embedded_only
def test_seed_error_names_file_line_and_statement_and_records_nothing(server, ansible, db, tmp_path):
    seed = tmp_path / "bad_seed.sql"
    seed.write_text("CREATE TABLE seed_marker (id int); INSERT INTO seed_marker VALUES (1);\n"
                    "-- the next one breaks a foreign key\n"
                    "INSERT INTO d_roles (id, user_id, c_role, c_user)\n  VALUES (901, 424242, 'admin', 'x');\n")
    assert ansible.module("seed", db=db, schema_files=[SCHEMA])["changed"]
    result = ansible.module("seed", db=db, schema_files=[SCHEMA], seed_files=[str(seed)])
    assert_one_line(result, "bad_seed.sql line 3", "d_roles", "foreign key")
    assert server.sql(db, "SELECT to_regclass('seed_marker')")[0][0] is None
    assert server.sql(db, "SELECT kind FROM lifeboat_seed_history") == [("schema",)]


@embedded_only
def test_bad_inputs_change_nothing(server, ansible, db, tmp_path):
    concurrently = tmp_path / "concurrent.sql"
    concurrently.write_text("CREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n")
    meta = tmp_path / "meta.sql"
    meta.write_text("CREATE TABLE t (id int);\n\\connect other\n")
    rollback = tmp_path / "rollback.sql"
    rollback.write_text("CREATE TABLE t (id int);\nROLLBACK;\n")
    cases = [
        (dict(schema_files=[str(tmp_path / "missing.sql")]), ["missing.sql"]),
        (dict(schema_files=[str(concurrently)]), ["concurrent.sql line 2", "cannot run inside"]),
        (dict(schema_files=[str(meta)]), ["meta.sql line 2", "\\connect"]),
        (dict(seed_files=[str(rollback)]), ["rollback.sql line 2", "ROLLBACK"]),
        (dict(reset_schema="public", confirm_reset="pubic"), ["confirm_reset 'pubic' does not name", "Nothing"]),
        (dict(reset_schema="pg_catalog", confirm_reset="pg_catalog"), ["system schema"]),
        (dict(sequences=[{"name": "nope_seq", "value": 1}]), ["sequence nope_seq does not exist"]),
        (dict(sequences=[{"name": "x"}]), ["sequences item 1 must be"]),
        (dict(sequences=[{"name": "x", "value": "ten"}]), ["not a whole number"]),
        (dict(schema_files=[SCHEMA, SCHEMA]), ["two schema files are named legacy_schema.sql"]),
    ]
    for args, fragments in cases:
        result = ansible.module("seed", db=db, **args)
        assert_one_line(result, *fragments)
    assert tables(server, db) == []


@embedded_only
def test_sequences_by_value_and_by_column(server, ansible, db):
    ansible.module("seed", db=db, schema_files=[SCHEMA], seed_files=[SEED])
    top = server.sql(db, "SELECT max(id) FROM d_facility")[0][0]
    server.sql(db, "CREATE SEQUENCE fac_seq; CREATE SEQUENCE by_ten INCREMENT 10")
    specs = [{"name": "fac_seq", "column": "d_facility.id"}, {"name": "public.facility_num", "value": 500},
             {"name": "by_ten", "value": 500}]
    preview = ansible.module("seed", check=True, db=db, sequences=specs)
    assert preview["changed"] and server.sql(db, "SELECT is_called FROM fac_seq")[0][0] is False
    result = ansible.module("seed", db=db, sequences=specs)
    assert result["changed"], result
    assert [s["next_value"] for s in result["sequences"]] == [top + 1, 501, 510]
    assert not ansible.module("seed", db=db, sequences=specs)["changed"]
    assert server.sql(db, "SELECT nextval('fac_seq'), nextval('facility_num'), nextval('by_ten')")[0] == \
        (top + 1, 501, 510)


@embedded_only
def test_smoke_insert_is_rolled_back(server, ansible, db, tmp_path):
    server.sql(db, "CREATE TABLE audit (id bigserial PRIMARY KEY, action text NOT NULL)")
    preview = ansible.module("seed", check=True, db=db, action="smoke",
                             smoke_sql="INSERT INTO audit (action) VALUES ('gate-smoke') RETURNING id")
    assert preview["smoke"]["skipped"] and not preview["changed"], preview
    assert server.sql(db, "SELECT is_called FROM audit_id_seq")[0][0] is False, "check mode advanced the sequence"
    result = ansible.module("seed", db=db, action="smoke",
                            smoke_sql="INSERT INTO audit (action) VALUES ('gate-smoke') RETURNING id, action")
    assert not result["changed"] and not result["failed"], result
    assert result["smoke"]["rowcount"] == 1 and result["smoke"]["rows"][0][1] == "gate-smoke"
    assert result["smoke"]["rolled_back"] and server.count(db, "audit") == 0
    result = ansible.module("seed", db=db, action="smoke", smoke_sql="INSERT INTO audit (action) VALUES (NULL)")
    assert_one_line(result, "smoke_sql line 1", "null value")
    result = ansible.module("seed", db=db, action="smoke", smoke_sql="UPDATE audit SET action = 'x'")
    assert_one_line(result, "wrote no row")


@embedded_only
def test_export_schema_leaves_out_history_and_applies_elsewhere(server, ansible, db, tmp_path):
    ansible.module("seed", db=db, schema_files=[SCHEMA], seed_files=[SEED])
    dest = tmp_path / "legacy_schema_dump.sql"
    result = ansible.module("seed", db=db, action="export_schema", dest=str(dest))
    assert result["changed"] and stat.S_IMODE(os.stat(dest).st_mode) == 0o600, result
    assert server.password not in json.dumps(result)
    text = dest.read_text()
    assert "CREATE TABLE public.d_users" in text and "lifeboat_seed_history" not in text
    assert not ansible.module("seed", db=db, action="export_schema", dest=str(dest))["changed"]
    # Each pg_dump 17.6+ dump carries a new random \restrict key: applied once, a fresh dump of the same
    # schema is the same file to the seed history.
    assert "\\restrict " in text or server.major < 17
    other_key = tmp_path / "again" / dest.name
    other_key.parent.mkdir()
    other_key.write_text("\\restrict AnotherKey\n" + "".join(
        line for line in text.splitlines(True) if not line.startswith(("\\restrict", "\\unrestrict"))))
    assert [p for p in os.listdir(tmp_path) if p.startswith(".legacy")] == []

    other = db + "_copy"
    server.drop_db(other)
    server.sql("postgres", f'CREATE DATABASE "{other}"')
    try:
        assert ansible.module("seed", db=other, schema_files=[str(dest)], seed_files=[SEED])["changed"]
        options = server.connection_options()
        parity = ansible.module("integrity", db=other, parity_with={
            "db": db, "host": options["login_host"], "port": options["port"], "user": options["login_user"],
            "password": options["login_password"]})
        assert not parity["failed"], parity.get("msg")
        assert [c for c in parity["checks"] if c["name"] == "schema_parity"][0]["diff"] == []
        assert server.count(other, "d_users") == 3
        again = ansible.module("seed", db=other, schema_files=[str(other_key)], seed_files=[SEED])
        assert not again["changed"] and [f["status"] for f in again["files"]] == ["unchanged", "unchanged"], again
    finally:
        server.drop_db(other)
