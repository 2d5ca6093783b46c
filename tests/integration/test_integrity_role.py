"""playbooks/integrity.yml through role lifeboat_integrity: the checks always run to the end, the
report lists failed checks first, the evidence is written on the controller, and only then does
lifeboat_integrity_fail_on decide whether the play fails."""
import json
import stat

from conftest import PROJECT, assert_one_line, embedded_only
from report_checks import assert_reports

# A role composes modules whose own tests run on every server; the role itself runs on one.
pytestmark = embedded_only

INTEGRITY = PROJECT / "playbooks" / "integrity.yml"
ROLE = "lifeboat_integrity : "
RUN = ROLE + "Run lifeboat.db.integrity on {db}"
REPORT = ROLE + "Report of the integrity checks"
STATS = ROLE + "Hand the outcome to AWX"
VERDICT = ROLE + "Fail when the integrity checks did not pass"
SEQUENCE_BEHIND = "SELECT setval('lifeboat_sample.orders_id_seq', 5)"
NOT_VALID = "ALTER TABLE lifeboat_sample.orders ADD CONSTRAINT orders_id_positive CHECK (id > 0) NOT VALID"


def run(ansible, db, evidence, *args):
    return ansible.run_playbook(INTEGRITY, "-e", f"integrity_db={db}", "-e", f"integrity_evidence_dir={evidence}",
                                *args)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def stats(play):
    return play.result(STATS)["ansible_stats"]["data"]["lifeboat_integrity"]


def latest_evidence(evidence):
    summary = json.loads((evidence / "latest-summary.json").read_text())
    run_dir = evidence / summary["run_id"]
    return summary, json.loads((run_dir / "result.json").read_text()), (run_dir / "report.md").read_text(), run_dir


def test_clean_database_passes_with_a_report_and_private_evidence(server, ansible, sample_db, tmp_path, chromium):
    evidence = tmp_path / "evidence"
    play = run(ansible, sample_db, evidence)
    assert play.rc == 0, play.stdout[-3000:]
    result = play.result(RUN.format(db=sample_db))
    assert result["passed"] and result["failed_checks"] == []

    report = play.result(REPORT)["msg"]
    assert report[0] == result["summary"]
    # One line per check: status, name, summary.
    assert len(report) == 1 + len(result["checks"])
    assert "PASSED  sequences: no sequence is behind its column" in report
    assert "PASSED  not_valid_constraints (warning): every constraint is validated" in report
    assert all(line.split()[0] in ("PASSED", "SKIPPED") for line in report[1:]), report

    summary, written, markdown, run_dir = latest_evidence(evidence)
    assert run_dir.name.endswith(f"-{ansible.HOST}-{sample_db}")
    assert summary["passed"] is True and summary["summary"] == result["summary"]
    assert written["checks"] == result["checks"] and written["summary"] == result["summary"]
    assert markdown.startswith(f"# Integrity of {sample_db}: PASSED\n")
    assert "| PASSED | sequences | error | no sequence is behind its column |" in markdown
    assert mode(run_dir) == 0o700
    assert {p.name: mode(p) for p in [*run_dir.iterdir(), evidence / "latest-summary.json"]} == {
        "result.json": 0o600, "summary.json": 0o600, "report.md": 0o600, "report.html": 0o600,
        "latest-summary.json": 0o600}
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert [c["name"] for c in summary["checks"]] == [c["name"] for c in result["checks"]]
    assert "sample" not in summary["checks"][0]
    passed = sum(1 for c in result["checks"] if c["status"] == "passed")
    page, _ = assert_reports(run_dir, "en", "passed", {
        "checks": ("data-passed", passed), "duration": ("data-seconds", result["timing"]["seconds"])}, recovery=False, chromium=chromium)
    assert "<h1>Integrity check report</h1>" in page and page.count('class="step"') == len(
        [c for c in result["checks"] if c.get("seconds") is not None])
    assert stats(play) == dict(stats(play), database=sample_db, passed=True, failed_checks=[],
                               summary=result["summary"], evidence=str(run_dir))
    assert server.password not in play.stdout + markdown + json.dumps(written)


def test_broken_data_fails_the_play_with_the_summary_after_the_evidence(server, ansible, sample_db, tmp_path, chromium):
    server.sql(sample_db, SEQUENCE_BEHIND)
    evidence = tmp_path / "evidence"
    play = run(ansible, sample_db, evidence, "-e", "lifeboat_report_lang=ja")
    assert play.rc != 0
    result = play.result(RUN.format(db=sample_db))
    assert not result["failed"], "the module only reports; the role gives the verdict"
    assert not result["passed"] and result["failed_checks"] == ["sequences"]
    assert_one_line(play.result(VERDICT), "1 failed", "sequences: 1 sequence(s) behind their column",
                    "lifeboat_sample.orders_id_seq (next 6, lifeboat_sample.orders.id max ")
    assert play.result(VERDICT)["msg"] == result["summary"]

    report = play.result(REPORT)["msg"]
    assert report[1].startswith("FAILED  sequences: 1 sequence(s) behind their column"), report

    summary, written, markdown, _ = latest_evidence(evidence)
    assert summary["passed"] is False and summary["failed_checks"] == ["sequences"]
    assert [c["status"] for c in written["checks"] if c["name"] == "sequences"] == ["failed"]
    assert markdown.startswith(f"# Integrity of {sample_db}: FAILED\n")
    assert "| FAILED | sequences | error | 1 sequence(s) behind their column" in markdown
    assert stats(play)["passed"] is False and stats(play)["failed_checks"] == ["sequences"]
    # The page in Japanese (lifeboat_report_lang), the failed check marked in colour and words.
    page, _ = assert_reports(evidence / summary["run_id"], "ja", "failed", {"checks": ("data-failed", 1)}, recovery=False, chromium=chromium)
    assert "<h1>整合性チェックレポート</h1>" in page and "失敗" in page

    # Check mode runs the checks too (they are read-only), and writes no evidence, as the drill's.
    (evidence / "latest-summary.json").unlink()
    check = run(ansible, sample_db, evidence, "--check")
    assert check.rc != 0
    assert check.result(VERDICT)["msg"] == result["summary"]
    assert check.result(REPORT)["msg"][0] == result["summary"] + " - check mode"
    assert not (evidence / "latest-summary.json").exists()


def test_fail_on_never_reports_without_failing(server, ansible, sample_db, tmp_path):
    server.sql(sample_db, SEQUENCE_BEHIND)
    server.sql(sample_db, NOT_VALID)
    evidence = tmp_path / "evidence"
    play = run(ansible, sample_db, evidence, "-e", "integrity_fail_on=never")
    assert play.rc == 0, play.stdout[-3000:]
    assert play.result(VERDICT)["_status"] == "skipped"
    report = play.result(REPORT)["msg"]
    assert report[1].startswith("FAILED  sequences: ") and \
        report[2].startswith("FAILED  not_valid_constraints (warning): 1 NOT VALID constraint(s)"), report
    assert stats(play)["passed"] is False
    assert stats(play)["failed_checks"] == ["sequences", "not_valid_constraints"]
    summary, _, markdown, _ = latest_evidence(evidence)
    assert summary["failed_checks"] == ["sequences", "not_valid_constraints"]
    assert "| FAILED | not_valid_constraints | warning |" in markdown


def test_a_failed_warning_fails_the_play_only_with_fail_on_warning(server, ansible, sample_db, tmp_path):
    server.sql(sample_db, NOT_VALID)
    evidence = tmp_path / "evidence"
    default = run(ansible, sample_db, evidence)
    assert default.rc == 0, default.stdout[-3000:]
    assert default.result(RUN.format(db=sample_db))["passed"]
    assert default.result(REPORT)["msg"][1].startswith("FAILED  not_valid_constraints (warning): ")
    assert json.loads((evidence / "latest-summary.json").read_text())["failed_checks"] == ["not_valid_constraints"]

    strict = run(ansible, sample_db, evidence, "-e", "integrity_fail_on=warning")
    assert strict.rc != 0
    assert_one_line(strict.result(VERDICT), "not_valid_constraints (warning): 1 NOT VALID constraint(s)",
                    "orders_id_positive")


def test_bad_variables_are_refused_before_anything_runs(server, ansible, tmp_path):
    evidence = tmp_path / "evidence"
    bad_count = run(ansible, "app", evidence, "-e", "lifeboat_integrity_count=sometimes")
    assert bad_count.rc != 0
    validation = bad_count.tasks[-1][1]
    assert validation["failed"] and "lifeboat_integrity_count" in validation["msg"], validation
    assert "exact, estimate" in validation["msg"], validation["msg"]

    bad_fail_on = run(ansible, "app", evidence, "-e", "integrity_fail_on=sometimes")
    assert bad_fail_on.rc != 0 and "lifeboat_integrity_fail_on" in bad_fail_on.tasks[-1][1]["msg"]

    no_db = ansible.run_playbook(INTEGRITY)
    assert no_db.rc != 0 and "lifeboat_integrity_db" in no_db.tasks[-1][1]["msg"]
    assert not evidence.exists()
