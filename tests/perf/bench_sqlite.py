"""lifeboat.db.sqlite's backup of a live >= 1 GB SQLite database against VACUUM INTO and a plain
file copy (seed 004's `cp data/scpln.db backup/...`), with a writer running all the time.

    .venv/bin/python tests/perf/bench_sqlite.py [--gigabytes 1.1] [--work /var/tmp]

The database holds `accounts` (rows of ~1 KB spread over the whole file) whose `balance` always
sums to 0, a `log` of every transfer and a `progress` counter. The writer moves one unit between
two random accounts per transaction, logs it and bumps the counter, so in every committed state
sum(balance) = 0 and count(log) = progress.n; it times every commit. A copy must also hold every
transaction committed before it began (progress.n read just before). For each journal mode
(WAL, then the default rollback journal) each method copies the live database while the writer
runs:

1. lifeboat.db.sqlite action=backup through ansible-playbook (online backup API, one read
   transaction, integrity_check and row counts on the copy);
2. `VACUUM INTO` from another connection;
3. a plain file copy of the database file (what the runbook's `cp` does).

Printed per method: seconds, the writer's longest commit while it ran (its stall), commits done
meanwhile, and whether the copy is sound (integrity_check, sum(balance) = 0, count(log) = n).
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROW_BYTES = 1000

WRITER = r"""
import json, random, signal, sqlite3, sys, time
path, out, accounts = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(path, timeout=120, isolation_level=None)
commits = []
def finish(*_):
    json.dump(commits, open(out, "w"))
    sys.exit(0)
signal.signal(signal.SIGTERM, finish)
while True:
    a, b = random.randint(1, accounts), random.randint(1, accounts)
    started = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE accounts SET balance = balance - 1 WHERE id = ?", (a,))
    conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = ?", (b,))
    conn.execute("INSERT INTO log(a, b) VALUES (?, ?)", (a, b))
    conn.execute("UPDATE progress SET n = n + 1")
    conn.execute("COMMIT")
    commits.append((started, time.time() - started))
"""


def build(path, gigabytes):
    accounts = int(gigabytes * 1024 ** 3 / (ROW_BYTES + 60))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(f"""
        PRAGMA journal_mode = WAL;
        CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, filler BLOB);
        CREATE TABLE log (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER);
        CREATE TABLE progress (n INTEGER NOT NULL);
        INSERT INTO progress VALUES (0);
        BEGIN;
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {accounts})
        INSERT INTO accounts SELECT x, 0, randomblob({ROW_BYTES}) FROM c;
        COMMIT;
    """)
    conn.close()
    return accounts


def sound(path):
    """Whether a copy is one committed state: (integrity_check, sum(balance), count(log), progress.n)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
        try:
            total = conn.execute("SELECT sum(balance) FROM accounts").fetchone()[0]
            logged = conn.execute("SELECT count(*) FROM log").fetchone()[0]
            n = conn.execute("SELECT n FROM progress").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            return integrity, str(exc), None, None
    except sqlite3.DatabaseError as exc:
        return str(exc), None, None, None
    finally:
        conn.close()
    return integrity, total, logged, n


def lifeboat_backup(live, work):
    playbook, inventory, record = work / "play.json", work / "inventory.json", work / "results.jsonl"
    inventory.write_text(json.dumps({"all": {"hosts": {"bench": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    playbook.write_text(json.dumps([{"hosts": "all", "gather_facts": False, "tasks": [
        {"lifeboat.db.sqlite": {"action": "backup", "path": str(live), "repository": str(work / "repo"),
                                "busy_timeout": 120}}]}]))
    if record.exists():
        record.unlink()
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), PATH=f"{BIN}:{os.environ['PATH']}",
               ANSIBLE_CALLBACK_PLUGINS=str(PROJECT / "tests" / "integration" / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="record_results", LIFEBOAT_TEST_RECORD=str(record))
    subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)], check=True,
                   capture_output=True, env=env, cwd=PROJECT)
    result = json.loads(record.read_text().splitlines()[-1])["result"]
    return Path(result["backup_path"]) / "database.sqlite", result


def vacuum_into(live, work):
    target = work / "vacuum.db"
    conn = sqlite3.connect(str(live), timeout=120, isolation_level=None)
    try:
        conn.execute("VACUUM INTO ?", (str(target),))
    finally:
        conn.close()
    return target, None


def plain_copy(live, work):
    target = work / "cp.db"
    shutil.copyfile(live, target)
    return target, None


def measure(method, live, work, accounts):
    out = work / "writer.json"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(live), str(out), str(accounts)])
    time.sleep(2)
    # What was committed before the copy began: a copy with less lost committed transactions.
    conn = sqlite3.connect(str(live), timeout=120)
    reached = conn.execute("SELECT n FROM progress").fetchone()[0]
    conn.close()
    started = time.time()
    copy, result = method(live, work)
    finished = time.time()
    time.sleep(0.5)
    writer.send_signal(signal.SIGTERM)
    writer.wait(timeout=120)
    commits = json.loads(out.read_text())
    during = [latency for begun, latency in commits if begun + latency >= started and begun <= finished]
    before = [latency for begun, latency in commits if begun + latency < started]
    row = dict(seconds=round(finished - started, 2), stall=round(max(during, default=0), 3),
               usual=round(sorted(before)[int(len(before) * 0.99)] if before else 0, 4), commits=len(during),
               copy=sound(copy), reached=reached, size_mb=round(copy.stat().st_size / 1024 ** 2))
    if result is not None:
        row.update(module_seconds=result["seconds"], copy_seconds=result["copy_seconds"], steps=result["actions"][0])
    if copy.parent.name != work.name:
        shutil.rmtree(copy.parent)
    else:
        copy.unlink()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.1)
    parser.add_argument("--work", default="/var/tmp")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lifeboat-bench-sqlite-", dir=args.work))
    try:
        live = work / "live.db"
        clock = time.monotonic()
        accounts = build(live, args.gigabytes)
        print(f"built {live.stat().st_size / 1024 ** 3:.2f} GB ({accounts} accounts) in {time.monotonic() - clock:.0f} s",
              flush=True)
        for mode in ("wal", "delete"):
            conn = sqlite3.connect(str(live), isolation_level=None)
            conn.execute(f"PRAGMA journal_mode = {mode}")
            conn.close()
            for name, method in (("lifeboat backup", lifeboat_backup), ("VACUUM INTO", vacuum_into),
                                 ("plain copy", plain_copy)):
                row = measure(method, live, work, accounts)
                integrity, total, logged, n = row.pop("copy")
                ok = integrity == "ok" and total == 0 and logged == n and n is not None and n >= row["reached"]
                print(f"{mode:6} {name:16} {row['seconds']:7.2f} s  writer's longest commit {row['stall']:7.3f} s "
                      f"(p99 before {row['usual']:.4f} s, {row['commits']} commits meanwhile)  copy "
                      f"{'consistent' if ok else 'INCONSISTENT'}: integrity {integrity!s:.60}, sum(balance) {total}, "
                      f"log {logged} vs n {n} (n {row['reached']} committed before the copy began)"
                      + (f"  [module {row['module_seconds']} s, copy {row['copy_seconds']} s]"
                         if "module_seconds" in row else ""), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
