"""roles/lifeboat_schedule through ansible-playbook: cron file, systemd units, the runner's lock and log.

Everything is written under tmp_path (every path of the role is a variable) and no PostgreSQL server
is needed, so these tests run the role with a small local inventory of their own.
"""
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, PROJECT, PlayResult, assert_one_line

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
HOST = "target"
MARKER = "# Managed by Ansible, role lifeboat_schedule:"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"


class Target:
    """A fake root under tmp_path for the role's files, and the playbook runs that write them."""

    def __init__(self, root):
        self.root = root
        self.cron_file = root / "etc/cron.d/lifeboat"
        self.systemd_dir = root / "etc/systemd/system"
        self.logrotate_file = root / "etc/logrotate.d/lifeboat"
        self.runner = root / "usr/local/libexec/lifeboat/run-job"
        self.log_dir, self.lock_dir = root / "var/log/lifeboat", root / "var/lib/lifeboat/locks"
        for directory in (self.cron_file.parent, self.systemd_dir, self.logrotate_file.parent):
            directory.mkdir(parents=True, exist_ok=True)

    def jobs(self, disabled=()):
        """Three jobs: arguments a shell, cron or systemd would mangle, a slow one, a failing one."""
        jobs = [
            {"name": "backup-daily", "schedule": "0 2 * * *", "description": "daily full backup at 02:00 (seed 002)",
             "command": ["/bin/echo", "it's 100% done", "$HOME", "a;b"]},
            {"name": "backup-delta", "schedule": "0 */4 * * *", "timeout": 60,
             "command": ["/bin/sh", "-c", "echo working; sleep 2; echo done"]},
            {"name": "fails", "schedule": "15 * * * 1-5", "log": str(self.root / "custom.log"),
             "command": ["/bin/sh", "-c", "echo broken >&2; exit 3"]},
        ]
        return [dict(job, user=USER, enabled=job["name"] not in disabled) for job in jobs]

    def apply(self, jobs=None, check=False, env=None, **variables):
        """Run a play applying the role to this root; jobs default to self.jobs(), None keeps the role's."""
        work = self.root.parent / "play"
        work.mkdir(exist_ok=True)
        host = {"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python"),
                "lifeboat_schedule_activate": False, "lifeboat_schedule_owner": USER, "lifeboat_schedule_group": GROUP,
                "lifeboat_schedule_runner": str(self.runner), "lifeboat_schedule_log_dir": str(self.log_dir),
                "lifeboat_schedule_lock_dir": str(self.lock_dir), "lifeboat_schedule_cron_file": str(self.cron_file),
                "lifeboat_schedule_systemd_dir": str(self.systemd_dir),
                "lifeboat_schedule_logrotate_file": str(self.logrotate_file), **variables}
        if jobs is not None:
            host["lifeboat_schedule_jobs"] = jobs
        (work / "inventory.json").write_text(json.dumps({"all": {"hosts": {HOST: host}}}))
        play = [{"name": "schedule", "hosts": HOST, "gather_facts": False, "roles": ["lifeboat_schedule"]}]
        (work / "play.yml").write_text(json.dumps(play))
        record = work / "results.jsonl"
        record.unlink(missing_ok=True)
        env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
                   ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="record_results", LIFEBOAT_TEST_RECORD=str(record), **(env or {}))
        argv = [str(BIN / "ansible-playbook"), "-i", str(work / "inventory.json"), str(work / "play.yml")]
        proc = subprocess.run([*argv, *(["--check", "--diff"] if check else [])], cwd=PROJECT, env=env,
                              capture_output=True, text=True, timeout=120)
        return PlayResult(proc, HOST, record)

    def files(self):
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if not p.is_dir())

    def cron_lines(self, text=None):
        """{job name: its line} of the cron file's job lines."""
        text = self.cron_file.read_text() if text is None else text
        return {line.split()[7]: line for line in text.splitlines() if line and not line.startswith(("#", "SHELL"))}

    def unit(self, name):
        return (self.systemd_dir / name).read_text()


def changed_tasks(play):
    return [name for name, result in play.tasks if result.get("changed")]


def cron_command(line):
    """What cron runs for a line: the five fields, the user, and the command (% unescaped) as sh splits it."""
    fields = line.split(None, 6)
    return fields[:5], fields[5], shlex.split(fields[6].replace("\\%", "%"))


def run_job(target, name):
    """Start a job's runner exactly as its cron line says (as this user)."""
    _, _, argv = cron_command(target.cron_lines()[name])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def cron_target(tmp_path_factory):
    """One cron install shared by the tests below; the last of them disables a job."""
    target = Target(tmp_path_factory.mktemp("cron") / "root")
    play = target.apply(target.jobs())
    assert play.rc == 0, play.stdout[-3000:]
    return target


def test_cron_file_has_every_job_with_its_schedule_user_runner_log_and_lock(cron_target):
    t = cron_target
    text = t.cron_file.read_text()
    assert text.startswith(MARKER)
    paths = (t.cron_file, t.runner, t.runner.parent, t.log_dir, t.lock_dir)
    assert [oct(p.stat().st_mode & 0o777) for p in paths] == ["0o644", "0o755", "0o755", "0o750", "0o750"]
    assert "# backup-daily: daily full backup at 02:00 (seed 002)\n" in text
    lines = t.cron_lines()
    assert "100\\%" in lines["backup-daily"], "an unescaped % ends a cron command"
    expected = {
        "backup-daily": (["0", "2", "*", "*", "*"], [], ["/bin/echo", "it's 100% done", "$HOME", "a;b"]),
        "backup-delta": (["0", "*/4", "*", "*", "*"], ["--timeout", "60"],
                         ["/bin/sh", "-c", "echo working; sleep 2; echo done"]),
        "fails": (["15", "*", "*", "*", "1-5"], [], ["/bin/sh", "-c", "echo broken >&2; exit 3"]),
    }
    assert sorted(lines) == sorted(expected)
    for name, (fields, options, command) in expected.items():
        log = t.root / "custom.log" if name == "fails" else t.log_dir / f"{name}.log"
        lock = t.lock_dir / f"{name}.lock"
        assert cron_command(lines[name]) == (
            fields, USER, [str(t.runner), name, "--log", str(log), "--lock", str(lock), *options, "--", *command])
    rotated = t.logrotate_file.read_text()
    assert f'"{t.log_dir}/backup-daily.log"\n' in rotated and f'"{t.root}/custom.log"\n' in rotated


def test_a_second_start_is_skipped_while_the_job_runs(cron_target):
    log = cron_target.log_dir / "backup-delta.log"
    first = run_job(cron_target, "backup-delta")
    deadline = time.monotonic() + 10
    while not (log.exists() and "start: backup-delta" in log.read_text()):  # the lock is taken before the start line
        assert time.monotonic() < deadline and first.poll() is None, "the first run did not start"
        time.sleep(0.05)
    second = run_job(cron_target, "backup-delta")
    assert second.wait(timeout=10) == 75
    assert first.wait(timeout=10) == 0
    assert [p.stdout.read() + p.stderr.read() for p in (first, second)] == ["", ""], "everything goes to the log"
    lines = log.read_text().splitlines()
    assert len(lines) == 5, lines
    start, output, end = lines[0], [line for line in lines if not re.match(STAMP, line)], lines[-1]
    (skip,) = [line for line in lines if "skipped" in line]
    assert re.fullmatch(rf"{STAMP} start: backup-delta \(pid {first.pid}\): /bin/sh -c .*", start), start
    assert re.fullmatch(rf"{STAMP} skipped: backup-delta still running since {STAMP} \(pid {first.pid}\)", skip), skip
    assert output == ["working", "done"]
    assert re.fullmatch(rf"{STAMP} end: backup-delta exit 0 after \d+ s", end), end
    assert oct(log.stat().st_mode & 0o777) == "0o640"


def test_a_failing_command_exit_status_is_logged_and_returned(cron_target):
    assert run_job(cron_target, "fails").wait(timeout=10) == 3
    lines = (cron_target.root / "custom.log").read_text().splitlines()
    assert lines[1:] == ["broken", lines[2]] and re.fullmatch(rf"{STAMP} end: fails exit 3 after \d+ s", lines[2]), lines
    assert run_job(cron_target, "backup-daily").wait(timeout=10) == 0
    assert (cron_target.log_dir / "backup-daily.log").read_text().splitlines()[1] == "it's 100% done $HOME a;b"


def test_second_run_changes_nothing_and_a_disabled_job_loses_its_line(cron_target):
    again = cron_target.apply(cron_target.jobs())
    assert again.rc == 0 and changed_tasks(again) == [], changed_tasks(again)
    disabled = cron_target.apply(cron_target.jobs(disabled=["backup-daily"]))
    assert disabled.rc == 0, disabled.stdout[-3000:]
    assert sorted(cron_target.cron_lines()) == ["backup-delta", "fails"]
    assert (cron_target.log_dir / "backup-daily.log").exists(), "a disabled job's log is kept"


def test_check_mode_writes_nothing_and_shows_seed_002s_schedule(tmp_path):
    """The role's own jobs, in check mode with --diff: the would-be cron file, and no file written."""
    target = Target(tmp_path / "root")
    play = target.apply(check=True, lifeboat_schedule_project_dir="/opt/lifeboat", inventory_hostname_short="x",
                        lifeboat_backup_kinds={"daily": {}, "delta": {}, "monthly": {}})
    assert play.rc == 0, play.stdout[-3000:]
    assert target.files() == [] and not target.runner.parent.exists()
    (diff,) = play.result(f"lifeboat_schedule : Write every job's line in {target.cron_file}")["diff"]
    lines = target.cron_lines(diff["after"])
    schedules = {name: " ".join(cron_command(line)[0]) for name, line in lines.items()}
    assert schedules == {"backup-daily": "0 2 * * *", "backup-delta": "0 */4 * * *", "backup-monthly": "0 3 1 * *",
                         "partitions": "0 4 1 * *", "partitions-archive": "0 5 15 1 *", "refresh-hourly": "0 * * * *",
                         "refresh-daily": "0 1 * * *", "purge": "0 3 1 * *"}
    ansible = ["/opt/lifeboat/.venv/bin/ansible-playbook", "-i", "/opt/lifeboat/inventories/prod", "--limit", HOST]
    commands = {name: cron_command(line)[2][cron_command(line)[2].index("--") + 1:] for name, line in lines.items()}
    assert commands["backup-delta"] == [*ansible, "/opt/lifeboat/playbooks/backup.yml", "-e", "lifeboat_backup_kind=delta"]
    assert commands["purge"] == [*ansible, "/opt/lifeboat/playbooks/maintenance.yml", "-e", "maintenance_task=purge"]
    assert {cron_command(line)[1] for line in lines.values()} == {"root"}


FAKE_SYSTEMCTL = r"""#!{python}
# systemctl for a host where systemd does not run: units are loaded from the unit directory by
# daemon-reload only, can be enabled and started only once loaded; every call is recorded.
import json, os, sys
from pathlib import Path
state_file, unit_dir = Path(os.environ["FAKE_SYSTEMD_STATE"]), Path(os.environ["FAKE_SYSTEMD_UNIT_DIR"])
state = json.loads(state_file.read_text()) if state_file.exists() else {{"loaded": [], "enabled": [], "active": [], "calls": []}}
verb, *units = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
state["calls"].append(" ".join([verb, *units]))
unit, status = (units or [None])[0], 0
if verb == "daemon-reload":
    state["loaded"] = sorted(path.name for path in unit_dir.iterdir())
elif verb == "show":
    load = "loaded" if unit in state["loaded"] else "not-found"
    print(f"Id={{unit}}\nLoadState={{load}}\nActiveState={{'active' if unit in state['active'] else 'inactive'}}")
elif verb == "is-enabled":
    print("enabled" if unit in state["enabled"] else "disabled")
    status = 0 if unit in state["enabled"] else 1
elif verb in ("enable", "disable", "start", "stop") and unit in state["loaded"]:
    key = "enabled" if verb in ("enable", "disable") else "active"
    state[key] = sorted(set(state[key]) | {{unit}} if verb in ("enable", "start") else set(state[key]) - {{unit}})
else:
    print(f"{{verb}} {{unit}}: not loaded or not supported", file=sys.stderr)
    status = 5
state_file.write_text(json.dumps(state))
sys.exit(status)
"""


def fake_systemd(tmp_path, unit_dir):
    """The environment of a run whose systemctl is FAKE_SYSTEMCTL, and a function reading its state."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL.format(python=BIN / "python"))
    (bin_dir / "systemctl").chmod(0o755)
    state = tmp_path / "systemd-state.json"
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SYSTEMD_STATE": str(state),
           "FAKE_SYSTEMD_UNIT_DIR": str(unit_dir)}
    return env, lambda: json.loads(state.read_text())


def test_systemd_units_replace_the_cron_file_and_follow_the_job_list(tmp_path):
    target = Target(tmp_path / "root")
    env, systemd = fake_systemd(tmp_path, target.systemd_dir)
    target.cron_file.write_text(f"{MARKER} an earlier cron schedule\n")
    hand_written = target.systemd_dir / "lifeboat-mine.service"
    hand_written.write_text("[Service]\nExecStart=/bin/true\n")
    jobs = target.jobs()[:1] + [{"name": "weekdays", "on_calendar": "Mon..Fri *-*-* 08:30:00", "command": ["/bin/true"],
                                 "user": USER}]
    play = target.apply(jobs, env=env, lifeboat_schedule_backend="systemd", lifeboat_schedule_activate=True)
    assert play.rc == 0, play.stdout[-3000:]
    assert not target.cron_file.exists(), "the cron schedule would run every job a second time"
    units = sorted(p.name for p in target.systemd_dir.iterdir())
    assert units == ["lifeboat-backup-daily.service", "lifeboat-backup-daily.timer", "lifeboat-mine.service",
                     "lifeboat-weekdays.service", "lifeboat-weekdays.timer"]
    timers = {name: re.search(r"^OnCalendar=(.*)$", target.unit(f"lifeboat-{name}.timer"), re.M)[1]
              for name in ("backup-daily", "weekdays")}
    assert timers == {"backup-daily": "*-*-* 02:00:00", "weekdays": "Mon..Fri *-*-* 08:30:00"}
    service = target.unit("lifeboat-backup-daily.service")
    log, lock = target.log_dir / "backup-daily.log", target.lock_dir / "backup-daily.lock"
    assert f"\nExecStart={target.runner} backup-daily --log {log} --lock {lock} -- " \
           '/bin/echo "it\'s 100%% done" "$$HOME" "a;b"\n' in service
    assert f"\nUser={USER}\n" in service and "\nType=oneshot\n" in service and "\nSuccessExitStatus=75\n" in service
    assert "\nPersistent=true\n" in target.unit("lifeboat-backup-daily.timer")
    analyze = shutil.which("systemd-analyze")
    if analyze:
        units = [str(target.systemd_dir / f"lifeboat-{name}.{kind}") for name in timers for kind in ("service", "timer")]
        verify = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr

    timer_units = [f"lifeboat-{name}.timer" for name in timers]
    state = systemd()
    assert state["calls"][0] == "daemon-reload", "the timers are started after systemd read their files"
    assert (state["enabled"], state["active"]) == (timer_units, timer_units)

    play = target.apply(jobs[1:], env=env, lifeboat_schedule_backend="systemd", lifeboat_schedule_activate=True)
    assert play.rc == 0, play.stdout[-3000:]
    assert sorted(p.name for p in target.systemd_dir.iterdir()) == [
        "lifeboat-mine.service", "lifeboat-weekdays.service", "lifeboat-weekdays.timer"], \
        "only the role's own units are removed"
    calls = systemd()["calls"][len(state["calls"]):]
    assert [c for c in calls if c.split()[0] in ("stop", "disable", "daemon-reload")] == [
        "disable lifeboat-backup-daily.timer", "stop lifeboat-backup-daily.timer", "daemon-reload"]
    assert (systemd()["enabled"], systemd()["active"]) == (timer_units[1:], timer_units[1:])
    assert "lifeboat_schedule : Enable and start each job's timer" not in changed_tasks(play)


@pytest.mark.parametrize("change, message", [
    ({"schedule": "0 2 * *"}, "lifeboat_schedule_jobs: job backup-daily: schedule '0 2 * *' has 4 fields; cron needs 5"),
    ({"command": None}, "lifeboat_schedule_jobs: job backup-daily: command must be a non-empty list of arguments"),
    ({"name": "fails"}, "lifeboat_schedule_jobs: job name fails is used twice"),
])
def test_bad_jobs_fail_in_one_line_before_anything_is_written(tmp_path, change, message):
    target = Target(tmp_path / "root")
    jobs = target.jobs()
    jobs[0] = {key: value for key, value in {**jobs[0], **change}.items() if value is not None}
    play = target.apply(jobs)
    assert play.rc != 0
    assert_one_line(play.result("lifeboat_schedule : Check the jobs"), message)
    assert target.files() == [] and not target.runner.parent.exists()


def test_absent_removes_everything_the_role_installed_and_keeps_logs_unless_asked(tmp_path):
    """lifeboat_schedule_state: absent takes back the runner, the cron file, the logrotate snippet, the
    locks and the role's folders; the logs (the record of what the jobs did) go only with remove_logs."""
    target = Target(tmp_path / "root")
    assert target.apply(target.jobs()).rc == 0
    assert run_job(target, "backup-daily").wait(timeout=10) == 0
    assert run_job(target, "fails").wait(timeout=10) == 3
    (target.log_dir / "backup-daily.log.1.gz").write_bytes(b"rotated")
    mine = target.cron_file.parent / "mine"
    mine.write_text("0 1 * * * root /bin/true\n")
    kept = target.apply(target.jobs(), lifeboat_schedule_state="absent")
    assert kept.rc == 0, kept.stdout[-3000:]
    assert target.files() == ["custom.log", "etc/cron.d/mine", "var/log/lifeboat/backup-daily.log",
                              "var/log/lifeboat/backup-daily.log.1.gz"]
    assert not target.runner.parent.exists() and not target.lock_dir.exists()
    gone = target.apply(target.jobs(), lifeboat_schedule_state="absent", lifeboat_schedule_remove_logs=True)
    assert gone.rc == 0, gone.stdout[-3000:]
    assert target.files() == ["etc/cron.d/mine"] and not target.log_dir.exists()
    again = target.apply(target.jobs(), lifeboat_schedule_state="absent", lifeboat_schedule_remove_logs=True)
    assert again.rc == 0 and changed_tasks(again) == [], changed_tasks(again)


def test_absent_stops_and_removes_the_systemd_units(tmp_path):
    target = Target(tmp_path / "root")
    env, systemd = fake_systemd(tmp_path, target.systemd_dir)
    hand_written = target.systemd_dir / "lifeboat-mine.service"
    hand_written.write_text("[Service]\nExecStart=/bin/true\n")
    jobs = target.jobs()[:2]
    play = target.apply(jobs, env=env, lifeboat_schedule_backend="systemd", lifeboat_schedule_activate=True)
    assert play.rc == 0, play.stdout[-3000:]
    before = len(systemd()["calls"])
    play = target.apply(jobs, env=env, lifeboat_schedule_backend="systemd", lifeboat_schedule_activate=True,
                        lifeboat_schedule_state="absent")
    assert play.rc == 0, play.stdout[-3000:]
    assert target.files() == ["etc/systemd/system/lifeboat-mine.service"]
    calls = systemd()["calls"][before:]
    assert [c for c in calls if c.split()[0] in ("stop", "disable", "daemon-reload")] == [
        "disable lifeboat-backup-daily.timer", "stop lifeboat-backup-daily.timer",
        "disable lifeboat-backup-delta.timer", "stop lifeboat-backup-delta.timer", "daemon-reload"]
    assert (systemd()["enabled"], systemd()["active"]) == ([], [])


@pytest.mark.skipif(os.getuid() != 0, reason="jobs run by another user are installed by root")
def test_a_job_user_who_could_not_write_its_log_is_refused_before_anything_is_written(tmp_path):
    """Owner root, group root, log folder 0750: nobody (not in the group) could never open its log,
    and every run would exit 73. A user that does not exist is refused the same way."""
    target = Target(tmp_path / "root")
    jobs = target.jobs()
    jobs[0]["user"], jobs[1]["user"] = "nobody", "lifeboat-no-such-user"
    play = target.apply(jobs)
    assert play.rc != 0
    refused = play.result("lifeboat_schedule : Check that each job's user can open its log and lock")
    assert_one_line(refused, f"job backup-daily: user nobody cannot open its log {target.log_dir}/backup-daily.log",
                    "job backup-delta: user lifeboat-no-such-user does not exist on this host")
    assert target.files() == [] and not target.runner.parent.exists()


# -- pgBackRest's backups and verify (issue 19) ---------------------------------------------------------

PGBACKREST_TIMES = {"full": "30 1 * * 0", "diff": "30 1 * * 1-6", "incr": "15 * * * *", "verify": "30 4 * * 6"}


@pytest.fixture(scope="module")
def pgbackrest():
    """A Debian PostgreSQL 15 cluster archiving into a pgBackRest path repository (a full and an incremental
    backup), shared by the tests below. Its local socket trusts every login, as peer authentication lets a
    host's postgres in: pgbackrest, run by the jobs and the playbooks as that account, gets no password."""
    import pgbackrest_stanza  # tests/tools, on sys.path through conftest
    if os.getuid() != 0:
        pytest.skip("the pgBackRest jobs run as the account PostgreSQL runs as, which only root can switch to")
    if pgbackrest_stanza.missing():
        pytest.skip(pgbackrest_stanza.missing())
    stanza = pgbackrest_stanza.Stanza("schedule-%s" % os.environ.get("PYTEST_XDIST_WORKER", "main"))
    try:
        facts = stanza.start()
        hba = Path(facts["data_dir"]) / "pg_hba.conf"
        hba.write_text("local all all trust\n" + hba.read_text())
        stanza.pg_ctl("reload")
        yield stanza, facts
    finally:
        # The server stops and its data, repository included, goes, whatever the tests did.
        stanza.stop(destroy=True)


def stanza_backups(stanza):
    """The types of the stanza's backups, oldest first, as pgBackRest lists them."""
    return [b["type"] for b in json.loads(stanza.pgbackrest("info", "--output=json").stdout)[0]["backup"]]


def test_pgbackrest_jobs_per_stanza_run_as_the_database_user_and_share_a_lock(pgbackrest):
    """Four jobs per stanza with their times, run as the database OS user; then the cron lines run for real,
    as cron would, against a Debian PostgreSQL 15 stanza archiving into a path repository: an incremental
    backup lands in the repository, a verify reads it back, and a differential started while the full
    backup of the same stanza runs is skipped (exit 75) instead of failing on pgBackRest's own lock."""
    stanza, facts = pgbackrest
    account = pwd.getpwnam(stanza.user)
    group = grp.getgrgid(account.pw_gid).gr_name
    # Under the stanza's folder, which its account can pass through (tmp_path is root's 0700).
    target = Target(stanza.base / "schedule")
    variables = dict(lifeboat_schedule_pgbackrest=True, lifeboat_schedule_pgbackrest_times=PGBACKREST_TIMES,
                     lifeboat_pgbackrest_stanzas=[{"name": facts["stanza"]}, {"name": "other.db"}],
                     lifeboat_pgbackrest_config=facts["config"], lifeboat_pgbackrest_db_user=stanza.user,
                     lifeboat_schedule_group=group)
    play = target.apply([], **variables)
    assert play.rc == 0, play.stdout[-3000:] + play.stderr[-2000:]
    lines = target.cron_lines()
    assert sorted(lines) == sorted(f"pgbackrest-{kind}-{name}" for kind in PGBACKREST_TIMES
                                   for name in (facts["stanza"], "other_db"))
    for kind, times in PGBACKREST_TIMES.items():
        schedule, user, argv = cron_command(lines[f"pgbackrest-{kind}-{facts['stanza']}"])
        assert (" ".join(schedule), user) == (times, stanza.user)
        lock = argv[argv.index("--lock") + 1]
        assert lock == str(target.lock_dir / f"pgbackrest-{facts['stanza']}.lock"), "one lock per stanza"
        command = argv[argv.index("--") + 1:]
        assert command[:4] == ["/usr/bin/pgbackrest", f"--config={facts['config']}", f"--stanza={facts['stanza']}",
                               "--log-level-console=info"]
        assert command[4:] == (["verify"] if kind == "verify" else ["backup", f"--type={kind}"])
    assert "--stanza=other.db" in cron_command(lines["pgbackrest-full-other_db"])[2]
    assert oct(target.log_dir.stat().st_mode & 0o777) == "0o750" and target.log_dir.stat().st_gid == account.pw_gid

    def run(name):
        """The job's cron line, as cron starts it: as the line's user, with that user's group only."""
        _, user, argv = cron_command(target.cron_lines()[name])
        entry = pwd.getpwnam(user)
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/", env=env,
                                user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])

    def backups():
        return stanza_backups(stanza)

    before = backups()
    incr = run(f"pgbackrest-incr-{facts['stanza']}")
    assert incr.wait(120) == 0, (incr.stderr.read(), (target.log_dir / f"pgbackrest-incr-{facts['stanza']}.log").read_text())
    assert backups() == before + ["incr"]
    log = (target.log_dir / f"pgbackrest-incr-{facts['stanza']}.log").read_text()
    assert re.search(rf"^{STAMP} end: pgbackrest-incr-{facts['stanza']} exit 0 after \d+ s$", log, re.M), log
    assert "new backup label" in log, "pgBackRest's INFO lines are the record of what the job backed up"

    full = run(f"pgbackrest-full-{facts['stanza']}")
    full_log = target.log_dir / f"pgbackrest-full-{facts['stanza']}.log"
    deadline = time.monotonic() + 30
    while "start: " not in (full_log.read_text() if full_log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    diff = run(f"pgbackrest-diff-{facts['stanza']}")
    assert diff.wait(60) == 75, "the differential must wait for the next turn, not fight the full backup"
    assert full.wait(120) == 0, full_log.read_text()
    assert "skipped: pgbackrest-diff-" in (target.log_dir / f"pgbackrest-diff-{facts['stanza']}.log").read_text()
    assert backups() == before + ["incr", "full"]

    verify = run(f"pgbackrest-verify-{facts['stanza']}")
    assert verify.wait(120) == 0, (target.log_dir / f"pgbackrest-verify-{facts['stanza']}.log").read_text()

    # systemd: the same jobs as units run by the database OS user.
    play = target.apply([], lifeboat_schedule_backend="systemd", **variables)
    assert play.rc == 0, play.stdout[-3000:]
    service = target.unit(f"lifeboat-pgbackrest-verify-{facts['stanza']}.service")
    assert f"\nUser={stanza.user}\n" in service and f"--stanza={facts['stanza']}" in service
    assert "\nOnCalendar=Sat *-*-* 04:30:00\n" in target.unit(f"lifeboat-pgbackrest-verify-{facts['stanza']}.timer")
    assert "\nOnCalendar=Mon..Sat *-*-* 01:30:00\n" in target.unit("lifeboat-pgbackrest-diff-other_db.timer")

    # Turned off: the jobs go, their logs stay.
    play = target.apply([], **dict(variables, lifeboat_schedule_pgbackrest=False))
    assert play.rc == 0, play.stdout[-3000:]
    assert target.cron_lines() == {} and not list(target.systemd_dir.iterdir())
    assert full_log.exists()

    play = target.apply([], **dict(variables, lifeboat_schedule_pgbackrest_times={"weekly": "0 1 * * 0"}))
    assert play.rc != 0
    assert_one_line(play.result("lifeboat_schedule : Check the pgBackRest schedule's stanzas and times"),
                    "lifeboat_schedule_pgbackrest: lifeboat_schedule_pgbackrest_times: weekly is not one of "
                    "full, diff, incr, verify")


def run_playbook(pgbackrest, tmp_path, playbook, host_vars=None, extra=()):
    """A playbook of playbooks/ on this machine as a database host of group databases: local connection,
    sudo to the stanza's account (as the inventories become postgres), lifeboat_connection to its server."""
    stanza, facts = pgbackrest
    # Debian's python3 (with its psycopg): the account cannot reach this venv's, under root's home.
    host = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become": True, "ansible_become_user": stanza.user, "ansible_become_method": "sudo",
            "lifeboat_connection": {"login_unix_socket": facts["socket_dir"], "port": facts["port"],
                                    "login_user": facts["user"]},
            "lifeboat_pgbackrest_stanzas": [{"name": facts["stanza"], "socket_path": facts["socket_dir"],
                                             "port": facts["port"]}],
            "lifeboat_pgbackrest_config": facts["config"], **(host_vars or {})}
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"children": {"databases": {"hosts": {HOST: host}}}}}))
    record = tmp_path / "results.jsonl"
    record.unlink(missing_ok=True)
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
               ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="record_results", LIFEBOAT_TEST_RECORD=str(record))
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(PROJECT / "playbooks" / playbook), *extra]
    proc = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    return PlayResult(proc, HOST, record)


def test_pitr_backup_playbook_backs_up_or_verifies_each_stanza_as_awx_schedules_it(pgbackrest, tmp_path):
    """playbooks/pitr_backup.yml, the job of AWX's pgbackrest-* schedules: a differential lands in the
    repository and the stanza's state is handed on (set_stats); verify reads it back; no type is one line."""
    stanza, facts = pgbackrest
    before = stanza_backups(stanza)
    play = run_playbook(pgbackrest, tmp_path, "pitr_backup.yml", extra=["-e", "lifeboat_pgbackrest_backup_type=diff"])
    assert play.rc == 0, play.stdout[-3000:] + play.stderr[-2000:]
    assert stanza_backups(stanza) == before + ["diff"]
    (read,) = play.result("lifeboat_pgbackrest_backup : Read each stanza")["results"]
    assert read["backups"][-1]["type"] == "diff" and not read["archiver"]["failing"]
    stats = play.result("lifeboat_pgbackrest_backup : Hand the stanzas' state to the next job "
                        "(lifeboat_pgbackrest_backup)")["ansible_stats"]["data"]["lifeboat_pgbackrest_backup"]
    (view,) = stats[HOST]
    assert (view["stanza"], view["latest"]["type"], view["latest"]["label"]) == (
        facts["stanza"], "diff", read["backups"][-1]["label"])
    assert view["problems"] == [] and 0 <= view["exposure_seconds"] < 300

    play = run_playbook(pgbackrest, tmp_path, "pitr_backup.yml", extra=["-e", "lifeboat_pgbackrest_backup_type=verify"])
    assert play.rc == 0, play.stdout[-3000:] + play.stderr[-2000:]
    (read,) = play.result("lifeboat_pgbackrest_backup : Read each stanza and verify its repository")["results"]
    assert read["verify"]["ok"] and read["verify"]["problems"] == 0
    assert stanza_backups(stanza) == before + ["diff"], "verify backs nothing up"

    play = run_playbook(pgbackrest, tmp_path, "pitr_backup.yml")
    assert play.rc != 0 and "missing required arguments: lifeboat_pgbackrest_backup_type" in play.stdout

    # A stanza pgBackRest does not know: the others are still backed up, then one line says which failed.
    stanzas = [{"name": "nowhere"}, {"name": facts["stanza"], "socket_path": facts["socket_dir"], "port": facts["port"]}]
    play = run_playbook(pgbackrest, tmp_path, "pitr_backup.yml", {"lifeboat_pgbackrest_stanzas": stanzas},
                        ["-e", "lifeboat_pgbackrest_backup_type=incr"])
    assert play.rc != 0
    assert_one_line(play.result("lifeboat_pgbackrest_backup : Check that every stanza was backed up"),
                    "pgbackrest backup --type=incr failed: stanza nowhere (exit ", "ERROR: [",
                    "see pgBackRest's log on the host")
    assert facts["stanza"] + " (exit" not in play.result(
        "lifeboat_pgbackrest_backup : Check that every stanza was backed up")["msg"]
    assert stanza_backups(stanza) == before + ["diff", "incr"]


def test_the_fleet_summary_and_report_show_each_stanza_beside_the_logical_backups(pgbackrest, tmp_path):
    """playbooks/fleet.yml on a host with pgBackRest set up: the summary (JSON, Markdown) and report.html
    hold its stanza - newest backup, type, age, archive range, exposure, archiving. Then archive_command
    is broken for real: the next run says archiving is failing, the host is not ok and the run fails."""
    stanza, facts = pgbackrest
    evidence = tmp_path / "evidence"
    # A production host with no logical databases: nothing to back up or drill, only its stanza to read.
    fleet_vars = {"lifeboat_production": True, "lifeboat_backup_databases": []}
    # The summary is the controller's (localhost's) play: its folder comes from the command line.
    extra = ["-e", f"lifeboat_fleet_evidence_dir={evidence}"]
    play = run_playbook(pgbackrest, tmp_path, "fleet.yml", fleet_vars, extra)
    assert play.rc == 0, play.stdout[-3000:] + play.stderr[-2000:]
    summary = json.loads((evidence / "latest-summary.json").read_text())
    (row,) = summary["hosts"]
    assert row["state"] == "ok" and row["problems"] == []
    (view,) = row["physical"]
    newest = json.loads(stanza.pgbackrest("info", "--output=json").stdout)[0]["backup"][-1]
    assert (view["host"], view["stanza"], view["status"]) == (HOST, facts["stanza"], "ok")
    assert view["latest"]["label"] == newest["label"] and view["latest"]["type"] == newest["type"]
    assert 0 <= view["latest"]["age_seconds"] < 600 and 0 <= view["exposure_seconds"] < 300
    assert view["archive"]["min_wal"] <= newest["archive"]["start"] <= view["archive"]["max_wal"]
    assert view["archiving_failing"] is False
    markdown = (evidence / "latest-summary.md").read_text()
    assert "## Physical backups (pgBackRest)" in markdown and f"| {HOST} | {facts['stanza']} | ok | {newest['label']} |" in markdown
    (run,) = [p for p in evidence.iterdir() if p.is_dir()]
    page = (run / "report.html").read_text()
    assert f'<tr data-host="{HOST}" data-stanza="{facts["stanza"]}" data-failing="false" class="met">' in page

    # archive_command pointed at a stanza that does not exist: the next segment fails to archive.
    stanza.sql("ALTER SYSTEM SET archive_command = '/usr/bin/pgbackrest --config=%s --stanza=nowhere "
               "archive-push %%p'" % facts["config"])
    try:
        stanza.sql("SELECT pg_reload_conf()")
        stanza.switch_wal_and_wait()
        play = run_playbook(pgbackrest, tmp_path, "fleet.yml", fleet_vars, extra)
        assert play.rc != 0
        summary = json.loads((evidence / "latest-summary.json").read_text())
        (row,) = summary["hosts"]
        (view,) = row["physical"]
        assert row["state"] == "failed" and view["archiving_failing"] is True and view["failed_count"] >= 1
        assert row["problems"] == [view["problems"][0]] and "WAL archiving is failing" in row["problems"][0]
        assert "fleet: 0 ok, 1 failed, 0 unreachable - target" in " ".join(play.stdout.split())
    finally:
        stanza.sql("ALTER SYSTEM RESET archive_command")
        stanza.sql("SELECT pg_reload_conf()")
