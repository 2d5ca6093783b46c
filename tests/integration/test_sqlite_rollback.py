"""playbooks/sqlite_rollback.yml (roles/lifeboat_sqlite_rollback) against the fixture web application over SQLite.

Seed 004's procedure on a planning database: each case is its own application (a real process on loopback,
jobs writing), a host of one inventory, all played by one ansible-playbook run: the procedure end to end
(pause, backup, CSV, gate, restore, fix, resume, smoke), a completeness gate that fails (nothing changed,
jobs resumed), a fix over its bound (rolled back, jobs resumed) and the same fix after a restore (rolled
back, the jobs left paused on the restored database, and the failure line saying so).
"""
import csv
import json
import os
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from conftest import BIN, PROJECT, PlayResult, ansible_playbook, free_port


WEBAPP = PROJECT / "tests" / "fixtures" / "webapp"
CTL = [str(BIN / "python"), str(WEBAPP / "ctl.py")]
PASSWORD = "rollback-Pa55-never-shown"
ROLE = "lifeboat_sqlite_rollback : "
# Seed 004's registry: three runs since the release point point at plan jobs that the rollback retires.
PLANNING = """
CREATE TABLE plan_versions (version_id INTEGER PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE plan_artifacts (version_id INTEGER NOT NULL, name TEXT NOT NULL);
CREATE TABLE plan_series (version_id INTEGER NOT NULL, sku TEXT NOT NULL, week INTEGER NOT NULL, qty REAL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, plan_job_id TEXT);
"""
COMPLETE = ("SELECT version_id FROM (SELECT version_id, SUM(name = 'aggregate.json') AS a, SUM(name = 'sku_week.json') AS s,"
            " SUM(name = 'plan_final.json') AS f FROM plan_artifacts GROUP BY version_id) WHERE NOT (a AND s AND f)")
FIX = {"sql": "UPDATE runs SET plan_job_id = NULL WHERE created_at >= ?", "params": ["2025-10-06T00:00:00"]}


def planning_db(path, complete=True):
    with sqlite3.connect(path) as conn:
        conn.executescript(PLANNING)
        for version in range(1, 8):
            conn.execute("INSERT INTO plan_versions VALUES (?, ?)", (version, f"2025-10-0{version}T09:00:00"))
            names = ["aggregate.json", "sku_week.json", "plan_final.json"]
            if not complete and version == 7:
                names = names[:2]
            conn.executemany("INSERT INTO plan_artifacts VALUES (?, ?)", [(version, n) for n in names])
            conn.executemany("INSERT INTO plan_series VALUES (?, ?, ?, ?)",
                             [(version, f"sku-{s}", w, s * w * 1.5) for s in range(3) for w in range(4)])
        conn.executemany("INSERT INTO runs (created_at, plan_job_id) VALUES (?, ?)",
                         [(f"2025-10-0{d}T10:00:00", f"job-{d}") for d in range(1, 9)])
    conn.close()


class App:
    def __init__(self, root, name, complete=True, hold_database=False):
        self.dir = root / name
        self.dir.mkdir()
        self.db = self.dir / "scpln.db"
        planning_db(self.db, complete)
        self.port = free_port()
        self.config_path = self.dir / "app.json"
        self.env_file = self.dir / "app.env"
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path.write_text(json.dumps({
            "port": self.port, "database": {"sqlite": str(self.db)}, "uploads_dir": str(self.dir / "uploads"),
            "users": {"admin": PASSWORD}, "job_interval_ms": 50, "env_file": str(self.env_file),
            "hold_database": hold_database}))
        os.chmod(self.config_path, 0o600)

    def ctl(self, action):
        return [*CTL, action, "--config", str(self.config_path)]

    def start(self):
        subprocess.run(self.ctl("start"), check=True, env=dict(os.environ, JOBS_ENABLED="1"), capture_output=True,
                       timeout=30)

    def stop(self):
        subprocess.run(self.ctl("stop"), capture_output=True, timeout=30)

    def health(self):
        with urllib.request.urlopen(self.url + "/health", timeout=5) as answer:
            return json.load(answer)

    def rows(self, query):
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(query).fetchall()
        finally:
            conn.close()

    def host_vars(self, root, **settings):
        return {
            "ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python"),
            "lifeboat_service_manager": "command",
            "lifeboat_service_start_command": ["/usr/bin/env", "JOBS_ENABLED=1", *self.ctl("start")],
            "lifeboat_service_stop_command": self.ctl("stop"), "lifeboat_service_status_command": self.ctl("status"),
            "lifeboat_service_env_file": str(self.env_file), "lifeboat_service_health_url": self.url + "/health",
            "lifeboat_service_attempts": 20, "lifeboat_service_delay": 0.2,
            # A pause the application did not take fails the run.
            "lifeboat_service_paused_json": {"jobs_enabled": False}, "lifeboat_service_resumed_json": {"jobs_enabled": True},
            "lifeboat_sqlite_rollback_path": str(self.db),
            # Each host its own repository, as on real hosts: latest is this database's newest set.
            "lifeboat_sqlite_rollback_repository": str(root / "repo" / self.dir.name),
            "lifeboat_sqlite_rollback_evidence_dir": str(root / "evidence"),
            "lifeboat_sqlite_rollback_exports": [{
                "query": "SELECT * FROM plan_series WHERE version_id IN "
                         "(SELECT version_id FROM plan_versions ORDER BY created_at DESC LIMIT ?) ORDER BY 1, 2, 3",
                "params": [5], "dest": str(self.dir / "plan_series_latest.csv")}],
            "lifeboat_sqlite_rollback_checks": [{"name": "recent_versions_complete", "sql": COMPLETE}],
            **settings}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollback")
    apps = {"whole": App(root, "whole"), "gate": App(root, "gate", complete=False), "bound": App(root, "bound"),
            # Its connection open for its whole life, paused or not: the restore needs it stopped.
            "restored": App(root, "restored", hold_database=True)}
    try:
        for app in apps.values():
            app.start()
        # The sets to roll back to: taken before the run, then a run written after them (job-late), which
        # the restore must take away and the pre-restore set keep.
        takes = root / "take.yml"
        takes.write_text(json.dumps([{"name": "Take the sets to roll back to", "hosts": "whole,restored",
                                      "gather_facts": False, "tasks": [{"lifeboat.db.sqlite": {
                                          "action": "backup", "path": "{{ lifeboat_sqlite_rollback_path }}",
                                          "repository": "{{ lifeboat_sqlite_rollback_repository }}"}}]}]))
        whole = apps["whole"]
        smoke = {"login": {"url": whole.url + "/login", "body": {"username": "admin", "password": PASSWORD}},
                 "data": {"url": whole.url + "/data", "min_rows": 3},
                 "upload": {"url": whole.url + "/upload", "filename": "after-rollback.txt"}}
        hosts = {
            "whole": whole.host_vars(root, lifeboat_sqlite_rollback_restore_backup="latest",
                                     lifeboat_sqlite_rollback_fix=dict(FIX, expect_rows={"min": 1, "max": 10}),
                                     lifeboat_service_smoke=smoke),
            "gate": apps["gate"].host_vars(root, lifeboat_sqlite_rollback_fix=dict(FIX, expect_rows={"min": 1, "max": 10})),
            "bound": apps["bound"].host_vars(root, lifeboat_sqlite_rollback_fix=dict(FIX, expect_rows={"max": 1})),
            # The same fix over its bound, after a restore: the database is no longer as the run found it.
            "restored": apps["restored"].host_vars(root, lifeboat_sqlite_rollback_restore_backup="latest",
                                                   lifeboat_sqlite_rollback_stop_for_restore=True,
                                                   lifeboat_sqlite_rollback_fix=dict(FIX, expect_rows={"max": 1})),
        }
        # Refused before anything runs (their applications are never started, the play must not need them):
        # a smoke check the verification could not run, found only after the restore and the fix otherwise;
        # a misspelt expect_rows, which would let the fix change every row.
        unstarted = App(root, "unstarted")
        hosts["badsmoke"] = unstarted.host_vars(root, lifeboat_service_smoke={"login": {"body": {"username": "admin"}}},
                                                lifeboat_sqlite_rollback_fix=dict(FIX, expect_rows={"max": 10}))
        hosts["typo"] = unstarted.host_vars(root, lifeboat_sqlite_rollback_fix=dict(FIX, expect_row={"max": 5}))
        inventory = root / "inventory.json"
        fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"all": {"hosts": hosts}}, out)
        record = root / "results.jsonl"
        started = time.monotonic()
        taken = ansible_playbook(["-i", inventory, takes], root / "take.jsonl", env={"ANSIBLE_FORKS": "2"}, timeout=120)
        assert taken.returncode == 0, taken.stdout[-3000:]
        sets = {name: [p.name for p in (root / "repo" / name / "scpln").glob("2*")] for name in ("whole", "restored")}
        for name in ("whole", "restored"):
            with sqlite3.connect(apps[name].db, timeout=10) as conn:
                conn.execute("INSERT INTO runs (created_at, plan_job_id) VALUES ('2025-10-09T10:00:00', 'job-late')")
            conn.close()
        # whole rolls back to its set by id; restored by latest (the newest set before the run, not step 2's).
        with inventory.open() as handle:
            hosts = json.load(handle)["all"]["hosts"]
        hosts["whole"]["lifeboat_sqlite_rollback_restore_backup"] = sets["whole"][0]
        fd = os.open(inventory, os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"all": {"hosts": hosts}}, out)
        proc = ansible_playbook(["-i", inventory, PROJECT / "playbooks" / "sqlite_rollback.yml",
                                 "-e", "lifeboat_sqlite_rollback_hosts=all"], record,
                                env={"ANSIBLE_FORKS": str(len(hosts))}, timeout=300)
        print(f"\nansible-playbook sqlite_rollback.yml, {len(hosts)} cases: {time.monotonic() - started:.1f} s")
        results = {name: PlayResult(proc, name, record) for name in hosts}
        # The jobs write again (resumed): polled, never longer than 10 s.
        health = {}
        for name, app in apps.items():
            if name == "restored":
                continue
            first = app.health()
            deadline = time.monotonic() + 10
            later = first
            while later["job_rows"] <= first["job_rows"] and time.monotonic() < deadline:
                time.sleep(0.05)
                later = app.health()
            health[name] = (first, later)
        output = proc.stdout + proc.stderr + (record.read_text() if record.exists() else "")
        yield dict(results=results, apps=apps, health=health, root=root, output=output, sets=sets,
                   restored_health=apps["restored"].health())
    finally:
        for app in apps.values():
            app.stop()


def summary_of(root, result):
    run_id = result.result(ROLE + "Fix the run id")["ansible_facts"]["lifeboat_sqlite_rollback_run_id"]
    folder = root / "evidence" / run_id
    return json.loads((folder / "summary.json").read_text()), folder


def test_rollback_end_to_end(runs):
    result, app = runs["results"]["whole"], runs["apps"]["whole"]
    assert not any(task["failed"] for _, task in result.tasks), runs["output"][-4000:]
    # The fix: the three runs since the release point retired, the others untouched.
    assert app.rows("SELECT count(*) FROM runs WHERE plan_job_id IS NULL") == [(3,)]
    assert app.rows("SELECT count(*) FROM runs") == [(8,)]
    # The CSV snapshot of the latest five versions: a header, 5 x 12 rows, 0600.
    dest = app.dir / "plan_series_latest.csv"
    with dest.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["version_id", "sku", "week", "qty"] and len(rows) == 61
    assert dest.stat().st_mode & 0o777 == 0o600
    summary, folder = summary_of(runs["root"], result)
    assert summary["status"] == "passed" and summary["jobs"] == "resumed"
    assert [step["name"] for step in summary["steps"]] == ["pause", "backup", "snapshot", "gate", "restore", "fix",
                                                          "resume", "verify"]
    assert summary["gate"] == {"integrity": "passed", "foreign_keys": "passed", "recent_versions_complete": "passed"}
    assert summary["fix_rows"] == 3
    # The set asked for by id, taken before the run: the run written after it is gone from the live file and
    # kept in the pre-restore set.
    assert [summary["restored_backup_id"]] == runs["sets"]["whole"] != [summary["pre_rollback_backup_id"]]
    assert app.rows("SELECT count(*) FROM runs WHERE plan_job_id = 'job-late'") == [(0,)]
    kept = sqlite3.connect(f"file:{runs['root'] / 'repo' / 'whole' / 'scpln' / summary['pre_restore_backup_id'] / 'database.sqlite'}?mode=ro",
                           uri=True)
    try:
        assert kept.execute("SELECT created_at FROM runs WHERE plan_job_id = 'job-late'").fetchall() == [
            ("2025-10-09T10:00:00",)]
    finally:
        kept.close()
    # Roll forward to the live file as it was just before the restore: its set, and the exact commands.
    forward = summary["roll_forward"]
    assert forward["backup_id"] == summary["pre_restore_backup_id"] is not None
    manifest = json.loads((runs["root"] / "repo" / "whole" / "scpln" / forward["backup_id"] / "manifest.json").read_text())
    assert manifest["kind"] == "sqlite-pre-restore"
    assert f"backup={forward['backup_id']}" in forward["commands"][1] and "action=restore" in forward["commands"][1]
    assert "service_action=pause" in forward["commands"][0] and "service_action=resume" in forward["commands"][2]
    report = (folder / "report.md").read_text()
    assert "Roll-forward checklist" in report and forward["commands"][1] in report
    for step in ("01-pause", "02-backup", "03-snapshot", "04-gate", "05-restore", "06-fix", "07-resume", "08-verify"):
        assert (folder / "steps" / f"{step}.json").stat().st_mode & 0o777 == 0o600
    verify = json.loads((folder / "steps" / "08-verify.json").read_text())
    assert [c["name"] for c in verify["checks"] if c["ok"]] == ["health", "login", "data", "upload"]
    assert (app.dir / "uploads" / "after-rollback.txt").exists()
    # Resumed: the env file gone, the jobs writing again.
    first, later = runs["health"]["whole"]
    assert first["jobs_enabled"] is True and later["job_rows"] > first["job_rows"]
    assert not app.env_file.exists()
    assert PASSWORD not in runs["output"]


def test_failing_gate_stops_before_any_change(runs):
    result, app = runs["results"]["gate"], runs["apps"]["gate"]
    failure = result.result(ROLE + "Fail the play when a step failed")
    assert "\n" not in failure["msg"].strip()
    assert "FAILED at step gate" in failure["msg"] and "recent_versions_complete" in failure["msg"]
    assert "nothing changed" in failure["msg"] and "jobs resumed" in failure["msg"]
    assert app.rows("SELECT count(*) FROM runs WHERE plan_job_id IS NULL") == [(0,)]
    assert ROLE + "Run the fix within expect_rows" not in [name for name, _ in result.tasks]
    summary, _ = summary_of(runs["root"], result)
    assert summary["status"] == "failed" and summary["failed_step"] == "gate" and summary["jobs"] == "resumed"
    # The pre-rollback backup was taken: the checklist names it.
    assert summary["roll_forward"]["backup_id"] == summary["pre_rollback_backup_id"] is not None
    first, later = runs["health"]["gate"]
    assert first["jobs_enabled"] is True and later["job_rows"] > first["job_rows"]


def test_fix_over_its_bound_is_rolled_back_and_jobs_resumed(runs):
    result, app = runs["results"]["bound"], runs["apps"]["bound"]
    failure = result.result(ROLE + "Fail the play when a step failed")["msg"]
    assert "FAILED at step fix" in failure and "changed 3 rows" in failure and "rolled back" in failure
    assert "jobs resumed" in failure and "nothing changed" in failure
    assert app.rows("SELECT count(*) FROM runs WHERE plan_job_id IS NULL") == [(0,)]
    first, later = runs["health"]["bound"]
    assert first["jobs_enabled"] is True and later["job_rows"] > first["job_rows"]
    assert not app.env_file.exists()


def test_failure_after_a_restore_leaves_the_jobs_paused_and_says_so(runs):
    result, app = runs["results"]["restored"], runs["apps"]["restored"]
    failure = result.result(ROLE + "Fail the play when a step failed")["msg"]
    assert "\n" not in failure.strip()
    assert "FAILED at step fix" in failure and "rolled back" in failure
    assert "the database is as the restore of " in failure and "jobs paused" in failure
    assert "-e service_action=resume" in failure
    removed = [task for name, task in result.tasks if name == "lifeboat_service : Remove the pause's environment file"]
    assert all(task["_status"] == "skipped" for task in removed), "the jobs were resumed"
    health = runs["restored_health"]
    assert health["jobs_enabled"] is False and app.env_file.exists()
    summary, _ = summary_of(runs["root"], result)
    assert summary["jobs"] == "paused" and summary["roll_forward"]["backup_id"] == summary["pre_restore_backup_id"]
    # Held open by the application: stopped for the restore, started again after it (still paused).
    ran = [name for name, task in result.tasks if task["_status"] != "skipped"]
    restore = ran.index(ROLE + "Restore the backup (the live file kept as a pre-restore set)")
    assert "lifeboat_service : Stop the service" in ran[ran.index(ROLE + "Mark step restore"):restore]
    assert "lifeboat_service : Start the service" in ran[restore:]
    # latest: the newest set before the run, not the pre-rollback set step 2 took.
    assert [summary["restored_backup_id"]] == runs["sets"]["restored"] != [summary["pre_rollback_backup_id"]]
    assert app.rows("SELECT count(*) FROM runs WHERE plan_job_id = 'job-late'") == [(0,)]


def test_bad_settings_are_refused_before_anything_runs(runs):
    app = runs["apps"]["whole"]
    for name, wrong in (("badsmoke", "login"), ("typo", "expect_row")):
        result = runs["results"][name]
        failed = [(task, r) for task, r in result.tasks if r["failed"]]
        assert len(failed) == 1 and wrong in failed[0][1]["msg"], failed
        names = [task for task, _ in result.tasks]
        assert result.tasks[-1][1]["failed"] and not [n for n in names if "Step 1" in n or "Step 2" in n], names
    assert not (app.dir.parent / "repo" / "unstarted").exists()
