# -*- coding: utf-8 -*-
"""lifeboat.db.report's rendering (module_utils/common/report*.py), on real files in a temporary
folder: the en/ja table, escaping of hostile summary values, the history reader against planted
files, the timeline's scale and the targets."""
import json
import os
import re
import stat
import string
import threading

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common import report_history
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.report import build_reports, write_reports
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_model import (
    KINDS, figures, resolve_targets, timeline)
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_texts import LANGUAGES, TEXTS

from .report_samples import PROVE, sample

SEED_002 = {"rto_seconds": 14400.0, "rpo_seconds": 14400.0}


def render(kind, summary, folder, lang="en", targets=None, history=10):
    files, facts = build_reports(kind, str(folder), summary.get("run_id") or "20261205T083906Z", summary,
                                 targets or {}, lang, history)
    page = next(text for name, text in files.items() if name.endswith("report.html"))
    recovery = next((text for name, text in files.items() if name.endswith("recovery-report.md")), None)
    return page, recovery, facts


def fields(template):
    return sorted(name for _, name, _, _ in string.Formatter().parse(template) if name)


# The table of texts

def test_every_text_is_in_both_languages_with_the_same_values():
    assert LANGUAGES == ("en", "ja")
    for key, pair in TEXTS.items():
        assert isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(t, str) and t for t in pair), key
        assert fields(pair[0]) == fields(pair[1]), key


def literal_parts(template):
    """The words of a text outside its {values}, long enough not to be found by chance."""
    return [part.strip() for part, _, _, _ in string.Formatter().parse(template) if len(part.strip()) >= 5]


# English text that no Japanese report may show (the values of the samples are neutral: 'v'), but
# for the words Japanese texts hold too (variable names such as lifeboat_rto_target_seconds).
JAPANESE = " ".join(ja for _, ja in TEXTS.values())
ENGLISH = sorted({part for en, ja in TEXTS.values() if en != ja for part in literal_parts(en) if part not in JAPANESE})


@pytest.mark.parametrize("kind", KINDS)
def test_a_japanese_report_holds_no_english_text(kind, tmp_path):
    neutral = dict(verification="v", integrity="v", actions=[], fault="v", recovery="v", row_count_check="v",
                   summary="v", failure="v", failed_step="v", status="failed", host="v", took_on="v", proved_on="v")
    if kind == "fleet":
        neutral = {}
    summary = sample(kind, **neutral)
    for check in summary.get("checks", []):
        check["summary"] = "v"
    for targets in ({}, SEED_002, {"level": "RTO-1"}):
        page, recovery, _ = render(kind, summary, tmp_path / "none", "ja", targets)
        assert '<html lang="ja">' in page
        # What a reader sees: the page's text, not its markup (ids and classes are English).
        seen = re.sub(r"<[^>]*>", " ", re.sub(r"<style>.*</style>", "", page, flags=re.S))
        for text in [seen] + ([recovery] if recovery else []):
            found = [part for part in ENGLISH if part in text]
            assert not found, (kind, targets, found)
    assert TEXTS["heading_figures"][1] in page and TEXTS["heading_history"][1].split("{")[0] in page
    if recovery:
        for key in ("rr_summary", "rr_steps", "rr_checks", "rr_improvements"):
            assert "### " + TEXTS[key][1] in recovery


def test_every_heading_and_label_of_an_english_report_is_the_tables():
    """The English page is made of the table's texts too (nothing hard-coded beside it)."""
    for key in ("heading_figures", "heading_targets", "heading_timeline", "heading_tables", "figure_rto",
                "figure_rpo", "figure_backup", "figure_backup_size", "figure_rows", "mark_fault", "mark_recovered"):
        assert TEXTS[key][0] in render("drill", sample("drill"), "/nonexistent", "en", SEED_002)[0], key


# Escaping

HOSTILE = '<script>alert("x")</script>" onload="x'


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_values_are_escaped_in_both_files(kind, tmp_path):
    if kind == "fleet":
        summary = sample(kind)
        summary["hosts"][0]["host"] = HOSTILE
        summary["hosts"][1]["problems"] = [HOSTILE]
    elif kind == "integrity":
        summary = sample(kind, database=HOSTILE, host=HOSTILE, summary=HOSTILE)
        summary["checks"][0].update(name=HOSTILE, summary=HOSTILE)
    else:
        summary = sample(kind, database=HOSTILE, host=HOSTILE, fault=HOSTILE, failure=HOSTILE, status="failed",
                         failed_step=HOSTILE, actions=[HOSTILE], backup_id=HOSTILE, source=HOSTILE)
        summary["tables"][0]["table"] = HOSTILE
        summary["steps" if kind == "drill" else "tables"][0]["name" if kind == "drill" else "table"] = HOSTILE
    page, recovery, _ = render(kind, summary, tmp_path / "none")
    assert "<script" not in page.lower() and 'onload="x' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&quot; onload=&quot;x" in page
    if recovery is not None:
        # Markdown: every < escaped, so that no renderer takes it for HTML.
        assert not re.search(r"(?<!\\)<", recovery) and "\\<script\\>" in recovery
        assert all(not line.startswith(("<", "#  ")) for line in recovery.splitlines())


def test_the_page_is_self_contained_and_prints():
    page = render("drill", sample("drill"), "/nonexistent", "en", SEED_002)[0]
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">") and '<meta charset="utf-8">' in page
    assert not re.search(r"<script|\b(src|href)\s*=|url\(|@import|@font-face", page, re.I)
    assert "@media print" in page
    # Pass or miss is said in words, not only by colour.
    assert re.search(r'id="rto-verdict" data-verdict="met">\u2713 met', page)


# Targets

def test_targets_from_seed_003s_levels_and_seconds_given():
    assert resolve_targets({"level": "RTO-4"}) == dict(rto=14400.0, rpo=3600.0, level="RTO-4", rpo_minimal=False)
    assert resolve_targets({"level": "RTO-24"})["rpo"] == 86400.0
    # RTO-1's "minimal" data loss names no figure: not judged unless seconds are given.
    assert resolve_targets({"level": "RTO-1"}) == dict(rto=3600.0, rpo=None, level="RTO-1", rpo_minimal=True)
    assert resolve_targets({"level": "RTO-1", "rpo_seconds": 60})["rpo"] == 60.0
    assert resolve_targets({"level": "RTO-4", "rto_seconds": 5}) == dict(rto=5.0, rpo=3600.0, level="RTO-4",
                                                                         rpo_minimal=False)
    assert resolve_targets({}) == dict(rto=None, rpo=None, level=None, rpo_minimal=False)


def test_a_missed_target_shows_and_is_an_improvement(tmp_path):
    page, recovery, _ = render("drill", sample("drill"), tmp_path, "en", {"rto_seconds": 1.0, "rpo_seconds": 60})
    assert 'id="rto-verdict" data-verdict="missed"' in page and "\u2717 missed" in page
    assert 'id="rpo-verdict" data-verdict="met"' in page
    assert "Recovery took 2.25 s, over the RTO target of 1 s" in recovery
    assert "RPO target" not in recovery.split("### Improvements")[1]
    untargeted = render("drill", sample("drill"), tmp_path, "en", {})[1]
    assert "No RTO or RPO target is set" in untargeted


# The timeline, to scale

def rects(page, cls):
    return [dict(re.findall(r'([\w-]+)="([^"]*)"', rect)) for rect in re.findall(r'<rect class="%s"[^>]*>' % cls, page)]


@pytest.mark.parametrize("kind,summary", [("drill", sample("drill")), ("drill", PROVE), ("dr", sample("dr")),
                                          ("integrity", sample("integrity"))])
def test_the_timeline_is_drawn_to_scale(kind, summary):
    page = render(kind, summary, "/nonexistent", "en", SEED_002)[0]
    svg = re.search(r'<svg id="timeline-chart"[^>]*data-from="([^"]*)" data-to="([^"]*)"', page)
    lo, hi = float(svg.group(1)), float(svg.group(2))
    steps = rects(page, "step")
    assert steps
    # x = 210 + 720 * (start - lo) / (hi - lo): every bar placed and sized by its seconds.
    for step in steps:
        start, seconds = float(step["data-start"]), float(step["data-seconds"])
        assert float(step["x"]) == pytest.approx(210 + 720 * (start - lo) / (hi - lo), abs=0.06), step
        assert float(step["width"]) == pytest.approx(max(1.0, 720 * seconds / (hi - lo)), abs=0.02), step
    # The bars do not overlap, in the order of the run.
    starts = [(float(s["data-start"]), float(s["data-seconds"])) for s in steps]
    assert all(a + la <= b + 1e-9 for (a, la), (b, _) in zip(starts, starts[1:]))


def test_the_drills_fault_recovery_and_backup_are_where_the_figures_say():
    summary = sample("drill")
    fig = figures("drill", summary)
    bars, marks, spans = timeline("drill", summary, fig)
    at = {mark["key"]: mark["at"] for mark in marks}
    by_name = {bar["name"]: bar for bar in bars}
    assert at["mark_fault"] == by_name["inject_fault"]["start"]
    assert at["mark_fault"] - by_name["backup"]["start"] == pytest.approx(summary["rpo_seconds"])
    assert at["mark_recovered"] - at["mark_fault"] == pytest.approx(summary["rto_seconds"])
    # The verification ends at the recovery: the time between steps is spread, not lost.
    assert by_name["verify"]["start"] + by_name["verify"]["seconds"] == pytest.approx(at["mark_recovered"])
    assert spans == {"rto": (at["mark_fault"], at["mark_recovered"]), "rpo": (at["mark_backup"], at["mark_fault"])}


def test_a_restores_phases_follow_its_timings():
    summary = sample("dr")
    bars, marks, _ = timeline("dr", summary, figures("dr", summary))
    phases = [(bar["label"], round(bar["seconds"], 3)) for bar in bars]
    # download and verify count from the start; the rest is each phase's own length.
    assert phases == [("phase_download", 0.099), ("phase_check_files", 0.026), ("phase_restore", 0.14),
                      ("phase_analyze", 0.105), ("phase_finish", 0.038), ("phase_integrity", 0.2),
                      ("phase_files", 0.4)]
    assert bars[-1]["start"] + bars[-1]["seconds"] == pytest.approx(summary["recovery_seconds"])
    assert {mark["key"]: mark["at"] for mark in marks}["mark_backup"] == -summary["recovery_point_age_seconds"]


def test_a_backup_taken_long_before_is_drawn_at_the_edge_and_said_so():
    page = render("drill", PROVE, "/nonexistent", "en", SEED_002)[0]
    assert "Backup taken (6.1 h earlier)" in page


# History: the earlier runs of the folder, untrusted

def write_run(folder, name, summary=None, raw=None):
    run = folder / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(raw if raw is not None else json.dumps(summary))
    return run


def test_history_reads_the_series_and_skips_every_bad_file(tmp_path):
    folder = tmp_path / "evidence"
    outside = tmp_path / "outside"
    good = [("20261201T000000Z-target", 1.0), ("20261202T000000Z-target", 2.0), ("20261203T000000Z-target", 3.0)]
    for name, rto in good:
        write_run(folder, name, sample("drill", run_id=name, rto_seconds=rto))
    write_run(folder, "20261203T100000Z-other", sample("drill", host="other"))       # another host's: left out
    write_run(outside, "20261203T110000Z-target", sample("drill", rto_seconds=99.0))
    (folder / "20261203T110000Z-target").symlink_to(outside / "20261203T110000Z-target")  # a linked run folder
    linked = folder / "20261203T120000Z-target"
    linked.mkdir()
    (linked / "summary.json").symlink_to(outside / "20261203T110000Z-target" / "summary.json")  # a linked file
    write_run(folder, "20261203T130000Z-target", raw="{not json")
    write_run(folder, "20261203T140000Z-target", raw=json.dumps(sample("drill", rto_seconds="fast")))
    write_run(folder, "20261203T150000Z-target", raw='{"rto_seconds": 1, "run_id": "x", "host": "target", '
                                                     '"database": "drill_truncate", "took_on": "target", "pad": "%s"}'
              % ("x" * report_history.MAX_SUMMARY_BYTES))
    write_run(folder, "20261203T160000Z-target", raw="[1, 2]")
    fifo = folder / "20261203T170000Z-target"
    fifo.mkdir()
    os.mkfifo(fifo / "summary.json")
    (folder / "20261203T180000Z-target").mkdir()                                   # no summary.json
    (folder / "latest-summary.json").write_text(json.dumps(sample("drill")))       # not a run
    write_run(folder, "20261205T082828Z-target", sample("drill"))                  # this run itself

    result = {}
    reader = threading.Thread(target=lambda: result.update(
        facts=render("drill", sample("drill"), folder, "en", SEED_002)))
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "a FIFO held the history up"
    page, _, facts = result["facts"]
    assert facts == {"history_runs": 3, "history_skipped": 8}
    shown = re.findall(r'<rect class="run[^"]*" data-run="([^"]*)" data-value="([^"]*)"', page.split('id="history-rto"')[1])
    assert shown[:3] == [(name, repr(rto)) for name, rto in good] and shown[3][0] == "20261205T082828Z-target"
    assert 'id="history-skipped" data-skipped="8"' in page and "8 earlier run(s) skipped" in page
    assert "99.0" not in page


def test_history_keeps_the_newest_runs_up_to_the_limit(tmp_path):
    for day in range(1, 6):
        name = "2026120%dT000000Z-target" % day
        write_run(tmp_path, name, sample("drill", run_id=name))
    _, _, facts = render("drill", sample("drill"), tmp_path, history=2)
    runs, skipped = report_history.read_history(str(tmp_path), "x", 2, lambda summary: True)
    assert [name for name, _ in runs] == ["20261204T000000Z-target", "20261205T000000Z-target"]
    assert facts == {"history_runs": 2, "history_skipped": 0}
    assert render("drill", sample("drill"), tmp_path, history=0)[2] == {"history_runs": 0, "history_skipped": 0}


def test_a_slower_restore_than_the_earlier_runs_is_an_improvement(tmp_path):
    for day, seconds in enumerate((0.5, 0.6, 0.55), start=1):
        summary = sample("drill", run_id="2026120%dT000000Z-target" % day)
        summary["steps"][4]["seconds"] = seconds
        write_run(tmp_path, summary["run_id"], summary)
    slow = sample("drill")
    slow["steps"][4]["seconds"] = 1.8
    recovery = render("drill", slow, tmp_path, "en", SEED_002)[1]
    assert "The restore took 1.8 s, 3.3 times the median of the earlier runs (0.55 s)" in recovery


# Bad input and the files written

def test_a_summary_of_the_wrong_shape_is_one_line_naming_the_field(tmp_path):
    with pytest.raises(LifeboatError) as caught:
        render("drill", sample("drill", rto_seconds="2 s"), tmp_path)
    assert caught.value.msg == ("summary: rto_seconds is not a number of 0 or more; pass the summary the role "
                                "writes as summary.json")
    with pytest.raises(LifeboatError, match="history is -1; give the number of earlier runs to chart, 0 or more"):
        build_reports("drill", str(tmp_path), "run", sample("drill"), {}, "en", -1)
    with pytest.raises(LifeboatError, match="must be one folder name"):
        build_reports("drill", str(tmp_path), "a/b", sample("drill"), {}, "en", 10)


def test_reports_are_private_and_check_mode_writes_nothing(tmp_path):
    from ansible.plugins.filter.core import to_nice_json
    folder = tmp_path / "evidence"
    summary = sample("drill")
    planned = write_reports("drill", str(folder), summary["run_id"], summary, {}, "ja", 10, to_nice_json,
                            check_mode=True)
    assert not folder.exists()
    written = write_reports("drill", str(folder), summary["run_id"], summary, {}, "ja", 10, to_nice_json)
    assert written == planned == dict(html=str(folder / summary["run_id"] / "report.html"),
                                      recovery=str(folder / summary["run_id"] / "recovery-report.md"),
                                      history_runs=0, history_skipped=0)
    for path in (written["html"], written["recovery"]):
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(folder / summary["run_id"]).st_mode) == 0o700
    integrity = write_reports("integrity", str(folder), "run-2", sample("integrity"), {}, "en", 10, to_nice_json)
    assert integrity["recovery"] is None and not (folder / "run-2" / "recovery-report.md").exists()


def test_a_failed_runs_times_are_not_judged(tmp_path):
    failed = sample("drill", status="failed", failed_step="(g) Verify row counts equal the baseline", failure="lost rows")
    page, recovery, _ = render("drill", failed, tmp_path, "en", SEED_002)
    assert 'id="rto-verdict" data-verdict="none">not judged: the run failed' in page
    assert 'data-mark="ended"' in page and 'data-mark="recovered"' not in page
    incident = recovery.split("### Recovery steps")[0]
    assert "- **Recovered**: not recovered" in incident and "(target" not in incident
    assert 'The run failed at "(g) Verify row counts equal the baseline": lost rows.' in recovery


# Physical backups (pgBackRest) beside the logical ones

def stanza_result(name="main", failing=False, **changes):
    """A lifeboat.db.pgbackrest_info result as a loop registers it (shape of a real run on pgBackRest 2.45)."""
    result = {
        "changed": False, "item": {"name": name}, "count": 2, "latest": "20261205-093344F_20261205-093348I",
        "status": {"code": 0, "message": "ok"},
        "stanza": {"name": name, "status": {"code": 0, "message": "ok"}, "cipher": "none", "backup_lock_held": False},
        "backups": [
            {"label": "20261205-093344F", "type": "full", "prior": None, "started_at": "2026-12-05T09:33:44Z",
             "stopped_at": "2026-12-05T09:33:46Z", "started_epoch": 1796463224, "stopped_epoch": 1796463226,
             "database_size": 22022524, "repository_size": 4242545},
            {"label": "20261205-093344F_20261205-093348I", "type": "incr", "prior": "20261205-093344F",
             "started_at": "2026-12-05T09:33:48Z", "stopped_at": "2026-12-05T09:33:49Z", "started_epoch": 1796463228,
             "stopped_epoch": 1796463229, "database_size": 28022524, "repository_size": 4635945}],
        "archives": [{"id": "15-1", "db_id": 1, "repo_key": 1, "min_wal": "000000010000000000000001",
                      "max_wal": "000000010000000000000007"}],
        "exposure_seconds": 912.5 if failing else 4.25,
        "archiver": {"archived_count": 7, "failed_count": 3 if failing else 0, "failing": failing,
                     "last_failed_wal": "000000010000000000000008" if failing else None},
        "timing": {"finished_epoch": 1796463229 + 3600},
    }
    result.update(changes)
    return result


def test_physical_backups_are_shown_beside_the_logical_ones_in_both_files(tmp_path):
    physical = {"results": [stanza_result("main"), stanza_result("reports", failing=True)]}
    files, _ = build_reports("restore", str(tmp_path), "run", sample("restore"), SEED_002, "en", 10, physical=physical)
    page, recovery = files["run/report.html"], files["run/recovery-report.md"]
    section = page.split('<section id="physical">')[1].split("</section>")[0]
    rows = re.findall(r'<tr data-host="" data-stanza="([^"]+)" data-failing="(\w+)" class="(\w+)">(.*?)</tr>', section)
    assert [(stanza, failing, state) for stanza, failing, state, _ in rows] == [
        ("main", "false", "met"), ("reports", "true", "missed")]
    main = rows[0][3]
    # The newest backup, its type, its age when the stanza was read (an hour), the archive range, the exposure.
    assert "20261205-093344F_20261205-093348I" in main and "<td>incremental</td>" in main
    assert 'data-age="3600.0">1 h<' in main and 'data-exposure="4.25">4.25 s<' in main
    assert "000000010000000000000001 \u2013 000000010000000000000007" in main and "\u2713 ok" in main
    assert "\u2717 failing" in rows[1][3]
    assert ("stanza reports: WAL archiving is failing (3 failure(s), the last on 000000010000000000000008)"
            in section.split('id="physical-problems">')[1])
    # The restore's own sections are all still there, the stanzas after its tables.
    assert page.index('id="tables"') < page.index('id="physical"') < page.index('id="history"')

    part = recovery.split("### Physical backups (pgBackRest)\n")[1].split("\n### ")[0]
    assert part.splitlines()[0] == (
        "- stanza main on db2: latest backup 20261205-093344F_20261205-093348I (incremental, 1 h old), WAL archive "
        "000000010000000000000001 - 000000010000000000000007, exposure 4.25 s, archiving ok")
    assert "  - problem: stanza reports: WAL archiving is failing" in part
    assert "- Physical backups: stanza reports: WAL archiving is failing" in recovery.split("### Improvements")[1]


def test_a_japanese_report_names_the_physical_backups_in_japanese(tmp_path):
    files, _ = build_reports("drill", str(tmp_path), "run", sample("drill"), {}, "ja", 10,
                             physical=[stanza_result("main")])
    page, recovery = files["run/report.html"], files["run/recovery-report.md"]
    seen = re.sub(r"<[^>]*>", " ", re.sub(r"<style>.*</style>", "", page, flags=re.S))
    for key in ("heading_physical", "column_stanza", "column_exposure", "backup_type_incr", "archiving_ok"):
        assert TEXTS[key][1] in seen and TEXTS[key][0] not in seen, key
    assert "### 物理バックアップ（pgBackRest）" in recovery
    assert "スタンザ main: 最新のバックアップ" in recovery and "（増分、1 時間 前）" in recovery


def test_a_stanza_that_could_not_be_read_is_a_problem_not_a_failure_of_the_report(tmp_path):
    unread = {"failed": True, "item": {"name": "main"},
              "msg": "pgbackrest info failed: ERROR: [055]: unable to load info file\nHINT: is the stanza created?"}
    no_backup = stanza_result("fresh", backups=[], status={"code": 0, "message": "ok"})
    files, _ = build_reports("restore", str(tmp_path), "run", sample("restore"), {}, "en", 10,
                             physical=[unread, no_backup])
    problems = files["run/report.html"].split('id="physical-problems">')[1]
    assert ("stanza main: pgbackrest info failed: ERROR: [055]: unable to load info file HINT: is the stanza "
            "created?" in problems)
    assert "stanza fresh has no backup yet: take a full backup (pgbackrest backup --type=full)" in problems


def test_the_fleet_report_shows_the_stanzas_its_summary_keeps(tmp_path):
    from ansible_collections.lifeboat.db.plugins.module_utils.common.report_physical import physical_views
    summary = sample("fleet")
    summary["hosts"][0]["physical"] = physical_views([stanza_result("main", failing=True)], host="db1")
    summary["hosts"][0]["physical"][0]["stanza"] = HOSTILE
    page = render("fleet", summary, tmp_path / "none")[0]
    assert '<tr data-host="db1" data-stanza="&lt;script&gt;' in page and "<script" not in page.lower()
    assert "\u2717 failing" in page.split('<section id="physical">')[1]
    # Without stanzas, no section.
    assert 'id="physical"' not in render("fleet", sample("fleet"), tmp_path / "none")[0]


def test_physical_of_the_wrong_shape_is_one_line(tmp_path):
    bad = stanza_result("main")
    bad["backups"][1]["type"] = "snapshot"
    with pytest.raises(LifeboatError) as caught:
        build_reports("restore", str(tmp_path), "run", sample("restore"), {}, "en", 10, physical=[bad])
    assert caught.value.msg == ("physical: backups[].type is not full, diff or incr; pass lifeboat.db.pgbackrest_info "
                                "results (a registered result, or a loop's .results)")
    with pytest.raises(LifeboatError, match="^physical: physical is not a list of pgbackrest_info results"):
        build_reports("restore", str(tmp_path), "run", sample("restore"), {}, "en", 10, physical="main")
    summary = sample("fleet")
    summary["hosts"][0]["physical"] = [{"stanza": "main", "exposure_seconds": "soon"}]
    with pytest.raises(LifeboatError, match=r"^summary: hosts\[\].physical\[\].exposure_seconds is not a number"):
        render("fleet", summary, tmp_path)
