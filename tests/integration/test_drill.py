"""playbooks/drill.yml end to end: the recovery drill of seed 001 and its evidence."""
import json

import pytest

from conftest import PROJECT


def run_drill(ansible, server, db, evidence, **drill_vars):
    server.drop_db(db)
    ansible.write_inventory(lifeboat_drill_db=db, lifeboat_drill_repository=str(ansible.repository),
                            lifeboat_drill_evidence_dir=str(evidence), lifeboat_drill_sample_scale=150, **drill_vars)
    return ansible.run_playbook(PROJECT / "playbooks" / "drill.yml")


@pytest.mark.parametrize("fault", ["truncate", "drop_table", "drop_database"])
def test_drill_restores_the_baseline_and_writes_evidence(server, ansible, tmp_path, fault):
    evidence = tmp_path / "evidence"
    db = f"drill_{fault}"
    try:
        play = run_drill(ansible, server, db, evidence, lifeboat_drill_fault=fault,
                         lifeboat_drill_fault_table="lifeboat_sample.orders", lifeboat_drill_fault_cascade=True)
        assert play.rc == 0, play.stdout[-4000:]
        summary = json.loads((evidence / "latest-summary.json").read_text())
        run_dir = evidence / summary["run_id"]
        assert json.loads((run_dir / "summary.json").read_text()) == summary
        assert summary["status"] == "passed" and summary["failed_step"] is None
        assert summary["baseline_total_rows"] == summary["restored_total_rows"] == 150 * 18 + 20
        assert [t["status"] for t in summary["tables"]] == ["ok"] * 5
        assert summary["rto_seconds"] > 0 and summary["rpo_seconds"] > 0
        assert summary["backup_id"] and summary["backup_sha256"]
        # The database really holds the baseline again.
        assert server.count(db, "lifeboat_sample.order_items") == 150 * 9
        steps = sorted(p.name for p in (run_dir / "steps").iterdir())
        assert steps == ["01-load_sample_data.json", "02-capture_baseline.json", "03-backup.json",
                         "04-inject_fault.json", "05-restore.json", "06-verify.json"]
        assert json.loads((run_dir / "steps" / "06-verify.json").read_text())["passed"] is True
        report = (run_dir / "report.md").read_text()
        assert "PASSED" in report and "RTO (fault to verified)" in report
        assert server.password not in report + json.dumps(summary)
    finally:
        server.drop_db(db)


def test_drill_fails_when_verification_fails_and_says_so_in_the_evidence(server, ansible, tmp_path):
    """A 'writer' that deletes rows after the restore must make the drill fail, with evidence."""
    evidence = tmp_path / "evidence"
    writer = tmp_path / "bad_writer.yml"
    writer.write_text(json.dumps([{
        "name": "A writer that loses rows",
        "lifeboat.db.fault": {"db": "drill_fails", "fault": "truncate", "table": "lifeboat_sample.products",
                              "cascade": True, "confirm": "drill_fails"}}]))
    try:
        play = run_drill(ansible, server, "drill_fails", evidence, lifeboat_drill_start_writers_tasks=str(writer))
        assert play.rc != 0
        summary = json.loads((evidence / "latest-summary.json").read_text())
        assert summary["status"] == "failed"
        assert summary["failed_step"].endswith("(g) Verify row counts equal the baseline")
        assert "lifeboat_sample.products (expected 20, found 0)" in summary["failure"]
        assert "FAILED" in (evidence / summary["run_id"] / "report.md").read_text()
        failed = play.result("lifeboat_drill : Fail the play when the drill did not verify")
        assert failed["failed"] and "FAILED at" in failed["msg"]
    finally:
        server.drop_db("drill_fails")


def test_drill_refuses_a_production_host(server, ansible, tmp_path):
    play = run_drill(ansible, server, "drill_prod", tmp_path / "evidence", lifeboat_production=True)
    assert play.rc != 0
    refused = play.result("lifeboat_drill : Refuse to drill on a production host")
    assert "is marked lifeboat_production" in refused["msg"]
    assert not server.exists("drill_prod")
