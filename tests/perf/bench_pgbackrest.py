#!/usr/bin/env python3
"""Benchmark (issue 19's "Performance"): pgBackRest next to lifeboat's logical backup on the same data.

    .venv/bin/python tests/perf/bench_pgbackrest.py [--gb 1] [--scale 2000] [--jobs 2] [--pgbench-seconds 30]

As root (pgBackRest and Debian's PostgreSQL 15 installed, as `make test` does). It makes server
`bench-pgbr` with a pgBackRest stanza on a path repository (tests/tools/pgbackrest_stanza.py),
loads database `bench` with lifeboat.db.sample_data at --scale, about --gb GiB of random rows
(bench_hosts.py's generator) and pgbench's tables, then times, in one run:

- backup: pgbackrest backup --type=full (the whole cluster), lifeboat.db.dump (custom format, through
  ansible-playbook as the other benches run it) and raw pg_dump -Fc -Z6 of `bench`;
- restore: pgbackrest restore --type=immediate into a NEW data directory, then pg_ctl start until the
  new cluster is out of recovery and accepts connections; lifeboat.db.restore mode=new and mode=swap;
  raw pg_restore -j<jobs> into a new database;
- archiving under pgbench (-c 2 for --pgbench-seconds): pg_stat_archiver sampled each second, the
  age of the last archived segment and how many completed segments were still waiting for the archive;
- PITR: an incremental backup before pgbench, a target time after it, a marker row after the target;
  the restore into a new data directory (files) and the time from pg_ctl start until promoted (WAL
  replay), with the server log's own "redo done ... elapsed" figure, and the marker checked absent.

lifeboat's figures include ansible-playbook's start-up and what raw tools skip (row counts, sha256,
the manifest, fsyncs, verification, ANALYZE). The machine has 2 cores and is shared: compare ratios
within one run. Every server it starts is stopped and every file it made removed, in a finally.
"""
import argparse
import re
import shutil
import subprocess
import sys
import threading
import time

import psycopg

import harness
from harness import PROJECT, Bench
from bench_hosts import random_rows_sql

sys.path.insert(0, str(PROJECT / "tests" / "tools"))
import pgbackrest_stanza  # noqa: E402
from pgbackrest_stanza import Stanza  # noqa: E402

NAME = "bench-pgbr"
MB = 1024 ** 2


class StanzaBench(Bench):
    """harness.Bench (inventory, ansible-playbook with recorded results) on the stanza's server.
    Bench starts its server with scripts/pgserver.py's default binaries, which refuses a server made
    with Debian's; the stanza's server is already running, so that start is skipped here."""

    def __init__(self, name):
        start = harness.pgserver
        harness.pgserver = lambda *args: None
        try:
            super().__init__(name)
        finally:
            harness.pgserver = start


def timed(argv, env):
    start = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, env=env, cwd=PROJECT)
    return time.monotonic() - start


class Scratch:
    """A cluster restored by pgBackRest into a new data directory of its own, on a new port."""

    def __init__(self, stanza, label):
        self.stanza, self.facts = stanza, stanza.facts
        self.data = stanza.base / ("restore-" + label)
        self.log = stanza.base / ("restore-%s.log" % label)
        self.port = None

    def restore(self, *options):
        self.data.mkdir(mode=0o700)
        self.stanza.own(self.data)
        start = time.monotonic()
        self.stanza.pgbackrest("restore", "--pg1-path=%s" % self.data, "--target-action=promote", *options)
        return time.monotonic() - start

    def start(self):
        """Start without waiting; returns the seconds until recovery ended and a login works."""
        self.port = pgbackrest_stanza.pgserver.free_loopback_port()
        self.log.touch()
        self.stanza.own(self.log)
        start = time.monotonic()
        # archive_mode off: the copy must not push its new timeline into the live cluster's repository.
        self.stanza.run([self.facts["bin_dir"] + "/pg_ctl", "-D", str(self.data), "-l", str(self.log),
                         "-o", "-p %d -c archive_mode=off" % self.port, "start"])
        deadline = start + 1800
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(**self.connection("postgres"), connect_timeout=2) as conn:
                    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        return time.monotonic() - start
            except psycopg.OperationalError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the restored cluster in %s did not finish recovery within 30 min" % self.data)

    def connection(self, db):
        return {"host": self.facts["host"], "port": self.port, "user": self.facts["user"],
                "password": self.facts["password"], "dbname": db, "autocommit": True}

    def redo_elapsed(self):
        """PostgreSQL 15's own replay time: "redo done at ... elapsed: N s" in the server log."""
        found = re.search(r"redo done at .*elapsed: ([0-9.]+) s", self.log.read_text(errors="replace"))
        return float(found.group(1)) if found else None

    def stop(self):
        if (self.data / "postmaster.pid").exists():
            self.stanza.run([self.facts["bin_dir"] + "/pg_ctl", "-D", str(self.data), "-m", "immediate", "-w",
                             "stop"], check=False)
        shutil.rmtree(self.data, ignore_errors=True)


def archive_sampler(stanza, samples, stop):
    """Each second: seconds since the last segment reached the repository, and how many completed
    segments still wait for it (pg_stat_archiver, as pgbackrest_info reads it)."""
    query = ("SELECT extract(epoch FROM now() - last_archived_time), last_archived_wal,"
             " pg_walfile_name(pg_current_wal_lsn()), failed_count FROM pg_stat_archiver")
    with psycopg.connect(host=stanza.facts["host"], port=stanza.facts["port"], user=stanza.facts["user"],
                         password=stanza.facts["password"], dbname="postgres", autocommit=True) as conn:
        while not stop.wait(1):
            age, archived, current, failed = conn.execute(query).fetchone()
            # Segment names are timeline (8 hex) + a 16-hex segment number; the one being written is not
            # complete yet, so an archive that keeps up is exactly one behind it.
            behind = int(current[8:], 16) - int(archived[8:], 16) - 1 if archived else None
            samples.append((float(age or 0), behind, failed))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="GiB of random rows in database bench")
    parser.add_argument("--scale", type=int, default=2000, help="lifeboat.db.sample_data scale")
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--pgbench-seconds", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    why = pgbackrest_stanza.missing()
    if why:
        sys.exit("bench_pgbackrest: " + why)

    stanza, bench, scratches = Stanza(NAME), None, []
    try:
        print("making the cluster and the stanza ...", flush=True)
        facts = stanza.start()
        bench = StanzaBench(NAME)
        env, work = bench.env, bench.work
        work.chmod(0o755)  # pg tools run as root here, but keep it readable like the other benches' folders
        psql = [bench.tool("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d"]
        subprocess.run(psql + ["postgres", "-c", "CREATE DATABASE bench"], check=True, env=env, capture_output=True)
        print(f"loading sample data (scale {args.scale}), {args.gb} GiB of random rows, pgbench -s "
              f"{args.pgbench_scale} ...", flush=True)
        bench.play({"lifeboat.db.sample_data": {"db": "bench", "scale": args.scale}})
        subprocess.run(psql + ["bench", "-c", random_rows_sql("lifeboat_sample.random_rows",
                                                              int(args.gb * 1024 ** 3 / 250))],
                       check=True, env=env, capture_output=True)
        subprocess.run([bench.tool("pgbench"), "-i", "-q", "-s", str(args.pgbench_scale), "bench"], check=True,
                       env=env, capture_output=True)
        stanza.sql("CHECKPOINT")
        db_bytes = stanza.sql("SELECT pg_database_size('bench')")[0][0]
        cluster_bytes = int(stanza.sql("SELECT sum(pg_database_size(oid)) FROM pg_database")[0][0])

        rows = {}
        start = time.monotonic()
        stanza.pgbackrest("backup", "--type=full")
        pgbr_backup = time.monotonic() - start
        raw_file = work / "raw.dump"
        raw_dump = timed([bench.tool("pg_dump"), "-Fc", "-Z6", "-f", str(raw_file), "bench"], env)
        _, lb_dump = bench.play({"lifeboat.db.dump": {"db": "bench", "repository": str(work / "repo")}})
        rows["full backup"] = (pgbr_backup, lb_dump, raw_dump)

        print("restoring ...", flush=True)
        scratch = Scratch(stanza, "full")
        scratches.append(scratch)
        files = scratch.restore("--type=immediate")
        pgbr_restore = files + scratch.start()
        scratch.stop()
        _, lb_new = bench.play({"lifeboat.db.restore": {"db": "bench_lb", "backup_db": "bench", "mode": "new",
                                                        "repository": str(work / "repo"), "jobs": args.jobs}})
        swap, lb_swap = bench.play({"lifeboat.db.restore": {"db": "bench", "backup_db": "bench", "mode": "swap",
                                                            "keep_previous": 0, "repository": str(work / "repo"),
                                                            "jobs": args.jobs}})
        subprocess.run(psql + ["postgres", "-c", "CREATE DATABASE bench_raw"], check=True, env=env, capture_output=True)
        raw_restore = timed([bench.tool("pg_restore"), f"-j{args.jobs}", "--no-owner", "--no-acl", "-d", "bench_raw",
                             str(raw_file)], env)
        rows["restore"] = (pgbr_restore, lb_new, raw_restore)
        for db in ("bench_lb", "bench_raw"):
            subprocess.run(psql + ["postgres", "-c", f"DROP DATABASE {db}"], check=True, env=env, capture_output=True)
        _, noop = bench.play({"ansible.builtin.ping": {}})

        print(f"PITR: incremental backup, pgbench {args.pgbench_seconds} s with archive lag sampled ...", flush=True)
        stanza.pgbackrest("backup", "--type=incr")
        wal_before = stanza.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]
        samples, stop = [], threading.Event()
        sampler = threading.Thread(target=archive_sampler, args=(stanza, samples, stop))
        sampler.start()
        try:
            bench_out = subprocess.run([bench.tool("pgbench"), "-c", "2", "-j", "2", "-T", str(args.pgbench_seconds),
                                        "bench"], check=True, env=env, capture_output=True, text=True).stdout
        finally:
            stop.set()
            sampler.join()
        tps = re.search(r"tps = ([0-9.]+)", bench_out)
        wal_bytes = int(stanza.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0] - wal_before)
        time.sleep(1.1)
        target = stanza.sql("SELECT now()::text")[0][0]
        time.sleep(1.1)
        stanza.sql("CREATE TABLE IF NOT EXISTS marks (at timestamptz DEFAULT now(), payload text)")
        stanza.sql("INSERT INTO marks (payload) VALUES ('after the PITR target')")
        stanza.switch_wal_and_wait()
        pitr = Scratch(stanza, "pitr")
        scratches.append(pitr)
        pitr_files = pitr.restore("--type=time", "--target=%s" % target)
        pitr_replay = pitr.start()
        with psycopg.connect(**pitr.connection("postgres")) as conn:
            kept = conn.execute("SELECT count(*) FROM marks WHERE payload = 'after the PITR target'").fetchone()[0]
        redo = pitr.redo_elapsed()
        pitr.stop()

        mb_db, mb_cluster = db_bytes / MB, cluster_bytes / MB
        print(f"\ndatabase bench {mb_db:.0f} MB, cluster {mb_cluster:.0f} MB, pg_dump -Fc file "
              f"{raw_file.stat().st_size / MB:.0f} MB, PostgreSQL {facts['version']}, pgBackRest lz4 process-max=2")
        print(f"ansible-playbook start-up (a play with one ping): {noop:.2f} s; MB/s = database bench's size "
              f"/ seconds (pgBackRest copies the whole cluster, {mb_cluster / mb_db:.2f} x that)\n")
        print(f"{'operation':<12} {'pgBackRest s':>13} {'lifeboat s':>11} {'raw pg s':>9} "
              f"{'pgBR MB/s':>10} {'lb MB/s':>8} {'raw MB/s':>9} {'lb/pgBR':>8} {'raw/pgBR':>9}")
        for name, (pgbr, lb, raw) in rows.items():
            print(f"{name:<12} {pgbr:>13.2f} {lb:>11.2f} {raw:>9.2f} {mb_db / pgbr:>10.1f} {mb_db / lb:>8.1f} "
                  f"{mb_db / raw:>9.1f} {lb / pgbr:>8.2f} {raw / pgbr:>9.2f}")
        print(f"{'swap restore':<12} {'':>13} {lb_swap:>11.2f} {'':>9} {'':>10} {mb_db / lb_swap:>8.1f} {'':>9} "
              f"{lb_swap / pgbr_restore:>8.2f}   (live database down {swap['swap']['window_seconds']:.3f} s)")
        print(f"\npgBackRest restore = files {files:.2f} s + start until accepting connections "
              f"{pgbr_restore - files:.2f} s; raw tools: pg_dump -Fc -Z6, pg_restore -j{args.jobs} into a new database")
        print(f"\nPITR to {target} (after {args.pgbench_seconds} s of pgbench, {tps.group(1) if tps else '?'} tps), "
              f"from the incremental backup: files {pitr_files:.2f} s, start + WAL replay until promoted "
              f"{pitr_replay:.2f} s (server log's redo elapsed: {redo if redo is not None else '?'} s); "
              f"marker written after the target present: {'YES - WRONG' if kept else 'no (right)'}")
        if samples:
            ages = [s[0] for s in samples]
            behind = [s[1] for s in samples if s[1] is not None]
            print(f"archiving under pgbench ({len(samples)} samples, 1 s apart): age of the last archived segment "
                  f"max {max(ages):.1f} s, median {sorted(ages)[len(ages) // 2]:.1f} s; completed segments waiting "
                  f"max {max(behind) if behind else '?'}, last {behind[-1] if behind else '?'}; failures "
                  f"{samples[-1][2]}; pgbench wrote {wal_bytes / MB:.0f} MB of WAL")
    finally:
        for scratch in scratches:
            scratch.stop()
        stanza.stop()
        if bench:
            shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
