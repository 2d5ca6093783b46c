"""Disaster recovery onto another host (seed 002's DR, seed 003's move to a new server), over SSH.

db1 backs up its database and its uploads folder with offsite copies to S3 (moto's server on the
bridge address the hosts reach); db2, which has never seen db1's repository, runs playbooks/dr.yml
with the example inventory: the set downloaded and checked, restored, materialized views refreshed,
the uploads restored with owners and modes, integrity checked, evidence on the controller.
"""
import json
import os
import stat
import subprocess
import time

from conftest import BIN, PROJECT, assert_one_line
from report_checks import assert_reports

DB = "app"
PLAYBOOKS = PROJECT / "playbooks"
BUCKET = "lb-dr"  # made by conftest's s3 fixture (moto on the bridge)


SETUP = """
- name: An application database and its uploads on db1
  hosts: databases
  gather_facts: false
  module_defaults:
    group/lifeboat.db.all: "{{ lifeboat_connection }}"
  tasks:
    - name: Sample data
      lifeboat.db.sample_data:
        db: app
        scale: 2000

    - name: A files backup of a folder postgres cannot read all of
      lifeboat.db.files:
        repository: /var/backups/lifeboat
        name: uploads
        path: /srv/app/uploads
      register: unreadable
      ignore_errors: true
"""


def test_dr_onto_another_host_from_s3(db_hosts, s3, tmp_path, chromium):
    evidence = tmp_path / "evidence"
    common = {"lifeboat_drill_evidence_dir": str(evidence / "drill"),
              "lifeboat_integrity_evidence_dir": str(evidence / "integrity"),
              "lifeboat_dr_evidence_dir": str(evidence / "dr"),
              "lifeboat_restore_evidence_dir": str(evidence / "restore"),
              # The example polls async jobs every 10 s; a test has no need to wait that long.
              "lifeboat_restore_poll_interval": 1, "lifeboat_backup_poll_interval": 1}
    prod = db_hosts.inventory({"production": ["db1"]}, overrides={"all": common, "production": {
        "lifeboat_backup_databases": [DB],
        "lifeboat_backup_kinds": {"daily": {"format": "custom", "keep_days": 30,
                                            "offsite_url": f"s3://{BUCKET}/prod"}},
        "lifeboat_backup_s3": s3.options(),
        "lifeboat_backup_files": [{"name": "uploads", "path": "/srv/app/uploads"}]}})
    setup = tmp_path / "setup.yml"
    setup.write_text(SETUP)
    db_hosts.enter("db1", "sh", "-c", "mkdir -p /srv/app/uploads/2026 && echo scan > /srv/app/uploads/2026/a.pdf"
                   " && echo logo > /srv/app/uploads/logo.png && chown -R www-data:www-data /srv/app/uploads"
                   " && chmod 0600 /srv/app/uploads/2026/a.pdf && chmod 0700 /srv/app/uploads/2026")
    play = db_hosts.run_playbook(prod, setup)
    assert play.rc == 0, play.stdout[-3000:]
    # A folder the backup user cannot read is refused, never silently left out of the backup.
    assert_one_line(play.on("db1").result("A files backup of a folder postgres cannot read all of"),
                    "cannot read /srv/app/uploads/2026: permission denied")
    db_hosts.enter("db1", "sh", "-c", "chmod 0755 /srv/app/uploads/2026 && chmod 0640 /srv/app/uploads/2026/a.pdf"
                   " && chgrp postgres /srv/app/uploads/2026/a.pdf")
    db_hosts.psql("db1", DB, "CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(total) AS total "
                  "FROM lifeboat_sample.orders GROUP BY customer_id")
    counts = db_hosts.psql("db1", DB, "SELECT (SELECT count(*) FROM lifeboat_sample.orders),"
                           " (SELECT count(*) FROM order_totals)")

    backup = db_hosts.run_playbook(prod, "backup.yml")
    assert backup.rc == 0, backup.stdout[-3000:]
    keys = s3.keys(BUCKET, "prod/")
    assert any(key.startswith(f"prod/{DB}/") and key.endswith("manifest.json") for key in keys), keys

    # db2 has never seen db1's repository.
    assert db_hosts.enter("db2", "test", "-e", f"/var/backups/lifeboat/{DB}", check=False).returncode == 1
    assert db_hosts.enter("db2", "test", "-e", "/srv/app", check=False).returncode == 1
    db_hosts.enter("db2", "mkdir", "-p", "/srv/app")
    dr = db_hosts.inventory({"production": ["db2"]}, overrides={"all": common, "production": {
        "lifeboat_restore_s3": s3.options(), "lifeboat_dr_files": [{"name": "uploads", "dest": "/srv/app/uploads"}]}})
    args = ["-e", f"restore_db={DB}", "-e", f"restore_repository=s3://{BUCKET}/prod", "-e", f"restore_confirm={DB}"]

    # S3 unreachable from db2: one line, nothing restored.
    closed = db_hosts.inventory({"production": ["db2"]}, overrides={"all": common, "production": {
        "lifeboat_restore_s3": {**s3.options(), "s3_endpoint_url": f"http://{db_hosts.gateway}:9"}}})
    failed = db_hosts.run_playbook(closed, "dr.yml", *args)
    assert failed.rc != 0
    message = [result for _, result in failed.on("db2").tasks if result["failed"]][0]["msg"]
    assert "\n" not in message and "Traceback" not in message, message
    assert db_hosts.psql("db2", "postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{DB}'") == [["0"]]

    recovered = db_hosts.run_playbook(dr, "dr.yml", *args)
    assert recovered.rc == 0, recovered.stdout[-4000:]
    assert db_hosts.psql("db2", DB, "SELECT (SELECT count(*) FROM lifeboat_sample.orders),"
                         " (SELECT count(*) FROM order_totals)") == counts
    files = evidence / "dr"
    reports = sorted(files.glob("*/summary.json"))
    assert reports, list(evidence.rglob("*"))
    assert stat.S_IMODE(os.stat(reports[-1]).st_mode) == 0o600
    record = json.loads(reports[-1].read_text())
    assert record["host"] == "db2" and record["database"] == DB
    assert record["recovery_seconds"] > 0 and record["recovery_point_age_seconds"] > 0
    assert "order_totals" in " ".join(record["matviews_refreshed"])
    # The uploads came back with their owners, modes and contents.
    listing = "find /srv/app/uploads -printf '%P %u %g %m\\n' | sort"
    assert db_hosts.enter("db2", "sh", "-c", listing).stdout == db_hosts.enter("db1", "sh", "-c", listing).stdout
    assert "2026/a.pdf www-data postgres 640" in db_hosts.enter("db2", "sh", "-c", listing).stdout
    assert db_hosts.enter("db2", "cat", "/srv/app/uploads/2026/a.pdf").stdout == "scan\n"
    assert list(record["files_restored"]) == ["uploads"]
    # Its reports, as a person opens them: the page (RTO with the folders' time, against seed 002's
    # targets in inventories/example) and seed 003's recovery report naming the folders restored.
    page, recovery = assert_reports(reports[-1].parent, "en", "passed", {
        "rto": ("data-seconds", record["recovery_seconds"]), "rto-verdict": ("data-verdict", "met"),
        "backup-id": ("data-backup-id", record["backup_id"])}, chromium=chromium)
    assert "<h1>Disaster recovery report</h1>" in page and "uploads" in page + recovery
    # The recovery lasts until the folders are back too, not only the database.
    restored_files = recovered.on("db2").result("Restore the folders next to the database")["results"][0]
    started = json.loads((reports[-1].parent / "result.json").read_text())["restore"]["timing"]["started_epoch"]
    assert record["recovery_seconds"] >= round(restored_files["timing"]["finished_epoch"] - started, 3) - 0.001, record

    # The SSH connection to db2 cut mid-recovery: the run ends unreachable; the restore job, run
    # asynchronously on db2, never leaves a half-restored database as the live one; the next run
    # finishes cleanly (or first says in one line that the cut run's job is still at work).
    environ = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))
    environ["PATH"] = f"{BIN}{os.pathsep}{environ.get('PATH', '')}"
    # Its output to a file: the loop below reads nothing until the run ends, and a full pipe would stall it.
    cut_log = tmp_path / "cut.log"
    with cut_log.open("w") as log:
        cut = subprocess.Popen([str(BIN / "ansible-playbook"), "-i", str(dr), str(PLAYBOOKS / "dr.yml"), *args],
                               cwd=PLAYBOOKS.parent, env=environ, stdout=log, stderr=subprocess.STDOUT)
    # The moment the restore runs as an async job on db2 (async_wrapper's status file says so).
    running = ["sh", "-c", "grep -lqs '\"finished\": false' /var/lib/postgresql/.ansible_async/*"]
    deadline = time.monotonic() + 120
    while db_hosts.enter("db2", *running, check=False).returncode != 0:
        assert cut.poll() is None and time.monotonic() < deadline, "the restore job never started"
        time.sleep(0.05)
    # Every SSH session of the login on db2, and only there: the hosts share this machine's process
    # table, and another test's hosts (on the other pytest worker) have the same login. sshd stays.
    # Again and again until the run ends: a kill between two commands only closes an idle
    # connection, which ansible opens anew; one during the job's watch (async_watch) cuts the run.
    cut_sessions = ["pkill", "--ns", str(db_hosts.facts("db2")["holder"]), "--nslist", "net,mnt", "-f", "^sshd: deploy"]
    deadline = time.monotonic() + 120
    while cut.poll() is None and time.monotonic() < deadline:
        db_hosts.enter("db2", *cut_sessions, check=False)
        time.sleep(0.2)
    cut.wait(timeout=120)
    output = cut_log.read_text()
    assert cut.returncode != 0 and "UNREACHABLE" in output, output[-3000:]
    live = "SELECT (SELECT count(*) FROM lifeboat_sample.orders), (SELECT count(*) FROM order_totals)"
    assert db_hosts.psql("db2", DB, live) == counts
    for attempt in range(30):
        again = db_hosts.run_playbook(dr, "dr.yml", *args)
        failures = [result["msg"] for _, result in again.on("db2").tasks if result["failed"]]
        if again.rc == 0 or not any("is running; wait for it to finish" in msg for msg in failures):
            break
        time.sleep(2)
    assert again.rc == 0, again.stdout[-3000:]
    assert db_hosts.psql("db2", DB, live) == counts
    leftovers = db_hosts.psql("db2", "postgres", "SELECT datname FROM pg_database WHERE datname LIKE '%lbstage%'")
    assert leftovers == [], leftovers
