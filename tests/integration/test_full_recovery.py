"""playbooks/full_recovery.yml (roles/lifeboat_full_recovery) against the fixture web application.

Applications (real processes on loopback, each its own database and uploads folder), a host each of one
inventory: a first ansible-playbook run backs each up (lifeboat.db.dump or lifeboat.db.sqlite, lifeboat.db.files),
the test breaks them (break_everything), then one run of full_recovery.yml on all of them:
'whole' comes back to health with its RTO in the evidence, 'bad' fails at the verification with the previous
database and uploads in place and the application running again on them. A third application, 'lite', runs on
SQLite: its database file overwritten while it runs, it comes back through lifeboat.db.sqlite's restore.
'halfway' fails restoring its folders after its database restore (left stopped), 'unhealthy' at its smoke checks
(running, and the line says so), 'nohealth' is refused before the stop; the first run also rehearses the recovery
in check mode on 'whole' and 'lite', which must change nothing.
"""
import json
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import BIN, PROJECT, PlayResult, ansible_playbook, embedded_only, free_port

pytestmark = embedded_only

WEBAPP = PROJECT / "tests" / "fixtures" / "webapp"
CTL = [str(BIN / "python"), str(WEBAPP / "ctl.py")]
PASSWORD = "recovery-Pa55-never-shown"
ROLE = "lifeboat_full_recovery : "


class App:
    def __init__(self, root, name, server, sqlite=False):
        self.name = name
        self.dir = root / name
        self.dir.mkdir()
        self.db = f"fullrec_{name}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
        self.sqlite = self.dir / "app.db" if sqlite else None
        if not sqlite:
            server.drop_db(self.db)
            server.sql("postgres", f'CREATE DATABASE "{self.db}"')
        self.uploads = self.dir / "uploads"
        self.uploads.mkdir()
        for n in range(3):
            (self.uploads / f"drawing-{n}.txt").write_text(f"drawing {n}\n" * 100)
        self.port = free_port()
        self.config_path = self.dir / "app.json"
        self.url = f"http://127.0.0.1:{self.port}"
        dsn = f"host={server.host} port={server.port} user={server.user} password={server.password} dbname={self.db}"
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            database = {"sqlite": str(self.sqlite)} if sqlite else {"postgresql": dsn}
            json.dump({"port": self.port, "database": database, "uploads_dir": str(self.uploads),
                       "users": {"admin": PASSWORD}, "job_interval_ms": 100}, out)

    def oid(self, server):
        return server.sql("postgres", "SELECT oid FROM pg_database WHERE datname = %s", (self.db,))[0][0]

    def ctl(self, action):
        return [*CTL, action, "--config", str(self.config_path)]

    def pid(self):
        path = self.config_path.with_name("app.json.pid")
        return int(path.read_text()) if path.exists() else None

    def get(self, path, token=None):
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def data(self):
        login = urllib.request.Request(self.url + "/login", method="POST", headers={"Content-Type": "application/json"},
                                       data=json.dumps({"username": "admin", "password": PASSWORD}).encode())
        with urllib.request.urlopen(login, timeout=5) as answer:
            token = json.load(answer)["token"]
        return self.get("/data", token)

    def host_vars(self, server, root):
        return {
            "ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python"),
            "lifeboat_connection": server.connection_options(), "app_db": self.db, "app_uploads": str(self.uploads),
            "lifeboat_service_manager": "command", "lifeboat_service_start_command": self.ctl("start"),
            "lifeboat_service_stop_command": self.ctl("stop"), "lifeboat_service_status_command": self.ctl("status"),
            "lifeboat_service_health_url": self.url + "/health", "lifeboat_service_health_json": {"database": True},
            "lifeboat_service_attempts": 20, "lifeboat_service_delay": 0.2,
            "lifeboat_service_smoke": {
                "login": {"url": self.url + "/login", "body": {"username": "admin", "password": PASSWORD}},
                "data": {"url": self.url + "/data", "min_rows": 3},
                "upload": {"url": self.url + "/upload", "filename": "after-recovery.txt"}},
            **({"lifeboat_full_recovery_database": "sqlite", "lifeboat_full_recovery_sqlite_path": str(self.sqlite),
                "app_sqlite": str(self.sqlite)} if self.sqlite else {"lifeboat_full_recovery_db": self.db}),
            "lifeboat_full_recovery_repository": str(root / "repo" / self.name),
            "lifeboat_full_recovery_files": [{"name": "uploads", "dest": str(self.uploads)}],
            "lifeboat_full_recovery_evidence_dir": str(root / "evidence"),
            "lifeboat_full_recovery_rto_target_seconds": 3600,
        }


# Each host's backups, taken by the modules as in production (the damage is done by the test afterwards),
# then the recovery rehearsed in check mode on a PostgreSQL and a SQLite host (what --check does to every task),
# which must change nothing: the same processes, databases and uploads.
BACKUP = [{
    "name": "Back up", "hosts": "all:!nohealth", "gather_facts": False,
    "module_defaults": {"group/lifeboat.db.all": "{{ lifeboat_connection }}"},
    "tasks": [
        {"name": "Back up the database", "when": "app_sqlite is not defined",
         "lifeboat.db.dump": {"db": "{{ app_db }}", "repository": "{{ lifeboat_full_recovery_repository }}"}},
        {"name": "Back up the SQLite database", "when": "app_sqlite is defined",
         "lifeboat.db.sqlite": {"action": "backup", "path": "{{ app_sqlite }}",
                                "repository": "{{ lifeboat_full_recovery_repository }}"}},
        {"name": "Back up the uploads",
         "lifeboat.db.files": {"action": "backup", "name": "uploads", "path": "{{ app_uploads }}",
                               "repository": "{{ lifeboat_full_recovery_repository }}"}},
    ]}, {
    "name": "Rehearse the recovery", "hosts": "whole,lite", "gather_facts": False, "check_mode": True,
    "roles": ["lifeboat_full_recovery"]}]


def break_everything(apps, server, root):
    """The damage after the backups: table items dropped (PostgreSQL) or the file overwritten while the
    application runs (SQLite), an upload the backup does not have, 'whole' and 'lite' with their uploads
    wiped, and 'bad' with its database backup overwritten (its size and sha256 no longer the manifest's)."""
    for app in apps.values():
        if app.sqlite:
            app.sqlite.write_text("this is not a database any more\n")
        else:
            server.sql(app.db, "DROP TABLE items")
        if app.name not in ("bad", "halfway"):
            for path in app.uploads.iterdir():
                path.unlink()
        (app.uploads / "late.txt").write_text("uploaded after the backup\n")
    # 'halfway': its uploads folder made a symbolic link (to a folder with the same files), which the folders'
    # restore refuses only when it swaps (step 2's check passes): a failure after the database was restored.
    halfway = apps["halfway"].uploads
    halfway.rename(halfway.with_name("uploads-real"))
    halfway.symlink_to(halfway.with_name("uploads-real"))
    (dump,) = (root / "repo" / "bad").glob(f"{apps['bad'].db}/*/{apps['bad'].db}.dump")
    dump.write_text("not a dump\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, server):
    root = tmp_path_factory.mktemp("full_recovery")
    apps = {name: App(root, name, server) for name in ("whole", "bad", "halfway")}
    apps["lite"] = App(root, "lite", server, sqlite=True)
    # Recovered, started, then its smoke checks fail (more rows asked for than the backup has).
    apps["unhealthy"] = App(root, "unhealthy", server, sqlite=True)
    try:
        for app in apps.values():
            subprocess.run(app.ctl("start"), check=True, capture_output=True, timeout=30,
                           env=dict(os.environ, JOBS_ENABLED="0"))
        # A row the application never seeds (it seeds alpha, beta, gamma into an empty items table at every
        # start): back after the recovery only if the restore brought the backup's data.
        for app in apps.values():
            if app.sqlite:
                with sqlite3.connect(app.sqlite, timeout=10) as conn:
                    conn.execute("INSERT INTO items (id, name) VALUES (4, 'delta-before-backup')")
                conn.close()
            else:
                server.sql(app.db, "INSERT INTO items (id, name) VALUES (4, 'delta-before-backup')")
        before = {name: app.data() for name, app in apps.items()}
        pids = {name: app.pid() for name, app in apps.items()}
        # A swap puts a new database under the name: the oid says whether the database is still the one there was.
        oids = {name: app.oid(server) for name, app in apps.items() if not app.sqlite}
        inventory = root / "inventory.json"
        fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            hosts = {name: app.host_vars(server, root) for name, app in apps.items()}
            hosts["unhealthy"]["lifeboat_service_smoke"]["data"]["min_rows"] = 100
            # No health URL for the start: refused before the stop, never after the data was replaced.
            hosts["nohealth"] = dict(hosts["bad"], lifeboat_service_health_url="",
                                     lifeboat_full_recovery_repository=str(root / "repo" / "nohealth"))
            json.dump({"all": {"hosts": hosts}}, out)
        play = root / "backup.yml"
        play.write_text(json.dumps(BACKUP))
        record = root / "results.jsonl"
        started = time.monotonic()
        rehearsal = root / "rehearsal.jsonl"
        proc = ansible_playbook(["-i", inventory, play], rehearsal, env={"ANSIBLE_FORKS": "5"}, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:]
        # Rehearsed on one host of each engine (the suite's time); every application compared.
        checked = dict(results={name: PlayResult(proc, name, rehearsal) for name in ("whole", "lite")},
                       pids=[app.pid() for app in apps.values()],
                       oids={name: app.oid(server) for name, app in apps.items() if not app.sqlite},
                       uploads={name: sorted(p.name for p in app.uploads.iterdir()) for name, app in apps.items()})
        break_everything(apps, server, root)
        proc = ansible_playbook(["-i", inventory, PROJECT / "playbooks" / "full_recovery.yml",
                                 "-e", "lifeboat_full_recovery_hosts=all"], record, env={"ANSIBLE_FORKS": "5"}, timeout=300)
        print(f"\nansible-playbook backup.yml (and the rehearsal), then full_recovery.yml, {len(hosts)} hosts: "
              f"{time.monotonic() - started:.1f} s")
        results = {name: PlayResult(proc, name, record) for name in [*apps, "nohealth"]}
        output = proc.stdout + proc.stderr + (record.read_text() if record.exists() else "")
        yield dict(apps=apps, results=results, before=before, pids=pids, oids=oids, root=root, output=output, server=server,
                   checked=checked)
    finally:
        for app in apps.values():
            subprocess.run(app.ctl("stop"), capture_output=True, timeout=30)
        for app in apps.values():
            if app.sqlite:
                continue
            for (name,) in server.sql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                                      (app.db + "%",)):
                server.drop_db(name)


def summary_of(runs, name):
    run_id = runs["results"][name].result(ROLE + "Fix the run id")["ansible_facts"]["lifeboat_full_recovery_run_id"]
    folder = runs["root"] / "evidence" / run_id
    return json.loads((folder / "summary.json").read_text()), folder


def test_full_recovery_back_to_health(runs):
    result, app = runs["results"]["whole"], runs["apps"]["whole"]
    assert not any(task["failed"] for _, task in result.tasks), runs["output"][-5000:]
    # The database and the uploads as the backup had them; the application answering on them.
    status, rows = app.data()
    assert status == 200 and rows == runs["before"]["whole"][1]
    assert {"id": 4, "name": "delta-before-backup"} in rows["rows"]
    # The checks of step 2 change nothing and say so.
    for task in ("Step 2, verify the database's backup", "Step 2, verify each folder's set"):
        assert result.result(ROLE + task)["changed"] is False
    assert sorted(p.name for p in app.uploads.iterdir()) == ["after-recovery.txt", "drawing-0.txt", "drawing-1.txt",
                                                             "drawing-2.txt"]
    assert (app.uploads / "drawing-1.txt").read_text() == "drawing 1\n" * 100
    # The folder as it was before the restore is kept beside it, with the upload the backup did not have.
    kept = [p for p in app.uploads.parent.iterdir() if p.name.startswith("uploads.prev-")]
    assert len(kept) == 1 and sorted(p.name for p in kept[0].iterdir()) == ["late.txt"]
    summary, folder = summary_of(runs, "whole")
    assert summary["status"] == "passed" and summary["application"] == "running"
    assert [s["name"] for s in summary["steps"]] == ["stop", "verify", "restore_database", "restore_files", "start",
                                                    "smoke"]
    assert summary["recovery_seconds"] == pytest.approx(sum(s["seconds"] for s in summary["steps"]), abs=0.01)
    assert 0 < summary["recovery_seconds"] < 300 and summary["recovery_point_age_seconds"] > 0
    assert summary["previous_database"].startswith(app.db + "_prev_")
    assert app.oid(runs["server"]) != runs["oids"]["whole"]
    assert list(summary["files_restored"]) == ["uploads"]
    assert all(check["ok"] for check in summary["smoke"]) and len(summary["smoke"]) == 4
    assert app.pid() != runs["pids"]["whole"]
    html = (folder / "report.html").read_text()
    assert 'data-status="passed"' in html and f'data-seconds="{summary["recovery_seconds"]}' in html.replace(".0\"", "\"")
    recovery_report = (folder / "recovery-report.md").read_text()
    assert "**Result**: PASSED" in recovery_report and "(target 1 h: met)" in recovery_report
    assert "Full recovery" in (folder / "report.md").read_text()
    for name in ("summary.json", "report.md", "steps/03-restore_database.json", "steps/06-smoke.json"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    assert PASSWORD not in runs["output"]


def test_failed_restore_leaves_the_previous_database_and_uploads(runs):
    result, app, server = runs["results"]["bad"], runs["apps"]["bad"], runs["server"]
    failure = result.result(ROLE + "Fail the play when a step failed")["msg"]
    assert "\n" not in failure.strip()
    assert "FAILED at step verify" in failure and "is damaged" in failure
    assert "the previous database and folders are in place" in failure
    assert "application running again" in failure
    # Nothing restored: the same database as before, the late upload still there, no previous database made.
    assert app.oid(server) == runs["oids"]["bad"]
    assert sorted(p.name for p in app.uploads.iterdir()) == ["drawing-0.txt", "drawing-1.txt", "drawing-2.txt",
                                                             "late.txt"]
    assert not [p for p in app.uploads.parent.iterdir() if p.name.startswith("uploads.prev-")]
    assert not server.sql("postgres", "SELECT 1 FROM pg_database WHERE datname LIKE %s", (app.db + "_prev%",))
    # The application started again on them (a new process, answering).
    status, body = app.get("/health")
    assert status == 200 and body["database"] is True and app.pid() != runs["pids"]["bad"]
    summary, folder = summary_of(runs, "bad")
    assert summary["status"] == "failed" and summary["failed_step"] == "verify" and summary["recovery_seconds"] is None
    assert 'data-status="failed"' in (folder / "report.html").read_text()


def test_full_recovery_of_a_sqlite_application(runs):
    result, app = runs["results"]["lite"], runs["apps"]["lite"]
    assert not any(task["failed"] for _, task in result.tasks), runs["output"][-5000:]
    status, rows = app.data()
    assert status == 200 and rows == runs["before"]["lite"][1]
    assert {"id": 4, "name": "delta-before-backup"} in rows["rows"]
    assert result.result(ROLE + "Step 2, verify the SQLite backup")["changed"] is False
    assert sorted(p.name for p in app.uploads.iterdir()) == ["after-recovery.txt", "drawing-0.txt", "drawing-1.txt",
                                                             "drawing-2.txt"]
    summary, _ = summary_of(runs, "lite")
    assert summary["status"] == "passed" and summary["engine"] == "sqlite" and summary["recovery_seconds"] > 0
    # The damaged live file is kept as it was, byte for byte, as a pre-restore set.
    kept = runs["root"] / "repo" / "lite" / "app" / summary["previous_database"]
    assert json.loads((kept / "manifest.json").read_text())["kind"] == "sqlite-pre-restore"


def test_missing_start_settings_refused_before_the_stop(runs):
    result = runs["results"]["nohealth"]
    failed = [(task, r) for task, r in result.tasks if r["failed"]]
    assert len(failed) == 1 and "lifeboat_service_health_url is required for action start" in failed[0][1]["msg"], failed
    # The refusal is the last task: nothing stopped, nothing restored.
    assert result.tasks[-1][1]["failed"] and not [task for task, _ in result.tasks if "Step 1" in task]


def test_check_mode_rehearsal_changes_nothing(runs):
    checked = runs["checked"]
    for name, result in checked["results"].items():
        assert not any(task["failed"] for _, task in result.tasks), (name, [t for t in result.tasks if t[1]["failed"]])
        assert any(task == ROLE + "Step 3, restore the database (swap)" or "Step 3, restore the SQLite" in task
                   for task, r in result.tasks if r["_status"] != "skipped"), name
    # The same processes, databases and uploads as before the rehearsal: nothing stopped, swapped or uploaded.
    assert checked["pids"] == list(runs["pids"].values())
    assert checked["oids"] == runs["oids"]
    assert all(listing == ["drawing-0.txt", "drawing-1.txt", "drawing-2.txt"] for listing in checked["uploads"].values())
    lite = checked["results"]["lite"].result(ROLE + "Step 2, verify the SQLite backup")
    assert lite.get("backup_id") or lite.get("holders"), lite


def test_failure_after_the_database_restore_leaves_the_application_stopped(runs):
    result, app, server = runs["results"]["halfway"], runs["apps"]["halfway"], runs["server"]
    failure = result.result(ROLE + "Fail the play when a step failed")["msg"]
    assert "\n" not in failure.strip()
    assert "FAILED at step restore_files" in failure and "the database was restored from" in failure
    assert "application stopped" in failure
    summary, _ = summary_of(runs, "halfway")
    assert summary["failed_step"] == "restore_files"
    # The database swapped (a new oid), the previous one kept; the application not started on half the data.
    assert app.oid(server) != runs["oids"]["halfway"]
    assert server.sql("postgres", "SELECT 1 FROM pg_database WHERE datname LIKE %s", (app.db + "_prev%",))
    assert subprocess.run(app.ctl("status"), capture_output=True, timeout=30).returncode == 3
    assert app.uploads.is_symlink() and sorted(p.name for p in app.uploads.iterdir()) == [
        "drawing-0.txt", "drawing-1.txt", "drawing-2.txt", "late.txt"]


def test_failed_smoke_checks_say_the_application_runs(runs):
    result, app = runs["results"]["unhealthy"], runs["apps"]["unhealthy"]
    failure = result.result(ROLE + "Fail the play when a step failed")["msg"]
    assert "FAILED at step smoke" in failure and "application running but unhealthy" in failure, failure
    assert subprocess.run(app.ctl("status"), capture_output=True, timeout=30).returncode == 0
