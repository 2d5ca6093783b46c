"""lifeboat.db.files restore never follows a link: hostile archives placed as sets with a correct
manifest (so only the member check can stop them), and symbolic links planted where a restore
works (its old predictable staging name, the kept-previous name, the destination's parent)."""
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import time

from conftest import assert_one_line, embedded_only
from test_files import make_uploads, run_files


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def forge_set(repository, good_id, backup_id, build):
    """A copy of set `good_id` named `backup_id` whose archive is the good one's members plus what
    `build(tar)` adds; the manifest's size and sha256 of the archive are made to match."""
    source = repository / "uploads" / good_id
    target = repository / "uploads" / backup_id
    shutil.copytree(source, target)
    archive = target / "files.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(source / "files.tar.gz", "r:gz") as good, tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in good.getmembers():
            tar.addfile(member, good.extractfile(member) if member.isreg() else None)
        build(tar)
    archive.write_bytes(buffer.getvalue())
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["backup_id"] = backup_id
    manifest["files"][0].update(size=archive.stat().st_size, sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
    (target / "manifest.json").write_text(json.dumps(manifest))


def member(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, linkname, len(data), 0o644
    return info, io.BytesIO(data) if data else None


@embedded_only
def test_hostile_members_are_refused_before_anything_is_unpacked(server, ansible, tmp_path):
    root = tmp_path / "srv" / "uploads"
    root.mkdir(parents=True)
    make_uploads(root)
    outside = tmp_path / "srv" / "outside"
    outside.mkdir()
    (outside / "secret").write_text("outside the tree\n")
    good_id = run_files(ansible, path=str(root))["backup_id"]
    (root / "after-backup.txt").write_text("precious")
    content = tree(root)
    hostile = {
        "symlink": lambda tar: tar.addfile(*member("evil", tarfile.SYMTYPE, linkname=str(outside))),
        "symlink_inside": lambda tar: tar.addfile(*member("inside", tarfile.SYMTYPE, linkname="notes.txt")),
        "hardlink": lambda tar: tar.addfile(*member("hard", tarfile.LNKTYPE, linkname=str(outside / "secret"))),
        "fifo": lambda tar: tar.addfile(*member("pipe", tarfile.FIFOTYPE)),
        "device": lambda tar: tar.addfile(*member("null", tarfile.CHRTYPE)),
        "absolute": lambda tar: tar.addfile(*member(str(outside / "abs.txt"), data=b"abs")),
        "dotdot": lambda tar: tar.addfile(*member("../outside/up.txt", data=b"up")),
        "dotdot_inner": lambda tar: tar.addfile(*member("2026/../../outside/inner.txt", data=b"inner")),
    }
    ids = {}
    for number, (name, build) in enumerate(hostile.items()):
        ids[name] = "20200101T0000%02dZ-00000%d" % (number, number)
        forge_set(ansible.repository, good_id, ids[name], build)
    play = ansible.play([{"name": name, "ignore_errors": True,
                          "lifeboat.db.files": {"repository": str(ansible.repository), "name": "uploads",
                                                "action": "restore", "backup": backup_id, "dest": str(root)}}
                         for name, backup_id in ids.items()])
    for name, backup_id in ids.items():
        assert_one_line(play.result(name), f"files backup {backup_id}", "refusing to unpack")
    assert tree(root) == content
    assert sorted(os.listdir(outside)) == ["secret"] and (outside / "secret").read_text() == "outside the tree\n"
    assert sorted(os.listdir(root.parent)) == ["outside", "uploads"]


@embedded_only
def test_planted_links_are_never_followed(server, ansible, tmp_path):
    parent = tmp_path / "srv"
    root = parent / "uploads"
    root.mkdir(parents=True)
    content = make_uploads(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    run_files(ansible, path=str(root))
    # The old staging name was .uploads.lifeboat-restore-<pid>: plant it for the pids to come,
    # and the kept-previous name <dest>.prev-<time> for the next minutes.
    with open("/proc/sys/kernel/ns_last_pid") as handle:
        last = int(handle.read())
    for pid in range(last + 1, last + 3000):
        (parent / f".uploads.lifeboat-restore-{pid}").symlink_to(outside)
    now = time.time()
    for second in range(0, 180):
        name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now + second))
        (parent / f"uploads.prev-{name}").symlink_to(outside)
    planted = sorted(os.listdir(parent))
    (root / "notes.txt").write_text("changed after the backup\n")
    restored = run_files(ansible, action="restore", dest=str(root))
    assert not restored["failed"], restored["msg"]
    assert os.listdir(outside) == []
    assert tree(root) == content
    previous = parent / os.path.basename(restored["previous"])
    assert not previous.is_symlink() and (previous / "notes.txt").read_text() == "changed after the backup\n"
    assert sorted(set(os.listdir(parent)) - {previous.name}) == planted
    assert stat.S_IMODE(os.lstat(previous).st_mode) == stat.S_IMODE(os.lstat(root).st_mode)

    # A destination whose parent is a link: refused, nothing written through it.
    linked = tmp_path / "linked"
    linked.symlink_to(outside)
    refused = run_files(ansible, action="restore", dest=str(linked / "uploads"))
    assert_one_line(refused, "is a symbolic link")
    assert os.listdir(outside) == []
