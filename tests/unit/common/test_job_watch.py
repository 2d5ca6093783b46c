"""module_utils/common/job_watch.py: how lifeboat.db.async_watch waits for a job, on real files."""
import json
import os
import threading
import time

from ansible_collections.lifeboat.db.plugins.module_utils.common.job_watch import watch

RUNNING = '{"started": true, "finished": false, "ansible_job_id": "j1", "results_file": "/x"}'


def test_returns_within_a_quarter_second_of_the_end_not_at_the_end_of_its_wait(tmp_path):
    job, progress = tmp_path / "j1", tmp_path / "progress.json"
    job.write_text(RUNNING)
    progress.write_text(json.dumps({"phase": "restoring", "tables_done": 1}))

    def finish():
        time.sleep(0.5)
        progress.write_text(json.dumps({"phase": "analyzing", "tables_done": 2}))
        job.write_text('{"changed": true, "rc": 0}')
    threading.Thread(target=finish).start()
    start = time.monotonic()
    seen = watch(str(job), str(progress), 30)
    assert 0.5 <= time.monotonic() - start < 1.0
    assert seen["finished"] is True and seen["progress"] == {"phase": "analyzing", "tables_done": 2}


def test_a_running_job_is_reported_running_after_the_wait(tmp_path):
    job = tmp_path / "j1"
    job.write_text(RUNNING.replace("true", "1", 1).replace("false", "0", 1))  # before ansible-core 2.19
    start = time.monotonic()
    seen = watch(str(job), str(tmp_path / "none.json"), 1)
    assert 1.0 <= time.monotonic() - start < 1.5
    assert seen["finished"] is False and seen["progress"] is None
    assert seen["progress_note"].startswith("no progress reported yet")


def test_gone_status_file_bad_progress_and_links_are_not_trusted(tmp_path):
    # A status file that is gone is a finished job: async_status says what became of it.
    assert watch(str(tmp_path / "gone"), None, 5)["finished"] is True
    job, progress = tmp_path / "j1", tmp_path / "progress.json"
    job.write_text(RUNNING)
    for text in ("[1, 2]", "not json", ""):
        progress.write_text(text)
        seen = watch(str(job), str(progress), 0)
        assert seen["progress"] is None and "is not a progress report" in seen["progress_note"], text
    # Neither file is read through a link (a planted link reads as no file).
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"phase": "x"}))
    os.symlink(target, tmp_path / "linked.json")
    assert watch(str(job), str(tmp_path / "linked.json"), 0)["progress"] is None
    os.symlink(job, tmp_path / "linked-job")
    assert watch(str(tmp_path / "linked-job"), None, 0)["finished"] is True
    # Nor from a FIFO, which would block the look: it reads as no file, at once.
    os.mkfifo(tmp_path / "fifo.json")
    start = time.monotonic()
    assert watch(str(job), str(tmp_path / "fifo.json"), 0)["progress"] is None
    assert time.monotonic() - start < 1
