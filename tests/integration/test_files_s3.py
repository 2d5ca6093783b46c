"""lifeboat.db.files with S3: an offsite copy of each files set, and a restore from that copy on a
host that never saw the local repository (issue 17, item 4: DR of the uploads next to the database).

The S3 server is moto's, on loopback (the `moto` fixture); the files module does not depend on the
PostgreSQL version, so these run on the embedded server only.
"""
import json
import os
import shutil
import socket
import stat

from conftest import PROJECT, assert_one_line, embedded_only
from test_files import make_uploads


def tree(root):
    """{relative path: (kind, mode, uid, gid, mtime of files, content)} of everything below root."""
    found = {}
    for path in sorted(root.rglob("*")):
        facts = path.lstat()
        found[path.relative_to(root).as_posix()] = (
            "dir" if path.is_dir() else "file", stat.S_IMODE(facts.st_mode), facts.st_uid, facts.st_gid,
            None if path.is_dir() else int(facts.st_mtime), None if path.is_dir() else path.read_bytes())
    return found


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def task(title, args, **more):
    """One lifeboat.db.files task; the play goes on when it fails (its result is recorded)."""
    return {"name": title, "lifeboat.db.files": dict(args, **more), "ignore_errors": True}


@embedded_only
def test_offsite_copy_then_restore_on_a_host_that_never_saw_the_repository(server, ansible, moto, bucket, tmp_path):
    source = tmp_path / "db1" / "uploads"
    source.mkdir(parents=True)
    make_uploads(source)
    before = tree(source)
    s3 = moto.options()
    backup = dict(repository=str(ansible.repository), name="uploads", path=str(source), keep_last=2,
                  offsite_url=f"s3://{bucket}/site", s3_storage_class="STANDARD_IA", **s3)
    played = ansible.play([dict(task("plan", backup), check_mode=True), task("backup", backup)])
    plan, taken = played.result("plan"), played.result("backup")
    assert not plan["failed"], plan["msg"]
    assert f"Would copy it to s3://{bucket}/site/uploads/" in " ".join(plan["actions"]), plan["actions"]
    assert not taken["failed"], taken["msg"]
    backup_id = taken["backup_id"]
    prefix = f"site/uploads/{backup_id}"
    assert taken["offsite"]["url"] == f"s3://{bucket}/{prefix}", taken["offsite"]
    assert moto.keys(bucket) == [f"{prefix}/files.tar.gz", f"{prefix}/manifest.json"]
    head = moto.client().head_object(Bucket=bucket, Key=f"{prefix}/files.tar.gz")
    assert head["ContentLength"] == taken["size"] and head["StorageClass"] == "STANDARD_IA"
    record = json.loads((ansible.repository / "uploads" / backup_id / "offsite.json").read_text())
    assert record["url"] == taken["offsite"]["url"]

    # db2 has never seen db1's repository: only S3 and a cache of its own.
    shutil.rmtree(ansible.repository)
    target = tmp_path / "db2" / "uploads"
    target.parent.mkdir()
    cache = tmp_path / "db2-cache"
    restore = dict(repository=f"s3://{bucket}/site", name="uploads", action="restore", dest=str(target),
                   cache_dir=str(cache), **s3)
    played = ansible.play([dict(task("dry run", restore), check_mode=True), task("restore", restore)])
    dry, restored = played.result("dry run"), played.result("restore")
    assert not dry["failed"], dry["msg"]
    assert dry["actions"][0].startswith(f"Would download files backup {backup_id} "), dry["actions"]
    assert not restored["failed"], restored["msg"]
    assert restored["backup_id"] == backup_id and restored["file_count"] == 3
    assert restored["backup_path"] == f"s3://{bucket}/{prefix}"
    assert restored["actions"][0] == (f"Downloaded files backup {backup_id} from s3://{bucket}/site, every file "
                                      "checked against its manifest"), restored["actions"]
    assert tree(target) == before, "content, modes, times and owners come back as they were on db1"
    # The download served its purpose: the cache holds no set afterwards.
    assert [n for n in os.listdir(cache / "uploads") if not n.startswith(".")] == []


@embedded_only
def test_hostile_sets_in_s3_are_refused_and_dest_untouched(server, ansible, moto, bucket, tmp_path):
    source = tmp_path / "db1" / "uploads"
    source.mkdir(parents=True)
    make_uploads(source)
    s3 = moto.options()
    backup = dict(repository=str(ansible.repository), name="uploads", path=str(source),
                  offsite_url=f"s3://{bucket}", **s3)
    played = ansible.play([task("one", backup), task("two", backup), task("three", backup)])
    ids = [played.result(name)["backup_id"] for name in ("one", "two", "three")]
    client = moto.client()

    def manifest(backup_id, change):
        key = f"uploads/{backup_id}/manifest.json"
        data = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        change(data)
        client.put_object(Bucket=bucket, Key=key, Body=json.dumps(data).encode())

    # 1: the archive's bytes changed in the bucket (same size, so S3's listing still matches).
    key = f"uploads/{ids[0]}/files.tar.gz"
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    # 2: the manifest names a file outside the set.
    manifest(ids[1], lambda m: m["files"][0].update(name="../x"))
    # 3: the manifest lists a content path outside the tree.
    manifest(ids[2], lambda m: m["contents"][0].update(path="../x"))

    target = tmp_path / "db2" / "uploads"
    target.mkdir(parents=True)
    (target / "precious.txt").write_text("precious")
    cache = tmp_path / "db2-cache"
    restore = dict(repository=f"s3://{bucket}", name="uploads", action="restore", dest=str(target),
                   cache_dir=str(cache), **s3)
    played = ansible.play([task("tampered", restore, backup=ids[0]), task("hostile name", restore, backup=ids[1]),
                           task("hostile content", restore, backup=ids[2])])
    assert_one_line(played.result("tampered"), f"files.tar.gz of backup {ids[0]} downloaded from s3://{bucket}",
                    "the copy in S3 is damaged")
    assert_one_line(played.result("hostile name"), f"backup set {ids[1]}", "'../x'", "refused")
    assert_one_line(played.result("hostile content"), f"files backup {ids[2]}", "'../x'", "refused")
    assert sorted(os.listdir(target.parent)) == ["uploads"]
    assert os.listdir(target) == ["precious.txt"] and (target / "precious.txt").read_text() == "precious"
    assert [n for n in os.listdir(cache / "uploads") if n not in (".lock", ".progress.json")] == []


@embedded_only
def test_s3_unreachable_is_one_line_and_nothing_is_lost(server, ansible, moto, tmp_path):
    source = tmp_path / "db1" / "uploads"
    source.mkdir(parents=True)
    make_uploads(source)
    nowhere = dict(moto.options(), s3_endpoint_url=f"http://127.0.0.1:{closed_port()}")
    backup = dict(repository=str(ansible.repository), name="uploads", path=str(source),
                  offsite_url="s3://lb-nowhere/site", **nowhere)
    target = tmp_path / "db2" / "uploads"
    target.parent.mkdir()
    cache = tmp_path / "db2-cache"
    played = ansible.play([task("required", backup), task("optional", backup, offsite="optional"),
                           task("restore", dict(nowhere, repository="s3://lb-nowhere/site", name="uploads",
                                                action="restore", dest=str(target), cache_dir=str(cache))),
                           task("backup into s3", backup, repository="s3://lb-nowhere/site", cache_dir=str(cache)),
                           task("restore with offsite_url", backup, action="restore", dest=str(target))])
    required, optional, restore = (played.result(n) for n in ("required", "optional", "restore"))
    assert_one_line(played.result("backup into s3"), "action=backup writes the files set into a local repository")
    assert_one_line(played.result("restore with offsite_url"), "to restore from S3 give repository: s3://")
    assert_one_line(required, "is complete and kept at", "offsite copy to s3://lb-nowhere/site failed",
                    "cannot reach the S3 endpoint")
    kept = required["backup_path"]
    assert os.path.isfile(os.path.join(kept, "files.tar.gz")) and os.path.isfile(os.path.join(kept, "manifest.json"))
    assert not optional["failed"], optional["msg"]
    assert optional["offsite"]["url"] is None and "cannot reach the S3 endpoint" in optional["offsite"]["error"]
    assert any("offsite copy failed" in w for w in optional["warnings"]), optional.get("warnings")
    assert sorted(os.listdir(ansible.repository / "uploads")) == sorted(
        [".lock", required["backup_id"], optional["backup_id"]] + [n for n in os.listdir(ansible.repository / "uploads")
                                                                   if n == ".progress.json"])
    assert_one_line(restore, "cannot reach the S3 endpoint")
    assert os.listdir(target.parent) == [], "nothing is written at dest"
    downloads = cache / "uploads"
    assert not downloads.exists() or [n for n in os.listdir(downloads) if not n.startswith(".")] == []


@embedded_only
def test_backup_role_copies_the_directories_where_the_kind_copies_the_databases(server, ansible, moto, bucket,
                                                                                tmp_path):
    source = tmp_path / "uploads"
    source.mkdir()
    make_uploads(source)
    kinds = {"daily": {"keep_last": 2, "offsite_url": f"s3://{bucket}/site", "storage_class": "STANDARD_IA"}}
    ansible.write_inventory(lifeboat_backup_databases=["postgres"], lifeboat_backup_repository=str(ansible.repository),
                            lifeboat_backup_kinds=kinds, lifeboat_backup_s3=moto.options(),
                            lifeboat_backup_files=[{"name": "uploads", "path": str(source)}],
                            lifeboat_backup_async_timeout=0)
    play = ansible.run_playbook(PROJECT / "playbooks" / "backup.yml")
    assert play.rc == 0, play.stdout[-3000:]
    (taken,) = play.result("lifeboat_backup : Back up the directories next to the databases")["results"]
    prefix = f"site/uploads/{taken['backup_id']}"
    assert taken.get("offsite", {}).get("url") == f"s3://{bucket}/{prefix}", taken.get("offsite")
    assert {f"{prefix}/files.tar.gz", f"{prefix}/manifest.json"} <= set(moto.keys(bucket, "site/uploads/"))
    head = moto.client().head_object(Bucket=bucket, Key=f"{prefix}/files.tar.gz")
    assert head["StorageClass"] == "STANDARD_IA"
