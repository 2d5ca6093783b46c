"""playbooks/pitr.yml with pitr_cutover (roles/lifeboat_pitr, issue 19 item 3) on a real pgBackRest stanza
(tests/tools/pgbackrest_stanza.py: Debian's PostgreSQL 15 archiving into a path repository): the checked
scratch instance becomes the live cluster, the old data directory kept; a run killed half-way is put right
by the next; a production host without the confirmation is refused before anything stops.

The stanza is this module's own: a cutover replaces its live cluster. As root the plays become the
cluster's OS user, as test_pitr.py's do; the live cluster is reached over TCP with its password.
"""
import json
import os
import time

import psycopg
import pytest

from conftest import Ansible, Server, assert_one_line, free_port

import pgbackrest_stanza  # tests/tools, on sys.path through conftest

MISSING = pgbackrest_stanza.missing()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "")

DEBIAN_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def stanza():
    made = pgbackrest_stanza.Stanza("cutover-%s" % os.environ.get("PYTEST_XDIST_WORKER", "main"))
    try:
        facts = made.start()
        dumps = made.base / "dumps"
        dumps.mkdir(mode=0o700)
        made.own(dumps)
        yield made, facts
    finally:
        made.stop(destroy=True)  # whatever a failed test left running too (scratch instances, a cluster put aside)


def rows(stanza, db, query):
    made, facts = stanza
    with psycopg.connect(host=facts["host"], port=facts["port"], user=facts["user"], password=facts["password"],
                         dbname=db, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else None


def postmaster(data_dir):
    pid_file = os.path.join(str(data_dir), "postmaster.pid")
    return open(pid_file).readline().strip() if os.path.exists(pid_file) else None


def playbook_ansible(stanza, tmp_path, **host_vars):
    made, facts = stanza
    tmp_path.mkdir(exist_ok=True)
    ansible = Ansible(Server(facts), tmp_path)
    become = {"ansible_become": True, "ansible_become_user": made.user, "ansible_become_method": "sudo",
              "ansible_python_interpreter": DEBIAN_PYTHON} if made.user else {}
    # The live cluster starts as the stanza's helper started it: its port is given on pg_ctl's command line.
    start = [facts["bin_dir"] + "/pg_ctl", "-D", facts["data_dir"], "-l", facts["log_file"], "-w", "-t", "60",
             "-o", "-p %d" % facts["port"], "start"]
    ansible.write_inventory(**become, lifeboat_pitr_stanza=facts["stanza"], lifeboat_pitr_config=facts["config"],
                            lifeboat_pitr_repository=str(made.base / "dumps"),
                            lifeboat_pitr_evidence_dir=str(tmp_path / "evidence" / "pitr"),
                            lifeboat_pitr_cutover_start_command=start, lifeboat_pitr_cutover_timeout=60,
                            lifeboat_pitr_data_dir=str(made.base / "scratch-cutover"), lifeboat_pitr_port=free_port(),
                            **host_vars)
    return ansible


def killer_bin_dir(made, facts):
    """PostgreSQL's binaries, but pg_controldata kills the module that runs it while the live data directory
    is renamed away - the moment between the two renames of a cutover (the module reads the scratch
    instance's control file there); anywhere else it is the real one."""
    folder = made.base / "bin-killer"
    folder.mkdir(exist_ok=True)
    for name in os.listdir(facts["bin_dir"]):
        if name != "pg_controldata" and not (folder / name).exists():
            (folder / name).symlink_to(os.path.join(facts["bin_dir"], name))
    script = folder / "pg_controldata"
    script.write_text("#!/bin/sh\n[ -d %s ] || kill -9 $PPID\nexec %s/pg_controldata \"$@\"\n"
                      % (facts["data_dir"], facts["bin_dir"]))
    script.chmod(0o755)
    return folder


def test_cutover_killed_half_way_recovered_then_done(stanza, tmp_path):
    made, facts = stanza
    live = facts["data_dir"]
    rows(stanza, "postgres", "CREATE DATABASE shop")
    rows(stanza, "shop", "CREATE TABLE orders (id integer PRIMARY KEY, total numeric NOT NULL)")
    rows(stanza, "shop", "INSERT INTO orders SELECT g, g FROM generate_series(1, 100) g")
    # archive_mode by ALTER SYSTEM too, as lifeboat_pgbackrest sets it: in postgresql.auto.conf, where pgBackRest's
    # --archive-mode=off (the scratch instance's) goes as well; the cutover must leave it on. A backup that has it.
    rows(stanza, "postgres", "ALTER SYSTEM SET archive_mode = 'on'")
    made.pgbackrest("backup", "--type=incr")
    time.sleep(0.3)
    target = rows(stanza, "postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                                      "'YYYY-MM-DD HH24:MI:SS.US') || '+00'")[0][0]
    time.sleep(1.0)
    rows(stanza, "shop", "DELETE FROM orders")
    made.switch_wal_and_wait()
    settings = {"pitr_target_type": "time", "pitr_target": target, "pitr_cutover": True}
    started = time.monotonic()

    # A production host without the confirmation: refused in one line before anything stops.
    pid = postmaster(live)
    prod = playbook_ansible(stanza, tmp_path / "prod", lifeboat_production=True)
    refused = prod.run_playbook("playbooks/pitr.yml", "-e", json.dumps(settings))
    assert refused.rc != 0
    assert_one_line(refused.last, "is marked lifeboat_production: a cutover replaces its live cluster",
                    "needs -e pitr_confirm=%s" % facts["stanza"], "nothing was changed")
    assert not any("Restore the stanza" in task for task, _ in refused.tasks)
    assert postmaster(live) == pid and not (made.base / "scratch-cutover").exists()
    print("refused: %.1f s" % (time.monotonic() - started))

    # A new cluster that does not start: the old one is put back and started, the new one kept aside.
    refusing = made.base / "start-only-the-old-cluster"
    refusing.write_text("#!/bin/sh\ngrep -q 'generated by pgBackRest' %s/postgresql.auto.conf && exit 3\nexec \"$@\"\n" % live)
    refusing.chmod(0o755)
    failing = playbook_ansible(stanza, tmp_path / "failing")
    start = [str(refusing), facts["bin_dir"] + "/pg_ctl", "-D", live, "-l", facts["log_file"], "-w", "-t", "60",
             "-o", "-p %d" % facts["port"], "start"]
    play = failing.run_playbook("playbooks/pitr.yml", "-e", json.dumps(settings),
                                "-e", json.dumps({"lifeboat_pitr_cutover_start_command": start}))
    assert play.rc != 0
    assert_one_line(play.last, "cutover of %s failed: the new cluster did not start or answer" % live,
                    "the old cluster is back in %s and running" % live, "nothing was removed")
    assert postmaster(live) and rows(stanza, "shop", "SELECT count(*) FROM orders") == [(0,)]
    (aside,) = [path for path in made.base.glob("data.failed-pitr-*")]
    assert (aside / "PG_VERSION").exists() and not list(made.base.glob("data.before-pitr-*"))
    assert not os.path.exists(live + ".lifeboat-cutover.json")
    print("rolled back: %.1f s" % (time.monotonic() - started))

    # Killed between the two renames: the live data directory renamed away, the scratch instance not yet in place.
    killed = playbook_ansible(stanza, tmp_path / "killed", lifeboat_pitr_bin_dir=str(killer_bin_dir(made, facts)))
    play = killed.run_playbook("playbooks/pitr.yml", "-e", json.dumps(settings))
    assert play.rc != 0
    print("killed run: %.1f s" % (time.monotonic() - started))
    journal = json.loads(open(live + ".lifeboat-cutover.json").read())
    assert journal["step"] in ("live-moved", "scratch-moving"), journal
    assert not os.path.exists(live) and os.path.isdir(journal["before"])
    # Nothing is lost: the old cluster's files are all in the kept directory.
    assert os.path.exists(os.path.join(journal["before"], "PG_VERSION"))

    # The next run puts the old cluster back first, then restores afresh and cuts over: as the production host
    # it is, with the confirmation.
    done = playbook_ansible(stanza, tmp_path / "done", lifeboat_production=True)
    play = done.run_playbook("playbooks/pitr.yml", "-e", json.dumps(dict(settings, pitr_confirm=facts["stanza"])))
    print("recovered and cut over: %.1f s" % (time.monotonic() - started))
    assert play.rc == 0, play.stdout[-4000:]
    recovered = play.result("lifeboat_pitr : Put right a cutover cut short")
    assert recovered["changed"] and recovered["recovered"]["outcome"] == "rolled back", recovered
    assert any("Renamed %s back to %s" % (journal["before"], live) in a for a in recovered["actions"])
    # The stripped scratch instance the killed run left went aside, kept; so is the one that did not start.
    assert os.path.isdir(journal["failed_dir"]) and aside.is_dir()
    assert not os.path.exists(live + ".lifeboat-cutover.json")

    # The live cluster is the one restored to the target, on its new timeline, archiving into the stanza again.
    assert rows(stanza, "shop", "SELECT count(*), sum(total) FROM orders") == [(100, 5050)]
    assert rows(stanza, "postgres", "SELECT pg_is_in_recovery()") == [(False,)]
    timeline = int(rows(stanza, "postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0][:8], 16)
    (run_dir,) = [path for path in (tmp_path / "done" / "evidence" / "pitr").iterdir() if path.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    cutover = summary["cutover"]
    assert summary["status"] == "passed" and cutover["done"] is True, summary
    assert timeline >= 2 and cutover["timeline"] == timeline == summary["reached"]["timeline"], (timeline, cutover)
    before = cutover["before"]
    assert "| Cutover | %s runs the restored cluster on timeline %d; the old data directory kept as %s |" % (
        live, timeline, before) in (run_dir / "report.md").read_text()
    # The old data directory is kept, with the cutover's record.
    assert before.startswith(live + ".before-pitr-") and os.path.exists(os.path.join(before, "PG_VERSION"))
    assert json.loads(open(os.path.join(before, "lifeboat-cutover.json")).read())["step"] == "done"
    # No scratch-only setting or file is left in the live cluster.
    auto = open(os.path.join(live, "postgresql.auto.conf")).read()
    assert "scratch instance settings" not in auto and "recovery_target" not in auto, auto
    assert [line for line in auto.splitlines() if "archive_mode" in line] == ["archive_mode = 'on'"], auto
    assert rows(stanza, "postgres", "SHOW archive_mode") == [("on",)]
    assert "--pg1-path=%s --stanza" % live in auto and "scratch-cutover" not in auto, auto
    assert not any(os.path.exists(os.path.join(live, name))
                   for name in ("lifeboat-scratch.json", "lifeboat_hba.conf", "lifeboat-scratch.log"))
    assert not (made.base / "scratch-cutover").exists()
    # The new timeline's history file and WAL reach the stanza's archive.
    made.switch_wal_and_wait()
    archived = rows(stanza, "postgres", "SELECT last_archived_wal, failed_count FROM pg_stat_archiver")[0]
    assert archived[1] == 0 and int(archived[0][:8], 16) == timeline, archived
    history = list((made.base / "repo" / "archive").rglob("%08X.history*" % timeline))
    assert history, "no %08X.history in the stanza's archive" % timeline
    # pgBackRest takes the cluster as its stanza's again.
    made.pgbackrest("check")
