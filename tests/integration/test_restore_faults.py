"""Faults during a restore, each for real: the run killed outright, pgbench writing through a swap,
and the replace's safety backup proven to restore."""
import json
import os
import signal
import subprocess
import threading
import time

from conftest import BIN, PROJECT
from test_dump_faults import processes_with


def slow_table(server, db, rows, seconds_per_row):
    """A table whose CHECK sleeps per row, so restoring its rows takes a known, long time."""
    server.sql(db, f"CREATE FUNCTION lifeboat_sample.lb_slow(n int) RETURNS boolean LANGUAGE sql "
                   f"AS 'SELECT pg_catalog.pg_sleep({seconds_per_row}) IS NOT NULL'")
    server.sql(db, "CREATE TABLE lifeboat_sample.slow (n int CHECK (lifeboat_sample.lb_slow(n)))")
    server.sql(db, f"INSERT INTO lifeboat_sample.slow SELECT generate_series(1, {rows})")


def pg_restores_into(db):
    """pg_restore processes writing into `db` (never a server backend: killing one crashes the server)."""
    found = []
    for pid in processes_with(db):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() == "pg_restore":
                    found.append(pid)
        except OSError:
            continue
    return found


def staging_databases(server, db):
    return [r[0] for r in server.sql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                                     (db + "_lbstage_%",))]


def test_restore_killed_outright_is_cleaned_up_by_the_next_run(server, ansible, sample_db):
    repo = ansible.repository
    slow_table(server, sample_db, rows=150, seconds_per_row=0.02)  # ~3 s of pg_restore
    ansible.module("dump", db=sample_db, repository=str(repo))
    before = server.count(sample_db, "lifeboat_sample.orders")
    play = ansible.workdir / "slow-restore.json"
    play.write_text(json.dumps([{"hosts": "databases", "gather_facts": False, "tasks": [{
        "name": "restore", "lifeboat.db.restore": {**server.connection_options(), "db": sample_db,
                                                   "repository": str(repo)}}]}]))
    proc = subprocess.Popen([str(BIN / "ansible-playbook"), "-i", str(ansible.inventory), str(play)], cwd=PROJECT,
                            env=dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    progress = repo / sample_db / ".restore-progress.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = json.loads(progress.read_text()) if progress.exists() else {}
        if state.get("phase") == "restoring" and state.get("pid") and staging_databases(server, sample_db):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the restore never reached its restoring phase")
    staging = staging_databases(server, sample_db)
    # The module dies with no chance to clean up, then its pg_restore.
    os.kill(state["pid"], signal.SIGKILL)
    for pid in pg_restores_into(staging[0]):
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert staging_databases(server, sample_db) == staging, "the killed run left its staging database"
    assert server.count(sample_db, "lifeboat_sample.orders") == before, "the live database was never touched"
    result = ansible.module("restore", db=sample_db, repository=str(repo), keep_previous=0,
)
    assert not result["failed"], result.get("msg")
    assert f"Dropped staging database {staging[0]!r} left by an interrupted restore" in result["actions"]
    assert staging_databases(server, sample_db) == []
    assert server.count(sample_db, "lifeboat_sample.slow") == 150


def test_swap_while_pgbench_writes_completes_and_clients_reconnect(server, ansible, sample_db):
    env = dict(os.environ, PGHOST=server.host, PGPORT=str(server.port), PGUSER=server.user,
               PGPASSWORD=server.password, PGDATABASE=sample_db)
    pgbench = f"{server.bin_dir}/pgbench"
    subprocess.run([pgbench, "-i", "-s", "1", "-q"], env=env, check=True, capture_output=True)
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    stop, runs = threading.Event(), []

    def clients():
        # pgbench as an application: 4 clients writing; when its sessions are ended it exits,
        # and is started again, as a service manager would restart an application.
        while not stop.is_set():
            started = time.monotonic()
            done = subprocess.run([pgbench, "-n", "-c", "4", "-T", "1"], env=env, capture_output=True, text=True)
            runs.append((started, done.returncode, done.stdout + done.stderr))

    long_run = []

    def long_clients():
        # Sessions that would outlive any restore: the swap must end them.
        done = subprocess.run([pgbench, "-n", "-c", "2", "-T", "300"], env=env, capture_output=True, text=True)
        long_run.append(done.returncode)

    worker = threading.Thread(target=clients)
    holder = threading.Thread(target=long_clients)
    worker.start()
    holder.start()
    try:
        time.sleep(1.5)
        result = ansible.module("restore", db=sample_db, repository=str(ansible.repository), grace_seconds=0.5,
                                keep_previous=1)
        swapped_at = time.monotonic()
        deadline = swapped_at + 20
        while not any(r[0] > swapped_at and r[1] == 0 for r in runs) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(timeout=30)
        holder.join(timeout=30)
    assert not result["failed"], result.get("msg")
    assert result["swap"]["window_seconds"] < 2 and result["swap"]["sessions_terminated"] >= 2
    assert long_run and long_run[0] != 0, "the long pgbench was ended by the swap"
    previous = result["swap"]["previous_db"]
    # pgbench wrote to the old database before the swap and to the restored one after it.
    assert server.count(previous, "pgbench_history") > 0
    assert any(r[0] > swapped_at and r[1] == 0 for r in runs), [r[1:] for r in runs]
    assert server.count(sample_db, "pgbench_history") > 0, "clients reconnected and wrote to the restored database"
    server.drop_db(previous)


def test_the_replace_safety_backup_restores_what_was_replaced(server, ansible, sample_db):
    repo = str(ansible.repository)
    ansible.module("dump", db=sample_db, repository=repo)
    server.sql(sample_db, "DELETE FROM lifeboat_sample.order_items WHERE order_id % 2 = 0")
    server.sql(sample_db, "CREATE TABLE lifeboat_sample.written_after (n int); INSERT INTO lifeboat_sample.written_after "
                          "VALUES (42)")
    before = {t: server.count(sample_db, f"lifeboat_sample.{t}") for t in ("order_items", "written_after")}
    replaced = ansible.module("restore", db=sample_db, repository=repo, mode="replace")
    assert not replaced["failed"], replaced.get("msg")
    assert server.sql(sample_db, "SELECT to_regclass('lifeboat_sample.written_after')")[0][0] is None
    # The operator regrets it: the safety backup brings back exactly what was replaced.
    back = ansible.module("restore", db=sample_db, repository=repo, backup=replaced["safety_backup_id"],
                          keep_previous=0)
    assert not back["failed"], back.get("msg")
    assert back["row_count_check"]["status"] == "passed"
    assert {t: server.count(sample_db, f"lifeboat_sample.{t}") for t in before} == before
