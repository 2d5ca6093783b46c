"""The roles and playbooks on real database hosts, as inventories/example runs them: over SSH as
`deploy`, become `postgres` (issue 17, item 3). backup.yml (async, with its progress), restore.yml
(swap; the production host only with the database name confirmed, the staging host without),
integrity.yml, maintenance.yml, schedule.yml (as root) and baseline.yml (two clusters on one host)
pass; what they write on the controller is 0600 in 0700 folders and was written as the controller's
user (the inventory's become to postgres does not follow controller-side tasks); no remote_tmp
warning, no become failure.

The hosts are prepared by playbooks/prepare.yml (the db_hosts fixture's job; run here when a host is
not prepared yet). The baseline's runs go to db3 beside the others' on db1 and db2 (one thread each:
most of a run is waiting on SSH), each recording its results in a file of its own.
"""
import concurrent.futures
import json
import os
import stat
import time

import pytest

from conftest import PROJECT, assert_one_line

DB = "hosts_roles"
PROD, STAGE, GATE = "db1", "db2", "db3"
FIXTURE = PROJECT / "tests" / "fixtures" / "opendolphin"
ON_HOST = "/tmp/lifeboat-opendolphin"
REPOSITORY = "/var/backups/lifeboat"
FOLLOW = "lifeboat_common : Follow the job in the background - {what} of " + DB
COLLECT = "lifeboat_common : Collect the job's result - {what} of " + DB
# What Ansible prints when becoming postgres goes wrong, on a host or on the controller.
BECOME_FAILURES = ("remote_tmp", "Failed to set permissions on the temporary files", "Permission denied",
                   "privilege escalation", "sudo: ", "Incorrect sudo password")
MISSING = "20990101T000000Z-000000"
MARKER = "CREATE TABLE public.written_after_backup (id int)"
SCHEDULE_FILES = ["/etc/cron.d/lifeboat", "/etc/lifeboat-test", "/var/log/lifeboat-test", "/etc/logrotate.d/lifeboat"]


def run(db_hosts, inventory, playbook, *args, record, limit=None):
    """db_hosts.run_playbook's run, recording its results in a file of its own (`record`): the
    baseline's runs on another thread must not share the fixture's one file."""
    started = time.monotonic()
    play = db_hosts.run_playbook(inventory, playbook, *args, limit=limit, record=record)
    print(f"{record.stem}: {time.monotonic() - started:.1f} s")
    return play


def passed(play, name):
    """The run passed, and nothing in its output says becoming postgres (or root) went wrong."""
    output = play.stdout + play.stderr
    for failure in BECOME_FAILURES:
        assert failure not in output, f"{name}: {failure!r} in its output:\n{output[-4000:]}"
    assert play.rc == 0, f"{name}: rc {play.rc}\n{play.stdout[-3000:]}"


def private(root):
    """Entries under root whose mode is not 0700 (folders) or 0600 (files), and the files."""
    wrong, files = [], []
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            if stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode) != 0o700:
                wrong.append(os.path.join(folder, name))
        for name in names:
            path = os.path.join(folder, name)
            files.append(path)
            if stat.S_IMODE(os.stat(path).st_mode) != 0o600 or os.stat(path).st_uid != os.geteuid():
                wrong.append(path)
    return wrong, files


def exact_rows(db_hosts, host, db, tables):
    return {table: int(db_hosts.psql(host, db, f"SELECT count(*) FROM {table}")[0][0]) for table in tables}


def baseline_runs(db_hosts, tmp, inventory):
    """Seed 000's gate on db3: Legacy on the host's cluster (5432), Modernized on a second one (55433),
    the fixture project copied to the host (the role reads paths on the host)."""
    db_hosts.enter(GATE, "pg_createcluster", "15", "modern", "--start", "-p", "55433")
    db_hosts.copy_in(GATE, FIXTURE, ON_HOST)
    db_hosts.psql(GATE, "postgres", "CREATE DATABASE opendolphin")
    db_hosts.enter(GATE, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-p", "55433", "-c",
                   "CREATE DATABASE opendolphin_modern")
    return run(db_hosts, inventory, "baseline.yml", record=tmp / "baseline.jsonl")


def baseline_inventory(db_hosts, evidence):
    return db_hosts.inventory({"staging": [GATE]}, overrides={"staging": {
        "lifeboat_baseline_schema_file": f"{ON_HOST}/legacy_schema.sql",
        "lifeboat_baseline_seed_files": [f"{ON_HOST}/local_synthetic_seed.sql"],
        "lifeboat_baseline_migrations": f"{ON_HOST}/migrations",
        "lifeboat_baseline_evidence_dir": str(evidence / "baseline")}})


def main_inventory(db_hosts, evidence):
    per_host = {"lifeboat_backup_databases": [DB], "lifeboat_restore_db": DB}
    return db_hosts.inventory({"production": [PROD], "staging": [STAGE]}, overrides={
        "all": {"lifeboat_integrity_evidence_dir": str(evidence / "integrity"),
                "lifeboat_restore_evidence_dir": str(evidence / "restore"),
                "lifeboat_partition_db": DB,
                "lifeboat_partition_tables": [{"table": "public.readings", "interval": "monthly", "premake": 2}],
                "lifeboat_partition_refresh": [{"group": "hourly", "views": ["public.reading_totals"]}],
                "lifeboat_partition_purges": [{"table": "public.readings_old", "where": "id <= 5", "batch_size": 2}],
                # The runner and the locks in folders of the test host's own (its /usr and /var/lib are the
                # machine's); the logs beside prepare.yml's /var/log/lifeboat, left as it made it.
                "lifeboat_schedule_runner": "/etc/lifeboat-test/run-job",
                "lifeboat_schedule_log_dir": "/var/log/lifeboat-test",
                "lifeboat_schedule_lock_dir": "/var/log/lifeboat-test/locks"},
        "production": per_host, "staging": per_host})


def main_runs(db_hosts, tmp, inventory):
    """backup, restore (refused on production without the name, then confirmed), integrity,
    maintenance and schedule on db1 (production) and db2 (staging)."""
    plays = {}
    sample = tmp / "sample.yml"
    sample.write_text(json.dumps([{
        "name": "Sample data", "hosts": "databases", "gather_facts": False,
        "module_defaults": {"group/lifeboat.db.all": "{{ lifeboat_connection }}"},
        "tasks": [{"name": "Load the sample data", "lifeboat.db.sample_data": {"db": DB, "scale": 50}}]}]))
    plays["sample"] = run(db_hosts, inventory, sample, record=tmp / "sample.jsonl")
    passed(plays["sample"], "the sample data")
    # The upkeep's objects on the production host: a partitioned table without partitions, a view, old rows.
    db_hosts.psql(PROD, DB, "CREATE TABLE public.readings (id bigint, taken date NOT NULL) PARTITION BY RANGE (taken);"
                            "CREATE MATERIALIZED VIEW public.reading_totals AS SELECT count(*) AS n FROM public.readings;"
                            "CREATE TABLE public.readings_old AS SELECT generate_series(1, 10) AS id")

    # Numbers from -e are strings: the seconds of the progress loop are cast.
    plays["backup"] = run(db_hosts, inventory, "backup.yml", "-e", "lifeboat_backup_kind=daily",
                          "-e", "lifeboat_backup_poll_interval=1", record=tmp / "backup.jsonl")
    for host in (PROD, STAGE):
        db_hosts.psql(host, DB, MARKER)
    # Without the name repeated, the production host refuses; the staging host restores.
    restore = ["-e", f"restore_db={DB}", "-e", "lifeboat_restore_poll_interval=1", "-e", "lifeboat_restore_async_timeout=900"]
    plays["refused"] = run(db_hosts, inventory, "restore.yml", *restore, record=tmp / "refused.jsonl")
    plays["restore"] = run(db_hosts, inventory, "restore.yml", *restore, "-e", f"restore_confirm={DB}",
                           "-e", "lifeboat_restore_integrity=true", record=tmp / "restore.jsonl", limit=PROD)
    # A backup that is not there: the restore's job fails, its evidence says so, nothing changed.
    plays["missing"] = run(db_hosts, inventory, "restore.yml", *restore, "-e", f"restore_backup={MISSING}",
                           record=tmp / "missing.jsonl", limit=STAGE)
    plays["integrity"] = run(db_hosts, inventory, "integrity.yml", "-e", f"integrity_db={DB}",
                             "-e", f"integrity_repository={REPOSITORY}", record=tmp / "integrity.jsonl")
    plays["maintenance"] = run(db_hosts, inventory, "maintenance.yml", "-e", "lifeboat_partition_now=2026-03-15",
                               record=tmp / "maintenance.jsonl", limit=PROD)
    plays["schedule"] = run(db_hosts, inventory, "schedule.yml", record=tmp / "schedule.jsonl", limit=STAGE)
    return plays


@pytest.fixture(scope="module")
def played(db_hosts, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hosts-roles")
    evidence = tmp / "evidence"
    # playbooks/prepare.yml (the fixture's job): run here on a host it has not prepared yet.
    unprepared = [host for host in (PROD, STAGE, GATE)
                  if db_hosts.enter(host, "test", "-d", "/var/lib/postgresql/.ansible/tmp", check=False).returncode]
    if unprepared:
        prepared = db_hosts.run_playbook(db_hosts.inventory({"staging": unprepared}), "prepare.yml")
        assert prepared.rc == 0, prepared.stdout[-3000:]
    try:
        # Made here, not on the threads: db_hosts numbers its inventory folders.
        inventories = main_inventory(db_hosts, evidence), baseline_inventory(db_hosts, evidence)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            gate = pool.submit(baseline_runs, db_hosts, tmp, inventories[1])
            plays = main_runs(db_hosts, tmp, inventories[0])
            plays["baseline"] = gate.result()
        yield plays, evidence
    finally:
        for host in (PROD, STAGE):
            for (name,) in db_hosts.psql(host, "postgres", f"SELECT datname FROM pg_database WHERE datname LIKE '{DB}%'"):
                db_hosts.psql(host, "postgres", f'DROP DATABASE "{name}" WITH (FORCE)')
            db_hosts.enter(host, "rm", "-rf", f"{REPOSITORY}/{DB}")
        db_hosts.enter(STAGE, "rm", "-rf", *SCHEDULE_FILES)
        db_hosts.enter(GATE, "pg_dropcluster", "15", "modern", "--stop", check=False)
        db_hosts.psql(GATE, "postgres", "DROP DATABASE IF EXISTS opendolphin WITH (FORCE)")
        db_hosts.enter(GATE, "rm", "-rf", ON_HOST, "/var/lib/postgresql/.lifeboat-baseline")


def test_backup_runs_as_an_async_job_over_ssh_with_its_progress(db_hosts, played):
    plays, _ = played
    backup = plays["backup"]
    passed(backup, "backup.yml")
    for host in (PROD, STAGE):
        on = backup.on(host)
        labels = [item["_ansible_item_label"] for item in on.result(FOLLOW.format(what="backup"))["results"]]
        assert "; job " in labels[-1] and labels[-1].endswith(" finished"), labels
        taken = on.result(COLLECT.format(what="backup"))
        assert taken["backup_id"] and not taken["failed"], taken
        # Production's daily is the example's directory format with 4 jobs; staging's the role's custom.
        assert taken["manifest"]["format"] == ("directory" if host == PROD else "custom"), taken["manifest"]
        sets = db_hosts.enter(host, "ls", f"{REPOSITORY}/{DB}").stdout.split()
        assert taken["backup_id"] in sets
        owner = db_hosts.enter(host, "stat", "-c", "%U %a", f"{REPOSITORY}/{DB}/{taken['backup_id']}").stdout.split()
        assert owner[0] == "postgres", owner


def test_restore_swaps_in_over_ssh_staging_freely_production_only_confirmed(db_hosts, played):
    plays, evidence = played
    refused, confirmed = plays["refused"], plays["restore"]
    assert refused.rc != 0
    for failure in BECOME_FAILURES:
        assert failure not in refused.stdout + refused.stderr, failure
    assert_one_line(refused.on(PROD).result(f"lifeboat_restore : Restore the database {DB}"),
                    f"{PROD} is marked lifeboat_production", f"-e restore_confirm={DB}", "Nothing was changed")
    passed(confirmed, "restore.yml")

    progress = []
    for host, play in ((STAGE, refused), (PROD, confirmed)):
        on = play.on(host)
        labels = [item["_ansible_item_label"] for item in on.result(FOLLOW.format(what="restore"))["results"]]
        assert "; job " in labels[-1] and labels[-1].endswith(" finished"), labels
        progress += [label for label in labels if label.startswith(f"{DB}: ")]
        result = on.result(COLLECT.format(what="restore"))
        assert result["mode"] == "swap" and result["row_count_check"]["status"] == "passed", result
        # The restored database has the backup's rows (the sample's: the upkeep purges after) and not
        # what was written after the backup.
        sample = {table: count for table, count in result["expected_row_counts"].items() if table.startswith("lifeboat_sample.")}
        assert len(sample) == 5 and exact_rows(db_hosts, host, DB, sample) == sample and sum(sample.values()) > 0
        assert not db_hosts.psql(host, DB, "SELECT 1 FROM pg_tables WHERE tablename = 'written_after_backup'")
        assert db_hosts.psql(host, result["swap"]["previous_db"],
                             "SELECT 1 FROM pg_tables WHERE tablename = 'written_after_backup'")
    # The progress file of the restore is read over SSH while the job runs (phase, tables, backup).
    assert progress and all(" tables, backup " in label for label in progress), progress

    # The failed restore: one line from the module, no staging copy left behind, its evidence.
    missing = plays["missing"]
    assert missing.rc != 0
    assert_one_line(missing.on(STAGE).result("lifeboat_restore : Fail as the restore failed"), f"'{MISSING}'",
                    "not found in repository")
    assert not db_hosts.psql(STAGE, "postgres", f"SELECT datname FROM pg_database WHERE datname LIKE '{DB}_lbstage%'")

    # Evidence on the controller: one run per restore that ran (the refused one changed nothing).
    wrong, files = private(evidence / "restore")
    assert not wrong, wrong
    summaries = [json.loads(open(path).read()) for path in files if path.endswith("/summary.json")]
    failed = [s for s in summaries if s["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["host"] == STAGE and MISSING in failed[0]["failure"], failed
    assert failed[0]["failed_task"] == f"Collect the job's result - restore of {DB}", failed
    summaries = [s for s in summaries if s["status"] != "failed"]
    assert sorted(s["host"] for s in summaries) == [PROD, STAGE], files
    for summary in summaries:
        assert summary["status"] == "passed" and summary["database"] == DB and summary["mode"] == "swap", summary
        assert summary["backup_id"] and summary["source"].startswith(f"{REPOSITORY}/{DB}/"), summary
        assert summary["row_count_check"].endswith("tables match") and summary["verified_files"] > 0, summary
        assert summary["recovery_seconds"] > 0 and summary["recovery_point_age_seconds"] > 0, summary
    production = next(s for s in summaries if s["host"] == PROD)
    assert production["integrity_passed"] is True and production["integrity"].startswith(f"integrity of '{DB}'")
    reports = sorted(open(path).readline().split(": ")[-1].strip() for path in files if path.endswith("/report.md"))
    assert reports == ["FAILED", "PASSED", "PASSED"], reports
    # Beside each run, its page and seed 003's recovery report (lifeboat.db.report, on the controller
    # whatever become the inventory sets), private like the rest.
    assert sum(path.endswith("/report.html") for path in files) == 3
    assert sum(path.endswith("/recovery-report.md") for path in files) == 3


def test_integrity_evidence_is_gathered_to_the_controller(db_hosts, played):
    plays, evidence = played
    integrity = plays["integrity"]
    passed(integrity, "integrity.yml")
    wrong, files = private(evidence / "integrity")
    assert not wrong, wrong
    results = [json.loads(open(path).read()) for path in files if path.endswith("/result.json")]
    assert len(results) == 2 and all(result["passed"] for result in results), results
    # Compared with the backup's manifest in the repository on the host.
    assert all(any(check["name"] == "row_counts" and check["status"] == "passed" for check in result["checks"])
               for result in results), [result["summary"] for result in results]
    assert sum(path.endswith("/report.md") for path in files) == 2
    assert sum(path.endswith("/report.html") for path in files) == 2


def test_maintenance_keeps_partitions_refreshes_and_purges_over_ssh(db_hosts, played):
    plays, _ = played
    maintenance = plays["maintenance"]
    passed(maintenance, "maintenance.yml")
    partitions = db_hosts.psql(PROD, DB, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                         "WHERE i.inhparent = 'public.readings'::regclass ORDER BY 1")
    assert [p[0] for p in partitions] == ["readings_p2026_03", "readings_p2026_04", "readings_p2026_05"], partitions
    assert db_hosts.psql(PROD, DB, "SELECT count(*) FROM public.readings_old") == [["5"]]


def test_schedule_installs_as_root_though_the_inventory_becomes_postgres(db_hosts, played):
    plays, _ = played
    schedule = plays["schedule"]
    passed(schedule, "schedule.yml")
    owner = db_hosts.enter(STAGE, "stat", "-c", "%U %a", "/etc/cron.d/lifeboat", "/etc/lifeboat-test/run-job").stdout.split()
    assert owner == ["root", "644", "root", "755"], owner
    assert "/etc/lifeboat-test/run-job" in db_hosts.enter(STAGE, "cat", "/etc/cron.d/lifeboat").stdout


def test_baseline_gate_on_two_clusters_of_one_host_keeps_its_evidence_on_the_controller(db_hosts, played):
    plays, evidence = played
    baseline = plays["baseline"]
    passed(baseline, "baseline.yml")
    stats = baseline.on(GATE).result("lifeboat_baseline : Hand the gate's outcome to AWX")["ansible_stats"]["data"]
    assert set(stats["lifeboat_baseline"]["gates"].values()) == {"passed"}, stats
    wrong, files = private(evidence / "baseline")
    assert not wrong, wrong
    names = {os.path.basename(path) for path in files}
    assert {"README.md", "legacy_schema_dump.sql", "legacy_seed.log", "flyway_migrate_modern.log",
            "audit_smoke.log"} <= names, names
    # Modernized lives in the second cluster, at its target.
    versions = db_hosts.enter(GATE, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-p", "55433", "-d",
                              "opendolphin_modern", "-c",
                              "SELECT max(version) FROM flyway_schema_history WHERE success").stdout.split()
    assert versions == ["0222"], versions
