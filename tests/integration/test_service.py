"""roles/lifeboat_service through ansible-playbook against the fixture web application (tests/fixtures/webapp).

No systemd runs here: every case drives the application with lifeboat_service_manager `command` (its
controller, ctl.py, as the start, stop, status and reload commands). Each case is a host of one
inventory (all local), so one ansible-playbook run plays them all at once and a case that fails (on
purpose) does not stop the others; a second run, through playbooks/service.yml, resumes what the first
paused. Every application is a real process on loopback, over SQLite, and one over the session's PostgreSQL
server.
"""
import json
import os
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import BIN, PROJECT, PlayResult, ansible_playbook, assert_one_line, embedded_only, free_port

pytestmark = embedded_only

WEBAPP = PROJECT / "tests" / "fixtures" / "webapp"
CTL = [str(BIN / "python"), str(WEBAPP / "ctl.py")]
PASSWORD = "smoke-Pa55-never-shown"
# The application's own environment file, which a pause pointed at it must leave alone (and never show).
FOREIGN_ENV = "OTHER=1\nSECRET_KEY=app-secret-never-shown\n"
# How the record names the role's tasks.
ROLE = "lifeboat_service : "


class App:
    """One fixture application: its folder, configuration, controller commands and HTTP answers."""

    def __init__(self, root, name, database=None, **settings):
        self.dir = root / name
        self.dir.mkdir()
        self.port = free_port()
        self.config_path = self.dir / "app.json"
        self.env_file = self.dir / "app.env"
        self.uploads = self.dir / "uploads"
        self.config = {"port": self.port, "database": database or {"sqlite": str(self.dir / "app.db")},
                       "uploads_dir": str(self.uploads), "users": {"admin": PASSWORD}, "job_interval_ms": 50,
                       "env_file": str(self.env_file), **settings}
        self.write_config(self.config)
        self.url = f"http://127.0.0.1:{self.port}"

    def write_config(self, config):
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(config, out)

    def ctl(self, action):
        return [*CTL, action, "--config", str(self.config_path)]

    def start(self, jobs=False):
        env = dict(os.environ, JOBS_ENABLED="1" if jobs else "0")
        subprocess.run(self.ctl("start"), check=True, env=env, capture_output=True, timeout=30)

    def pid(self):
        path = Path(f"{self.config_path}.pid")
        return int(path.read_text()) if path.exists() else None

    def health(self):
        with urllib.request.urlopen(self.url + "/health", timeout=5) as answer:
            return json.load(answer)

    def role_vars(self, action, jobs=False, **overrides):
        """The role's variables for this application, started with JOBS_ENABLED=1 when `jobs`."""
        start = ["/usr/bin/env", f"JOBS_ENABLED={1 if jobs else 0}", *self.ctl("start")]
        return {"lifeboat_service_action": action, "lifeboat_service_manager": "command",
                "lifeboat_service_start_command": start, "lifeboat_service_stop_command": self.ctl("stop"),
                "lifeboat_service_status_command": self.ctl("status"),
                "lifeboat_service_reload_command": self.ctl("reload"),
                "lifeboat_service_env_file": str(self.env_file),
                "lifeboat_service_health_url": self.url + "/health", "lifeboat_service_attempts": 5,
                "lifeboat_service_delay": 0.2, **overrides}


def openssl_cert(folder, name, start, end):
    """A self-signed certificate valid from `start` to `end` (UTC datetimes), made by openssl ca, which takes
    any dates (req -x509 takes only days from now, never a past end)."""
    work = folder / name
    work.mkdir()
    (work / "index.txt").touch()
    (work / "serial").write_text("01\n")
    (work / "ca.cnf").write_text("[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n"
                                 "serial = serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
                                 "[any]\ncommonName = supplied\n")
    run = dict(cwd=work, check=True, capture_output=True, timeout=30)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "key.pem", "-out", "req.csr", "-subj", f"/CN={name}.lifeboat.test"], **run)
    subprocess.run(["openssl", "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "key.pem", "-in",
                    "req.csr", "-out", "cert.pem", "-notext", "-startdate", start.strftime("%Y%m%d%H%M%SZ"),
                    "-enddate", end.strftime("%Y%m%d%H%M%SZ")], **run)
    return str(work / "cert.pem")


class Site:
    """The applications, the inventory of cases and the playbook runs."""

    def __init__(self, root):
        self.root = root
        self.apps = []
        self.record = root / "results.jsonl"
        self.play = root / "play.yml"
        # A case may run in check mode (check_mode is templated for each host).
        self.play.write_text(json.dumps([{"name": "service", "hosts": "all", "gather_facts": False,
                                          "roles": [{"role": "lifeboat_service",
                                                     "check_mode": "{{ case_check_mode | default(false) }}"}]}]))

    def app(self, name, **kwargs):
        app = App(self.root, name, **kwargs)
        self.apps.append(app)
        return app

    def run(self, cases, playbook=None, *args):
        """One ansible-playbook run of `playbook` (default a play of the role alone), a host per case;
        {case: PlayResult}."""
        inventory = self.root / "inventory.json"
        hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python"), **variables}
                 for name, variables in cases.items()}
        fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"all": {"hosts": hosts}}, out)
        started = time.monotonic()
        proc = ansible_playbook(["-i", inventory, playbook or self.play, *args], self.record,
                                env={"ANSIBLE_FORKS": str(len(cases))},
                                timeout=300)
        self.seconds = time.monotonic() - started
        print(f"\nansible-playbook, {len(cases)} cases: {self.seconds:.1f} s")
        self.output = proc.stdout + proc.stderr + (self.record.read_text() if self.record.exists() else "")
        return {name: PlayResult(proc, name, self.record) for name in cases}

    def stop(self):
        for app in self.apps:
            subprocess.run(app.ctl("stop"), capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory, server):
    site = Site(tmp_path_factory.mktemp("service"))
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def runs(site, server):
    """Both runs of every case, and the applications' state between them."""
    now = datetime.now(timezone.utc)
    apps = {
        "third": site.app("third", health_fail_requests=2),
        "pause": site.app("pause"),
        "pause_noop": site.app("pause_noop"),
        "reload_bad": site.app("reload_bad"),
        "reload_ok": site.app("reload_ok"),
        "stop": site.app("stop"),
        "smoke_bad": site.app("smoke_bad"),
    }
    db = "webapp_" + os.environ.get("PYTEST_XDIST_WORKER", "main")
    server.drop_db(db)
    server.sql("postgres", f'CREATE DATABASE "{db}"')
    dsn = f"host={server.host} port={server.port} user={server.user} password={server.password} dbname={db}"
    apps["smoke_pg"] = site.app("smoke_pg", database={"postgresql": dsn})
    for name in ("pause", "pause_noop"):
        apps[name].start(jobs=True)
    for name in ("reload_bad", "reload_ok", "stop", "smoke_bad", "smoke_pg"):
        apps[name].start()
    before = {name: apps[name].pid() for name in ("reload_bad", "reload_ok")}
    # reload_bad: the file on disk broken while the application runs; reload_ok: a valid change.
    apps["reload_bad"].config_path.write_text(json.dumps(dict(apps["reload_bad"].config, port="eighty")))
    apps["reload_ok"].write_config(dict(apps["reload_ok"].config, users={"admin": "changed"}))
    root_certs = site.root / "certs"
    root_certs.mkdir()
    certs = {"valid": openssl_cert(root_certs, "valid", now - timedelta(days=1), now + timedelta(days=300)),
             "near": openssl_cert(root_certs, "near", now - timedelta(days=80), now + timedelta(days=5)),
             "expired": openssl_cert(root_certs, "expired", now - timedelta(days=400), now - timedelta(days=35))}
    smoke = {"login": {"url": None, "body": {"username": "admin", "password": PASSWORD}},
             "data": {"url": None, "min_rows": 3}, "upload": {"url": None, "filename": "smoke.txt",
                                                              "content": "uploaded by the smoke check"}}

    def smoke_for(app, upload="/upload"):
        return {"login": dict(smoke["login"], url=app.url + "/login"), "data": dict(smoke["data"], url=app.url + "/data"),
                "upload": dict(smoke["upload"], url=app.url + upload)}

    # Neither needs to run: the refusal comes before anything touches the application.
    foreign = {name: site.app(name) for name in ("foreign_pause", "foreign_resume")}
    for app in foreign.values():
        app.env_file.write_text(FOREIGN_ENV)
    nothing = free_port()
    first = site.run({
        "third": apps["third"].role_vars("restart", lifeboat_service_health_json={"status": "ok", "database": True}),
        "never": {"lifeboat_service_action": "health", "lifeboat_service_manager": "command",
                  "lifeboat_service_health_url": f"http://127.0.0.1:{nothing}/health", "lifeboat_service_attempts": 3,
                  "lifeboat_service_delay": 0.1},
        "pause": apps["pause"].role_vars("pause", jobs=True, lifeboat_service_paused_json={"jobs_enabled": False}),
        # A pause that does not reach the jobs (the application reads no OTHER): it answers 200, but its health
        # says the jobs run, so the pause fails.
        "pause_noop": apps["pause_noop"].role_vars("pause", jobs=True, lifeboat_service_pause_env={"OTHER": "1"},
                                                   lifeboat_service_paused_json={"jobs_enabled": False},
                                                   lifeboat_service_attempts=2, lifeboat_service_delay=0.1),
        "reload_bad": apps["reload_bad"].role_vars("reload", lifeboat_service_config_test=apps["reload_bad"].ctl("configtest")),
        "reload_ok": apps["reload_ok"].role_vars("reload", lifeboat_service_config_test=apps["reload_ok"].ctl("configtest")),
        "stop": apps["stop"].role_vars("stop"),
        "smoke_pg": apps["smoke_pg"].role_vars("smoke", lifeboat_service_smoke=smoke_for(apps["smoke_pg"])),
        # The same application in check mode: everything read, the upload only described.
        "smoke_check": apps["smoke_pg"].role_vars("smoke", case_check_mode=True, lifeboat_service_smoke=dict(
            smoke_for(apps["smoke_pg"]), upload=dict(smoke_for(apps["smoke_pg"])["upload"], filename="check.txt"))),
        "smoke_bad": apps["smoke_bad"].role_vars("smoke", lifeboat_service_smoke=smoke_for(apps["smoke_bad"], "/uploads")),
        "cert_valid": {"lifeboat_service_action": "cert_check", "lifeboat_service_cert_file": certs["valid"]},
        "cert_near": {"lifeboat_service_action": "cert_check", "lifeboat_service_cert_file": certs["near"],
                      "lifeboat_service_cert_warn_days": 30},
        "cert_expired": {"lifeboat_service_action": "cert_check", "lifeboat_service_cert_file": certs["expired"]},
        "foreign_pause": foreign["foreign_pause"].role_vars("pause"),
        "foreign_resume": foreign["foreign_resume"].role_vars("resume"),
        "bad_input": {"lifeboat_service_action": "restart", "lifeboat_service_manager": "command",
                      "lifeboat_service_stop_command": ["/bin/true"]},
    })
    first_seconds, first_output = site.seconds, site.output
    # While paused the job's rows stop growing: six of its intervals without a row.
    paused = apps["pause"].health()
    time.sleep(0.3)
    paused_later = apps["pause"].health()
    paused_env = apps["pause"].env_file.stat()
    # Through playbooks/service.yml, each host's action from the inventory.
    second = site.run({
        "pause": apps["pause"].role_vars("resume", jobs=True, lifeboat_service_resumed_json={"jobs_enabled": True}),
        # Already running: start with a status command changes nothing.
        "third": apps["third"].role_vars("start"),
    }, PROJECT / "playbooks" / "service.yml", "-e", "lifeboat_service_hosts=all")
    resumed = resumed_later = apps["pause"].health()
    # The job writes again: polled (a few rows a second), never longer than 10 s.
    deadline = time.monotonic() + 10
    while resumed_later["job_rows"] <= resumed["job_rows"] and time.monotonic() < deadline:
        time.sleep(0.05)
        resumed_later = apps["pause"].health()
    yield dict(first=first, second=second, apps=dict(apps, **foreign), before=before, paused=(paused, paused_later),
               paused_env=paused_env, resumed=(resumed, resumed_later), seconds=(first_seconds, site.seconds),
               output=first_output + site.output)
    server.drop_db(db)


def failed(result):
    """Whether a case (a host of the shared run) had a failed task: the run's exit status is every host's."""
    return any(task["failed"] for _, task in result.tasks)


def test_health_up_on_the_third_attempt(runs):
    result = runs["first"]["third"]
    assert not failed(result), result.stdout[-2000:]
    attempts = result.result(ROLE + "Ask the health URL until it answers 200")["attempts"]
    assert [a["status"] for a in attempts] == [503, 503, 200]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all(a["time"].endswith("Z") for a in attempts) and attempts[2]["error"] is None
    assert "answered 503, not 200" in attempts[0]["error"]
    assert result.result(ROLE + "Start the service")["changed"]
    # The second run's start finds it running (its status command): nothing started, nothing changed.
    again = runs["second"]["third"]
    assert not failed(again)
    assert again.result(ROLE + "Start the service")["_status"] == "skipped"
    assert not any(r.get("changed") for _, r in again.tasks)


def test_health_that_never_answers_fails_listing_each_attempt(runs):
    result = runs["first"]["never"].result(ROLE + "Ask the health URL until it answers 200")
    assert_one_line(result, "did not answer as expected after 3 attempts 0.1 s apart", "1: ", "2: ", "3: ",
                    "lifeboat_service_attempts")
    assert [a["attempt"] for a in result["attempts"]] == [1, 2, 3]
    assert all(a["status"] is None and "refused" in a["error"].lower() for a in result["attempts"]), result["attempts"]


def test_pause_stops_the_job_and_resume_starts_it(runs):
    app = runs["apps"]["pause"]
    assert not failed(runs["first"]["pause"]), runs["first"]["pause"].stdout[-2000:]
    paused, paused_later = runs["paused"]
    assert paused["jobs_enabled"] is False
    assert paused_later["job_rows"] == paused["job_rows"], "the job kept writing while paused"
    assert runs["paused_env"].st_mode & 0o777 == 0o600
    assert not app.env_file.exists(), "resume left the pause's environment file"
    assert not failed(runs["second"]["pause"])
    resumed, resumed_later = runs["resumed"]
    assert resumed["jobs_enabled"] is True
    assert resumed_later["job_rows"] > resumed["job_rows"], "the job does not write after resume"
    assert resumed["pid"] != paused["pid"], "resume did not restart the application"
    # Each waited for the health answer to show the jobs stopped, then running again.
    wait = ROLE + "Ask the health URL until it answers 200"
    assert runs["first"]["pause"].result(wait)["invocation"]["module_args"]["json"] == {"jobs_enabled": False}
    assert runs["second"]["pause"].result(wait)["invocation"]["module_args"]["json"] == {"jobs_enabled": True}


def test_pause_that_leaves_the_jobs_running_fails(runs):
    result = runs["first"]["pause_noop"].result(ROLE + "Ask the health URL until it answers 200")
    assert_one_line(result, "did not answer as expected after 2 attempts",
                    "its JSON field jobs_enabled is true, not false")


def test_an_environment_file_that_is_not_lifeboats_is_refused(runs):
    for name, action in (("foreign_pause", "paused"), ("foreign_resume", "resumed")):
        result = runs["first"][name]
        assert_one_line(result.result(ROLE + "Refuse an environment file that is not the pause's own"),
                        "is not lifeboat's pause file", f"nothing was {action}",
                        "point lifeboat_service_env_file at a file of its own")
        assert runs["apps"][name].env_file.read_text() == FOREIGN_ENV, f"{name} changed the application's env file"
        ran = [task for task, task_result in result.tasks if task_result["_status"] != "skipped"]
        assert not [task for task in ran if task.startswith(tuple(ROLE + verb for verb in ("Write", "Remove", "Stop", "Start")))], ran
    assert "app-secret-never-shown" not in runs["output"]


def test_reload_with_a_failing_config_test_leaves_the_service_alone(runs):
    app = runs["apps"]["reload_bad"]
    result = runs["first"]["reload_bad"].result(ROLE + "Refuse to reload a configuration that fails its test")
    assert_one_line(result, "configuration test", "failed (exit 1)", "was not reloaded",
                    "port must be a TCP port number")
    assert ROLE + "Run the reload command" not in [name for name, _ in runs["first"]["reload_bad"].tasks]
    health = app.health()
    assert health["pid"] == runs["before"]["reload_bad"] and health["reloads"] == 0


def test_reload_after_a_passing_config_test(runs):
    app = runs["apps"]["reload_ok"]
    assert not failed(runs["first"]["reload_ok"]), runs["first"]["reload_ok"].stdout[-2000:]
    health = app.health()
    assert health["pid"] == runs["before"]["reload_ok"] and health["reloads"] == 1


def test_stop(runs):
    result = runs["first"]["stop"]
    assert not failed(result) and result.result(ROLE + "Stop the service")["changed"]
    assert runs["apps"]["stop"].pid() is None


def test_smoke_checks_over_postgresql(runs):
    result = runs["first"]["smoke_pg"]
    assert not failed(result), result.stdout[-2000:]
    checks = result.result(ROLE + "Run the smoke checks")["checks"]
    assert [(c["name"], c["ok"]) for c in checks] == [("health", True), ("login", True), ("data", True), ("upload", True)]
    assert checks[2]["rows"] == 3
    uploaded = runs["apps"]["smoke_pg"].uploads / "smoke.txt"
    assert uploaded.read_text() == "uploaded by the smoke check"
    # The file stays on the service: the one change a smoke check makes.
    assert result.result(ROLE + "Run the smoke checks")["changed"]


def test_smoke_checks_in_check_mode_send_no_upload(runs):
    result = runs["first"]["smoke_check"]
    assert not failed(result), result.stdout[-2000:]
    smoke = result.result(ROLE + "Run the smoke checks")
    assert not smoke["changed"]
    checks = {c["name"]: c for c in smoke["checks"]}
    assert [(name, c["ok"]) for name, c in checks.items()] == [("health", True), ("login", True), ("data", True),
                                                                ("upload", True)]
    assert checks["data"]["rows"] == 3 and checks["login"]["status"] == 200
    app = runs["apps"]["smoke_pg"]
    assert checks["upload"]["status"] is None
    assert checks["upload"]["detail"] == (f"not sent in check mode: would POST check.txt (27 bytes) to {app.url}/upload")
    assert not (app.uploads / "check.txt").exists(), "check mode sent the upload"


def test_smoke_check_failing_on_purpose(runs):
    result = runs["first"]["smoke_bad"].result(ROLE + "Run the smoke checks")
    assert_one_line(result, "smoke checks failed: upload (answered 404")
    assert result["failed_checks"] == ["upload"]
    assert [c["name"] for c in result["checks"] if c["ok"]] == ["health", "login", "data"]


def test_secrets_never_shown(runs):
    # The login's password: not in the output, nor in any task's result (the record holds each one whole).
    assert PASSWORD not in runs["output"]
    # The token the login gave: no result carries it (each check says only how it went).
    for name in ("smoke_pg", "smoke_check", "smoke_bad"):
        checks = runs["first"][name].result(ROLE + "Run the smoke checks")["checks"]
        assert all(set(check) <= {"name", "ok", "status", "detail", "elapsed_ms", "rows"} for check in checks), checks


def test_cert_check(runs):
    valid = runs["first"]["cert_valid"].result(ROLE + "Check the certificate's expiry")
    assert valid["state"] == "ok" and 298 <= valid["days_left"] <= 300 and not valid.get("warnings")
    near = runs["first"]["cert_near"]
    assert not failed(near)
    near = near.result(ROLE + "Check the certificate's expiry")
    assert near["state"] == "warning" and near["days_left"] == 4
    assert any("expires on" in w and "less than 30" in w for w in near["warnings"]), near
    expired = runs["first"]["cert_expired"].result(ROLE + "Check the certificate's expiry")
    assert_one_line(expired, "expired on", "35 days ago", "renew it")
    assert expired["state"] == "expired"


def test_bad_input_is_one_line(runs):
    result = runs["first"]["bad_input"].result(ROLE + "Check the service's settings")
    assert_one_line(result, "lifeboat_service_start_command is required with lifeboat_service_manager command for "
                            "action restart", "lifeboat_service_health_url is required for action restart")


def test_time(runs):
    # The suite's budget: both runs of every case together.
    print("service runs: %.1f s + %.1f s" % runs["seconds"])
