"""playbooks/drill.yml end to end: the recovery drill of seed 001 and its evidence."""
import json
import stat

import pytest

from conftest import PROJECT, assert_one_line, embedded_only
from report_checks import assert_reports, figure


def run_drill(ansible, server, db, evidence, **drill_vars):
    server.drop_db(db)
    ansible.write_inventory(lifeboat_drill_db=db, lifeboat_drill_repository=str(ansible.repository),
                            lifeboat_drill_evidence_dir=str(evidence), lifeboat_drill_sample_scale=150, **drill_vars)
    return ansible.run_playbook(PROJECT / "playbooks" / "drill.yml")


# Each fault on the embedded server; on PostgreSQL 15 the one that needs the most of the restore (the
# database itself made again): the faults are the same SQL on both versions, the dump and the restore are not.
@pytest.mark.parametrize("server, fault", [("embedded", "truncate"), ("embedded", "drop_table"),
                                           ("embedded", "drop_database"), ("pg15", "drop_database")],
                         indirect=["server"])
def test_drill_restores_the_baseline_and_writes_evidence(server, ansible, tmp_path, fault, chromium):
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
        # Evidence is private like the integrity evidence: folders 0700, files 0600.
        modes = {str(p.relative_to(evidence)): stat.S_IMODE(p.stat().st_mode) for p in [evidence, *evidence.rglob("*")]}
        assert modes == {name: 0o700 if (evidence / name).is_dir() else 0o600 for name in modes}, modes
        report = (run_dir / "report.md").read_text()
        assert "PASSED" in report and "RTO (fault to verified)" in report
        assert server.password not in report + json.dumps(summary)
        assert_drill_reports(run_dir, summary, "en", chromium)
    finally:
        server.drop_db(db)


def assert_drill_reports(run_dir, summary, lang, chromium):
    page, recovery = assert_reports(run_dir, lang, summary["status"], {
        "rto": ("data-seconds", summary["rto_seconds"]), "rpo": ("data-seconds", summary["rpo_seconds"]),
        "backup-id": ("data-backup-id", summary["backup_id"]), "backup-size": ("data-bytes", summary["backup_size"]),
        "rows": ("data-rows", summary["restored_total_rows"])}, chromium=chromium)
    assert recovery.startswith({"en": "## Recovery report: ", "ja": "## 復旧レポート: "}[lang] + summary["run_id"])
    return page, recovery


# The reports, the evidence of a failed verification and the refusal are made by the roles and the controller
# whatever the server's version (the drill's restore runs on both servers above).
@embedded_only
def test_drill_reports_in_japanese_against_seed_002s_targets_with_history(server, ansible, tmp_path, chromium):
    """lifeboat_report_lang=ja and seed 002's RTO/RPO of 4 h from the inventory; a second drill's
    history holds the first one, a planted link among the runs is skipped and said so."""
    evidence = tmp_path / "evidence"
    db = "drill_ja"
    targets = dict(lifeboat_report_lang="ja", lifeboat_rto_target_seconds=14400, lifeboat_rpo_target_seconds=14400)
    try:
        assert run_drill(ansible, server, db, evidence, **targets).rc == 0
        first = json.loads((evidence / "latest-summary.json").read_text())
        (evidence / "00000000T000000Z-planted").symlink_to(evidence / first["run_id"])
        play = run_drill(ansible, server, db, evidence, **targets)
        assert play.rc == 0, play.stdout[-4000:]
        summary = json.loads((evidence / "latest-summary.json").read_text())
        assert summary["run_id"] != first["run_id"] and summary["recovery_started_at"]
        page, recovery = assert_drill_reports(evidence / summary["run_id"], summary, "ja", chromium)
        assert figure(page, "rto-verdict", "data-verdict") == "met" and "達成" in page
        assert "目標 4 時間" in recovery
        written = play.result("lifeboat_drill : Write the drill's HTML report and recovery report on the controller")
        assert (written["history_runs"], written["history_skipped"]) == (1, 1), written
        assert f'data-run="{first["run_id"]}"' in page and 'data-skipped="1"' in page
    finally:
        server.drop_db(db)


@embedded_only
def test_drill_fails_when_verification_fails_and_says_so_in_the_evidence(server, ansible, tmp_path, chromium):
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
        page, recovery = assert_drill_reports(evidence / summary["run_id"], summary, "en", chromium)
        assert "FAILED" in page and "- **Result**: FAILED" in recovery
        # The improvement the run itself shows: its failure, with the step.
        assert 'The run failed at "(g) Verify row counts equal the baseline"' in recovery
        failed = play.result("lifeboat_drill : Fail the play when the drill did not verify")
        assert failed["failed"] and "FAILED at" in failed["msg"]
    finally:
        server.drop_db("drill_fails")


@embedded_only
def test_drill_refuses_a_production_host(server, ansible, tmp_path):
    play = run_drill(ansible, server, "drill_prod", tmp_path / "evidence", lifeboat_production=True)
    assert play.rc != 0
    refused = play.result("lifeboat_drill : Refuse to drill on a production host")
    assert "is marked lifeboat_production" in refused["msg"]
    assert not server.exists("drill_prod")


@embedded_only
def test_fault_module_refuses_a_production_host_itself(server, ansible, empty_db):
    """The module, not only the drill role: a host marked lifeboat_production gets no fault, in or
    out of check mode, whatever the fault; a mark that is neither true nor false counts as production."""
    db = empty_db
    server.sql(db, "CREATE TABLE precious AS SELECT g AS id FROM generate_series(1, 10) g")
    ansible.write_inventory(lifeboat_production=True)
    fault = {"db": db, "table": "public.precious", "confirm": db}
    cases = {"truncate": ({}, fault), "drop_table": ({}, dict(fault, fault="drop_table")),
             "drop_database": ({}, {"db": db, "fault": "drop_database", "confirm": db}),
             "check mode": ({"check_mode": True}, fault),
             "templated mark": ({"vars": {"lifeboat_production": "{{ 'yes' }}"}}, fault),
             "unclear mark": ({"vars": {"lifeboat_production": "maybe"}}, fault)}
    tasks = [{"name": name, "lifeboat.db.fault": args, "ignore_errors": True, **extra}
             for name, (extra, args) in cases.items()]
    tasks.append({"name": "not production", "lifeboat.db.fault": dict(fault, table="public.scratch"),
                  "vars": {"lifeboat_production": False}, "ignore_errors": True})
    server.sql(db, "CREATE TABLE scratch AS SELECT 1 AS id")
    play = ansible.play(tasks)
    for name in cases:
        assert_one_line(play.result(name), f"{ansible.HOST} is marked lifeboat_production", "Nothing was changed")
    assert server.count(db, "precious") == 10
    allowed = play.result("not production")
    assert not allowed["failed"] and allowed["rows_destroyed"] == 1, allowed
