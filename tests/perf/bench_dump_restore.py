#!/usr/bin/env python3
"""Benchmark: lifeboat.db.dump / restore next to raw pg_dump / pg_restore on the same data.

    .venv/bin/python tests/perf/bench_dump_restore.py [--scale 20000] [--jobs 2] [--random-gb 1]

Starts its own embedded server ('perf'), loads the sample dataset (about 18 rows per customer),
and, with --random-gb, a table of random text, numbers and timestamps of about that size (data
that does not compress like pgbench's filler), then times, in one run: raw pg_dump -Fc, lifeboat.db.dump through ansible-playbook, raw pg_restore
into a new database, and lifeboat.db.restore (mode new). lifeboat's figures include what raw
tools do not: the exact row counts, sha256, the manifest, fsyncs, verification before restore and
ANALYZE after, plus ansible-playbook's own start-up. Compare ratios, not absolute times.
Then it measures how long the live database is unavailable: the runbooks' DROP + CREATE +
pg_restore next to lifeboat's restore mode=swap (its swap step's window_seconds).
"""
import argparse
import subprocess
import time

from harness import PROJECT, Bench


def timed(argv, env=None):
    start = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, env=env, cwd=PROJECT)
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=20000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--random-gb", type=float, default=0)
    args = parser.parse_args()

    bench = Bench("perf")
    facts, env, work = bench.facts, bench.env, bench.work
    results = {}

    def play(name, task):
        results[name], seconds = bench.play(task)
        return seconds

    psql = [f"{facts['bin_dir']}/psql", "-q", "-d", "postgres", "-c"]
    for db in ("bench", "bench_raw", "bench_lb"):
        subprocess.run(psql + [f"DROP DATABASE IF EXISTS {db}"], check=True, env=env, capture_output=True)
    print(f"loading sample data, scale {args.scale} ...", flush=True)
    play("load", {"lifeboat.db.sample_data": {"db": "bench", "scale": args.scale}})
    if args.random_gb:
        # ~250 bytes a row on disk: random hex text, a random number, a random timestamp, a jsonb.
        rows = int(args.random_gb * 1024 ** 3 / 250)
        print(f"adding {rows} random rows ...", flush=True)
        subprocess.run([f"{facts['bin_dir']}/psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", "bench", "-c",
                        "CREATE TABLE lifeboat_sample.random_rows (id bigint PRIMARY KEY, body text, amount numeric,"
                        " seen_at timestamptz, attrs jsonb);"
                        f"INSERT INTO lifeboat_sample.random_rows SELECT i, md5(random()::text) || md5(random()::text)"
                        " || md5(random()::text), round((random() * 1e6)::numeric, 2),"
                        " now() - random() * interval '3 years', jsonb_build_object('k', md5(random()::text))"
                        f" FROM generate_series(1, {rows}) i"], check=True, env=env)
    size = subprocess.run(psql + ["SELECT pg_size_pretty(pg_database_size('bench'))"], env=env, check=True,
                          capture_output=True, text=True)
    subprocess.run([*psql[:-1], "-t", "-c", "SELECT 1"], env=env, check=True, capture_output=True)

    pg_dump, pg_restore = f"{facts['bin_dir']}/pg_dump", f"{facts['bin_dir']}/pg_restore"
    raw_file = work / "raw.dump"
    rows = {}
    rows["dump"] = (timed([pg_dump, "-Fc", "-Z6", "-f", str(raw_file), "bench"], env),
                    play("dump", {"lifeboat.db.dump": {"db": "bench", "repository": str(work / "repo")}}))
    subprocess.run(psql + ["CREATE DATABASE bench_raw"], check=True, env=env, capture_output=True)
    rows["restore"] = (timed([pg_restore, f"-j{args.jobs}", "--no-owner", "--no-acl", "-d", "bench_raw",
                              str(raw_file)], env),
                       play("restore", {"lifeboat.db.restore": {"db": "bench_lb", "backup_db": "bench",
                                                                "repository": str(work / "repo"), "mode": "new",
                                                                "jobs": args.jobs}}))
    baseline = play("noop", {"ansible.builtin.ping": {}})

    # The live database's unavailability: the runbooks drop it and restore (down from DROP until
    # pg_restore ends); swap restores beside it and is down only for the swap step.
    start = time.monotonic()
    subprocess.run(psql + ["DROP DATABASE bench_raw"], check=True, env=env, capture_output=True)
    subprocess.run(psql + ["CREATE DATABASE bench_raw"], check=True, env=env, capture_output=True)
    subprocess.run([pg_restore, f"-j{args.jobs}", "--no-owner", "--no-acl", "-d", "bench_raw", str(raw_file)],
                   check=True, env=env, capture_output=True)
    runbook_window = time.monotonic() - start
    swap_total = play("swap", {"lifeboat.db.restore": {"db": "bench_lb", "backup_db": "bench", "keep_previous": 0,
                                                       "repository": str(work / "repo"), "mode": "swap",
                                                       "jobs": args.jobs}})
    swap = results["swap"]

    print(f"\ndatabase size: {size.stdout.splitlines()[2].strip() if len(size.stdout.splitlines()) > 2 else '?'}"
          f", dump file {raw_file.stat().st_size / 1e6:.1f} MB, pg tools {facts['version']}")
    print(f"ansible-playbook start-up (a play with one ping): {baseline:.2f} s\n")
    print(f"{'operation':<10} {'raw tool s':>11} {'lifeboat s':>11} {'lifeboat - startup':>19} {'ratio':>7}")
    for name, (raw, lb) in rows.items():
        print(f"{name:<10} {raw:>11.2f} {lb:>11.2f} {lb - baseline:>19.2f} {(lb - baseline) / raw:>7.2f}")
    timings = results["restore"]["timings"]
    print(f"\nlifeboat restore (new) steps: verify {timings.get('verify_seconds', 0):.2f} s, pg_restore "
          f"{timings.get('restore_seconds', 0):.2f} s ({timings.get('restore_seconds', 0) / rows['restore'][0]:.2f} x raw), "
          f"ANALYZE {timings.get('analyze_seconds', 0):.2f} s")
    without_analyze = rows["restore"][1] - baseline - timings.get("analyze_seconds", 0)
    print(f"lifeboat restore (new) without ANALYZE, ansible start-up excluded: {without_analyze:.2f} s = "
          f"{without_analyze / rows['restore'][0]:.2f} x raw pg_restore -j{args.jobs} "
          f"(module's own total less ANALYZE: {timings['total_seconds'] - timings.get('analyze_seconds', 0):.2f} s = "
          f"{(timings['total_seconds'] - timings.get('analyze_seconds', 0)) / rows['restore'][0]:.2f} x)")
    print(f"live database unavailable: runbook drop + create + pg_restore {runbook_window:.2f} s; "
          f"lifeboat swap {swap['swap']['window_seconds']:.3f} s (whole swap restore {swap_total:.2f} s, "
          f"{swap['swap']['sessions_terminated']} session(s) ended)")
    for db in ("bench_raw", "bench_lb"):
        subprocess.run(psql + [f"DROP DATABASE IF EXISTS {db}"], check=True, env=env, capture_output=True)
    bench.stop()


if __name__ == "__main__":
    main()
