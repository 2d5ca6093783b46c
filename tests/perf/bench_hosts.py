#!/usr/bin/env python3
"""Benchmark: lifeboat on real hosts over SSH (issue 17's "Performance"), as root on this machine.

    .venv/bin/python tests/perf/bench_hosts.py [--part all|ssh|dr|fleet] [--scale 2000] [--repeat 3]
        [--gb 1.0] [--jobs 2] [--fleet-mb 100] [--fleet-sizes 1,4,8]

Each part makes its own test hosts (tests/tools/testhosts.py, state .lifeboat/hosts/h5-<part>),
prepares them with playbooks/prepare.yml and builds its inventories as the multi-host tests do
(tests/integration/conftest.py `Hosts.inventory`: inventories/example's group_vars plus overrides).
Every harness, server and moto process is removed in a finally.

- ssh: one host over SSH (login deploy, become postgres, pipelining on) against `connection: local`
  as root on this controller, no become, against a PostgreSQL 15 server of scripts/pgserver.py
  (Debian's binaries, TCP with a password). Same data (lifeboat.db.sample_data at --scale), same
  backup kind (custom, gzip 6), the same playbooks/backup.yml and restore.yml (swap). Runs
  alternate between the two, --repeat times; it prints medians and minimums and the difference.
- dr: db1 gets a database of about --gb GiB (random text, numbers, timestamps, jsonb: data that
  compresses like an application's), backs it up with backup.yml (custom, offsite to moto's S3
  server on the harness's bridge address), then db2 runs playbooks/dr.yml. Against it, inside db2
  with Debian's python3-boto3: the set's objects downloaded twice (download_file with its default
  transfer settings, ranged GETs on 10 threads; and one streamed get_object each, as lifeboat reads
  them), then raw pg_restore --no-owner --no-acl -j<jobs> into a new database, as postgres; once
  before dr.yml and once after, after a warm-up pair that is not counted (a fresh cluster's first
  large load also creates its WAL segments); each raw database is dropped again after its count.
  It prints dr / (the faster download + the faster pg_restore); the aim is <= 1.15.
- fleet: backup.yml over 1, 4 and 8 hosts (each a database of about --fleet-mb MiB, the example's
  production kind: directory format, 4 jobs), forks = host count. Per run: seconds, the controller's
  CPU seconds (user + system of ansible-playbook and every child it waited for: its forks and ssh
  clients; wait4's rusage, which is exactly the getrusage(RUSAGE_CHILDREN) delta of that one run) and
  memory: ru_maxrss is the peak of the LARGEST single process of the run, not a sum, so the
  benchmark also samples the proportional set size (PSS) of ansible-playbook's whole process tree.

The async jobs are polled every second (lifeboat_backup_poll_interval and
lifeboat_restore_poll_interval = 1; the example's 10 s would dominate small runs). The machine is
shared and has 2 cores: compare ratios within one run, not absolute seconds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from harness import BIN, PROJECT, pgserver

sys.path.insert(0, str(PROJECT / "tests" / "integration"))
from conftest import Hosts, playbook_environment  # noqa: E402  (the tests' inventory builder and ansible-playbook environment)
import testhosts  # noqa: E402  (conftest put tests/tools on the path)
from s3server import start_moto  # noqa: E402  (moto on the bridge, as the tests start it)

STATES = PROJECT / ".lifeboat" / "hosts"
PG15 = "/usr/lib/postgresql/15/bin"
POLL = {"lifeboat_backup_poll_interval": 1, "lifeboat_restore_poll_interval": 1}
LOAD_PLAY = """
- name: Sample data
  hosts: databases
  gather_facts: false
  module_defaults:
    group/lifeboat.db.all: "{{ lifeboat_connection }}"
  tasks:
    - name: Sample data
      lifeboat.db.sample_data:
        db: %s
        scale: %d
"""
PING_PLAY = """
- name: One module, nothing else
  hosts: databases
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def random_rows_sql(table, rows):
    """SQL making `table` with `rows` rows of about 250 bytes each on disk (bench_dump_restore's shape)."""
    return (f"CREATE TABLE {table} (id bigint PRIMARY KEY, body text, amount numeric, seen_at timestamptz, attrs jsonb);"
            f"INSERT INTO {table} SELECT i, md5(random()::text) || md5(random()::text) || md5(random()::text),"
            " round((random() * 1e6)::numeric, 2), now() - random() * interval '3 years',"
            f" jsonb_build_object('k', md5(random()::text)) FROM generate_series(1, {rows}) i")


class Run:
    """One ansible-playbook run: wall seconds, the controller's CPU seconds and memory, its task records."""

    def __init__(self, seconds, cpu, maxrss_mb, pss_mb, rc, output, records):
        self.seconds, self.cpu, self.maxrss_mb, self.pss_mb = seconds, cpu, maxrss_mb, pss_mb
        self.rc, self.output, self.records = rc, output, records

    def results(self, host=None):
        return [r["result"] for r in self.records if host is None or r["host"] == host]

    @property
    def module_seconds(self):
        """Seconds the lifeboat modules themselves took (each result's `timing`, from run_module)."""
        return sum(r["timing"]["seconds"] for r in self.results() if isinstance(r.get("timing"), dict))


def tree_pss(pid):
    """PSS (MiB) of process `pid` and all its descendants, shared pages counted once in total."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            pass
    return total / 1024 ** 2


def ansible(inventory, playbook, *args, workdir, sample=False):
    """ansible-playbook as the tests run it (record_results callback); measured with wait4."""
    record = Path(workdir) / "results.jsonl"
    env = playbook_environment(record)
    path = PROJECT / "playbooks" / playbook
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(path), *args]
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0]
    done = threading.Event()

    seen = []  # (seconds since the start, task name) as each task's result is recorded

    def sampler():
        while not done.wait(0.25):
            if sample:
                peak[0] = max(peak[0], tree_pss(proc.pid))
            if record.exists():
                lines = record.read_text().splitlines()
                now = time.monotonic() - start
                for line in lines[len(seen):]:
                    try:
                        seen.append((now, json.loads(line)["task"]))
                    except ValueError:
                        break  # a line being written: read again next time
    watcher = threading.Thread(target=sampler, daemon=True)
    watcher.start()
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    done.set()
    watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    records = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    seen.extend((seconds, entry["task"]) for entry in records[len(seen):])
    run = Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, peak[0], proc.returncode, output,
              records)
    # Each task's seconds, to a quarter of a second: from the previous task's record to its own.
    run.task_seconds, before = {}, 0.0
    for at, name in seen:
        name = name.split(" : ", 1)[-1]
        run.task_seconds[name] = run.task_seconds.get(name, 0) + at - before
        before = at
    if run.rc:
        failed = [r for r in records if r["result"].get("_status") in ("failed", "unreachable")
                  and not r["result"].get("ignore_errors")]
        sys.exit(f"{playbook} failed (rc {run.rc}): "
                 + (json.dumps(failed[-1])[:2000] if failed else output[-3000:]))
    return run


class Part:
    """The hosts of one part: a harness under .lifeboat/hosts/h5-<name>, prepared, destroyed by close()."""

    def __init__(self, name, count, s3=False):
        self.harness = testhosts.Harness(STATES / f"h5-{name}")
        start = time.monotonic()
        try:
            record = self.harness.create(count)
            # Under the state folder (0700), which destroy() removes.
            self.work = self.harness.state / "work"
            self.work.mkdir()
            self.hosts = Hosts(self.harness, record, self.work)
            made = time.monotonic() - start
            prepared = self.play(self.hosts.inventory({"staging": self.hosts.names}, {"all": {"lifeboat_host_s3": s3}}),
                                 "prepare.yml", "--forks", str(max(count, 5)))
        except BaseException:
            self.harness.destroy()
            raise
        print(f"[{name}] {count} host(s) made in {made:.0f} s, prepared in {prepared.seconds:.0f} s", flush=True)

    def play(self, inventory, playbook, *args, sample=False):
        return ansible(inventory, playbook, *args, workdir=self.work, sample=sample)

    def psql(self, host, db, sql):
        """psql inside `host` as postgres over its socket (the harness's hand, not lifeboat's)."""
        return self.hosts.enter(host, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
                                "-d", db, "-c", sql).stdout.strip()

    def close(self):
        self.harness.destroy()


# -- part 1: SSH + become against connection: local ------------------------------------------------------
def part_ssh(options):
    db = "bench_ssh"
    part = local_name = None
    try:
        part = Part("ssh", 1)
        work = part.work
        local_name = "h5-local"
        pgserver("stop", "--name", local_name, "--destroy")
        pgserver("start", "--name", local_name, "--bin-dir", PG15)
        facts = json.loads((PROJECT / ".lifeboat" / "servers" / local_name / "server.json").read_text())
        overrides = {"all": {**POLL, "lifeboat_backup_databases": [db],
                             "lifeboat_backup_kinds": {"daily": {"format": "custom", "keep_last": 2}},
                             "lifeboat_restore_keep_previous": 0,
                             "lifeboat_restore_evidence_dir": str(work / "evidence")}}
        over_ssh = part.hosts.inventory({"staging": ["db1"]}, overrides)
        local = part.hosts.inventory({"staging": ["db1"]}, overrides, host_vars={"db1": {
            "ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": "/usr/bin/python3",
            "lifeboat_connection": {"login_host": facts["host"], "port": facts["port"], "login_user": facts["user"],
                                    "login_password": facts["password"]},
            "lifeboat_backup_repository": str(work / "local-repo"),
            "lifeboat_restore_cache_dir": str(work / "local-cache")}})
        load = work / "load.yml"
        load.write_text(LOAD_PLAY % (db, options.scale))
        ping = work / "ping.yml"
        ping.write_text(PING_PLAY)
        loaded = {name: part.play(inventory, load) for name, inventory in (("ssh", over_ssh), ("local", local))}
        size = part.psql("db1", db, f"SELECT pg_size_pretty(pg_database_size('{db}'))")
        print(f"[ssh] sample data at scale {options.scale} ({size}) loaded: over SSH {loaded['ssh'].seconds:.1f} s, "
              f"local {loaded['local'].seconds:.1f} s", flush=True)
        plays = [("one ping", (ping,)), ("backup.yml", ("backup.yml",)),
                 ("restore.yml", ("restore.yml", "-e", f"restore_db={db}", "-e", "restore_mode=swap"))]
        times = {(name, where): [] for name, _ in plays for where in ("local", "ssh")}
        outside = {key: [] for key in times}
        tasks = {}
        for _ in range(options.repeat):
            for name, args in plays:
                for where, inventory in (("local", local), ("ssh", over_ssh)):
                    run = part.play(inventory, *args)
                    times[(name, where)].append(run.seconds)
                    outside[(name, where)].append(run.seconds - run.module_seconds)
                    tasks[(name, where)] = len(run.records)
    finally:
        if local_name:
            pgserver("stop", "--name", local_name, "--destroy")
        if part:
            part.close()
    print(f"\n== 1. One host over SSH (deploy, become postgres, pipelining on) against connection: local "
          f"(root, no become), PostgreSQL 15, sample data scale {options.scale} ({size}), custom format; "
          f"async polled every 1 s; {options.repeat} runs each, alternating")
    print(f"{'playbook':<13} {'tasks':>5} {'local s med/min':>16} {'ssh s med/min':>14} {'extra s med/min':>16} "
          f"{'ratio min':>9} {'outside modules extra s med/min':>32}")
    for name, _ in plays:
        local_t, ssh_t = times[(name, "local")], times[(name, "ssh")]
        local_o, ssh_o = outside[(name, "local")], outside[(name, "ssh")]
        print(f"{name:<13} {tasks[(name, 'ssh')]:>5} {statistics.median(local_t):>9.2f}/{min(local_t):<6.2f} "
              f"{statistics.median(ssh_t):>7.2f}/{min(ssh_t):<6.2f} "
              f"{statistics.median(ssh_t) - statistics.median(local_t):>9.2f}/{min(ssh_t) - min(local_t):<6.2f} "
              f"{min(ssh_t) / min(local_t):>9.2f} "
              f"{statistics.median(ssh_o) - statistics.median(local_o):>25.2f}/{min(ssh_o) - min(local_o):<6.2f}")
    print("extra s: ssh - local, wall time of ansible-playbook (median and minimum: noise only adds, so the minimum "
          "is the cleaner figure on a shared machine); outside modules: wall time less the "
          "lifeboat modules' own seconds (their `timing`), i.e. ansible, transport, become and polling, so that "
          "the two servers' own speed (Debian cluster in the host vs pgserver.py on loopback TCP) drops out; "
          "tasks = task results recorded (a loop counts once); every run: "
          + ", ".join(f"{name} {where} " + "/".join(f"{s:.1f}" for s in times[(name, where)])
                      for name, _ in plays for where in ("local", "ssh")))


# -- part 2: DR of a large database from S3 onto db2 --------------------------------------------------------
DOWNLOAD = """
import json, os, sys, boto3
args = json.loads(sys.argv[1])
client = boto3.client('s3', endpoint_url=args['endpoint'], region_name='us-east-1',
                      aws_access_key_id=args['key'], aws_secret_access_key=args['secret'])
keys = [item['Key'] for page in client.get_paginator('list_objects_v2').paginate(Bucket=args['bucket'], Prefix=args['prefix'])
        for item in page.get('Contents', [])]
done = []
for key in keys:
    path = os.path.join(args['dest'], key[len(args['prefix']):])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if args['mode'] == 'transfer':
        client.download_file(args['bucket'], key, path)
    else:
        body = client.get_object(Bucket=args['bucket'], Key=key)['Body']
        with open(path, 'wb') as out:
            for chunk in iter(lambda: body.read(1024 * 1024), b''):
                out.write(chunk)
    done.append([key[len(args['prefix']):], os.path.getsize(path)])
print(json.dumps(done))
"""


def part_dr(options):
    db, bucket, raw_dir = "bench_dr", "bench-dr", "/var/tmp/h5-raw"
    part = moto = None
    try:
        part = Part("dr", 2, s3=True)
        work = part.work
        moto = start_moto(part.hosts.gateway)
        moto.bucket(bucket)
        s3 = {"s3_endpoint_url": moto.endpoint_url, "s3_region": "us-east-1",
              "aws_access_key": moto.ACCESS_KEY, "aws_secret_key": moto.SECRET_KEY}
        rows = int(options.gb * 1024 ** 3 / 225)  # about 235 bytes a row on disk, index included
        start = time.monotonic()
        part.psql("db1", "postgres", f"CREATE DATABASE {db}")
        part.psql("db1", db, random_rows_sql("public.wide", rows))
        # Vacuumed now, or autovacuum works through the new gigabyte on db1 while the runs below are
        # timed, on the same 2 cores (the raw pg_restore took 19.9, 17.2 and 14.2 s in turn).
        part.psql("db1", db, "VACUUM ANALYZE public.wide")
        part.psql("db1", db, "CHECKPOINT")
        loaded = time.monotonic() - start
        size = int(part.psql("db1", "postgres", f"SELECT pg_database_size('{db}')"))
        print(f"[dr] {rows} rows, database {size / 1024 ** 3:.2f} GiB loaded in {loaded:.0f} s", flush=True)
        poll = {"lifeboat_restore_poll_interval": options.dr_poll}
        common = {**POLL, **poll, "lifeboat_dr_evidence_dir": str(work / "dr"),
                  "lifeboat_restore_evidence_dir": str(work / "restore"),
                  "lifeboat_integrity_evidence_dir": str(work / "integrity")}
        prod = part.hosts.inventory({"production": ["db1"]}, {"all": common, "production": {
            "lifeboat_backup_databases": [db], "lifeboat_backup_s3": s3,
            "lifeboat_backup_kinds": {"daily": {"format": "custom", "keep_days": 30,
                                                "offsite_url": f"s3://{bucket}/prod"}}}})
        backup = part.play(prod, "backup.yml")
        keys = moto.keys(bucket, f"prod/{db}/")
        set_prefix = keys[0].rsplit("/", 1)[0] + "/"
        objects = {key: moto.client().head_object(Bucket=bucket, Key=key)["ContentLength"]
                   for key in keys if key.startswith(set_prefix)}
        print(f"[dr] backup.yml on db1 (dump + upload) {backup.seconds:.0f} s; set {set_prefix}: "
              + ", ".join(f"{k[len(set_prefix):]} {v / 1e6:.1f} MB" for k, v in objects.items()), flush=True)

        def raw_pair(round_):
            """The same set by hand inside db2: boto3's download (two ways: download_file with its default
            transfer settings, ranged GETs on 10 threads; and one streamed get_object per object, as
            lifeboat reads them), then pg_restore into a new database; the download removed after."""
            download = {}
            for mode in ("get", "transfer"):
                args = json.dumps({"endpoint": moto.endpoint_url, "key": moto.ACCESS_KEY, "secret": moto.SECRET_KEY,
                                   "bucket": bucket, "prefix": set_prefix, "dest": f"{raw_dir}/{mode}", "mode": mode})
                start = time.monotonic()
                listing = json.loads(part.hosts.enter("db2", "/usr/bin/python3", "-c", DOWNLOAD, args).stdout)
                download[mode] = time.monotonic() - start
            archive = max(listing, key=lambda item: item[1])[0]
            part.hosts.enter("db2", "chown", "-R", "postgres:postgres", raw_dir)
            start = time.monotonic()
            part.hosts.enter("db2", "runuser", "-u", "postgres", "--", f"{PG15}/createdb", f"{db}_raw{round_}")
            part.hosts.enter("db2", "runuser", "-u", "postgres", "--", f"{PG15}/pg_restore", "--no-owner", "--no-acl",
                             f"--jobs={options.jobs}", "-d", f"{db}_raw{round_}", f"{raw_dir}/get/{archive}")
            restore = time.monotonic() - start
            part.hosts.enter("db2", "rm", "-rf", raw_dir)
            rows = part.psql("db2", f"{db}_raw{round_}", "SELECT count(*) FROM public.wide")
            # Dropped again, so that every restore meets a cluster of the same size.
            part.psql("db2", "postgres", f"DROP DATABASE {db}_raw{round_}")
            print(f"[dr] raw pair {round_}: download {min(download.values()):.1f} s, pg_restore {restore:.1f} s, "
                  f"{rows} rows", flush=True)
            return dict(download, restore=restore, total=min(download.values()) + restore, rows=rows)

        # The first large load into a fresh cluster also pays for creating its WAL segments, which later
        # loads recycle: a warm-up pair first (not counted), then raw before and after dr.yml.
        raw_pair(0)
        raws = [raw_pair(1)]
        target = part.hosts.inventory({"staging": ["db2"]}, {"all": common, "staging": {
            "lifeboat_restore_s3": s3, "lifeboat_restore_jobs": options.jobs}})
        dr = part.play(target, "dr.yml", "-e", f"restore_db={db}", "-e", f"restore_repository=s3://{bucket}/prod")
        module = [r for r in dr.results("db2") if isinstance(r.get("timings"), dict)]
        timings = module[-1]["timings"] if module else {}
        by_task = {}
        for entry in dr.records:
            result = entry["result"]
            if isinstance(result.get("timing"), dict):
                name = entry["task"].split(" : ", 1)[-1]
                by_task[name] = by_task.get(name, 0) + result["timing"]["seconds"]
        evidence = sorted((work / "dr").glob("*/summary.json"))
        recovery = json.loads(evidence[-1].read_text())["recovery_seconds"] if evidence else None
        print(f"[dr] dr.yml on db2 {dr.seconds:.0f} s", flush=True)
        raws.append(raw_pair(2))
        counts = [part.psql("db2", db, "SELECT count(*) FROM public.wide")] + [r["rows"] for r in raws]
    finally:
        if moto:
            moto.stop(timeout=30)
        if part:
            part.close()
    raw = min(r["total"] for r in raws)
    print(f"\n== 2. DR from S3 (moto on the bridge) onto db2: database {size / 1024 ** 3:.2f} GiB on db1, "
          f"custom format set of {sum(objects.values()) / 1e6:.0f} MB, {options.jobs} restore jobs, poll every "
          f"{options.dr_poll} s; rows on db2: "
          f"dr {counts[0]}, raw {counts[1]} and {counts[2]}")
    print(f"{'':<46} {'seconds':>8}")
    print(f"{'dr.yml (ansible-playbook wall time)':<46} {dr.seconds:>8.1f}")
    if recovery is not None:
        print(f"{'  its evidence: recovery_seconds':<46} {recovery:>8.1f}")
    print(f"{'  restore module timings':<46} " + json.dumps(timings))
    print(f"{'  lifeboat modules in dr.yml, by task':<46} " + json.dumps({k: round(v, 1) for k, v in by_task.items()}))
    slowest = sorted(dr.task_seconds.items(), key=lambda item: -item[1])[:8]
    print(f"{'  dr.yml slowest tasks (s, +-0.25)':<46} " + json.dumps({k[:60]: round(v, 1) for k, v in slowest})
          + f"; {len(dr.records)} task results in all")
    for label, key in (("raw: boto3 get_object streamed, inside db2", "get"),
                       ("raw: boto3 download_file (default transfer)", "transfer"),
                       ("raw: createdb + pg_restore -j%d as postgres" % options.jobs, "restore"),
                       ("raw: faster download + pg_restore", "total")):
        print(f"{label:<46} " + "  ".join(f"{r[key]:>8.1f}" for r in raws) + "   (before dr.yml, after)")
    print(f"ratio dr.yml / (the faster raw download + pg_restore): {dr.seconds / raw:.2f} (aim <= 1.15)"
          + (f"; recovery_seconds / raw: {recovery / raw:.2f}" if recovery is not None else "")
          + (f"; restore module's total_seconds / raw: {timings['total_seconds'] / raw:.2f}"
             if "total_seconds" in timings else ""))
    print("dr.yml does more than the raw pair: ansible-playbook's start-up and SSH, sha256 of every file against "
          "its manifest, the row counts compared, ANALYZE, the swap, the integrity check and the evidence.")


# -- part 3: the fleet ---------------------------------------------------------------------------------------
def part_fleet(options):
    db = "bench_fleet"
    sizes = sorted({int(n) for n in options.fleet_sizes.split(",")})
    part = None
    rows = int(options.fleet_mb * 1024 ** 2 / 250)
    try:
        part = Part("fleet", max(sizes))
        start = time.monotonic()
        errors = []

        def load(host):
            try:
                part.psql(host, "postgres", f"CREATE DATABASE {db}")
                part.psql(host, db, random_rows_sql("public.wide", rows))
            except Exception as exc:  # noqa: BLE001 - reported below, in the main thread
                errors.append(f"{host}: {exc}")
        threads = [threading.Thread(target=load, args=(host,)) for host in part.hosts.names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            sys.exit("loading the fleet failed: " + "; ".join(errors))
        size = int(part.psql("db1", "postgres", f"SELECT pg_database_size('{db}')"))
        print(f"[fleet] {len(part.hosts.names)} databases of {size / 1024 ** 2:.0f} MiB loaded in "
              f"{time.monotonic() - start:.0f} s", flush=True)
        inventory = part.hosts.inventory({"production": part.hosts.names}, {"all": POLL, "production": {
            "lifeboat_backup_databases": [db]}})
        runs = {}
        for count in sizes:
            runs[count] = part.play(inventory, "backup.yml", "--forks", str(count),
                                    "--limit", ",".join(part.hosts.names[:count]), sample=True)
            print(f"[fleet] {count} host(s): {runs[count].seconds:.0f} s", flush=True)
    finally:
        if part:
            part.close()
    print(f"\n== 3. backup.yml over a fleet (each database {size / 1024 ** 2:.0f} MiB, the example's production "
          f"daily kind: directory, 4 jobs), forks = hosts; controller figures")
    print(f"{'hosts':>5} {'seconds':>8} {'s/host':>7} {'CPU s':>7} {'CPU s/host':>10} {'peak PSS MiB':>12} "
          f"{'PSS/host':>8} {'ru_maxrss MiB':>13}")
    for count, run in runs.items():
        print(f"{count:>5} {run.seconds:>8.1f} {run.seconds / count:>7.1f} {run.cpu:>7.1f} {run.cpu / count:>10.2f} "
              f"{run.pss_mb:>12.0f} {run.pss_mb / count:>8.1f} {run.maxrss_mb:>13.0f}")
    print("CPU s: user + system of ansible-playbook and the children it waited for (forks, ssh clients), i.e. "
          "the getrusage(RUSAGE_CHILDREN) delta of that run (from wait4); ru_maxrss: the largest single process "
          "of the run, not a sum; peak PSS: the whole process tree, sampled every 0.25 s (shared pages "
          "counted once). Work on the hosts (sshd, python3, pg_dump, PostgreSQL) is not the controller's and "
          "is not counted, though it shares this machine's 2 cores.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "ssh", "dr", "fleet"], default="all")
    parser.add_argument("--scale", type=int, default=2000, help="sample data scale of the ssh part")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each playbook in the ssh part")
    parser.add_argument("--gb", type=float, default=1.0, help="GiB of the dr part's database")
    parser.add_argument("--dr-poll", type=int, default=1,
                        help="seconds between looks at dr.yml's restore job (each look is a module run on db2: "
                             "on 2 cores the looks slow the restore itself)")
    parser.add_argument("--jobs", type=int, default=2, help="restore jobs in the dr part (dr.yml and raw)")
    parser.add_argument("--fleet-mb", type=float, default=100, help="MiB of each fleet host's database")
    parser.add_argument("--fleet-sizes", default="1,4,8", help="host counts of the fleet part")
    options = parser.parse_args()
    problem = testhosts.missing()
    if problem:
        sys.exit(problem)
    started = time.monotonic()
    for name, run in (("ssh", part_ssh), ("dr", part_dr), ("fleet", part_fleet)):
        if options.part in ("all", name):
            begun = time.monotonic()
            run(options)
            print(f"(part {name}: {time.monotonic() - begun:.0f} s of wall time)\n", flush=True)
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
