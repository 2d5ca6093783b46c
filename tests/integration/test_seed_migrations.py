"""lifeboat.db.seed's Flyway-compatible migrations on a real project (tests/fixtures/opendolphin).

From scratch, idempotent re-runs, check mode, targets, a tampered file, a failed migration and
its repair, out-of-order versions, placeholders, and a history written the way Flyway writes it
(checksums from Java's own readLine + CRC32, tests/tools/FlywayChecksum.java) validating here.
"""
import shutil
import subprocess

import pytest

from conftest import PROJECT, assert_one_line

FIXTURE = PROJECT / "tests" / "fixtures" / "opendolphin"
MIGRATIONS = FIXTURE / "migrations"
SCHEMA = str(FIXTURE / "legacy_schema.sql")
SEED = str(FIXTURE / "local_synthetic_seed.sql")
VERSIONED = sorted(p.name for p in MIGRATIONS.glob("V*__*.sql"))
REPEATABLE = sorted(p.name for p in MIGRATIONS.glob("R__*.sql"))
AFTER_0222 = [name for name in VERSIONED if name[1:5] > "0222"]
FLYWAY_COLUMNS = [("installed_rank", "integer", "NO"), ("version", "character varying(50)", "YES"),
                  ("description", "character varying(200)", "NO"), ("type", "character varying(20)", "NO"),
                  ("script", "character varying(1000)", "NO"), ("checksum", "integer", "YES"),
                  ("installed_by", "character varying(100)", "NO"),
                  ("installed_on", "timestamp without time zone", "NO"), ("execution_time", "integer", "NO"),
                  ("success", "boolean", "NO")]

embedded_only = pytest.mark.parametrize("server", ["embedded"], indirect=True)


@pytest.fixture
def db(empty_db):
    return empty_db


@pytest.fixture
def project(tmp_path):
    """A copy of the fixture's migrations that a test may change."""
    copy = tmp_path / "sql"
    shutil.copytree(MIGRATIONS, copy)
    return copy


def baseline_db(ansible, db):
    result = ansible.module("seed", db=db, schema_files=[SCHEMA], seed_files=[SEED])
    assert result["changed"] and not result["failed"], result


def migrate(ansible, db, folder=MIGRATIONS, check=False, **args):
    return ansible.module("seed", check=check, db=db, action="migrate", migrations=[str(folder)],
                          baseline_on_migrate=True, baseline_version="0", **args)


def history(server, db):
    return server.sql(db, "SELECT version, script, type, success FROM flyway_schema_history ORDER BY installed_rank")


def test_project_from_scratch_then_idempotent(server, ansible, db):
    assert len(VERSIONED) >= 20 and REPEATABLE
    baseline_db(ansible, db)
    preview = migrate(ansible, db, check=True)
    assert preview["changed"] and preview["pending"] == VERSIONED + REPEATABLE, preview
    assert server.sql(db, "SELECT to_regclass('flyway_schema_history')")[0][0] is None, "check mode wrote history"

    result = migrate(ansible, db)
    assert result["changed"] and not result["failed"], result.get("msg")
    assert [m["script"] for m in result["applied"]] == VERSIONED + REPEATABLE
    assert result["current_version"] == VERSIONED[-1][1:].split("__")[0]
    assert "beforeMigrate.sql" in result["callbacks"] and "afterMigrate.sql" in result["callbacks"]
    rows = history(server, db)
    assert rows[0] == ("0", "<< Flyway Baseline >>", "BASELINE", True)
    assert [r[1] for r in rows[1:]] == VERSIONED + REPEATABLE and all(r[3] for r in rows)
    assert set(m["state"] for m in result["migrations"]) <= {"baseline", "success"}
    concurrent = [m for m in result["applied"] if not m["transactional"]]
    assert [m["script"] for m in concurrent] == [n for n in VERSIONED if "0223" in n]
    # Flyway's table, column for column, with its primary key and index.
    columns = server.sql(db, "SELECT column_name, format_type(atttypid, atttypmod), is_nullable FROM "
                             "information_schema.columns c JOIN pg_attribute a ON a.attrelid = "
                             "'flyway_schema_history'::regclass AND a.attname = c.column_name WHERE "
                             "c.table_name = 'flyway_schema_history' ORDER BY c.ordinal_position")
    assert columns == FLYWAY_COLUMNS
    assert server.sql(db, "SELECT indexname FROM pg_indexes WHERE tablename = 'flyway_schema_history' ORDER BY 1") \
        == [("flyway_schema_history_pk",), ("flyway_schema_history_s_idx",)]

    again = migrate(ansible, db)
    assert not again["changed"] and again["applied"] == [] and not again["failed"], again
    assert len(history(server, db)) == len(rows)
    valid = ansible.module("seed", db=db, action="validate", migrations=[str(MIGRATIONS)])
    assert not valid["failed"] and valid["problems"] == [], valid.get("msg")


@embedded_only
def test_target_then_latest_and_info(server, ansible, db):
    baseline_db(ansible, db)
    result = migrate(ansible, db, target="0222")
    assert result["current_version"] == "0222", result.get("msg")
    above = [m["script"] for m in result["migrations"] if m["state"] == "above_target"]
    assert above == AFTER_0222
    info = ansible.module("seed", db=db, action="info", migrations=[str(MIGRATIONS)])
    # The repeatables ran with the migrate to 0222; only the versions above the target are left.
    assert not info["changed"] and info["pending"] == AFTER_0222, info["pending"]
    invalid = ansible.module("seed", db=db, action="validate", migrations=[str(MIGRATIONS)])
    assert_one_line(invalid, "is not applied yet")
    assert not ansible.module("seed", db=db, action="validate", migrations=[str(MIGRATIONS)],
                              ignore_pending=True)["failed"]
    result = migrate(ansible, db)
    assert [m["script"] for m in result["applied"]][:1] == AFTER_0222[:1]
    assert result["current_version"] == VERSIONED[-1][1:].split("__")[0]


@embedded_only
def test_tampered_file_is_caught_then_repaired(server, ansible, db, project):
    baseline_db(ansible, db)
    migrate(ansible, db, project)
    tampered = project / VERSIONED[3]
    tampered.write_text(tampered.read_text() + "\n-- edited after it ran\n")
    result = ansible.module("seed", db=db, action="validate", migrations=[str(project)])
    assert_one_line(result, "checksum mismatch", VERSIONED[3])
    assert [p["kind"] for p in result["problems"]] == ["checksum"]
    refused = migrate(ansible, db, project)
    assert_one_line(refused, "migrate refused", "checksum mismatch", "Nothing was applied")
    preview = ansible.module("seed", check=True, db=db, action="repair", migrations=[str(project)])
    assert preview["changed"] and preview["repaired"]["realigned"][0]["script"] == VERSIONED[3]
    repaired = ansible.module("seed", db=db, action="repair", migrations=[str(project)])
    assert repaired["changed"] and not repaired["failed"], repaired.get("msg")
    assert not ansible.module("seed", db=db, action="validate", migrations=[str(project)])["failed"]
    assert not ansible.module("seed", db=db, action="repair", migrations=[str(project)])["changed"]


@embedded_only
def test_failed_migrations_leave_history_consistent_and_repair_recovers(server, ansible, db, tmp_path):
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "V1__table.sql").write_text("CREATE TABLE t (id int PRIMARY KEY, v text);\n")
    # Transactional, failing at its third statement: the first two are rolled back, nothing recorded.
    (folder / "V2__half.sql").write_text("INSERT INTO t VALUES (1, 'a');\nALTER TABLE t ADD COLUMN w int;\n"
                                         "INSERT INTO t VALUES (1, 'duplicate');\n")
    result = migrate(ansible, db, folder)
    assert_one_line(result, "V2__half.sql line 3", "duplicate key", "applied before it: V1__table.sql")
    assert server.count(db, "t") == 0
    assert server.sql(db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'")[0][0] == 2
    assert [r[1] for r in history(server, db)] == ["V1__table.sql"]

    # Non-transactional (CREATE INDEX CONCURRENTLY), failing: recorded as failed, as Flyway does.
    (folder / "V2__half.sql").write_text("INSERT INTO t VALUES (1, 'a');\n")
    (folder / "V3__index.sql").write_text("CREATE INDEX CONCURRENTLY t_missing_idx ON t (missing_column);\n")
    result = migrate(ansible, db, folder)
    assert_one_line(result, "V3__index.sql line 1", "recorded as failed", "action=repair")
    assert history(server, db)[-1] == ("3", "V3__index.sql", "SQL", False)
    assert_one_line(ansible.module("seed", db=db, action="validate", migrations=[str(folder)]), "V3", "failed")
    assert_one_line(migrate(ansible, db, folder), "migrate refused", "failed")

    (folder / "V3__index.sql").write_text("CREATE INDEX CONCURRENTLY t_v_idx ON t (v);\n")
    repaired = ansible.module("seed", db=db, action="repair", migrations=[str(folder)])
    assert repaired["repaired"]["removed_failed"] == [{"version": "3", "script": "V3__index.sql"}]
    result = migrate(ansible, db, folder)
    assert [m["script"] for m in result["applied"]] == ["V3__index.sql"], result.get("msg")
    assert [r[3] for r in history(server, db)] == [True, True, True]
    assert server.sql(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v_idx'::regclass")[0][0]


@embedded_only
def test_mixed_statements_are_refused_before_anything_runs(server, ansible, db, tmp_path):
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "V1__mix.sql").write_text("CREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY t_i ON t (id);\n")
    assert_one_line(migrate(ansible, db, folder), "V1__mix.sql mixes", "line 2")
    assert server.sql(db, "SELECT to_regclass('t')")[0][0] is None
    (folder / "V1__mix.sql.conf").write_text("executeInTransaction=false\n")
    result = migrate(ansible, db, folder)
    assert result["applied"][0]["transactional"] is False, result.get("msg")


@embedded_only
def test_bad_projects_give_one_line_and_touch_nothing(server, ansible, db, tmp_path):
    cases = {"dup": ({"V1__a.sql": "SELECT 1;", "V1.0__b.sql": "SELECT 1;"}, ["same version"]),
             "name": ({"V1__a.sql": "SELECT 1;", "V2_add_index.sql": "SELECT 1;"}, ["V2_add_index.sql",
                                                                                    "is not a migration name"]),
             "quote": ({"V1__a.sql": "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1;"}, ["V1__a.sql line 1",
                                                                                       "unterminated"]),
             "placeholder": ({"V1__a.sql": "CREATE TABLE ${table_name} (id int);"}, ["${table_name}"]),
             "begin": ({"V1__a.sql": "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;"}, ["V1__a.sql line 1"])}
    for case, (files, fragments) in cases.items():
        folder = tmp_path / case
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text + "\n")
        assert_one_line(migrate(ansible, db, folder), *fragments)
        assert server.sql(db, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")[0][0] == 0
    assert_one_line(migrate(ansible, db, tmp_path / "absent"), "does not exist on the target host")
    server.sql(db, "CREATE TABLE existing (id int)")
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "V1__a.sql").write_text("CREATE TABLE a (id int);\n")
    result = ansible.module("seed", db=db, action="migrate", migrations=[str(tmp_path / "good")])
    assert_one_line(result, "has objects but no flyway_schema_history")


@embedded_only
def test_out_of_order_placeholders_and_changed_repeatable(server, ansible, db, tmp_path):
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "V1__a.sql").write_text("CREATE TABLE a (id int);\n")
    (folder / "V3__c.sql").write_text("CREATE TABLE ${prefix}_c (id int);\n")
    (folder / "R__view.sql").write_text("CREATE OR REPLACE VIEW v AS SELECT 1 AS one;\n")
    assert migrate(ansible, db, folder, placeholders={"prefix": "app"})["changed"]
    assert server.sql(db, "SELECT to_regclass('app_c')")[0][0] == "app_c"
    (folder / "V2__b.sql").write_text("CREATE TABLE b (id int);\n")
    assert_one_line(migrate(ansible, db, folder, placeholders={"prefix": "app"}), "V2", "out_of_order: true")
    result = migrate(ansible, db, folder, placeholders={"prefix": "app"}, out_of_order=True)
    assert [m["script"] for m in result["applied"]] == ["V2__b.sql"], result.get("msg")
    assert {m["script"]: m["state"] for m in result["migrations"]}["V2__b.sql"] == "out_of_order"

    (folder / "R__view.sql").write_text("CREATE OR REPLACE VIEW v AS SELECT 1 AS one, 2 AS two;\n")
    result = migrate(ansible, db, folder, placeholders={"prefix": "app"})
    assert [m["script"] for m in result["applied"]] == ["R__view.sql"], result.get("msg")
    assert [m["state"] for m in result["migrations"] if m["script"] == "R__view.sql"] == ["superseded", "success"]
    assert server.sql(db, "SELECT two FROM v")[0][0] == 2


@embedded_only
@pytest.mark.skipif(not shutil.which("java"), reason="no java to compute Flyway's checksums with")
def test_history_written_by_flyway_validates_here(server, ansible, db):
    """A database Flyway migrated: its rows carry checksums Java computed (as Flyway does) and
    the baseline row Flyway writes. lifeboat validates it, applies nothing, and agrees on state."""
    baseline_db(ansible, db)
    files = [MIGRATIONS / name for name in VERSIONED + REPEATABLE]
    out = subprocess.run(["java", str(PROJECT / "tests" / "tools" / "FlywayChecksum.java"), *map(str, files)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    java = dict((line.split("\t")[1], int(line.split("\t")[0])) for line in out.splitlines())
    result = migrate(ansible, db)  # our own run puts the schema in place
    assert not result["failed"], result.get("msg")
    # Replace our history with the rows Flyway would have written for the same run.
    server.sql(db, "DELETE FROM flyway_schema_history WHERE type = 'SQL'")
    with server.connect(db) as conn:
        for rank, path in enumerate(files, 2):
            name = path.name
            version = name[1:].split("__")[0].replace("_", ".") if name.startswith("V") else None
            description = name.split("__", 1)[1][:-4].replace("_", " ")
            conn.execute("INSERT INTO flyway_schema_history VALUES (%s, %s, %s, 'SQL', %s, %s, 'flyway', now(), 5, "
                         "true)", (rank, version, description, name, java[str(path)]))
    valid = ansible.module("seed", db=db, action="validate", migrations=[str(MIGRATIONS)])
    assert not valid["failed"] and valid["problems"] == [], valid.get("msg")
    again = migrate(ansible, db)
    assert again["applied"] == [] and not again["changed"], again.get("msg")


@embedded_only
def test_waits_for_flyways_lock_and_gives_up_in_one_line(server, ansible, db, tmp_path):
    """Flyway holds pg_advisory_lock(<"Flyway" + hash of the table>) while it migrates; so do we."""
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "V1__a.sql").write_text("CREATE TABLE a (id int);\n")
    lock = 77431708279161 + 2125624436  # Flyway's number for "public"."flyway_schema_history"
    with server.connect(db) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock,))
        result = migrate(ansible, db, folder, lock_timeout=1)
        assert_one_line(result, "holds the migration lock %d" % lock)
    assert server.sql(db, "SELECT to_regclass('a')")[0][0] is None
    assert migrate(ansible, db, folder)["applied"][0]["script"] == "V1__a.sql"


@embedded_only
def test_baseline_alone_is_a_change_and_is_recorded_once(server, ansible, db, tmp_path):
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "V1__already_there.sql").write_text("CREATE TABLE a (id int);\n")
    server.sql(db, "CREATE TABLE a (id int)")
    args = dict(db=db, action="migrate", migrations=[str(folder)], baseline_on_migrate=True, baseline_version="1")
    first = ansible.module("seed", **args)
    assert first["changed"] and first["applied"] == [] and first["current_version"] == "1", first.get("msg")
    assert {m["script"]: m["state"] for m in first["migrations"]} == {"<< Flyway Baseline >>": "baseline"}
    second = ansible.module("seed", **args)
    assert not second["changed"], second
    assert_one_line(ansible.module("seed", db=db, action="baseline", baseline_version="2", migrations=[str(folder)]),
                    "already holds 1 row")
    assert not ansible.module("seed", db=db, action="baseline", baseline_version="1")["changed"]


@embedded_only
def test_schema_stays_first_on_the_search_path_for_every_script(server, ansible, db, tmp_path):
    """schema: app (not the connection's default): every migration, callback, repeatable and seed
    file starts with app first on the search_path, even after a script changed the search_path,
    so unqualified objects land in app and later scripts find the earlier ones unqualified."""
    server.sql(db, "CREATE SCHEMA app")
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "beforeEachMigrate.sql").write_text(
        "CREATE TABLE IF NOT EXISTS cb_log (n serial);\nINSERT INTO cb_log DEFAULT VALUES;\n")
    (folder / "V1__a.sql").write_text("CREATE TABLE a (id int PRIMARY KEY);\nINSERT INTO a VALUES (1), (2);\n")
    (folder / "V2__b.sql").write_text("CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a);\n"
                                      "INSERT INTO b SELECT id, id FROM a;\n")
    (folder / "V3__c.sql").write_text("CREATE TABLE c AS SELECT b.id FROM b JOIN a ON a.id = b.a_id;\n"
                                      "SET search_path TO public;\n")
    (folder / "R__v.sql").write_text("CREATE OR REPLACE VIEW v AS SELECT count(*) AS n FROM c;\n")
    (folder / "afterMigrate.sql").write_text("CREATE TABLE IF NOT EXISTS after_done AS SELECT n FROM v;\n")
    (tmp_path / "s1.sql").write_text("CREATE TABLE s1 (id int);\nINSERT INTO s1 VALUES (1);\n"
                                     "SELECT pg_catalog.set_config('search_path', '', false);\n")
    (tmp_path / "s2.sql").write_text("CREATE TABLE s2 AS SELECT * FROM s1;\n")
    run = ansible.play([
        {"name": "seed", "lifeboat.db.seed": {"db": db, "schema": "app",
                                              "seed_files": [str(tmp_path / "s1.sql"), str(tmp_path / "s2.sql")]}},
        {"name": "migrate", "lifeboat.db.seed": {"db": db, "schema": "app", "action": "migrate",
                                                 "migrations": [str(folder)], "baseline_on_migrate": True,
                                                 "baseline_version": "0"}}])
    seeded, migrated = run.result("seed"), run.result("migrate")
    assert not seeded["failed"], seeded.get("msg")
    assert not migrated["failed"], migrated.get("msg")
    assert [m["script"] for m in migrated["applied"]] == ["V1__a.sql", "V2__b.sql", "V3__c.sql", "R__v.sql"]
    relations = server.sql(db, "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE c.relkind IN ('r', 'v') AND n.nspname IN ('app', 'public') "
                               "ORDER BY 1, 2")
    assert relations == [("app", name) for name in ("a", "after_done", "b", "c", "cb_log", "flyway_schema_history",
                                                     "lifeboat_seed_history", "s1", "s2", "v")]
    assert server.count(db, "app.cb_log") == 4
    assert server.sql(db, "SELECT n FROM app.after_done")[0][0] == 2
