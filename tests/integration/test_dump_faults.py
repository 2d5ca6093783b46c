"""Faults during a dump: a second run, a killed pg_dump, a killed run, a full disk. Nothing is lost."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN, PROJECT, assert_one_line, backup_sets, embedded_only


def live_processes(comm, db=None):
    """Running `comm` processes that are dumping (--snapshot), of database `db` if given: not
    `pg_dump --version` probes, not zombies of a pg_dump an earlier test killed, not another
    test run's dumps."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == comm \
                    and b"--snapshot" in (entry / "cmdline").read_bytes() \
                    and (db is None or f"PGDATABASE={db}".encode() in (entry / "environ").read_bytes().split(b"\0")) \
                    and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def find_new_process(comm, before, db, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = live_processes(comm, db) - before
        if new:
            return new.pop()
        time.sleep(0.05)
    raise AssertionError(f"no {comm} process appeared")


def processes_with(text):
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def carries(pid, mark):
    """Whether process `pid` has LIFEBOAT_TEST_RUN=`mark` in its environment."""
    try:
        return f"LIFEBOAT_TEST_RUN={mark}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


class BlockedDump:
    """A dump held up by a lock on one table, running in the background."""

    def __init__(self, server, ansible, db):
        # Inherited by the module's processes: tells them from another test's dump running meanwhile.
        self.mark = "blocked-%d-%d" % (os.getpid(), time.monotonic_ns())
        self.blocker = server.connect(db)
        self.blocker.autocommit = False
        self.blocker.execute("LOCK TABLE lifeboat_sample.events IN ACCESS EXCLUSIVE MODE")
        before = live_processes("pg_dump")
        play = ansible.workdir / "blocked.json"
        play.write_text(json.dumps([{"hosts": "databases", "gather_facts": False, "tasks": [{
            "name": "dump", "lifeboat.db.dump": {**server.connection_options(), "db": db,
                                                 "repository": str(ansible.repository)}}]}]))
        self.proc = subprocess.Popen([str(BIN / "ansible-playbook"), "-i", str(ansible.inventory), str(play)],
                                     cwd=PROJECT, env=dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
                                                           LIFEBOAT_TEST_RUN=self.mark),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.pg_dump = find_new_process("pg_dump", before, db)

    def release(self):
        self.blocker.rollback()
        self.blocker.close()
        return self.proc.communicate(timeout=120)[0].decode()


def test_a_second_run_waits_then_names_the_holder(server, ansible, sample_db):
    blocked = BlockedDump(server, ansible, sample_db)
    try:
        # A task can follow the running dump through the progress file.
        running = json.loads((ansible.repository / sample_db / ".progress.json").read_text())
        assert running["phase"] == "dumping" and running["tables_total"] == 5 and running["pid"] > 0
        second = ansible.module("dump", db=sample_db, repository=str(ansible.repository), lock_timeout=1)
        assert second["failed"]
        assert f"database '{sample_db}' in repository" in second["msg"] and "is locked by a full backup" in second["msg"]
        assert "lock_timeout (1s) ran out" in second["msg"] and os.uname().nodename in second["msg"]
    finally:
        output = blocked.release()
    assert blocked.proc.returncode == 0, output
    assert len(backup_sets(ansible.repository / sample_db)) == 1
    # Once the holder is done, waiting works.
    third = ansible.module("dump", db=sample_db, repository=str(ansible.repository), lock_timeout=5)
    assert third["changed"] and not third["failed"]


def test_pg_dump_killed_half_way_leaves_no_backup_and_keeps_the_old_ones(server, ansible, sample_db):
    old = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    blocked = BlockedDump(server, ansible, sample_db)
    os.kill(blocked.pg_dump, signal.SIGKILL)
    output = blocked.release()
    assert blocked.proc.returncode != 0 and "pg_dump of database" in output, output
    assert backup_sets(ansible.repository / sample_db) == [old["backup_id"]]
    assert [n for n in os.listdir(ansible.repository / sample_db) if n.startswith(".partial")] == []
    restored = ansible.module("restore", db=sample_db, repository=str(ansible.repository), mode="replace")
    assert restored["backup_id"] == old["backup_id"] and not restored["failed"]


def test_a_run_killed_outright_is_cleaned_up_by_the_next(server, ansible, sample_db):
    old = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    blocked = BlockedDump(server, ansible, sample_db)
    partials = [n for n in os.listdir(ansible.repository / sample_db) if n.startswith(".partial-")]
    assert len(partials) == 1
    # The module process dies first, with no chance to clean up; then its pg_dump.
    for pid in processes_with("AnsiballZ_dump.py"):  # the shell wrapper and the module's python
        if carries(pid, blocked.mark):  # of this run only: another test may be dumping
            os.kill(pid, signal.SIGKILL)
    os.kill(blocked.pg_dump, signal.SIGKILL)
    blocked.release()
    # The leftover is not a backup: latest is still the old one.
    assert backup_sets(ansible.repository / sample_db) == [old["backup_id"]]
    latest = ansible.module("integrity", db=sample_db, repository=str(ansible.repository), backup="latest")
    assert latest["source"] == f"backup {old['backup_id']}"
    # The dead run's lock is free, and the next run removes what it left.
    new = ansible.module("dump", db=sample_db, repository=str(ansible.repository), keep_last=5)
    assert not new["failed"] and f"Removed {partials[0]} left by an interrupted run" in new["actions"]
    assert sorted(backup_sets(ansible.repository / sample_db)) == sorted([old["backup_id"], new["backup_id"]])
    assert [n for n in os.listdir(ansible.repository / sample_db) if n.startswith(".partial")] == []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="mounting a tmpfs needs root")
def test_disk_full_is_a_clear_error_and_leaves_nothing_partial(server, ansible, tmp_path):
    db = "t_disk_full"
    server.drop_db(db)
    ansible.module("sample_data", db=db, scale=3000)
    try:
        small = tmp_path / "small"
        small.mkdir()
        listing = tmp_path / "listing.txt"
        wrapper = tmp_path / "small-disk.sh"
        # A 256 KiB filesystem, private to this run, holds the repository; the dump needs ~1 MB.
        wrapper.write_text(f'mount -t tmpfs -o size=256k tmpfs "{small}" || exit 99\n'
                           f'"$@"; rc=$?; ls -A "{small}/{db}" > "{listing}"; df -k "{small}" >> "{listing}"; exit $rc\n')
        for fmt in ("custom", "plain"):
            result = ansible.module("dump", db=db, repository=str(small), format=fmt,
                                    wrapper=("unshare", "-m", "sh", str(wrapper)))
            assert result["failed"] and "\n" not in result["msg"], result
            assert "No space left on device" in result["msg"] or "could not write" in result["msg"], result["msg"]
            names = listing.read_text().split("Filesystem")[0].split()
            assert set(names) <= {".lock", ".progress.json"}, listing.read_text()
    finally:
        server.drop_db(db)


@embedded_only
def test_a_dump_waits_for_a_restore_of_its_database_or_fails_saying_so(server, ansible, sample_db):
    """Issue 15 item 5: a restore holds pg_advisory_lock(hashtext('lifeboat restore ' || db)) on its
    maintenance connection (database postgres); a dump of that database waits up to lock_timeout."""
    repo = ansible.repository
    holder = server.connect("postgres")
    try:
        holder.execute("SELECT pg_advisory_lock(hashtext('lifeboat restore ' || %s))", (sample_db,))
        refused = ansible.module("dump", db=sample_db, repository=str(repo), lock_timeout=1)
        assert_one_line(refused, f"database '{sample_db}' is being restored by another run", "lock_timeout")
        assert not (repo / sample_db).exists() or backup_sets(repo / sample_db) == []
        # Released 6 s after the dump starts (ansible itself takes a few): the dump waited, then ran.
        threading.Timer(6, holder.close).start()
        waited = ansible.module("dump", db=sample_db, repository=str(repo), lock_timeout=60)
        assert not waited["failed"], waited.get("msg")
        assert waited["restore_waited_seconds"] > 0
        assert backup_sets(repo / sample_db) == [waited["backup_id"]]
    finally:
        holder.close()


@embedded_only
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="a mount point needs root")
def test_retention_that_cannot_delete_still_reports_the_new_backup(server, ansible, sample_db, tmp_path):
    """Issue 15 item 10: an old set that cannot be deleted (here a mount point: rename gives EBUSY)
    leaves the new backup committed, and the result carries its id and what retention could not do."""
    repo = ansible.repository
    old = ansible.module("dump", db=sample_db, repository=str(repo))
    assert not old["failed"], old.get("msg")
    folder = repo / sample_db / old["backup_id"]
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    wrapper = tmp_path / "busy-set.sh"
    wrapper.write_text(f'mount -t tmpfs tmpfs "{folder}" || exit 99\ncp -a "{copy}/." "{folder}/"\n"$@"\n')
    result = ansible.module("dump", db=sample_db, repository=str(repo), keep_last=1,
                            wrapper=("unshare", "-m", "sh", str(wrapper)))
    assert not result["failed"], result.get("msg")
    assert result["backup_id"] in backup_sets(repo / sample_db)
    assert result["deleted"] == [] and old["backup_id"] in result["retention_errors"][0]
    assert any("retention could not finish" in w for w in result["warnings"])
