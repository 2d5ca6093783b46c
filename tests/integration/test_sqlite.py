"""lifeboat.db.sqlite through ansible-playbook (issue 21 item 1, seed 004): a backup taken while
writers keep writing is one consistent moment, a restore is refused while a process holds the
database and otherwise swaps the set in keeping the live file, and every fault ends in one line
with nothing lost. No PostgreSQL: the plays run on this host with this venv's Python; cases are
batched into four ansible-playbook runs on one module-scoped set of databases."""
import csv
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from conftest import PlayResult, ansible_playbook, assert_one_line, backup_sets, leftovers
from test_disk_faults import SmallDisk, assert_clean_failure, can_mount

HOST = "target"
# One transaction per loop: an event row and the counter move together, so in every committed
# state count(events) == progress.n - a copy that breaks this mixes two moments.
WRITER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
n = conn.execute("SELECT n FROM progress").fetchone()[0]
open(sys.argv[2], "w").write("ready")
while True:
    n += 1
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO events(n, payload) VALUES (?, randomblob(200))", (n,))
    conn.execute("UPDATE progress SET n = ?", (n,))
    conn.execute("COMMIT")
    time.sleep(0.005)
"""
# Holds the write lock of a rollback-journal database until killed: "locked past the timeout".
LOCKER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE progress SET n = n")
open(sys.argv[2], "w").write("ready")
time.sleep(600)
"""
COMPLETENESS = ("SELECT version_id FROM (SELECT version_id, MAX(created_at) AS newest, "
                "SUM(name = 'aggregate.json') >= 1 AND SUM(name = 'sku_week.json') >= 1 "
                "AND SUM(name = 'plan_final.json') >= 1 AS complete FROM plan_artifacts "
                "GROUP BY version_id ORDER BY newest DESC LIMIT 5) WHERE NOT complete")
LATEST_SERIES = ("SELECT version_id, level, sku, week, qty FROM plan_series WHERE version_id IN "
                 "(SELECT version_id FROM plan_versions ORDER BY created_at DESC LIMIT ?) ORDER BY version_id, sku, week")


def events_db(path, journal_mode, rows=50_000):
    """A database the writer grows: about 12 MB, so the backup takes many steps."""
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, payload BLOB)")
        conn.execute("CREATE TABLE progress (n INTEGER NOT NULL)")
        conn.executemany("INSERT INTO events(n, payload) VALUES (?, randomblob(200))", ((i,) for i in range(1, rows + 1)))
        conn.execute("INSERT INTO progress VALUES (?)", (rows,))
    conn.close()


def plan_db(path, versions=7):
    """Seed 004's plan database in small: versions, their artifacts, plan_series, runs."""
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            PRAGMA journal_mode = WAL;
            CREATE TABLE plan_versions (version_id TEXT PRIMARY KEY, status TEXT, created_at TEXT);
            CREATE TABLE plan_artifacts (version_id TEXT REFERENCES plan_versions, name TEXT, json_text TEXT,
                                         created_at TEXT);
            CREATE TABLE plan_series (version_id TEXT REFERENCES plan_versions, level TEXT, sku TEXT, week INTEGER,
                                      qty REAL);
            CREATE TABLE runs (run_id INTEGER PRIMARY KEY, plan_job_id TEXT, created_at TEXT);
        """)
        for v in range(1, versions + 1):
            vid, at = f"v{v:03d}", f"2025-10-0{v}T09:00:00"
            conn.execute("INSERT INTO plan_versions VALUES (?, 'final', ?)", (vid, at))
            for name in ("aggregate.json", "sku_week.json", "plan_final.json"):
                conn.execute("INSERT INTO plan_artifacts VALUES (?, ?, '{}', ?)", (vid, name, at))
            conn.executemany("INSERT INTO plan_series VALUES (?, 'sku', ?, ?, ?)",
                             [(vid, sku, week, week * 1.5) for sku in ("棚A-1", "SKU,2") for week in (1, 2)])
            conn.executemany("INSERT INTO runs(plan_job_id, created_at) VALUES (?, ?)",
                             [(f"job-{v}-{i}", at) for i in range(10)])
    conn.close()


def invariant(path, uri_flags="mode=ro&immutable=1"):
    """(events, progress.n) of a database file."""
    conn = sqlite3.connect(f"file:{path}?{uri_flags}", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return conn.execute("SELECT count(*) FROM events").fetchone()[0], conn.execute("SELECT n FROM progress").fetchone()[0]
    finally:
        conn.close()


def count(path, query):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchone()[0]
    finally:
        conn.close()


def start(script, db, workdir):
    ready = workdir / f"ready-{os.path.basename(db)}-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", script, str(db), str(ready)])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "helper process did not start"
        time.sleep(0.02)
    return proc


def stop(proc):
    proc.kill()
    proc.wait(timeout=30)


class Site:
    """The module's databases, repository and plays, shared by the tests of this file."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.repo = workdir / "repo"
        self.wal, self.journal, self.plan = workdir / "wal.db", workdir / "journal.db", workdir / "scpln.db"
        self.inventory = workdir / "inventory.json"
        self.inventory.write_text(json.dumps({"all": {"hosts": {HOST: {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))

    def play(self, tasks, wrapper=()):
        playbook = self.workdir / "play.yml"
        playbook.write_text(json.dumps([{"name": "sqlite", "hosts": "all", "gather_facts": False, "tasks": tasks}]))
        record = self.workdir / "results.jsonl"
        proc = ansible_playbook(["-i", self.inventory, playbook], record, wrapper=wrapper)
        result = PlayResult(proc, HOST, record)
        assert result.tasks, f"playbook did not run: rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return result


def task(name, check_mode=False, **args):
    entry = {"name": name, "lifeboat.db.sqlite": args, "ignore_errors": True}
    if check_mode:
        entry["check_mode"] = True
    return entry


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sqlite")
    made = Site(workdir)
    events_db(made.wal, "wal")
    events_db(made.journal, "delete")
    plan_db(made.plan)
    return made


def test_backup_under_writers_is_one_moment_and_a_held_database_is_not_restored(site):
    writers = [start(WRITER, site.wal, site.workdir), start(WRITER, site.journal, site.workdir)]
    try:
        result = site.play([
            task("wal", action="backup", path=str(site.wal), repository=str(site.repo), step_pages=64, keep_last=2),
            task("journal", action="backup", path=str(site.journal), repository=str(site.repo), step_pages=64),
            task("held", action="restore", path=str(site.wal), repository=str(site.repo)),
        ])
        live_before_restore = os.stat(site.wal).st_ino
    finally:
        for proc in writers:
            stop(proc)
    for label, db in (("wal", site.wal), ("journal", site.journal)):
        taken = result.result(label)
        assert not taken["failed"], taken["msg"]
        assert taken["sqlite"]["journal_mode"] == label.replace("journal", "delete")
        folder = site.repo / db.stem / taken["backup_id"]
        copy = folder / "database.sqlite"
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert sorted(os.listdir(folder)) == ["database.sqlite", "manifest.json"]  # no -wal or -shm beside the copy
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["kind"] == "sqlite" and manifest["integrity"] == "ok"
        assert manifest["files"][0]["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest() == taken["sha256"]
        assert manifest["sqlite"]["page_size"] == 4096 and manifest["sqlite"]["page_count"] > 2000
        # One moment: the event rows and the counter of the same commit, and the manifest counts that moment.
        events, n = invariant(copy)
        assert events == n == manifest["row_counts"]["events"] and manifest["row_counts"]["progress"] == 1
        assert taken["actions"][0].startswith(f"Copied {db}") and taken["seconds"] < 30
        # The writer went on after the copy's moment: the backup did not stop it.
        assert invariant(db, "mode=rw")[0] > events  # read-write: rolls back the killed writer's hot journal
    assert "warnings" in result.result("journal") and "waited" in result.result("journal")["warnings"][0]
    held = result.result("held")
    assert_one_line(held, "restore of", f"pid {writers[0].pid} (", "wal.db", "stop or pause the application")
    assert [h["pid"] for h in held["holders"]] == [writers[0].pid]
    assert os.stat(site.wal).st_ino == live_before_restore


def test_restore_checks_export_and_a_data_fix(site):
    """After the writers stopped: the restore swaps the backup in and keeps the live file (with
    what its -wal held) as a pre-restore set; then the runbook's steps on the plan database."""
    live_events = invariant(site.wal, "mode=ro")[0]
    baseline = site.workdir / "baseline.json"
    baseline.write_text(json.dumps({"row_counts": {"plan_versions": 7, "plan_artifacts": 21, "plan_series": 28,
                                                   "runs": 68}}))
    dest, not_written = site.workdir / "out" / "plan_series_latest.csv", site.workdir / "out" / "dry.csv"
    dest.parent.mkdir()
    dest.write_text("the previous snapshot\n")
    before = hashlib.sha256(site.plan.read_bytes()).hexdigest()
    # The application's user owns the live file (www-data, uid 33), group-readable: the restored
    # file must open for it as before, not come back root's and 0600.
    os.chown(site.wal, 33, 33)
    os.chmod(site.wal, 0o640)
    result = site.play([
        # The set test_faults... damages; taken here to spare that test a playbook run.
        task("plan backup", action="backup", path=str(site.plan), repository=str(site.repo)),
        task("restore", action="restore", path=str(site.wal), repository=str(site.repo)),
        task("compare", action="check", path=str(site.wal), repository=str(site.repo), compare_counts=True,
             integrity="full"),
        task("gate", action="check", path=str(site.plan), compare_counts=True, baseline=str(baseline), tolerance="2",
             checks=[{"name": "recent_versions_complete", "sql": COMPLETENESS},
                     {"name": "versions", "sql": "SELECT count(*) FROM plan_versions", "value": 7}]),
        task("export", action="export", path=str(site.plan), query=LATEST_SERIES, params=[5], dest=str(dest)),
        task("dry export", check_mode=True, action="export", path=str(site.plan), query=LATEST_SERIES, params=[5],
             dest=str(not_written)),
        task("dry fix", check_mode=True, action="execute", path=str(site.plan),
             sql="UPDATE runs SET plan_job_id = NULL WHERE created_at >= :cutover", params={"cutover": "2025-10-06"},
             expect_rows={"min": 1, "max": 20}),
        task("fix", action="execute", path=str(site.plan), sql="UPDATE runs SET plan_job_id = NULL WHERE created_at >= ?",
             params=["2025-10-06"], expect_rows={"min": 1, "max": 20}),
    ])
    assert not result.result("plan backup")["failed"], result.result("plan backup")["msg"]
    restored = result.result("restore")
    assert not restored["failed"], restored["msg"]
    events, n = invariant(site.wal, "mode=ro")
    assert events == n == restored["row_counts"]["events"] < live_events
    restored_file = os.stat(site.wal)
    assert (restored_file.st_uid, restored_file.st_gid, stat.S_IMODE(restored_file.st_mode)) == (33, 33, 0o640)
    assert not os.path.exists(f"{site.wal}-wal") or os.path.getsize(f"{site.wal}-wal") == 0
    kept = site.repo / "wal" / restored["pre_restore"]["backup_id"]
    assert json.loads((kept / "manifest.json").read_text())["kind"] == "sqlite-pre-restore"
    assert invariant(kept / "database.sqlite")[0] == live_events  # nothing the writer committed is lost
    assert not [n for n in os.listdir(site.workdir) if ".lifeboat-" in n]  # no temporary or aside file left beside it

    compared = result.result("compare")
    assert not compared["failed"] and [c["status"] for c in compared["checks"]] == ["passed"] * 3, compared
    gate = result.result("gate")
    assert not gate["failed"], gate["msg"]
    assert {c["name"]: c["status"] for c in gate["checks"]} == {
        "integrity": "passed", "foreign_keys": "passed", "row_counts": "passed", "recent_versions_complete": "passed",
        "versions": "passed"}
    assert "within the tolerance" in gate["checks"][2]["summary"]  # runs: 70 against a baseline of 68

    exported = result.result("export")
    assert exported["rows"] == 20 and exported["columns"] == ["version_id", "level", "sku", "week", "qty"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    with open(dest, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == exported["columns"] and rows[1] == ["v003", "sku", "SKU,2", "1", "1.5"]
    assert {r[2] for r in rows[1:]} == {"棚A-1", "SKU,2"} and {r[0] for r in rows[1:]} == {f"v00{v}" for v in range(3, 8)}
    assert [n for n in os.listdir(dest.parent)] == [dest.name]
    dry = result.result("dry export")
    assert dry["rows"] == 20 and not not_written.exists()

    assert result.result("dry fix")["rows"] == 20 and result.result("dry fix")["actions"][0].startswith("Would change 20")
    assert result.result("fix")["rows"] == 20 and result.result("fix")["changed"]
    assert count(site.plan, "SELECT count(*) FROM runs WHERE plan_job_id IS NULL") == 20
    assert before != hashlib.sha256(site.plan.read_bytes()).hexdigest()


def damaged_copy(source, target):
    """A copy of `source` whose pages after the first (the schema) have a page type that does not
    exist: SQLite opens it, integrity_check finds the damage."""
    data = bytearray(source.read_bytes())
    for page in range(1, len(data) // 4096):
        data[page * 4096] = 0x55
    target.write_bytes(bytes(data))


def forged_set(site, name, backup_id, new_id):
    """A copy of a set whose database file is damaged but whose manifest matches it (size and
    sha256): only integrity_check can tell."""
    source, folder = site.repo / name / backup_id, site.repo / name / new_id
    shutil.copytree(source, folder)
    damaged_copy(source / "database.sqlite", folder / "database.sqlite")
    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / "database.sqlite").read_bytes()
    manifest.update(backup_id=new_id, started_at="2030-01-01T00:00:00.000000Z")
    manifest["files"][0].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (folder / "manifest.json").write_text(json.dumps(manifest))


def plan_backup(site):
    """The plan database's set test_restore_checks_export_and_a_data_fix took (or one taken now)."""
    if not (site.repo / "scpln").exists():
        taken = site.play([task("plan", action="backup", path=str(site.plan), repository=str(site.repo))]).result("plan")
        assert not taken["failed"], taken["msg"]
    return backup_sets(site.repo / "scpln")[0]


def test_faults_and_bad_input_end_in_one_line_with_nothing_lost(site):
    faults = site.workdir / "faults"
    faults.mkdir()
    broken, held = faults / "broken.db", faults / "held.db"
    damaged_copy(site.journal, broken)
    events_db(held, "delete", rows=10)
    link = faults / "link.db"
    link.symlink_to(site.plan)
    plan_set = plan_backup(site)
    # A set whose file no longer matches its manifest, and one forged to match a damaged file.
    altered = site.repo / "scpln" / plan_set
    forged_set(site, "scpln", plan_set, "20300101T000000Z-f0f0f0")
    pristine = (altered / "database.sqlite").read_bytes()
    with open(altered / "database.sqlite", "r+b") as handle:
        handle.seek(5000)
        handle.write(b"\xff")
    # A version without its plan_final.json: the completeness gate must fail.
    with sqlite3.connect(site.plan) as conn:
        conn.execute("DELETE FROM plan_artifacts WHERE version_id = 'v006' AND name = 'plan_final.json'")
    conn.close()
    plan_hash = hashlib.sha256(site.plan.read_bytes()).hexdigest()
    sets_before = sorted(backup_sets(site.repo / "scpln"))
    locker = start(LOCKER, held, site.workdir)
    try:
        result = site.play([
            task("check broken", action="check", path=str(broken)),
            task("backup broken", action="backup", path=str(broken), repository=str(site.repo)),
            task("restore altered", action="restore", path=str(site.plan), repository=str(site.repo),
                 backup=plan_set),
            task("restore forged", action="restore", path=str(site.plan), repository=str(site.repo),
                 backup="20300101T000000Z-f0f0f0"),
            task("gate", action="check", path=str(site.plan), integrity="full",
                 checks=[{"name": "recent_versions_complete", "sql": COMPLETENESS}]),
            task("too many", action="execute", path=str(site.plan), sql="DELETE FROM plan_series",
                 expect_rows={"max": 10}),
            task("locked fix", action="execute", path=str(held), sql="DELETE FROM events", busy_timeout=0.5),
            task("locked backup", action="backup", path=str(held), repository=str(site.repo), busy_timeout=0.5),
            task("symlink", action="check", path=str(link)),
        ])
    finally:
        stop(locker)
    broken_check = result.result("check broken")
    assert broken_check["failed"] and broken_check["checks"][0]["name"] == "integrity"
    assert broken_check["checks"][0]["status"] == "failed" and "integrity" in broken_check["failed_checks"]
    assert_clean_failure(result.result("backup broken"), "fails integrity_check", "nothing was added")
    assert not (site.repo / "broken").exists() or backup_sets(site.repo / "broken") == []
    assert_clean_failure(result.result("restore altered"), "is damaged: sha256 of database.sqlite")
    assert_clean_failure(result.result("restore forged"), "20300101T000000Z-f0f0f0 fails integrity_check",
                         "the live database was not touched")
    gate = result.result("gate")
    custom = [c for c in gate["checks"] if c["name"] == "recent_versions_complete"][0]
    assert gate["failed"] and custom["status"] == "failed" and custom["sample"] == [{"version_id": "v006"}]
    assert "recent_versions_complete (expected 0 row(s), found 1 row(s))" in gate["msg"]
    too_many = result.result("too many")
    assert_clean_failure(too_many, "changed 28 rows, outside expect_rows 0..10: rolled back")
    assert too_many["rows"] == 28
    assert_clean_failure(result.result("locked fix"), "stayed locked", f"pid {locker.pid} (", "held.db")
    assert_clean_failure(result.result("locked backup"), "stayed locked", f"pid {locker.pid} (")
    assert_clean_failure(result.result("symlink"), "is a symbolic link", str(site.plan))
    # Nothing changed: the plan database, its sets (the altered one still there), the locked database.
    assert hashlib.sha256(site.plan.read_bytes()).hexdigest() == plan_hash
    assert sorted(backup_sets(site.repo / "scpln")) == sets_before and leftovers(site.repo / "scpln") == []
    assert invariant(held, "mode=ro") == (10, 10)
    assert pristine != (altered / "database.sqlite").read_bytes()


def test_a_full_disk_and_a_read_only_csv_folder(site, tmp_path):
    if not can_mount(tmp_path):
        pytest.skip("these faults need root, unshare -m and mount -t tmpfs")
    disk, csv_dir = tmp_path / "disk", tmp_path / "csv"
    disk.mkdir()
    csv_dir.mkdir()
    (csv_dir / "plan_series_latest.csv").write_text("the previous snapshot\n")
    # 1 MiB of disk for a 12 MB database; the CSV folder mounted read-only (root writes anywhere else).
    small = SmallDisk(tmp_path, disk, "size=1m,mode=0700",
                      f'mkdir "{disk}/repo"\nmount --bind "{csv_dir}" "{csv_dir}" && '
                      f'mount -o remount,bind,ro "{csv_dir}" || exit 97\n')
    result = site.play([
        task("full", action="backup", path=str(site.journal), repository=str(disk / "repo")),
        task("read-only", action="export", path=str(site.plan), query="SELECT * FROM runs",
             dest=str(csv_dir / "plan_series_latest.csv")),
    ], wrapper=small.wrapper)
    assert_clean_failure(result.result("full"), "is full", "nothing was added to the repository")
    assert backup_sets(small.after / "repo" / "journal") == [] and leftovers(small.after / "repo" / "journal") == []
    assert_clean_failure(result.result("read-only"), "cannot write the CSV into", "Read-only file system")
    assert (csv_dir / "plan_series_latest.csv").read_text() == "the previous snapshot\n"
