"""lifeboat.db.evidence (an action plugin): a run's evidence files written on the controller in one
task - folders 0700, files 0600, JSON as to_nice_json writes it - as the controller's user whatever
become says, never through a link below its folder nor outside it, and nothing in check mode."""
import json
import os
import stat

from conftest import assert_one_line, embedded_only

# No database is involved: one server is enough.
pytestmark = embedded_only

WRITE = "write the evidence"


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def play(ansible, tasks, *args):
    path = ansible.workdir / "evidence-play.yml"
    # become to a user that does not exist: were the task to become anyone, it would fail.
    path.write_text(json.dumps([{"name": "evidence", "hosts": "databases", "gather_facts": False, "become": True,
                                 "vars": {"ansible_become_user": "no-such-user-lifeboat"}, "tasks": tasks}]))
    return ansible.run_playbook(path, *args)


def test_files_are_private_whole_and_written_without_become(ansible, tmp_path):
    evidence = tmp_path / "evidence"
    summary = {"status": "passed", "rows": 3, "tables": ["public.a"], "note": "münchen"}
    result = play(ansible, [{"name": WRITE, "lifeboat.db.evidence": {
        "dir": str(evidence),
        "files": {"run-1/summary.json": summary, "run-1/steps/01-dump.json": [1, 2],
                  "run-1/report.md": "# Report\nall good", "latest-summary.json": summary}}}])
    assert result.rc == 0, result.stdout[-3000:]
    written = result.result(WRITE)
    assert written["changed"] is True
    assert written["written"] == [str(evidence / name) for name in (
        "run-1/summary.json", "run-1/steps/01-dump.json", "run-1/report.md", "latest-summary.json")]
    for folder in (evidence, evidence / "run-1", evidence / "run-1" / "steps"):
        assert mode(folder) == 0o700, folder
    for name in written["written"]:
        assert mode(name) == 0o600 and os.stat(name).st_uid == os.getuid(), name
    text = (evidence / "run-1" / "summary.json").read_text()
    # As to_nice_json writes it (sorted keys, 4 spaces), with a closing newline.
    assert text == json.dumps(summary, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"
    assert (evidence / "run-1" / "report.md").read_text() == "# Report\nall good\n"
    assert json.loads((evidence / "latest-summary.json").read_text()) == summary
    assert not [p for p in evidence.rglob("*.tmp-*")]


def test_names_that_leave_the_folder_and_links_below_it_are_refused(ansible, tmp_path):
    evidence, outside = tmp_path / "evidence", tmp_path / "outside"
    outside.mkdir()
    evidence.mkdir(mode=0o700)
    # A link planted where a run folder would go, and one where a file would go.
    (evidence / "run-link").symlink_to(outside)
    (outside / "latest-summary.json").write_text("kept\n")
    (evidence / "latest-summary.json").symlink_to(outside / "latest-summary.json")
    cases = {
        "escape": {"../outside/x.json": {}},
        "absolute": {str(outside / "x.json"): {}},
        "dot": {"run/./x.json": {}},
        "empty": {"run//x.json": {}},
        "through a link": {"run-link/summary.json": {"a": 1}},
        "untemplated": {"{{ run_id }}/summary.json": {}},
    }
    tasks = [{"name": name, "lifeboat.db.evidence": {"dir": str(evidence), "files": files}, "ignore_errors": True}
             for name, files in cases.items()]
    tasks.append({"name": "over a link", "lifeboat.db.evidence": {"dir": str(evidence),
                                                                 "files": {"latest-summary.json": {"b": 2}}}})
    tasks.append({"name": "dir is a file", "lifeboat.db.evidence": {"dir": str(outside / "latest-summary.json"),
                                                                   "files": {"x.json": {}}}, "ignore_errors": True})
    result = play(ansible, tasks)
    for name in cases:
        assert not result.result(name)["changed"], name
    assert_one_line(result.result("absolute"), "must be a non-empty relative path")
    for name in ("escape", "dot", "empty"):
        assert_one_line(result.result(name), 'has an empty, "." or ".." part')
    assert_one_line(result.result("through a link"), "run-link is a link, not a folder")
    assert_one_line(result.result("dir is a file"), "is a file, not a folder")
    assert_one_line(result.result("untemplated"), "was not templated")
    # Nothing was written outside; the link at a file's name was replaced, not written through.
    assert sorted(p.name for p in outside.iterdir()) == ["latest-summary.json"]
    assert (outside / "latest-summary.json").read_text() == "kept\n"
    assert not (evidence / "latest-summary.json").is_symlink()
    assert json.loads((evidence / "latest-summary.json").read_text()) == {"b": 2}


def test_check_mode_writes_nothing(ansible, tmp_path):
    evidence = tmp_path / "evidence"
    result = play(ansible, [{"name": WRITE, "lifeboat.db.evidence": {"dir": str(evidence),
                                                                     "files": {"run/summary.json": {"a": 1}}}}],
                  "--check")
    assert result.rc == 0, result.stdout[-3000:]
    assert result.result(WRITE)["written"] == [str(evidence / "run" / "summary.json")]
    assert not evidence.exists()
