"""Custom SQL checks (lifeboat.db.integrity `checks`, lifeboat.db.restore `checks`) stay read-only:
a check cannot end its read-only transaction, run a second statement or lift its timeout."""
from conftest import assert_one_line, embedded_only

S = "lifeboat_sample"
WRITER = (f"CREATE FUNCTION {S}.lb_writer() RETURNS int LANGUAGE plpgsql AS "
          f"$$BEGIN DELETE FROM {S}.events; RETURN 1; END$$")


def hostile_files(tmp_path):
    files = {
        # The COMMIT payload as a runbook file: refused before anything of it runs.
        "commit_file": "SELECT 1;\nCOMMIT;\nDELETE FROM lifeboat_sample.events;\nSELECT 1;\n",
        # Read-only lifted from inside: PostgreSQL refuses it once the transaction has queried.
        "lift_read_only": "SELECT set_config('transaction_read_only', 'off', true) AS lifted;\n"
                          "DELETE FROM lifeboat_sample.events RETURNING id;\n",
        # The timeout lifted by the first statement still holds for the second.
        "lift_timeout": "SELECT set_config('statement_timeout', '0', true) AS lifted;\nSELECT 1 FROM pg_sleep(3);\n",
        "end_in_comment": "SELECT 1 /* ; */; -- ;\nEND;\n",
    }
    paths = {}
    for name, text in files.items():
        path = tmp_path / f"{name}.sql"
        path.write_text(text)
        paths[name] = str(path)
    return paths


@embedded_only
def test_integrity_checks_cannot_write_or_outlive_their_timeout(server, ansible, sample_db, tmp_path):
    server.sql(sample_db, WRITER)
    files = hostile_files(tmp_path)
    inline = {
        "commit": f"COMMIT; DELETE FROM {S}.events; SELECT 1",
        "read_write": f"SET TRANSACTION READ WRITE; DELETE FROM {S}.events",
        "quoted": "SELECT ';' AS a, $x$;$x$ AS b, 'p%s%%' AS c -- ; trailing\n",
    }
    tasks = [{"name": name, "ignore_errors": True,
              "lifeboat.db.integrity": {"db": sample_db, "skip": ["foreign_keys", "amcheck"], "timeout": 1,
                                        "checks": [{"name": name, "sql": text, "rows": 1}]}}
             for name, text in inline.items()]
    tasks.append({"name": "others", "ignore_errors": True,
                  "lifeboat.db.integrity": {"db": sample_db, "skip": ["foreign_keys", "amcheck"], "timeout": 1,
                                            "checks": [{"name": "writer", "sql": f"SELECT {S}.lb_writer()", "rows": 1}]
                                            + [{"name": name, "file": path} for name, path in files.items()]}})
    play = ansible.play(tasks)
    for name in ("commit", "read_write"):
        assert_one_line(play.result(name), f"check {name!r}", "statements;", "is one statement")
    quoted = play.result("quoted")
    assert [c["status"] for c in quoted["checks"] if c["kind"] == "custom"] == ["passed"], quoted["checks"]
    checks = {c["name"]: c for c in play.result("others")["checks"]}
    assert checks["writer"]["status"] == "error" and "read-only transaction" in checks["writer"]["summary"]
    for name in ("commit_file", "end_in_comment"):
        assert checks[name]["status"] == "error", checks[name]
        assert "only queries may run" in checks[name]["summary"], checks[name]
    assert checks["lift_read_only"]["status"] == "error", checks["lift_read_only"]
    assert checks["lift_timeout"]["status"] == "error" and "timeout" in checks["lift_timeout"]["summary"]
    assert server.count(sample_db, f"{S}.events") == 1000


@embedded_only
def test_restore_checks_cannot_write_to_the_copy_they_check(server, ansible, sample_db, tmp_path):
    server.sql(sample_db, WRITER)
    repo = str(ansible.repository)
    assert not ansible.module("dump", db=sample_db, repository=repo)["failed"]
    server.sql(sample_db, "CREATE TABLE public.live_marker (n int)")  # only in the live database
    files = hostile_files(tmp_path)
    cases = {
        "commit": [{"name": "commit", "sql": f"COMMIT; DELETE FROM {S}.events; SELECT 1", "rows": 1}],
        "writer": [{"name": "writer", "sql": f"SELECT {S}.lb_writer()", "rows": 1}],
        "commit_file": [{"name": "commit_file", "file": files["commit_file"]}],
    }
    play = ansible.play([{"name": name, "ignore_errors": True,
                          "lifeboat.db.restore": {"db": sample_db, "repository": repo, "keep_previous": 0,
                                                  "checks": checks}} for name, checks in cases.items()])
    assert_one_line(play.result("commit"), "check 'commit'", "is one statement")
    assert_one_line(play.result("writer"), "check 'writer' could not run", "read-only transaction", "was not touched")
    assert_one_line(play.result("commit_file"), "check 'commit_file'", "only queries may run", "was not touched")
    # The live database is the one that was there: none of the restores swapped a copy in.
    assert server.sql(sample_db, "SELECT to_regclass('public.live_marker') IS NOT NULL") == [(True,)]
    assert server.count(sample_db, f"{S}.events") == 1000
