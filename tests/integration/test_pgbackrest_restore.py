"""lifeboat.db.pgbackrest_restore through ansible-playbook on a real pgBackRest stanza (issue 19 item 3's engine).

Debian's PostgreSQL 15 archives into a path repository (tests/tools/pgbackrest_stanza.py). Marker rows are
written at known times and WAL locations, with a restore point between them; then one play restores the stanza
to each kind of target into scratch instances beside the live cluster (as the account the cluster runs as, like
`become_user: postgres` on a host), and the faults - a target before the oldest backup or in the future, a port
taken, a data_dir that is not allowed - each end in one line with nothing written. A run killed half-way and a
damaged WAL segment in the repository are run for real too. The live cluster must run on, unchanged, and the
scratch instances must never archive into its stanza.
"""
import datetime
import json
import os
import socket
from pathlib import Path

import psycopg
import pytest

from conftest import Ansible, Server, assert_one_line

import pgbackrest_stanza  # tests/tools, on sys.path through conftest
import pgserver  # scripts/, on sys.path through pgbackrest_stanza

MISSING = pgbackrest_stanza.missing()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "")
MODULE = "lifeboat.db.pgbackrest_restore"
# /usr/bin/python3 is Debian's, with python3-psycopg, and readable by the account the cluster runs as (the
# venv's interpreter may live in root's home).
BECOME_PYTHON = "/usr/bin/python3"


class Marks:
    """Rows written between targets: 1, then a time target, 2, a restore point, 3, an LSN target, 4."""

    def __init__(self, made):
        made.sql("CREATE TABLE pitr_marks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        made.sql("INSERT INTO pitr_marks (id) VALUES (1)")
        self.time = made.sql("SELECT clock_timestamp()")[0][0]
        made.sql("SELECT pg_sleep(0.2)")
        made.sql("INSERT INTO pitr_marks (id) VALUES (2)")
        self.name = "lifeboat-before-3"
        made.sql("SELECT pg_create_restore_point('%s')" % self.name)
        made.sql("INSERT INTO pitr_marks (id) VALUES (3)")
        self.lsn = made.sql("SELECT pg_current_wal_lsn()::text")[0][0]
        made.sql("INSERT INTO pitr_marks (id) VALUES (4)")
        self.segment = made.sql("SELECT pg_walfile_name('%s')" % self.lsn)[0][0]
        made.switch_wal_and_wait()

    def time_text(self, hours=0):
        """The time target with an explicit offset (+02:00 proves the offset is honoured, not dropped)."""
        zone = datetime.timezone(datetime.timedelta(hours=hours))
        text = self.time.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S.%f")
        return text + ("+00" if not hours else "%+03d:00" % hours)


@pytest.fixture(scope="module")
def stanza():
    made = pgbackrest_stanza.Stanza("pgbrestore-%s" % os.environ.get("PYTEST_XDIST_WORKER", "main"))
    try:
        facts = made.start()
        yield made, facts, Marks(made)
    finally:
        made.stop(destroy=True)  # every scratch instance under the stanza's folder too, and their socket folders


def scratch(made, name):
    return str(Path(made.base) / name)


def task(name, check=False, **args):
    user = pgserver.run_as_user()
    entry = {"name": name, MODULE: args, "ignore_errors": True}
    if user:
        entry.update(become=True, become_user=user,
                     vars={"ansible_python_interpreter": BECOME_PYTHON, "ansible_remote_tmp": "/tmp"})
    if check:
        entry["check_mode"] = True
    return entry


def options(facts, name, made, **args):
    base = dict(stanza=facts["stanza"], config=facts["config"], data_dir=scratch(made, name),
                port=pgserver.free_loopback_port())
    base.update(args)
    return base


def rows(result, db="postgres", login_user="postgres"):
    """The marker rows in a scratch instance, read through its socket (None when the table is not there)."""
    with psycopg.connect(host=result["socket_dir"], port=result["port"], user=login_user, dbname=db,
                         autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('pitr_marks')").fetchone()[0] is None:
            return None
        return [row[0] for row in conn.execute("SELECT id FROM pitr_marks ORDER BY id")]


def running(data_dir):
    pid_file = Path(data_dir) / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
        return True
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def play(stanza, tmp_path_factory):
    """One play: every target, the idempotent second run, check mode, the faults; then the live cluster's
    state after it."""
    made, facts, marks = stanza
    ansible = Ansible(Server(facts), tmp_path_factory.mktemp("pgbackrest-restore"))
    before = dict(rows=made.sql("SELECT count(*) FROM marks")[0][0],
                  archiver=made.sql("SELECT archived_count, failed_count FROM pg_stat_archiver")[0])
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    crowded = Path(scratch(made, "crowded"))
    crowded.mkdir()
    (crowded / "keep.txt").write_text("not lifeboat's\n")
    made.own(crowded)
    # pgbackrest whose restore fails as pgBackRest fails (its ERROR line, its exit code); info is the real one's.
    failing = Path(made.base) / "pgbackrest-failing-restore"
    failing.write_text('#!/bin/sh\ncase " $* " in *" restore "*) echo "ERROR: [104]: unable to read the backup" >&2; '
                       'exit 104;; esac\nexec /usr/bin/pgbackrest "$@"\n')
    failing.chmod(0o755)
    time_options = options(facts, "time", made, target_type="time", target=marks.time_text(hours=2))
    # A data_dir whose socket path passes 107 bytes: the socket goes to a short private folder instead.
    long_name = "latest-" + "x" * (100 - len(str(made.base)))
    tasks = [
        task("time", **time_options),
        task("name", **options(facts, "name", made, target_type="name", target=marks.name)),
        task("lsn", **options(facts, "lsn", made, target_type="lsn", target=marks.lsn)),
        task("latest", **options(facts, "latest", made)),
        task("long", **options(facts, long_name, made, state="stopped")),
        task("immediate", **options(facts, "immediate", made, target_type="immediate")),
        task("again", **time_options),
        task("check mode", check=True, **options(facts, "checked", made, target_type="time",
                                                 target=marks.time_text())),
        task("another target in a running instance", **dict(time_options, target_type="lsn", target=marks.lsn)),
        task("before the oldest backup", **options(facts, "early", made, target_type="time",
                                                   target="2020-01-01 00:00:00+00")),
        task("in the future", **options(facts, "future", made, target_type="time",
                                        target=(datetime.datetime.now(datetime.timezone.utc)
                                                + datetime.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S+00"))),
        task("lsn past the archive", **options(facts, "future-lsn", made, target_type="lsn", target="FF/0")),
        task("time without offset", **options(facts, "no-offset", made, target_type="time",
                                              target="2026-12-05 10:00:00")),
        task("port taken", **options(facts, "taken", made, port=taken.getsockname()[1])),
        task("not empty", **options(facts, "crowded", made)),
        task("the live data directory", **options(facts, "live", made, data_dir=facts["data_dir"])),
        task("inside the live data directory", **options(facts, "live", made,
                                                         data_dir=facts["data_dir"] + "/pitr")),
        task("absent without marker", **options(facts, "crowded", made, state="absent")),
        task("unknown role", **options(facts, "no-role", made, login_user="nobody_here")),
        task("pgbackrest restore fails", **options(facts, "restore-fails", made, pgbackrest_bin=str(failing))),
        task("unknown setting", **options(facts, "no-setting", made, settings={"shared_bufers": "64MB"})),
        task("bad setting value", **options(facts, "bad-value", made, settings={"shared_buffers": "lots"})),
        # recovery_end_command runs before recovery ends (pg_is_in_recovery() stays true): a recovery that
        # outlasts the timeout.
        task("timeout", **options(facts, "slow", made, timeout=3, settings={"recovery_end_command": "sleep 20"})),
    ]
    try:
        result = ansible.play(tasks)
    finally:
        taken.close()
    assert result.tasks, "playbook did not run: rc=%s\n%s\n%s" % (result.rc, result.stdout[-3000:],
                                                                 result.stderr[-3000:])
    results = dict(result.tasks)
    for name in ("time", "name", "lsn", "latest", "immediate"):
        results[name]["rows"] = rows(results[name]) if not results[name]["failed"] else "failed"
    after = dict(rows=made.sql("SELECT count(*) FROM marks")[0][0],
                 archiver=made.sql("SELECT archived_count, failed_count FROM pg_stat_archiver")[0])
    return ansible, results, before, after, crowded


def ok(result):
    assert not result["failed"], result.get("msg")
    return result


def test_time_target_keeps_the_row_before_it_only(stanza, play):
    made, facts, marks = stanza
    result = ok(play[1]["time"])
    assert result["changed"] is True and result["state"] == "started"
    assert result["rows"] == [1]
    assert result["target"] == {"type": "time", "value": marks.time_text(), "exclusive": False}
    reached = result["reached"]
    assert reached["promoted"] is True and reached["timeline"] == 2
    assert reached["stopping"].startswith("before commit of transaction"), reached
    assert reached["last_replayed_at"] <= marks.time.astimezone(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    assert result["wal_replayed_bytes"] > 0
    backup = result["backup"]
    assert backup["type"] == "incr" and backup["lsn_stop"] and backup["stopped_at"].endswith("Z")
    seconds = result["seconds"]
    assert 0 < seconds["restore_files"] and 0 < seconds["recovery"] and seconds["total"] >= seconds["recovery"]
    assert result["socket_dir"] == result["data_dir"] == scratch(made, "time")
    assert Path(result["log_file"]).is_file() and result["bin_dir"] == "/usr/lib/postgresql/15/bin"
    conf = (Path(result["data_dir"]) / "postgresql.auto.conf").read_text()
    # pgBackRest's recovery lines first, lifeboat's after them (the last one wins), archiving off.
    assert conf.index("restore_command") < conf.index("lifeboat.db.pgbackrest_restore") < conf.rindex("archive_mode")
    assert "--pg1-path=%s " % result["data_dir"] in conf and "lifeboat-restoring" not in conf
    marker = json.loads((Path(result["data_dir"]) / "lifeboat-scratch.json").read_text())
    assert marker["state"] == "complete" and marker["identity"]["target"] == result["target"]


def test_restore_point_lsn_latest_and_immediate_targets(stanza, play):
    made, facts, marks = stanza
    results = play[1]
    assert ok(results["name"])["rows"] == [1, 2]
    assert results["name"]["reached"]["stopping"].startswith('at restore point "%s"' % marks.name)
    assert ok(results["lsn"])["rows"] == [1, 2, 3]
    assert results["lsn"]["target"]["value"] == marks.lsn.upper()
    assert results["lsn"]["reached"]["stopping"].startswith('after WAL location (LSN) "%s"' % marks.lsn.upper())
    assert ok(results["latest"])["rows"] == [1, 2, 3, 4]
    assert results["latest"]["reached"]["stop_reason"] == "no recovery target specified"
    # The end of the backup: the table was made after every backup, so it is not there.
    assert ok(results["immediate"])["rows"] is None
    assert results["immediate"]["reached"]["stopping"] == "after reaching consistency"
    timelines = {results[name]["reached"]["timeline"] for name in ("name", "lsn", "latest", "immediate")}
    assert timelines == {2}


def test_long_data_dir_gets_a_short_socket_folder_and_stops(stanza, play):
    made, facts, marks = stanza
    result = ok(play[1]["long"])
    assert len(result["data_dir"] + "/.s.PGSQL.65535") > 107
    assert result["socket_dir"].startswith("/tmp/lifeboat-sock-") and result["state"] == "stopped"
    assert oct(os.stat(result["socket_dir"]).st_mode & 0o777) == "0o700"
    assert not running(result["data_dir"])


def test_a_stopped_instance_is_started_again_and_absent_removes_its_socket_folder(stanza, play):
    made, facts, marks = stanza
    long = play[1]["long"]
    # /tmp cleaned since (a reboot): the short socket folder is made again.
    os.rmdir(long["socket_dir"])
    args = dict(stanza=facts["stanza"], config=facts["config"], data_dir=long["data_dir"], port=long["port"])
    # The rows are read between the two tasks, while the instance runs.
    read = {"name": "read", "ansible.builtin.command": {"argv": [
        str(pgbackrest_stanza.DEBIAN_PG15 / "psql"), "-h", long["socket_dir"], "-p", str(long["port"]),
        "-U", "postgres", "-d", "postgres", "-XAtc", "SELECT string_agg(id::text, ',' ORDER BY id) FROM pitr_marks"]},
        "changed_when": False}
    result = play[0].play([task("start", **args), read, task("absent", state="absent", **args)])
    started = ok(result.result("start"))
    assert started["changed"] is True and started["actions"][-1] == "Started it on port %d" % long["port"]
    assert started["reached"] == long["reached"] and ok(result.result("read"))["stdout"] == "1,2,3,4"
    absent = ok(result.result("absent"))
    assert absent["changed"] is True and absent["actions"][0].startswith("Stopped the scratch instance (pid ")
    assert not os.path.lexists(long["data_dir"]) and not os.path.lexists(long["socket_dir"])


def test_second_run_reports_the_instance_unchanged(play):
    first, again = play[1]["time"], ok(play[1]["again"])
    assert again["changed"] is False
    assert again["reached"] == first["reached"] and again["backup"] == first["backup"]
    assert "Found the scratch instance" in again["actions"][0]
    assert running(again["data_dir"])


def test_check_mode_checks_everything_and_writes_nothing(stanza, play):
    made, facts, marks = stanza
    result = ok(play[1]["check mode"])
    assert result["changed"] is True and result["reached"] is None
    assert result["actions"][-1].startswith("Would restore stanza lifeboat backup")
    assert not os.path.lexists(scratch(made, "checked"))


def test_faults_end_in_one_line_and_write_nothing(stanza, play):
    made, facts, marks = stanza
    results = play[1]
    assert_one_line(results["another target in a running instance"], "holds a running scratch instance",
                    "set data_dir to a new directory")
    assert_one_line(results["before the oldest backup"], "is before the end of the oldest backup",
                    "choose a time after")
    assert_one_line(results["in the future"], "is in the future")
    assert_one_line(results["lsn past the archive"], "is past the end of the WAL archive", "pg_switch_wal()")
    assert_one_line(results["time without offset"], "is not a time", "UTC offset")
    assert_one_line(results["port taken"], "is taken on this host", "set port to a free one")
    assert_one_line(results["not empty"], "is not empty", "holds no lifeboat marker")
    assert_one_line(results["the live data directory"], "the stanza's own data directory", "set data_dir")
    assert_one_line(results["inside the live data directory"], "inside the stanza's own data directory")
    assert_one_line(results["absent without marker"], "holds no lifeboat marker", "not removed")
    # A role the restored cluster lacks fails at once (not after the timeout), the instance stopped.
    assert_one_line(results["unknown role"], 'role "nobody_here" does not exist', "set login_user")
    assert results["unknown role"]["timing"]["seconds"] < 60 and not running(scratch(made, "no-role"))
    assert_one_line(results["pgbackrest restore fails"], "pgbackrest restore for stanza 'lifeboat' failed (rc 104)",
                    "[104] unable to read the backup")
    failed = json.loads((Path(scratch(made, "restore-fails")) / "lifeboat-scratch.json").read_text())
    assert failed["state"] == "failed" and "rc 104" in failed["error"]
    assert_one_line(results["unknown setting"], "settings.shared_bufers is not a PostgreSQL 15 setting")
    assert not os.path.lexists(scratch(made, "no-setting"))
    assert_one_line(results["bad setting value"], "the scratch instance did not start",
                    'invalid value for parameter "shared_buffers": "lots"', "fix settings")
    assert not running(scratch(made, "bad-value"))
    assert_one_line(results["timeout"], "recovery did not reach the target within timeout=3 s",
                    "the scratch instance is stopped - raise timeout")
    assert results["timeout"]["timing"]["seconds"] < 20 and not running(scratch(made, "slow"))
    assert json.loads((Path(scratch(made, "slow")) / "lifeboat-scratch.json").read_text())["state"] == "failed"
    for name in ("early", "future", "future-lsn", "no-offset", "taken", "live"):
        assert not os.path.lexists(scratch(made, name)), name
    assert not os.path.lexists(facts["data_dir"] + "/pitr")
    assert [p.name for p in play[4].iterdir()] == ["keep.txt"]


def test_live_cluster_runs_on_unchanged_and_nothing_archived_into_its_stanza(stanza, play):
    made, facts, marks = stanza
    ansible, results, before, after, _ = play
    assert after["rows"] == before["rows"]
    assert after["archiver"] == before["archiver"]
    # A scratch instance that archived would have pushed its timeline 2 into the live stanza's archive.
    assert not list((Path(facts["repo"]) / "archive").rglob("00000002*")), "a scratch instance archived"
    for result in results.values():
        assert ansible.server.password not in json.dumps(result)


def test_state_stopped_then_absent_removes_only_the_scratch_instance(stanza, play):
    made, facts, marks = stanza
    ansible = play[0]
    lsn = play[1]["lsn"]
    args = dict(stanza=facts["stanza"], config=facts["config"], data_dir=lsn["data_dir"], port=lsn["port"],
                target_type="lsn", target=marks.lsn)
    result = ansible.play([task("stop", state="stopped", **args), task("stop again", state="stopped", **args),
                           task("absent check", check=True, state="absent", **args),
                           task("absent", state="absent", **args), task("absent again", state="absent", **args)])
    stop, again, check, absent, absent_again = (result.result(n) for n in
                                                ("stop", "stop again", "absent check", "absent", "absent again"))
    assert ok(stop)["changed"] is True and ok(again)["changed"] is False
    assert ok(check)["changed"] is True and check["actions"] == ["Would remove %s" % lsn["data_dir"]]
    assert ok(absent)["changed"] is True and ok(absent_again)["changed"] is False
    assert not os.path.lexists(lsn["data_dir"])


def test_a_run_killed_half_way_is_restored_afresh_by_the_next(stanza, play):
    made, facts, marks = stanza
    ansible = play[0]
    # pgbackrest restores, then the module running it is killed: the marker says `restoring`.
    killer = Path(made.base) / "pgbackrest-then-kill"
    killer.write_text('#!/bin/sh\n/usr/bin/pgbackrest "$@"\nrc=$?\ncase " $* " in *" restore "*) kill -9 $PPID;; esac\n'
                      'exit $rc\n')
    killer.chmod(0o755)
    args = options(facts, "killed", made, target_type="name", target=marks.name)
    result = ansible.play([task("killed", pgbackrest_bin=str(killer), **args), task("rerun", **args)])
    killed, rerun = result.result("killed"), result.result("rerun")
    assert killed["failed"]
    marker = json.loads((Path(args["data_dir"]) / "lifeboat-scratch.json").read_text())
    assert marker["state"] == "complete"
    assert ok(rerun)["changed"] is True
    assert any(action.startswith("Removed the earlier scratch instance") and "incomplete: restoring" in action
               for action in rerun["actions"]), rerun["actions"]
    assert rows(rerun) == [1, 2]
    assert not (Path(args["data_dir"]) / "lifeboat-restoring").exists()


def test_an_instance_left_recovering_by_a_dead_run_is_stopped_and_restored_afresh(stanza, play):
    made, facts, marks = stanza
    latest = play[1]["latest"]
    # What a run killed while PostgreSQL recovered leaves: the postmaster running, the marker `recovering`, the
    # run's pid gone.
    marker_file = Path(latest["data_dir"]) / "lifeboat-scratch.json"
    marker = json.loads(marker_file.read_text())
    marker.update(state="recovering", pid=2 ** 22 + 1)
    marker_file.write_text(json.dumps(marker))
    old_pid = int((Path(latest["data_dir"]) / "postmaster.pid").read_text().split()[0])
    args = dict(stanza=facts["stanza"], config=facts["config"], data_dir=latest["data_dir"], port=latest["port"])
    rerun = ok(play[0].play([task("rerun", **args)]).result("rerun"))
    assert rerun["changed"] is True
    removed = "Removed the earlier scratch instance in %s (incomplete: recovering)" % latest["data_dir"]
    assert removed in rerun["actions"], rerun["actions"]
    assert int((Path(latest["data_dir"]) / "postmaster.pid").read_text().split()[0]) != old_pid
    assert rows(rerun) == [1, 2, 3, 4]


def test_a_damaged_wal_segment_stops_recovery_in_one_line_and_the_live_cluster_is_untouched(stanza, play):
    made, facts, marks = stanza
    ansible = play[0]
    (segment,) = (Path(facts["repo"]) / "archive" / facts["stanza"]).rglob(marks.segment + "-*")
    original = segment.read_bytes()
    rows_before = made.sql("SELECT count(*) FROM pitr_marks")[0][0]
    try:
        segment.write_bytes(original[:100] + b"garbage" + original[107:])
        result = ansible.play([task("time", **options(facts, "damaged-time", made, target_type="time",
                                                       target=marks.time_text())),
                               task("latest", **options(facts, "damaged-latest", made))])
    finally:
        segment.write_bytes(original)
    for name in ("time", "latest"):
        failed = result.result(name)
        assert_one_line(failed, "the live cluster was not touched")
        data_dir = scratch(made, "damaged-" + name)
        assert not running(data_dir)
        assert json.loads((Path(data_dir) / "lifeboat-scratch.json").read_text())["state"] == "failed"
    assert_one_line(result.result("time"), "recovery ended before configured recovery target was reached",
                    "pgbackrest verify")
    assert_one_line(result.result("latest"), "before the end of its last segment", "[042] unable to get")
    assert made.sql("SELECT count(*) FROM pitr_marks")[0][0] == rows_before
    assert made.sql("SELECT pg_is_in_recovery()")[0][0] is False


def test_a_debian_backup_without_configuration_files_and_with_a_tablespace(stanza, play):
    """Last in this file: its backup becomes the stanza's newest. Debian keeps postgresql.conf, pg_hba.conf and
    pg_ident.conf in /etc, so its backups have none (here: pgBackRest's --exclude); a tablespace must be restored
    inside data_dir, never where the live cluster's is."""
    made, facts, marks = stanza
    live_space = Path(made.base) / "live-tablespace"
    live_space.mkdir()
    made.own(live_space)
    made.sql("CREATE TABLESPACE lifeboat_space LOCATION '%s'" % live_space)
    # No autovacuum: its hint bits would rewrite the live files this test proves untouched.
    made.sql("CREATE TABLE spaced WITH (autovacuum_enabled = off) TABLESPACE lifeboat_space "
             "AS SELECT generate_series(1, 1000) AS n")
    made.pgbackrest("backup", "--type=full", "--exclude=postgresql.conf", "--exclude=pg_hba.conf",
                    "--exclude=pg_ident.conf")
    label = json.loads(made.pgbackrest("info", "--output=json").stdout)[0]["backup"][-1]["label"]
    live_files = sorted((str(p), p.stat().st_mtime_ns) for p in live_space.rglob("*"))
    args = options(facts, "debian", made, target_type="immediate", backup_set=label,
                   settings={"shared_buffers": "16MB"})
    result = ok(play[0].play([task("debian", **args)]).result("debian"))
    assert result["backup"]["label"] == label
    data_dir = Path(result["data_dir"])
    assert "the backup had none" in (data_dir / "postgresql.conf").read_text()
    assert (data_dir / "pg_ident.conf").exists() and not (data_dir / "pg_hba.conf").exists()
    with psycopg.connect(host=result["socket_dir"], port=result["port"], user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM spaced").fetchone()[0] == 1000
        assert conn.execute("SHOW shared_buffers").fetchone()[0] == "16MB"
        location = conn.execute("SELECT pg_tablespace_location(oid) FROM pg_tablespace "
                                "WHERE spcname = 'lifeboat_space'").fetchone()[0]
    assert location.startswith(str(data_dir) + "/lifeboat-tablespaces/"), location
    assert sorted((str(p), p.stat().st_mtime_ns) for p in live_space.rglob("*")) == live_files
