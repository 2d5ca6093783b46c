"""Issue 15 item 10, made real: a full disk and a busy mount point under the repository, and a
database connection killed mid-task. Every run goes through ansible-playbook inside its own
mount namespace (`unshare -m`), where a small tmpfs stands for the disk; each ends in one line
(never a traceback), leaves no half-written set, and a committed backup keeps its id."""
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import assert_one_line, backup_sets, embedded_only, leftovers


def can_mount(tmp_path):
    """Whether this run may mount a tmpfs in a mount namespace of its own (root, unshare, mount)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    try:
        return subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(probe)],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def mounts(tmp_path):
    if not can_mount(tmp_path):
        pytest.skip("these faults need root, unshare -m and mount -t tmpfs")


class SmallDisk:
    """A tmpfs at `mountpoint` in a private mount namespace, for one ansible-playbook run.

    `prepare` (shell) runs after the mount and before the play (copying earlier sets in, filling
    the disk); after the play the disk's content is copied out to `self.after`, so the test can
    check what the run left there, which is invisible outside the namespace."""

    def __init__(self, tmp_path, mountpoint, options, prepare=""):
        self.mountpoint = mountpoint
        self.after = tmp_path / "after"
        script = tmp_path / "small-disk.sh"
        script.write_text(f'mount -t tmpfs -o {options} tmpfs "{mountpoint}" || exit 99\n'
                          f'{prepare}\n'
                          f'"$@"; rc=$?\n'
                          f'rm -rf "{self.after}"; cp -a "{mountpoint}" "{self.after}"\n'
                          f'exit $rc\n')
        self.wrapper = ("unshare", "-m", "sh", str(script))


def fill(path, leave=0):
    """Shell that fills the filesystem of `path` to the last byte, then frees `leave` bytes."""
    return (f'cat /dev/zero > "{path}/filler" 2>/dev/null\n'
            + (f'truncate -s -{leave} "{path}/filler"\n' if leave else ''))


def assert_clean_failure(result, *fragments):
    """One line, and the module's own error path ended it (run_module adds `timing`): ansible-core
    2.19 turns an exception that escapes a module into a one-line "Task failed: Module failed: ..."
    too, so a single line alone does not prove the error was handled."""
    assert_one_line(result, *fragments)
    assert "Module failed" not in result["msg"] and "timing" in result, result
    assert "module_stderr" not in result and "MODULE FAILURE" not in result["msg"], result
    assert "Traceback" not in result.get("module_stdout", "") + str(result.get("exception", "")), result


def set_intact(folder):
    """Every file of the set at `folder` is there with the size and sha256 of its manifest."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]
    return manifest


def earlier_set_untouched(small, database, old_id):
    """On the disk as the run left it: the earlier set alone, whole, and nothing half-written."""
    after = small.after / "repo" / database
    assert backup_sets(after) == [old_id]
    assert leftovers(after) == []
    set_intact(after / old_id)
    return after / old_id


@embedded_only
def test_a_full_repository_costs_no_earlier_set(ansible, sample_db, tmp_path, mounts):
    """A repository on a full disk (holding an earlier set): the archive cannot be written, the
    manifest cannot be created (no inode left: ENOSPC), verify cannot write verification.json.
    Each ends in one line; no .partial- or new set, the earlier set whole."""
    old = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    assert not old["failed"], old.get("msg")
    disk = tmp_path / "disk"
    disk.mkdir()
    repo = disk / "repo"
    copy_in = f'cp -a "{ansible.repository}" "{repo}"\n'

    # The earlier set fits; then 16 KiB stay free - the new archive needs about 65.
    small = SmallDisk(tmp_path, disk, "size=8m,mode=0700", copy_in + fill(disk, 16 * 1024))
    archive = ansible.module("dump", db=sample_db, repository=str(repo), wrapper=small.wrapper)
    assert_clean_failure(archive)
    assert "No space left on device" in archive["msg"] or "could not write" in archive["msg"], archive["msg"]
    earlier_set_untouched(small, sample_db, old["backup_id"])

    # Exactly two inodes stay free: the .partial- folder and the archive. The progress file's
    # rewrites fail quietly (a courtesy); the manifest's cannot.
    small = SmallDisk(tmp_path, disk, "size=64m,nr_inodes=1000,mode=0700",
                      copy_in + f'used=$(df --output=iused "{disk}" | tail -n 1)\n'
                      f'mount -o remount,nr_inodes=$((used + 2)) "{disk}" || exit 98\n')
    manifest = ansible.module("dump", db=sample_db, repository=str(repo), wrapper=small.wrapper)
    assert_clean_failure(manifest, "No space left on device", "manifest.json")
    earlier_set_untouched(small, sample_db, old["backup_id"])

    # Not one byte free: verification.json's data cannot be written.
    small = SmallDisk(tmp_path, disk, "size=8m,mode=0700", copy_in + fill(disk))
    verify = ansible.module("backup_info", repository=str(repo), db=sample_db, verify=True, wrapper=small.wrapper)
    assert_clean_failure(verify, "No space left on device")
    folder = earlier_set_untouched(small, sample_db, old["backup_id"])
    assert sorted(os.listdir(folder)) == sorted(os.listdir(ansible.repository / sample_db / old["backup_id"]))


@embedded_only
def test_files_backup_into_a_full_repository(ansible, tmp_path, mounts):
    source = tmp_path / "uploads"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(64 * 1024))
    old = ansible.module("files", repository=str(ansible.repository), name="uploads", path=str(source))
    assert not old["failed"], old.get("msg")
    (source / "b.bin").write_bytes(os.urandom(512 * 1024))  # incompressible: the archive cannot fit
    disk = tmp_path / "disk"
    disk.mkdir()
    repo = disk / "repo"
    small = SmallDisk(tmp_path, disk, "size=8m,mode=0700",
                      f'cp -a "{ansible.repository}" "{repo}"\n' + fill(disk, 64 * 1024))
    result = ansible.module("files", repository=str(repo), name="uploads", path=str(source), wrapper=small.wrapper)
    assert_clean_failure(result, "No space left on device")
    after = small.after / "repo" / "uploads"
    assert backup_sets(after) == [old["backup_id"]]
    assert leftovers(after) == []
    set_intact(after / old["backup_id"])


@embedded_only
def test_restore_when_the_download_cache_is_full(ansible, server, sample_db, moto, bucket, tmp_path, mounts):
    """A cache with room for the progress file and the set's bytes (the free-space check passes)
    but not for the lock too: the download fails for real, in one line; nothing is restored."""
    s3 = dict(repository=f"s3://{bucket}", **moto.options())
    taken = ansible.module("dump", db=sample_db, **s3, cache_dir=str(tmp_path / "dump-cache"))
    assert not taken["failed"], taken.get("msg")
    size = sum(f["size"] for f in taken["manifest"]["files"])
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    small = SmallDisk(tmp_path, cache, f"size={-(-size // 4096) * 4096 + 4096},mode=0700")
    target = sample_db + "_x"
    server.drop_db(target)
    result = ansible.module("restore", db=target, backup_db=sample_db, cache_dir=str(cache), **s3,
                            wrapper=small.wrapper)
    try:
        assert_clean_failure(result, "No space left on device")
        assert not server.exists(target)
        assert backup_sets(small.after / sample_db) == []
        assert [n for n in leftovers(small.after / sample_db) if n != ".restore-progress.json"] == []
    finally:
        server.drop_db(target)


def busy(folder, tmp_path):
    """Shell that makes `folder` a mount point holding what it held (rename and rmdir: EBUSY)."""
    copy = tmp_path / ("copy-" + folder.name)
    shutil.copytree(folder, copy, symlinks=True)
    return f'mount -t tmpfs -o mode=0700 tmpfs "{folder}" || exit 99\ncp -a "{copy}/." "{folder}/"\n'


class Namespace:
    """Runs ansible-playbook in a private mount namespace after `prepare` (shell)."""

    def __init__(self, tmp_path, prepare):
        script = tmp_path / "namespace.sh"
        script.write_text(prepare + '"$@"\n')
        self.wrapper = ("unshare", "-m", "sh", str(script))


@embedded_only
def test_retention_whose_rmtree_fails_after_the_commit(ansible, sample_db, tmp_path, mounts):
    """The old set can be renamed away but not removed (a mount point inside it): the new backup
    is committed and reported with its id; what retention could not do is said beside it."""
    repo = ansible.repository
    old = ansible.module("dump", db=sample_db, repository=str(repo), format="directory")
    assert not old["failed"], old.get("msg")
    folder = repo / sample_db / old["backup_id"]
    (inner,) = [p for p in folder.iterdir() if p.is_dir()]
    space = Namespace(tmp_path, busy(inner, tmp_path))
    result = ansible.module("dump", db=sample_db, repository=str(repo), keep_last=1, wrapper=space.wrapper)
    assert not result["failed"], result.get("msg")
    assert result["backup_id"] in backup_sets(repo / sample_db)
    assert old["backup_id"] not in backup_sets(repo / sample_db)
    assert result["retention_errors"] and old["backup_id"] in result["retention_errors"][0], result
    assert any(result["backup_id"] in w and "retention could not finish" in w for w in result["warnings"])


@embedded_only
def test_a_connection_killed_mid_dump_ends_in_one_line(server, ansible, sample_db):
    """The module's own connection is terminated (pg_terminate_backend) while pg_dump, which
    has already taken its snapshot, waits on a lock: the psycopg error that follows ends in
    one line, and no set is left - pg_dump's archive is not a backup without its row counts."""
    blocker = server.connect(sample_db)
    blocker.autocommit = False
    blocker.execute("LOCK TABLE lifeboat_sample.events IN ACCESS EXCLUSIVE MODE")
    spared = blocker.info.backend_pid
    killed = []

    def kill_the_module_connection():
        try:
            with server.connect() as watch:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and not killed:
                    # pg_dump waits for the lock; every other session of the database but the
                    # blocker is the module's.
                    if watch.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
                                     "AND pid <> %s", (sample_db, spared)).fetchall():
                        # Chosen first, then terminated one by one: a volatile call in the WHERE
                        # clause may run before the other conditions.
                        for (pid,) in watch.execute(
                                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s "
                                "AND wait_event_type IS DISTINCT FROM 'Lock' AND backend_type = 'client backend'",
                                (sample_db, spared)).fetchall():
                            if watch.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]:
                                killed.append(pid)
                    time.sleep(0.1)
        finally:
            blocker.close()  # pg_dump goes on, in the snapshot it imported

    killer = threading.Thread(target=kill_the_module_connection)
    killer.start()
    try:
        result = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    finally:
        killer.join()
    assert killed, "the module's connection was not found"
    assert_clean_failure(result, "PostgreSQL error")
    folder = ansible.repository / sample_db
    assert backup_sets(folder) == [] and leftovers(folder) == []


@embedded_only
def test_baseline_capture_into_a_full_repository(ansible, sample_db, tmp_path, mounts):
    """integrity capture writes its baseline JSON into the repository: a full disk ends in one
    line and leaves no baseline (whole or half) behind."""
    disk = tmp_path / "disk"
    disk.mkdir()
    small = SmallDisk(tmp_path, disk, "size=1m,mode=0700", f'mkdir -p "{disk}/repo"\n' + fill(disk))
    result = ansible.module("integrity", db=sample_db, action="capture", repository=str(disk / "repo"),
                            wrapper=small.wrapper)
    assert_clean_failure(result, "cannot write baseline", "No space left on device")
    baselines = small.after / "repo" / sample_db / ".baselines"
    assert not baselines.exists() or os.listdir(baselines) == []


@embedded_only
def test_a_connection_killed_mid_check(server, ansible, sample_db):
    """integrity's connection is terminated while an operator's check runs: the check is not
    counted as passed, and the task ends in a result or in one line - never a traceback."""
    killed = []

    def kill_the_check():
        with server.connect() as watch:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                for (pid,) in watch.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                            "AND query LIKE %s", (sample_db, "%pg_sleep(30)%")).fetchall():
                    if watch.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]:
                        killed.append(pid)
                time.sleep(0.1)

    killer = threading.Thread(target=kill_the_check)
    killer.start()
    try:
        result = ansible.module("integrity", db=sample_db, timeout=60, fail_on="never",
                                checks=[{"name": "slow", "sql": "SELECT 1 FROM pg_sleep(30) AS s WHERE random() > 2"},
                                        {"name": "after", "sql": "SELECT 1 WHERE false"}])
    finally:
        killer.join()
    assert killed, "the check's session was not found"
    if result["failed"]:
        assert_clean_failure(result)
    else:
        slow = [check for check in result["checks"] if check["name"] == "slow"]
        assert slow and slow[0]["status"] != "passed", slow


@embedded_only
def test_files_restore_onto_a_mount_point_or_a_full_disk(ansible, tmp_path, mounts):
    """dest a mount point (its rename gives EBUSY), or dest's filesystem too full to unpack into:
    one line each, dest as it was, no unpacked folder left beside it."""
    source = tmp_path / "uploads"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(256 * 1024))
    taken = ansible.module("files", repository=str(ansible.repository), name="uploads", path=str(source))
    assert not taken["failed"], taken.get("msg")
    area = tmp_path / "area"
    dest = area / "uploads"
    dest.mkdir(parents=True)
    (dest / "live.txt").write_text("live\n")
    listing = tmp_path / "listing.txt"
    look = f'"$@"; rc=$?; (cd "{area}" && find . | sort; cat uploads/live.txt) > "{listing}"; exit $rc\n'

    busy_dest = Namespace(tmp_path, busy(dest, tmp_path))
    script = tmp_path / "namespace.sh"
    script.write_text(script.read_text().replace('"$@"\n', look))
    result = ansible.module("files", action="restore", repository=str(ansible.repository), name="uploads",
                            dest=str(dest), wrapper=busy_dest.wrapper)
    assert_clean_failure(result, "Device or resource busy", "the destination was not changed")
    assert listing.read_text().split() == [".", "./uploads", "./uploads/live.txt", "live"], listing.read_text()

    # 64 KiB free where dest is: the 256 KiB file cannot be unpacked.
    full = Namespace(tmp_path, f'mount -t tmpfs -o size=1m tmpfs "{area}" || exit 99\n'
                               f'mkdir "{dest}" && echo live > "{dest}/live.txt"\n' + fill(area, 64 * 1024))
    script.write_text(script.read_text().replace('"$@"\n', look))
    result = ansible.module("files", action="restore", repository=str(ansible.repository), name="uploads",
                            dest=str(dest), wrapper=full.wrapper)
    assert_clean_failure(result, "No space left on device")
    assert listing.read_text().split() == [".", "./filler", "./uploads", "./uploads/live.txt", "live"], \
        listing.read_text()


@embedded_only
def test_files_retention_that_cannot_delete_keeps_the_new_id(ansible, tmp_path, mounts):
    """Files backups share item 10: a committed files set is reported with its id even when
    retention cannot delete an older one (a mount point: rename gives EBUSY)."""
    source = tmp_path / "uploads"
    source.mkdir()
    (source / "a.txt").write_text("first\n")
    repo = ansible.repository
    old = ansible.module("files", repository=str(repo), name="uploads", path=str(source))
    assert not old["failed"], old.get("msg")
    (source / "b.txt").write_text("second\n")
    space = Namespace(tmp_path, busy(repo / "uploads" / old["backup_id"], tmp_path))
    result = ansible.module("files", repository=str(repo), name="uploads", path=str(source), keep_last=1,
                            wrapper=space.wrapper)
    sets = backup_sets(repo / "uploads")
    assert len(sets) == 2, sets
    assert not result["failed"], (result.get("msg"), sets)
    assert result["backup_id"] in sets
    assert result["retention_errors"] and result["warnings"], result


@embedded_only
def test_a_busy_leftover_does_not_stop_the_dump(ansible, sample_db, tmp_path, mounts):
    """A .partial- folder of a killed run that is a mount point cannot be removed: the dump still
    runs and is committed with its id, and the result does not claim the leftover is gone."""
    repo = ansible.repository
    left = repo / sample_db / ".partial-20200101T000000Z-dead00"
    left.mkdir(parents=True, mode=0o700)
    (left / "half.dump").write_bytes(b"x" * 1000)
    after = tmp_path / "after.txt"
    space = Namespace(tmp_path, busy(left, tmp_path))
    script = tmp_path / "namespace.sh"
    script.write_text(script.read_text().replace('"$@"\n', f'"$@"; rc=$?; ls -A "{repo / sample_db}" > "{after}"; exit $rc\n'))
    result = ansible.module("dump", db=sample_db, repository=str(repo), wrapper=space.wrapper)
    assert not result["failed"], result.get("msg")
    assert result["backup_id"] in backup_sets(repo / sample_db)
    still_there = left.name in after.read_text().split()
    claimed = any(left.name in action and "Removed" in action for action in result["actions"])
    assert not (still_there and claimed), (after.read_text(), result["actions"])


