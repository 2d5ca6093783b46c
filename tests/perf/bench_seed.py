"""lifeboat.db.seed against psql: a big seed file, and a project of many migrations.

    .venv/bin/python tests/perf/bench_seed.py [--rows 500000] [--inserts 20000] [--migrations 200]

1. apply: a schema file and a seed file (COPY rows plus single-row INSERTs) into a fresh
   database - `psql -1 -v ON_ERROR_STOP=1 -f schema.sql -f seed.sql` against action=apply (one
   transaction too, plus parsing every statement first and recording the files).
2. migrate: N versioned migrations from scratch - psql running each file in its own transaction
   (what Flyway does) against action=migrate (which also checksums, records history and locks).
Prints seconds side by side; the module's own seconds exclude ansible-playbook's start-up.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Bench  # noqa: E402


def write_project(folder, rows, inserts, migrations):
    schema = folder / "schema.sql"
    schema.write_text("CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL, at timestamptz NOT NULL, "
                      "payload jsonb);\nCREATE TABLE notes (id bigint PRIMARY KEY, body text);\n"
                      "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END; $$;\n")
    with open(folder / "seed.sql", "w") as out:
        out.write("COPY events (id, kind, at, payload) FROM stdin;\n")
        for i in range(rows):
            out.write('%d\tkind-%d\t2026-01-01 00:00:%02d+00\t{"n": %d}\n' % (i, i % 7, i % 60, i))
        out.write("\\.\n")
        for i in range(inserts):
            out.write("INSERT INTO notes (id, body) VALUES (%d, 'note %d; with a semicolon');\n" % (i, i))
    sql = folder / "sql"
    sql.mkdir()
    for i in range(1, migrations + 1):
        (sql / ("V%d__step_%d.sql" % (i, i))).write_text(
            "CREATE TABLE t%d (id int PRIMARY KEY, v text);\nINSERT INTO t%d VALUES (1, 'x');\n"
            "CREATE INDEX t%d_v ON t%d (v);\n" % (i, i, i, i))
    return schema, folder / "seed.sql", sql


def fresh(bench, db):
    subprocess.run([bench.tool("psql"), "-q", "-d", "postgres", "-c", 'DROP DATABASE IF EXISTS "%s"' % db, "-c",
                    'CREATE DATABASE "%s"' % db], check=True, env=bench.env, capture_output=True)


def timed(argv, env):
    start = time.monotonic()
    subprocess.run(argv, check=True, env=env, capture_output=True)
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500000)
    parser.add_argument("--inserts", type=int, default=20000)
    parser.add_argument("--migrations", type=int, default=200)
    args = parser.parse_args()
    bench = Bench("perf-seed")
    try:
        folder = Path(tempfile.mkdtemp(prefix="lifeboat-seed-perf-"))
        schema, seed, sql = write_project(folder, args.rows, args.inserts, args.migrations)
        size = seed.stat().st_size / 1e6
        psql = bench.tool("psql")

        fresh(bench, "bench_apply")
        raw = timed([psql, "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", "bench_apply", "-f", str(schema), "-f",
                     str(seed)], bench.env)
        fresh(bench, "bench_apply")
        result, whole = bench.play({"lifeboat.db.seed": {"db": "bench_apply", "schema_files": [str(schema)],
                                                         "seed_files": [str(seed)]}})
        module = result["timing"]["seconds"]

        fresh(bench, "bench_migrate")
        files = sorted(sql.iterdir(), key=lambda p: int(p.name[1:].split("__")[0]))
        start = time.monotonic()
        for path in files:
            subprocess.run([psql, "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", "bench_migrate", "-f", str(path)],
                           check=True, env=bench.env, capture_output=True)
        raw_migrate = time.monotonic() - start
        fresh(bench, "bench_migrate")
        migrated, whole_migrate = bench.play({"lifeboat.db.seed": {"db": "bench_migrate", "action": "migrate",
                                                                   "migrations": [str(sql)]}})
        assert len(migrated["applied"]) == args.migrations, migrated.get("msg")

        print("seed file: %.1f MB (%d COPY rows, %d INSERTs); %d migrations" % (size, args.rows, args.inserts,
                                                                                 args.migrations))
        print("%-44s %8s %8s" % ("run", "seconds", "vs psql"))
        print("%-44s %8.2f %8.2f" % ("psql -1 -f schema.sql -f seed.sql", raw, 1.0))
        print("%-44s %8.2f %8.2f" % ("seed action=apply (module)", module, module / raw))
        print("%-44s %8.2f %8.2f" % ("seed action=apply (whole ansible-playbook)", whole, whole / raw))
        print("%-44s %8.2f %8.2f" % ("psql -1 -f, one process per migration", raw_migrate, 1.0))
        print("%-44s %8.2f %8.2f" % ("seed action=migrate (module)", migrated["timing"]["seconds"],
                                     migrated["timing"]["seconds"] / raw_migrate))
        print("%-44s %8.2f %8.2f" % ("seed action=migrate (whole ansible-playbook)", whole_migrate,
                                     whole_migrate / raw_migrate))
    finally:
        bench.stop(destroy=True)


if __name__ == "__main__":
    main()
