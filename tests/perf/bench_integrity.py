#!/usr/bin/env python3
"""Benchmark: lifeboat.db.integrity's row counts on a big database next to psql's count(*).

    .venv/bin/python tests/perf/bench_integrity.py [--gb 1.1] [--tables 4] [--keep]

Starts its own embedded server ('perf-integrity'), builds a database of about --gb GB (the sample
data plus --tables tables of random rows that do not compress; analyzed, not vacuumed, like a
database just restored), and times, in one run, each figure the median of --repeat runs:
- psql: `SELECT count(*)` of every table, one after another in one session (what a runbook does);
- lifeboat.db.integrity with count=exact, on 1 and on 2 connections, comparing with a baseline;
- lifeboat.db.integrity with count=estimate (planner statistics), with and without the built-in
  checks (orphans for every foreign key, sequences, indexes, amcheck).
lifeboat's figures are its counting phase (the row_counts check's seconds), the module's own
seconds (its `timing`: connecting, reading the baseline, comparing), and the whole
ansible-playbook run beside them, start-up included; "vs psql" divides the module's own seconds. Timings on a shared machine are noisy: compare ratios.
"""
import argparse
import statistics
import subprocess
import time

from harness import Bench

NAME = "perf-integrity"
BUILTINS = ["foreign_keys", "sequences", "invalid_indexes", "not_valid_constraints", "amcheck"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.1)
    parser.add_argument("--tables", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the server and its database afterwards")
    args = parser.parse_args()

    bench = Bench(NAME)
    env, work = bench.env, bench.work
    psql = [bench.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]

    def play(task):
        result, total = bench.play(task)
        assert not result.get("failed"), result.get("msg")
        return result, total

    db = "bench_integrity"
    exists = subprocess.run(psql + ["-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{db}'"],
                            env=env, check=True, capture_output=True, text=True).stdout.strip()
    if not exists:
        print("loading sample data ...", flush=True)
        play({"lifeboat.db.sample_data": {"db": db, "scale": 20000}})
        rows = int(args.gb * 1024 ** 3 / 250 / args.tables)
        for number in range(1, args.tables + 1):
            print(f"adding table random_{number}: {rows} random rows ...", flush=True)
            subprocess.run(psql + ["-d", db, "-c",
                                   f"CREATE TABLE lifeboat_sample.random_{number} (id bigint PRIMARY KEY, body text,"
                                   " amount numeric, seen_at timestamptz, attrs jsonb) WITH (autovacuum_enabled = false);"
                                   f"INSERT INTO lifeboat_sample.random_{number} SELECT i, md5(random()::text)"
                                   " || md5(random()::text) || md5(random()::text), round((random() * 1e6)::numeric, 2),"
                                   " now() - random() * interval '3 years', jsonb_build_object('k', md5(random()::text))"
                                   f" FROM generate_series(1, {rows}) i"], check=True, env=env)
        # ANALYZE, not VACUUM: like a database just restored, its visibility map is not set, so
        # count(*) reads the tables rather than only their primary keys' indexes.
        subprocess.run(psql + ["-d", db, "-c", "ANALYZE"], check=True, env=env)
    size = subprocess.run(psql + ["-d", db, "-tAc", f"SELECT pg_size_pretty(pg_database_size('{db}'))"],
                          env=env, check=True, capture_output=True, text=True).stdout.strip()
    tables = subprocess.run(psql + ["-d", db, "-tAc",
                                    "SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM pg_stat_user_tables"
                                    " ORDER BY 1"], env=env, check=True, capture_output=True, text=True).stdout.split()

    baseline = work / "baseline.json"
    captured, capture_total = play({"lifeboat.db.integrity": {"db": db, "action": "capture",
                                                              "baseline": str(baseline), "parallel": 2}})
    # Warm the cache the same way for everyone: one untimed pass.
    script = "".join(f"SELECT count(*) FROM {t};\n" for t in tables)
    subprocess.run(psql + ["-d", db, "-c", script], env=env, check=True, capture_output=True)

    def raw_counts():
        start = time.monotonic()
        subprocess.run(psql + ["-d", db, "-c", script], env=env, check=True, capture_output=True)
        return time.monotonic() - start

    def median_play(task):
        runs = sorted((play(task) for dummy in range(args.repeat)), key=lambda run: run[0]["timing"]["seconds"])
        return runs[len(runs) // 2]

    raw = statistics.median(raw_counts() for dummy in range(args.repeat))
    counts_only = {"db": db, "baseline": str(baseline), "skip": BUILTINS}
    exact1, exact1_total = median_play({"lifeboat.db.integrity": dict(counts_only, count="exact", parallel=1)})
    exact2, exact2_total = median_play({"lifeboat.db.integrity": dict(counts_only, count="exact", parallel=2)})
    estimate, estimate_total = median_play({"lifeboat.db.integrity": dict(counts_only, count="estimate")})
    everything, everything_total = median_play({"lifeboat.db.integrity": {"db": db, "baseline": str(baseline),
                                                                          "count": "estimate", "parallel": 2}})
    noop_start = time.monotonic()
    play({"ansible.builtin.ping": {}})
    startup = time.monotonic() - noop_start

    exact_counts = captured["row_counts"]
    worst = max(abs(estimate["row_counts"][t] - n) / max(n, 1) for t, n in exact_counts.items())
    print(f"\ndatabase {size}, {len(tables)} tables, {sum(exact_counts.values())} rows, pg {bench.facts['version']};"
          f" ansible-playbook start-up (one ping) {startup:.2f} s\n")
    print(f"{'run':<52} {'counting s':>10} {'module s':>9} {'playbook s':>11} {'vs psql':>8}")
    print(f"{'psql: count(*) of every table, one after another':<52} {raw:>10.2f} {'':>9} {'':>11} {1:>8.2f}")
    for label, result, total in (
            ("integrity count=exact parallel=1 (counts only)", exact1, exact1_total),
            ("integrity count=exact parallel=2 (counts only)", exact2, exact2_total),
            ("integrity count=estimate (counts only)", estimate, estimate_total),
            ("integrity count=estimate + every built-in check", everything, everything_total),
            ("capture (exact counts, sequences, schema; 2 conns)", captured, capture_total)):
        seconds = result["timing"]["seconds"]
        counting = next((c["seconds"] for c in result.get("checks", []) if c["name"] == "row_counts"), None)
        print(f"{label:<52} {counting if counting is not None else float('nan'):>10.2f} {seconds:>9.2f}"
              f" {total:>11.2f} {seconds / raw:>8.2f}")
    print(f"\nestimate vs exact: largest difference {worst * 100:.2f}% of a table's rows")
    print(f"every built-in check: {everything['summary']}")
    if not args.keep:
        bench.stop(destroy=True)


if __name__ == "__main__":
    main()
