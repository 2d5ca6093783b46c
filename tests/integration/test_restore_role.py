"""playbooks/restore.yml and playbooks/dr.yml through role lifeboat_restore: async restore with its
progress followed, the production guard rail of lifeboat.db.restore, and seed 002's disaster
recovery from S3 with integrity checks."""
import json

import pytest

from conftest import PROJECT, assert_one_line, embedded_only
from report_checks import assert_reports, figure

# A role composes modules whose own tests run on every server; the role itself runs on one.
pytestmark = embedded_only

RESTORE = PROJECT / "playbooks" / "restore.yml"
DR = PROJECT / "playbooks" / "dr.yml"
ROLE = "lifeboat_restore : "
START = ROLE + "Restore the database {db}"
# lifeboat_common's async_progress follows the restore's job.
FOLLOW = "lifeboat_common : Follow the job in the background - restore of {db}"
COLLECT = "lifeboat_common : Collect the job's result - restore of {db}"
MARKER = "CREATE TABLE public.written_after_backup (id int)"


def databases(server, prefix):
    return sorted(r[0] for r in server.sql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                                           (prefix.replace("_", r"\_") + "%",)))


@pytest.fixture
def restore_target(server, ansible, sample_db):
    """sample_db backed up into the test's repository, then changed (a table written after the backup)."""
    backup = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    assert not backup["failed"], backup.get("msg")
    server.sql(sample_db, MARKER)
    yield sample_db, backup
    for name in databases(server, sample_db + "_prev_") + databases(server, sample_db + "_lbstage_"):
        server.drop_db(name)


def marker_present(server, db):
    return bool(server.sql(db, "SELECT 1 FROM pg_tables WHERE tablename = 'written_after_backup'"))


def role_inventory(ansible, **host_vars):
    ansible.write_inventory(lifeboat_restore_repository=str(ansible.repository), lifeboat_restore_poll_interval=1,
                            **host_vars)


def test_restore_playbook_swaps_in_latest_while_following_its_progress(server, ansible, restore_target, chromium):
    db, backup = restore_target
    # What an earlier restore reported is shown until this one reports its own phase.
    (ansible.repository / db / ".restore-progress.json").write_text(json.dumps(
        {"phase": "restoring", "backup_id": backup["backup_id"], "target_db": db, "tables_done": 2,
         "tables_total": 5, "updated_at": "2026-01-01T00:00:00.000000Z"}))
    role_inventory(ansible)
    play = ansible.run_playbook(RESTORE, "-e", f"restore_db={db}", "-e", "restore_backup=latest")
    assert play.rc == 0, play.stdout[-3000:]
    started = play.result(START.format(db=db))
    assert started["ansible_job_id"] and started["started"], "the restore runs as an async job"

    watched = play.result(FOLLOW.format(db=db))["results"]
    labels = [item["_ansible_item_label"] for item in watched]
    assert labels[-1].endswith(f"; job {started['ansible_job_id']} finished"), labels
    progress = labels
    assert progress and all(label.startswith(f"{db}: ") and f" tables, backup {backup['backup_id']}, at " in label
                            for label in progress), progress

    result = play.result(COLLECT.format(db=db))
    assert result["backup_id"] == backup["backup_id"] and result["mode"] == "swap"
    assert result["swap"]["previous_db"].startswith(db + "_prev_")
    assert result["row_count_check"]["status"] == "passed"
    assert not marker_present(server, db) and marker_present(server, result["swap"]["previous_db"])
    for table, rows in backup["row_counts"].items():
        assert server.count(db, table) == rows, table

    summary = play.result(ROLE + "Summary of the restore")["msg"]
    assert summary[0].startswith(f"Backup {backup['backup_id']} of {db} (finished ")
    assert summary[0].endswith(f"into {db}, mode swap")
    assert summary[1].startswith("Swap window: ") and summary[1].endswith(result["swap"]["previous_db"])
    assert summary[2] == "Row-count check: " + result["row_count_check"]["summary"]
    assert summary[summary.index("Actions:") + 1:] == result["actions"]
    assert server.password not in play.stdout

    # The reports beside the evidence: the restore's figures, against no target (none is set).
    evidence = json.loads((ansible.workdir / "evidence" / "restore" / "latest-summary.json").read_text())
    page, recovery = assert_reports(ansible.workdir / "evidence" / "restore" / evidence["run_id"], "en", "passed", {
        "rto": ("data-seconds", evidence["recovery_seconds"]), "rpo": ("data-seconds", evidence["recovery_point_age_seconds"]),
        "backup-id": ("data-backup-id", backup["backup_id"]), "rows": ("data-rows", sum(backup["row_counts"].values())),
        "duration": ("data-seconds", result["timings"]["total_seconds"])}, chromium=chromium)
    assert "<h1>Restore report</h1>" in page and figure(page, "rto-verdict", "data-verdict") == "none"
    assert "No RTO or RPO target is set" in recovery and server.password not in page + recovery


def test_production_host_restores_only_with_the_database_name_confirmed(server, ansible, restore_target):
    db, backup = restore_target
    # Bool-ish and templated, as inventories write it.
    role_inventory(ansible, lifeboat_environment="prod", lifeboat_production="{{ lifeboat_environment == 'prod' }}")

    refused = ansible.run_playbook(RESTORE, "-e", f"restore_db={db}")
    assert refused.rc != 0
    assert_one_line(refused.result(START.format(db=db)), f"{ansible.HOST} is marked lifeboat_production", f"confirm: {db}",
                    f"-e restore_confirm={db}", "Nothing was changed")

    wrong = ansible.run_playbook(RESTORE, "-e", f"restore_db={db}", "-e", "restore_confirm=postgres")
    assert wrong.rc != 0
    assert_one_line(wrong.result(START.format(db=db)), "confirm 'postgres' does not name the target database",
                    f"-e restore_confirm={db}")
    assert marker_present(server, db) and databases(server, db + "_prev_") == [], "a refused restore changes nothing"

    check = ansible.run_playbook(RESTORE, "--check", "-e", f"restore_db={db}")
    assert check.rc == 0, check.stdout[-3000:]
    planned = check.result(START.format(db=db))
    assert planned["changed"] and planned["backup_id"] == backup["backup_id"] and "ansible_job_id" not in planned
    assert check.result(ROLE + "Summary of the restore")["msg"][0].endswith(" - check mode, nothing changed")
    assert marker_present(server, db) and databases(server, db + "_prev_") == [], "check mode changes nothing"

    # A restore that fails inside its async job fails where the job is collected, with the module's one line.
    missing = ansible.run_playbook(RESTORE, "-e", f"restore_db={db}", "-e", f"restore_confirm={db}",
                                   "-e", "restore_backup=20990101T000000Z-000000")
    assert missing.rc != 0
    assert missing.result(START.format(db=db))["ansible_job_id"]
    assert_one_line(missing.result(COLLECT.format(db=db)), "'20990101T000000Z-000000'", "not found in repository")
    assert marker_present(server, db) and databases(server, db + "_prev_") == []

    confirmed = ansible.run_playbook(RESTORE, "-e", f"restore_db={db}", "-e", f"restore_confirm={db}")
    assert confirmed.rc == 0, confirmed.stdout[-3000:]
    assert confirmed.result(COLLECT.format(db=db))["backup_id"] == backup["backup_id"]
    assert not marker_present(server, db)


def test_bad_input_is_refused_before_anything_runs(server, ansible):
    role_inventory(ansible)
    unknown_mode = ansible.run_playbook(RESTORE, "-e", "restore_db=app", "-e", "restore_mode=overwrite")
    assert unknown_mode.rc != 0
    validation = unknown_mode.tasks[-1][1]
    assert validation["failed"] and "lifeboat_restore_mode" in validation["msg"], validation
    assert "swap, new, replace" in validation["msg"], validation["msg"]

    no_db = ansible.run_playbook(RESTORE)
    assert no_db.rc != 0 and "lifeboat_restore_db" in no_db.tasks[-1][1]["msg"]

    local_dr = ansible.run_playbook(DR, "-e", "restore_db=app")
    assert local_dr.rc != 0
    assert_one_line(local_dr.result("Check the recovery source is S3"), "-e restore_repository=s3://bucket/prefix")
    assert not ansible.repository.exists()


def test_dr_playbook_recovers_a_lost_database_from_s3_and_checks_it(server, ansible, sample_db, moto, chromium):
    bucket = moto.bucket("role-dr")
    # Seed 002's materialized views must be populated after the recovery.
    server.sql(sample_db, "CREATE MATERIALIZED VIEW public.mv_orders_per_customer AS "
                          "SELECT customer_id, count(*) AS orders FROM lifeboat_sample.orders GROUP BY customer_id")
    views = server.count(sample_db, "public.mv_orders_per_customer")
    s3 = dict(repository=f"s3://{bucket}/prod", cache_dir=str(ansible.workdir / "cache"), **moto.options())
    backup = ansible.module("dump", db=sample_db, **s3)
    assert not backup["failed"], backup.get("msg")
    server.drop_db(sample_db)  # the disaster

    ansible.write_inventory(lifeboat_restore_s3=moto.options(), lifeboat_restore_cache_dir=s3["cache_dir"],
                            lifeboat_restore_poll_interval=1, lifeboat_rto_target_seconds=14400,
                            lifeboat_rpo_target_seconds=14400)
    play = ansible.run_playbook(DR, "-e", f"restore_db={sample_db}", "-e", f"restore_repository={s3['repository']}")
    assert play.rc == 0, play.stdout[-3000:]
    assert moto.SECRET_KEY not in play.stdout

    restored = play.result(COLLECT.format(db=sample_db))
    assert restored["backup_id"] == backup["backup_id"] and len(restored["verified_files"]) == 1
    integrity = play.result(ROLE + f"Compare the restored row counts with backup {backup['backup_id']}")
    assert integrity["passed"] and integrity["row_counts"] == backup["row_counts"]
    assert server.count(sample_db, "public.mv_orders_per_customer") == views

    evidence = play.result("lifeboat_restore : Gather the restore's facts into one summary")["ansible_facts"]["lifeboat_restore_evidence"]
    assert evidence["recovery"] == "disaster recovery from S3"
    written = sorted((ansible.workdir / "evidence" / "dr").glob("*/summary.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["backup_id"] == backup["backup_id"]
    assert evidence["backup_id"] == backup["backup_id"] and evidence["source"].startswith(s3["repository"])
    assert evidence["integrity"] == integrity["summary"]
    assert 0 < float(evidence["recovery_seconds"]) < 120
    assert float(evidence["recovery_point_age_seconds"]) > 0
    # The DR's reports: seed 002's targets (RTO and RPO of 4 h, inventories/example) met, the phases on the timeline.
    page, recovery = assert_reports(written[0].parent, "en", "passed", {
        "rto": ("data-seconds", evidence["recovery_seconds"]), "rto-verdict": ("data-verdict", "met"),
        "rpo-verdict": ("data-verdict", "met"), "backup-id": ("data-backup-id", backup["backup_id"])}, chromium=chromium)
    assert "<h1>Disaster recovery report</h1>" in page
    assert 'data-step="phase_restore"' in page and 'data-step="phase_integrity"' in page
    assert "disaster recovery: database" in recovery and "(target 4 h: met)" in recovery
