"""playbooks/pitr.yml and playbooks/pitr_drill.yml (roles/lifeboat_pitr, issue 19 items 3-5) through
ansible-playbook on a real pgBackRest stanza: Debian's PostgreSQL 15 archiving into a path repository
(tests/tools/pgbackrest_stanza.py), restored by lifeboat.db.pgbackrest_restore into scratch instances.

As root the cluster runs as `lifeboat-pg`; the plays then become that account (with Debian's python3,
which has psycopg), as they become postgres on a Debian host: PostgreSQL does not start as root, and
only the instance's OS user can reach a scratch instance's socket. The live cluster is reached over TCP
with its password, as test_pgbackrest_info.py does.
"""
import datetime
import json
import os
import time

import psycopg
import pytest

from conftest import Ansible, PlayResult, Server, ansible_playbook, assert_one_line, free_port
from report_checks import assert_reports

import pgbackrest_stanza  # tests/tools, on sys.path through conftest

MISSING = pgbackrest_stanza.missing()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "")

DEBIAN_PYTHON = "/usr/bin/python3"
CHECK = "Check the recovery's settings"


@pytest.fixture(scope="module")
def stanza():
    made = pgbackrest_stanza.Stanza("pitr-%s" % os.environ.get("PYTEST_XDIST_WORKER", "main"))
    try:
        facts = made.start()
        dumps = made.base / "dumps"
        dumps.mkdir(mode=0o700)
        made.own(dumps)
        yield made, facts
    finally:
        made.stop(destroy=True)  # any scratch instance a failed test left running too


def live(stanza, db):
    made, facts = stanza
    return psycopg.connect(host=facts["host"], port=facts["port"], user=facts["user"], password=facts["password"],
                           dbname=db, autocommit=True)


def rows(stanza, db, query):
    with live(stanza, db) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else None


def server_now(stanza):
    """The cluster's clock, as a recovery target ('YYYY-MM-DD HH:MM:SS.ffffff+00')."""
    return rows(stanza, "postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                                    "'YYYY-MM-DD HH24:MI:SS.US') || '+00'")[0][0]


def playbook_ansible(stanza, tmp_path, **host_vars):
    """Ansible on the stanza's cluster, as its OS user when we are root (see the module docstring)."""
    made, facts = stanza
    ansible = Ansible(Server(facts), tmp_path)
    become = {"ansible_become": True, "ansible_become_user": made.user, "ansible_become_method": "sudo",
              "ansible_python_interpreter": DEBIAN_PYTHON} if made.user else {}
    ansible.write_inventory(**become, lifeboat_pitr_stanza=facts["stanza"], lifeboat_pitr_config=facts["config"],
                            lifeboat_pitr_repository=str(made.base / "dumps"),
                            lifeboat_pitr_evidence_dir=str(tmp_path / "evidence" / "pitr"),
                            lifeboat_pitr_drill_evidence_dir=str(tmp_path / "evidence" / "pitr-drill"),
                            lifeboat_rto_target_seconds=600, lifeboat_rpo_target_seconds=60, **host_vars)
    return ansible


def one_run(evidence_dir):
    (run_dir,) = [path for path in evidence_dir.iterdir() if path.is_dir()]
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def seconds(start, end):
    parse = lambda text: datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def running(stanza, data_dir):
    made, facts = stanza
    return made.run([facts["bin_dir"] + "/pg_ctl", "-D", str(data_dir), "status"], check=False).returncode == 0


def test_pitr_drill_end_to_end(stanza, tmp_path, chromium):
    made, facts = stanza
    rows(stanza, "postgres", "DROP DATABASE IF EXISTS drill")
    rows(stanza, "postgres", "CREATE DATABASE drill")
    data_dir = made.base / "scratch-drill"
    ansible = playbook_ansible(stanza, tmp_path, lifeboat_pitr_drill_db="drill", lifeboat_pitr_drill_markers=3,
                               lifeboat_pitr_drill_interval=0.5, lifeboat_pitr_data_dir=str(data_dir),
                               lifeboat_pitr_port=free_port())
    started = time.monotonic()
    play = ansible.run_playbook("playbooks/pitr_drill.yml")
    print("pitr_drill.yml: %.1f s" % (time.monotonic() - started))
    assert play.rc == 0, play.stdout[-4000:]
    run_dir, summary = one_run(tmp_path / "evidence" / "pitr-drill")
    assert summary["status"] == "passed", summary
    markers = summary["markers"]
    assert markers["before_target"] == [1, 2, 3] and markers["after_target"] == [4, 5], markers
    assert markers["verified"] is True and all("found value" in check for check in markers["checks"]), markers
    # Every marker before the target committed before it, every one after it was written after it.
    target = summary["target_asked"]["value"].replace(" ", "T").replace("+00", "Z")
    for mark in markers["written"]:
        if mark["id"] in markers["before_target"]:
            assert seconds(mark["committed_by"], target) > 0, (mark, target)
        else:
            assert seconds(target, mark["written_at"]) > 0 and seconds(mark["committed_by"], summary["fault_at"]) > 0
    # The target is one second before the fault; recovery branched a new timeline and promoted.
    assert abs(seconds(target, summary["fault_at"]) - 1.0) < 0.001, (target, summary["fault_at"])
    reached = summary["reached"]
    assert reached["timeline"] >= 2 and reached["promoted"] is True, reached
    assert seconds(reached["last_replayed_at"], target) >= 0, reached
    assert summary["wal_replayed_bytes"] > 0 and summary["timeline"] == reached["timeline"]
    # RPO: the last change kept to the fault - at least the second before it, and measured, not assumed.
    assert summary["rpo_seconds"] == round(seconds(reached["last_replayed_at"], summary["fault_at"]), 3)
    assert 1.0 <= summary["rpo_seconds"] < 30, summary["rpo_seconds"]
    assert 0 < summary["rto_seconds"] < 600 and summary["rows_destroyed"] == 5
    assert summary["fault"].startswith("DELETE FROM") and len(summary["archived"]) == 2
    # The scratch instance is gone (the drill's default), the live cluster still writes, its markers deleted.
    assert not data_dir.exists() and summary["scratch"]["state"] == "absent"
    assert rows(stanza, "drill", "SELECT count(*) FROM lifeboat_pitr_drill.marks") == [(0,)]
    assert rows(stanza, "postgres", "SELECT pg_is_in_recovery()") == [(False,)]
    assert_reports(run_dir, "en", "passed", {"rto": ("data-seconds", summary["rto_seconds"]),
                                            "rpo": ("data-seconds", summary["rpo_seconds"]),
                                            "rto-verdict": ("data-verdict", "met"),
                                            "rpo-verdict": ("data-verdict", "met")}, chromium=chromium)

    # Again with DROP TABLE, the reports in Japanese, and the scratch instance left running to look at.
    again = ansible.run_playbook("playbooks/pitr_drill.yml", "-e", json.dumps({
        "pitr_drill_fault": "drop_table", "lifeboat_report_lang": "ja", "pitr_drill_state": "started"}))
    assert again.rc == 0, again.stdout[-4000:]
    run_dir = max(path for path in (tmp_path / "evidence" / "pitr-drill").iterdir() if path.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["fault"].startswith("DROP TABLE"), summary
    assert summary["markers"]["verified"] is True and summary["scratch"]["state"] == "started"
    assert rows(stanza, "drill", "SELECT to_regclass('lifeboat_pitr_drill.marks') IS NULL") == [(True,)]
    # The running scratch instance holds the table as it was one second before it was dropped.
    scratch = summary["scratch"]
    assert running(stanza, scratch["data_dir"])
    seen = made.run([facts["bin_dir"] + "/psql", "-XAtq", "-h", scratch["socket_dir"], "-p", str(scratch["port"]),
                     "-U", "postgres", "-d", "drill", "-c",
                     "SELECT string_agg(id::text, ',' ORDER BY id) FROM lifeboat_pitr_drill.marks"])
    assert seen.stdout.strip() == "1,2,3", seen.stdout
    assert_reports(run_dir, "ja", "passed", {"rpo": ("data-seconds", summary["rpo_seconds"])})
    made.run([facts["bin_dir"] + "/pg_ctl", "-D", scratch["data_dir"], "-m", "fast", "-w", "stop"])


def shop(stanza):
    rows(stanza, "postgres", "DROP DATABASE IF EXISTS shop WITH (FORCE)")
    rows(stanza, "postgres", "CREATE DATABASE shop")
    with live(stanza, "shop") as conn:
        conn.execute("CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)")
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers, "
                     "total numeric NOT NULL)")
        conn.execute("INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 20) g")
        conn.execute("INSERT INTO orders (customer_id, total) SELECT 1 + g % 20, g * 1.5 FROM generate_series(1, 300) g")


def test_table_at_a_point_in_time(stanza, tmp_path):
    """DELETE without WHERE on one table at a known time: that table comes back from the scratch instance
    restored to just before it; a row written to another table after the fault stays."""
    made, facts = stanza
    shop(stanza)
    time.sleep(0.3)
    target = server_now(stanza)
    time.sleep(1.0)
    assert rows(stanza, "shop", "DELETE FROM orders") is None
    rows(stanza, "shop", "INSERT INTO customers VALUES (21, 'came after the fault')")
    made.switch_wal_and_wait()
    data_dir = made.base / "scratch-tables"
    ansible = playbook_ansible(stanza, tmp_path, lifeboat_pitr_data_dir=str(data_dir), lifeboat_pitr_port=free_port())
    play = ansible.run_playbook("playbooks/pitr.yml", "-e", json.dumps({
        "pitr_target_type": "time", "pitr_target": target, "pitr_scope": "tables", "pitr_db": "shop",
        "pitr_tables": ["public.orders"], "pitr_state": "stopped"}),
        "-e", json.dumps({"lifeboat_pitr_expected_row_counts": {"public.orders": 300, "public.customers": 20}}))
    assert play.rc == 0, play.stdout[-4000:]
    assert rows(stanza, "shop", "SELECT count(*), sum(total) FROM orders") == [(300, sum(g * 1.5 for g in range(1, 301)))]
    assert rows(stanza, "shop", "SELECT count(*) FROM customers") == [(21,)]
    assert rows(stanza, "shop", "SELECT name FROM customers WHERE id = 21") == [("came after the fault",)]
    run_dir, summary = one_run(tmp_path / "evidence" / "pitr")
    assert summary["status"] == "passed" and summary["scope"] == "tables", summary
    assert summary["tables_restored"] == ["public.orders"] and summary["dump_id"]
    assert summary["target_asked"] == {"type": "time", "value": target, "exclusive": False}
    assert summary["reached"]["timeline"] >= 2 and summary["integrity_passed"] is True
    assert seconds(summary["reached"]["last_replayed_at"], target.replace(" ", "T").replace("+00", "Z")) >= 0
    # The scratch instance is left stopped, as asked, with its data.
    assert summary["scratch"]["state"] == "stopped" and (data_dir / "PG_VERSION").exists()
    assert not running(stanza, data_dir)
    assert_reports(run_dir, "en", "passed", {"rto": ("data-seconds", summary["recovery_seconds"])})


def test_database_swapped_in_at_a_point_in_time(stanza, tmp_path):
    made, facts = stanza
    rows(stanza, "postgres", "DROP DATABASE IF EXISTS ledger WITH (FORCE)")
    rows(stanza, "postgres", "CREATE DATABASE ledger")
    rows(stanza, "ledger", "CREATE TABLE entries (id integer PRIMARY KEY, amount numeric NOT NULL)")
    rows(stanza, "ledger", "INSERT INTO entries SELECT g, g FROM generate_series(1, 100) g")
    time.sleep(0.3)
    target = server_now(stanza)
    time.sleep(1.0)
    rows(stanza, "ledger", "UPDATE entries SET amount = 0")
    rows(stanza, "ledger", "CREATE TABLE mistake (id integer)")
    made.switch_wal_and_wait()
    data_dir = made.base / "scratch-db"
    ansible = playbook_ansible(stanza, tmp_path, lifeboat_pitr_data_dir=str(data_dir), lifeboat_pitr_port=free_port())
    settings = json.dumps({"pitr_target_type": "time", "pitr_target": target, "pitr_scope": "database",
                           "pitr_db": "ledger", "pitr_state": "absent"})
    # Check mode: every check of the restore runs, nothing is written - no scratch instance, no evidence.
    planned = ansible.run_playbook("playbooks/pitr.yml", "--check", "-e", settings)
    assert planned.rc == 0, planned.stdout[-4000:]
    assert "Would restore" in " ".join(planned.result(
        "lifeboat_pitr : Restore the stanza to the target into the scratch instance %s" % data_dir)["actions"])
    assert not data_dir.exists() and not (tmp_path / "evidence" / "pitr").exists()
    assert rows(stanza, "ledger", "SELECT sum(amount) FROM entries") == [(0,)]
    play = ansible.run_playbook("playbooks/pitr.yml", "-e", settings)
    assert play.rc == 0, play.stdout[-4000:]
    assert rows(stanza, "ledger", "SELECT count(*), sum(amount) FROM entries") == [(100, 5050)]
    assert rows(stanza, "ledger", "SELECT to_regclass('mistake') IS NULL") == [(True,)]
    previous = rows(stanza, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'ledger_prev_%'")
    assert len(previous) == 1, previous
    run_dir, summary = one_run(tmp_path / "evidence" / "pitr")
    assert summary["status"] == "passed" and summary["swap"]["previous_db"] == previous[0][0], summary
    assert summary["scratch"]["state"] == "absent" and not data_dir.exists()


def test_bad_settings_are_refused_in_one_line_before_anything_runs(stanza, tmp_path):
    made, facts = stanza
    base = {"ansible_connection": "local", "ansible_python_interpreter": DEBIAN_PYTHON,
            "lifeboat_pitr_stanza": facts["stanza"], "lifeboat_pitr_config": facts["config"],
            "lifeboat_pitr_data_dir": str(made.base / "scratch-never"), "lifeboat_pitr_evidence_dir": str(tmp_path / "ev")}
    cases = {
        # A cutover (test_pitr_cutover.py) only of the whole cluster, on production with the stanza's name.
        "cutover": ({"pitr_cutover": True, "lifeboat_pitr_scope": "database", "lifeboat_pitr_db": "shop",
                     "lifeboat_pitr_confirm": facts["stanza"]}, "is only taken with pitr_scope cluster, not database"),
        "cutover_production": ({"pitr_cutover": True, "lifeboat_production": True},
                               "a cutover replaces its live cluster", "needs -e pitr_confirm=%s" % facts["stanza"]),
        "cutover_confirm": ({"pitr_cutover": True, "lifeboat_pitr_confirm": "shop"},
                            "does not name the stanza %s" % facts["stanza"]),
        "no_target": ({"lifeboat_pitr_target_type": "time"}, "is required with target type time"),
        "no_offset": ({"lifeboat_pitr_target_type": "time", "lifeboat_pitr_target": "2026-12-05 10:00:00"},
                      "is not a time with its offset"),
        "bad_lsn": ({"lifeboat_pitr_target_type": "lsn", "lifeboat_pitr_target": "16-B3"}, "is not an LSN"),
        "target_with_latest": ({"lifeboat_pitr_target": "16/B3"}, "is not taken with target type latest"),
        "no_tables": ({"lifeboat_pitr_scope": "tables", "lifeboat_pitr_db": "shop"}, "is required with pitr_scope tables"),
        "no_db": ({"lifeboat_pitr_scope": "database"}, "lifeboat_pitr_db (pitr_db) is required with pitr_scope database"),
        "relative": ({"lifeboat_pitr_data_dir": "scratch"}, "must be an absolute path"),
        "production": ({"lifeboat_production": True, "lifeboat_pitr_scope": "database", "lifeboat_pitr_db": "shop"},
                       "is marked lifeboat_production", "needs -e pitr_confirm=shop"),
        "wrong_confirm": ({"lifeboat_pitr_scope": "database", "lifeboat_pitr_db": "shop", "lifeboat_pitr_confirm": "shpo"},
                          "does not name the database shop"),
    }
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"children": {"databases": {"hosts": {
        name: dict(base, **settings) for name, (settings, *_) in cases.items()}}}}}))
    record = tmp_path / "results.jsonl"
    proc = ansible_playbook(["-i", inventory, "playbooks/pitr.yml"], record)
    assert proc.returncode != 0
    for name, (settings, *fragments) in cases.items():
        tasks = PlayResult(proc, name, record).tasks
        assert tasks[-1][0].endswith(CHECK), (name, [task for task, _ in tasks])
        assert_one_line(tasks[-1][1], *fragments, "nothing was changed")
        assert not any("Restore the stanza" in task for task, _ in tasks), name
    # A wrong choice is argument_specs' to refuse, before the role's first task.
    typed = ansible_playbook(["-i", inventory, "playbooks/pitr.yml", "--limit", "cutover", "-e",
                              json.dumps({"pitr_scope": "everything"})], record)
    assert typed.returncode != 0 and "lifeboat_pitr_scope" in typed.stdout, typed.stdout[-3000:]
    assert not (tmp_path / "ev").exists() and not (made.base / "scratch-never").exists()
    # The drill refuses a production host before it writes anything.
    drill = ansible_playbook(["-i", inventory, "playbooks/pitr_drill.yml", "--limit", "production"], record)
    refused = PlayResult(drill, "production", record).tasks
    assert drill.returncode != 0
    assert_one_line(refused[-1][1], "is marked lifeboat_production: the PITR drill writes markers")


def test_a_failed_check_on_the_scratch_instance_leaves_the_live_cluster_untouched(stanza, tmp_path):
    """Expectations the scratch instance does not meet stop the run before the dump and the restore: the
    damaged table stays as it is, the evidence says what failed, the play fails after it."""
    made, facts = stanza
    shop(stanza)
    time.sleep(0.3)
    target = server_now(stanza)
    time.sleep(1.0)
    rows(stanza, "shop", "DELETE FROM orders")
    made.switch_wal_and_wait()
    data_dir = made.base / "scratch-failed"
    ansible = playbook_ansible(stanza, tmp_path, lifeboat_pitr_data_dir=str(data_dir), lifeboat_pitr_port=free_port())
    dumps_before = sorted((made.base / "dumps").rglob("manifest.json"))
    play = ansible.run_playbook("playbooks/pitr.yml", "-e", json.dumps({
        "pitr_target_type": "time", "pitr_target": target, "pitr_scope": "tables", "pitr_db": "shop",
        "pitr_tables": ["public.orders"], "pitr_state": "absent",
        "lifeboat_pitr_expected_row_counts": {"public.orders": 999}}))
    assert play.rc != 0
    assert_one_line(play.last, "did not pass the checks", "public.orders")
    assert rows(stanza, "shop", "SELECT count(*) FROM orders") == [(0,)]
    assert sorted((made.base / "dumps").rglob("manifest.json")) == dumps_before
    assert not any(task.startswith(("Dump the database", "Restore the dump")) for task, _ in play.tasks)
    run_dir, summary = one_run(tmp_path / "evidence" / "pitr")
    assert summary["status"] == "failed"
    assert summary["failed_task"] == "Stop before the live cluster is touched when a check failed"
    assert summary["integrity_passed"] is False and summary["reached"]["timeline"] >= 2
    # The scratch instance is still removed as asked.
    assert summary["scratch"]["state"] == "absent" and not data_dir.exists()
    assert_reports(run_dir, "en", "failed", {})
