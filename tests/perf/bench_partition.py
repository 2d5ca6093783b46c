"""lifeboat.db.partition's retention (detach, archive, prove, drop) against the runbook's raw steps.

    .venv/bin/python tests/perf/bench_partition.py [--rows 1000000]

A table like seed 002's policy_violations, partitioned by year, holds --rows rows in its 2023
partition (and a few in 2024..2026). The 2023 partition is retired two ways, each from a freshly
built database:

1. archive-old-partitions.sh: `ALTER TABLE ... DETACH PARTITION`, `pg_dump -Fc -t` of the
   detached table, `DROP TABLE` - no check of anything;
2. lifeboat.db.partition with retain 3, retention_action archive_and_drop, through ansible-playbook:
   mark, DETACH CONCURRENTLY, the dump as a backup set (manifest, exact row count in the dump's
   snapshot, pg_restore --list), the proof (sha256 of the files, the rows read back from the
   archive), the drop under lock after counting again.

Prints seconds side by side, and the share of lifeboat's time spent proving the archive.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Bench  # noqa: E402

DB = "bench_partition"


def build(bench, rows):
    psql = bench.tool("psql")
    subprocess.run([psql, "-q", "-d", "postgres", "-c", 'DROP DATABASE IF EXISTS "%s"' % DB, "-c",
                    'CREATE DATABASE "%s"' % DB], check=True, env=bench.env, capture_output=True)
    facts = bench.facts
    with psycopg.connect(host=facts["host"], port=facts["port"], user=facts["user"], password=facts["password"],
                         dbname=DB, autocommit=True) as conn:
        conn.execute("CREATE TABLE policy_violations (id bigint NOT NULL, policy_id int NOT NULL, status text, "
                     "context jsonb, detected_at timestamptz NOT NULL, PRIMARY KEY (id, detected_at)) "
                     "PARTITION BY RANGE (detected_at)")
        for year in range(2023, 2027):
            conn.execute(f"CREATE TABLE policy_violations_{year} PARTITION OF policy_violations "
                         f"FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')")
        conn.execute("CREATE INDEX ON policy_violations (policy_id, status)")
        conn.execute("INSERT INTO policy_violations SELECT g, g %% 50, 'open', jsonb_build_object('n', g), "
                     "timestamptz '2023-01-01' + (g %% 364) * interval '1 day' + interval '1 hour' "
                     "FROM generate_series(1, %s) g", (rows,))
        conn.execute("INSERT INTO policy_violations SELECT g, 1, 'open', '{}', timestamptz '2024-06-01' "
                     "+ (g %% 900) * interval '1 day' FROM generate_series(%s, %s) g", (rows + 1, rows + 1000))
        conn.execute("VACUUM ANALYZE policy_violations")


def raw(bench, work):
    psql, pg_dump = bench.tool("psql"), bench.tool("pg_dump")
    start = time.monotonic()
    subprocess.run([psql, "-q", "-d", DB, "-c", "ALTER TABLE policy_violations DETACH PARTITION policy_violations_2023"],
                   check=True, env=bench.env, capture_output=True)
    subprocess.run([pg_dump, "-Fc", "-t", "policy_violations_2023", "-f", str(work / "raw.dump"), DB], check=True,
                   env=bench.env, capture_output=True)
    subprocess.run([psql, "-q", "-d", DB, "-c", "DROP TABLE policy_violations_2023"], check=True, env=bench.env,
                   capture_output=True)
    return time.monotonic() - start, (work / "raw.dump").stat().st_size


def ours(bench, work):
    result, seconds = bench.play({"lifeboat.db.partition": {
        "db": DB, "table": "public.policy_violations", "interval": "yearly", "premake": 0, "now": "2027-02-01",
        "retain": 3, "retention_action": "archive_and_drop", "repository": str(work / "repo")}})
    assert not result.get("failed"), result.get("msg")
    [archived] = result["archived"]
    return seconds, result["timing"]["seconds"], archived["size"], archived["rows"]


def prove_seconds(bench, work, rows):
    """The proof alone: pg_restore --data-only of the archive, counted line by line."""
    [archive] = list((work / "repo" / DB).glob("*/bench_partition.dump"))
    start = time.monotonic()
    proc = subprocess.Popen([bench.tool("pg_restore"), "--data-only", "-f", "-", str(archive)], stdout=subprocess.PIPE)
    lines = sum(1 for _ in proc.stdout)
    proc.wait()
    assert lines > rows
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000000)
    args = parser.parse_args()
    bench = Bench("perf-partition")
    work = Path(tempfile.mkdtemp(prefix="lifeboat-perf-partition-"))
    try:
        build(bench, args.rows)
        raw_seconds, raw_size = raw(bench, work)
        build(bench, args.rows)
        our_seconds, module_seconds, our_size, rows = ours(bench, work)
        proof = prove_seconds(bench, work, rows)
    finally:
        bench.stop(destroy=True)
    print("retiring one partition of %d rows" % rows)
    print("%-62s %8s %12s" % ("", "seconds", "archive MB"))
    print("%-62s %8.2f %12.1f" % ("runbook: DETACH, pg_dump -Fc -t, DROP", raw_seconds, raw_size / 1e6))
    print("%-62s %8.2f %12.1f" % ("lifeboat.db.partition archive_and_drop, the module alone", module_seconds,
                                  our_size / 1e6))
    print("%-62s %8.2f" % ("the same, the whole ansible-playbook run", our_seconds))
    print("module / runbook %.2f; reading the rows back (part of the proof) took %.2f s"
          % (module_seconds / raw_seconds, proof))


if __name__ == "__main__":
    main()
