# -*- coding: utf-8 -*-
"""Summaries as the roles write them (copied from real runs of the integration tests), for the
report tests: a drill on its host, a proving drill, a DR with a folder, an integrity run, a fleet."""
import copy

DRILL = {
    "backup_id": "20261205T082830Z-f6149e", "backup_sha256": "a3658a9c", "backup_size": 52998,
    "baseline_total_rows": 2720, "database": "drill_truncate", "failed_step": None, "failure": None,
    "fault": "truncate lifeboat_sample.orders", "finished_at": "2026-12-05T08:28:34.241480Z", "host": "target",
    "proved_on": "target", "restored_total_rows": 2720, "rows_destroyed": 450, "rpo_seconds": 0.985,
    "rto_seconds": 2.252, "run_id": "20261205T082828Z-target", "safety_backup_id": "20261205T082832Z-7ebf51",
    "started_at": "2026-12-05T08:28:28.782253Z", "recovery_started_at": "2026-12-05T08:28:31.752000Z",
    "status": "passed", "took_on": "target",
    "steps": [{"name": "load_sample_data", "seconds": 0.342}, {"name": "capture_baseline", "seconds": 0.028},
              {"name": "backup", "seconds": 0.139}, {"name": "inject_fault", "seconds": 0.018},
              {"name": "restore", "seconds": 0.582}, {"name": "verify", "seconds": 0.045}],
    "tables": [{"actual": 150, "expected": 150, "status": "ok", "table": "lifeboat_sample.customers"},
               {"actual": 750, "expected": 750, "status": "ok", "table": "lifeboat_sample.events"},
               {"actual": 1350, "expected": 1350, "status": "ok", "table": "lifeboat_sample.order_items"},
               {"actual": 450, "expected": 450, "status": "ok", "table": "lifeboat_sample.orders"},
               {"actual": 20, "expected": 20, "status": "ok", "table": "lifeboat_sample.products"}],
    "verification": "integrity of 'drill_truncate': 11 check(s), 10 passed, 0 failed, 0 could not run, 1 skipped",
}

PROVE = {
    "backup_files": 3, "backup_id": "20261205T083852Z-19bc6a", "backup_kind": "daily", "backup_size": 9107,
    "backup_taken_at": "2026-12-05T08:38:52.380139Z", "baseline_total_rows": 1200,
    "carried_from": "s3://lb-fleet/db1/fleet_app/20261205T083852Z-19bc6a", "carried_via": "s3",
    "database": "fleet_app", "failed_step": None, "failure": None, "fault": "db1 lost: its backup restored on db2",
    "finished_at": "2026-12-05T08:39:01.226919Z", "host": "db2", "proved_on": "db2",
    "restore_row_count_check": "2 of 2 tables match", "restored_as": "fleet_proof", "restored_total_rows": 1200,
    "rows_destroyed": None, "rpo_seconds": 21906.317, "rto_seconds": 2.351,
    "run_id": "20261205T083857Z-db1-fleet_app-on-db2", "safety_backup_id": None,
    "started_at": "2026-12-05T08:38:57.916623Z", "recovery_started_at": "2026-12-05T08:38:58.016623Z",
    "status": "passed",
    "steps": [{"name": "pick_backup", "seconds": 0.107}, {"name": "carry", "seconds": 0.259},
              {"name": "restore", "seconds": 0.386}, {"name": "verify", "seconds": 0.018}],
    "tables": [{"actual": 300, "expected": 300, "status": "ok", "table": "public.customers"},
               {"actual": 900, "expected": 900, "status": "ok", "table": "public.orders"}],
    "took_on": "db1",
    "verification": "integrity of 'fleet_proof': 5 check(s), 4 passed, 0 failed, 0 could not run, 1 skipped",
}

DR = {
    "actions": ["Downloaded backup 20261205T084501Z-18bd22 from s3://lb-dr/prod, every file checked against its manifest",
                "Restored backup 20261205T084501Z-18bd22 into staging database 'app_lbstage_26903c' with pg_restore 15.18",
                "Renamed staging database 'app_lbstage_26903c' to 'app'"],
    "backup_db": "app", "backup_finished_at": "2026-12-05T08:45:01.264807Z", "backup_id": "20261205T084501Z-18bd22",
    "database": "app", "failed_task": None, "failure": None, "files_restored": {"uploads": "20261205T084503Z-fed899"},
    "files_seconds": 0.4, "integrity_seconds": 0.2,
    "finished_at": "2026-12-05T08:45:14.730415Z", "host": "db2",
    "integrity": "integrity of 'app': 9 check(s), 8 passed, 0 failed, 0 could not run, 1 skipped",
    "integrity_passed": True, "matviews_refreshed": ["public.order_totals"], "mode": "swap", "pg_restore": "15.18",
    "recovery": "disaster recovery from S3", "recovery_point_age_seconds": 10.11, "recovery_seconds": 3.071,
    "repository": "s3://lb-dr/prod", "restore_bytes": 8623807, "row_count_check": "5 of 5 tables match",
    "run_id": "20261205T084514Z-db2-app", "safety_backup_id": None,
    "source": "s3://lb-dr/prod/app/20261205T084501Z-18bd22", "started_at": "2026-12-05T08:45:11.374667Z",
    "status": "passed",
    "swap": {"grace_seconds": 1.0, "previous_db": None, "sessions_terminated": 0, "window_seconds": 0.0},
    "tables": [{"actual": 2000, "expected": 2000, "status": "ok", "table": "lifeboat_sample.customers"},
               {"actual": 200, "expected": 200, "status": "ok", "table": "lifeboat_sample.products"}],
    "timings": {"analyze_seconds": 0.105, "download_seconds": 0.099, "restore_seconds": 0.14, "total_seconds": 0.408,
                "verify_seconds": 0.125},
    "verified_files": 1,
}

INTEGRITY = {
    "action": "check", "counts": {"error": 0, "failed": 1, "passed": 7, "skipped": 1}, "database": "hosts_roles",
    "failed_checks": ["foreign_key lifeboat_sample.events.events_customer_id_fkey"],
    "finished_at": "2026-12-05T08:14:20.441978Z", "started_at": "2026-12-05T08:14:20.280301Z", "seconds": 0.067,
    "host": "db1", "passed": False, "run_id": "20261205T081420Z-db1-hosts_roles",
    "summary": "integrity of 'hosts_roles': 9 check(s), 7 passed, 1 failed, 0 could not run, 1 skipped",
    "checks": [{"name": "row_counts", "status": "passed", "severity": "error", "seconds": 0.015,
                "summary": "5 of 5 tables match"},
               {"name": "foreign_key lifeboat_sample.events.events_customer_id_fkey", "status": "failed",
                "severity": "error", "seconds": 0.002, "summary": "3 orphan rows"},
               {"name": "amcheck", "status": "skipped", "severity": "warning", "seconds": None, "summary": "skipped"}],
}

FLEET = {
    "counts": {"failed": 1, "ok": 1, "unreachable": 1}, "generated_at": "2026-12-05T08:39:06.406322Z",
    "hosts": [
        {"databases": [{"age_seconds": 4.8, "backup": "taken", "database": "fleet_app",
                        "drill": {"backup_id": "20261205T083852Z-19bc6a", "failed_step": None, "failure": None,
                                  "proved_on": "db2", "rpo_seconds": 6.317, "rto_seconds": 2.351,
                                  "run_id": "20261205T083857Z-db1-fleet_app-on-db2", "status": "passed",
                                  "took_on": "db1"},
                        "last_backup_id": "20261205T083852Z-19bc6a", "size": 9107, "verified": True}],
         "host": "db1", "problems": [], "state": "ok"},
        {"databases": [{"age_seconds": None, "backup": "failed", "database": "fleet_app",
                        "drill": {"backup_id": None, "failed_step": "(1) Check the backup was found",
                                  "failure": "no backup", "proved_on": "db2", "rpo_seconds": None,
                                  "rto_seconds": None, "run_id": "x", "status": "failed", "took_on": "db3"},
                        "last_backup_id": None, "size": None, "verified": None}],
         "host": "db3", "problems": ["backup of fleet_app: cannot write to repository"], "state": "failed"},
        {"databases": [], "host": "db4", "problems": ["db4 did not answer over SSH"], "state": "unreachable"},
    ],
}

SAMPLES = {"drill": DRILL, "restore": DR, "dr": DR, "integrity": INTEGRITY, "fleet": FLEET}


def sample(kind, **changes):
    summary = copy.deepcopy(SAMPLES[kind])
    summary.update(changes)
    return summary
