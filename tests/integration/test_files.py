"""lifeboat.db.files: a directory next to the database, backed up and restored without loss."""
import json
import os
import stat

import pytest


def make_uploads(root):
    """A small uploads tree with modes, times and (as root) owners worth restoring; returns
    {relative path: content} of its files (test_files_s3.py uses it too)."""
    (root / "2026" / "11").mkdir(parents=True)
    (root / "2026" / "11" / "invoice.pdf").write_bytes(os.urandom(200_000))
    (root / "avatar.png").write_bytes(b"\x89PNG" + os.urandom(5000))
    (root / "notes.txt").write_text("keep me\n")
    os.chmod(root / "notes.txt", 0o640)
    os.chmod(root / "2026", 0o750)
    os.utime(root / "notes.txt", (1_700_000_000, 1_700_000_000))
    if os.geteuid() == 0:
        os.chown(root / "avatar.png", 65534, 65534)
        os.chown(root / "2026", 65534, 65534)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def uploads(tmp_path):
    root = tmp_path / "srv" / "uploads"
    root.mkdir(parents=True)
    return root, make_uploads(root)


def run_files(ansible, **args):
    return ansible.module("files", repository=str(ansible.repository), name="uploads", **args)


def test_backup_then_restore_keeps_content_modes_and_owners(server, ansible, uploads):
    root, content = uploads
    taken = run_files(ansible, path=str(root), keep_last=2)
    assert taken["changed"] and taken["file_count"] == 3, taken
    manifest = json.loads((ansible.repository / "uploads" / taken["backup_id"] / "manifest.json").read_text())
    assert manifest["kind"] == "files" and manifest["checksums"] == "streamed"
    assert {c["path"] for c in manifest["contents"]} == set(content)
    assert stat.S_IMODE((ansible.repository / "uploads" / taken["backup_id"] / "files.tar.gz").stat().st_mode) == 0o600

    (root / "notes.txt").write_text("overwritten by mistake\n")
    (root / "avatar.png").unlink()
    restored = run_files(ansible, action="restore", dest=str(root))
    assert restored["changed"] and restored["backup_id"] == taken["backup_id"], restored
    assert {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} == content
    assert stat.S_IMODE((root / "notes.txt").stat().st_mode) == 0o640
    if os.geteuid() == 0:
        assert (root / "avatar.png").stat().st_uid == 65534
    # The directory that was there is kept, mistakes and all.
    previous = root.parent / os.path.basename(restored["previous"])
    assert (previous / "notes.txt").read_text() == "overwritten by mistake\n"


def test_links_are_skipped_and_reported_so_the_backup_stays_restorable(server, ansible, uploads):
    root, content = uploads
    (root / "latest.pdf").symlink_to(root / "2026" / "11" / "invoice.pdf")
    taken = run_files(ansible, path=str(root))
    assert not taken["failed"], taken["msg"]
    assert taken["not_archived"] == ["latest.pdf"] and taken["file_count"] == 3
    assert "Skipped latest.pdf (not a regular file or directory)" in taken["actions"]
    restored = run_files(ansible, action="restore", dest=str(root))
    assert not restored["failed"], restored
    assert {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} == content


def test_a_damaged_archive_is_refused_and_the_directory_untouched(server, ansible, uploads):
    root, content = uploads
    taken = run_files(ansible, path=str(root))
    archive = ansible.repository / "uploads" / taken["backup_id"] / "files.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    (root / "new-after-backup.txt").write_text("precious")
    result = run_files(ansible, action="restore", dest=str(root))
    assert result["failed"] and "is damaged: sha256 of files.tar.gz" in result["msg"]
    assert (root / "new-after-backup.txt").read_text() == "precious"
    assert sorted(os.listdir(root.parent)) == ["uploads"]


def test_check_mode_and_bad_input(server, ansible, uploads, tmp_path):
    root, _ = uploads
    dry = ansible.module("files", check=True, repository=str(ansible.repository), name="uploads", path=str(root))
    assert dry["changed"] and dry["actions"][0].startswith(f"Would archive {root} (3 files)")
    assert not ansible.repository.exists()
    missing = run_files(ansible, path=str(tmp_path / "nope"))
    assert missing["failed"] and "is not a directory on the target host" in missing["msg"]
    nothing = run_files(ansible, action="restore", dest=str(root))
    assert nothing["failed"] and "no files backup of database 'uploads'" in nothing["msg"]
