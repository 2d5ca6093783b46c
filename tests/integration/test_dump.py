"""lifeboat.db.dump against a real server."""
import datetime
import hashlib
import json
import shutil

from conftest import backup_sets, embedded_only
import stat


def test_dump_writes_a_complete_backup_set(server, ansible, sample_db):
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    assert result["changed"] is True
    backup_dir = ansible.repository / sample_db / result["backup_id"]
    assert result["backup_path"] == str(backup_dir)
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    dump_file = backup_dir / f"{sample_db}.dump"

    # Checksums and sizes in the manifest are those of the file on disk.
    assert manifest["files"] == [{"name": dump_file.name, "size": dump_file.stat().st_size,
                                  "sha256": hashlib.sha256(dump_file.read_bytes()).hexdigest()}]
    assert result["sha256"] == manifest["files"][0]["sha256"] and result["size"] == dump_file.stat().st_size
    # Exact per-table counts, equal to what the database holds.
    assert manifest["row_counts"] == {f"lifeboat_sample.{t}": server.count(sample_db, f"lifeboat_sample.{t}")
                                      for t in ("customers", "products", "orders", "order_items", "events")}
    assert manifest["row_counts"]["lifeboat_sample.order_items"] == 1800
    assert manifest["server_version"].split(".")[0] == str(server.major)
    assert int(manifest["pg_dump_version"].split(".")[0]) >= server.major
    assert manifest["format"] == "custom" and manifest["kind"] == "full" and manifest["database"] == sample_db
    assert manifest["started_at"] <= manifest["finished_at"]
    # Private files, private folder, no leftovers of the temporary name.
    assert stat.S_IMODE(dump_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((backup_dir / "manifest.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    assert sorted(backup_sets(ansible.repository / sample_db)) == [result["backup_id"]]
    progress = json.loads((ansible.repository / sample_db / ".progress.json").read_text())
    assert progress["phase"] == "done" and progress["backup_id"] == result["backup_id"]
    assert progress["tables_done"] == progress["tables_total"] == 5 and progress["bytes"] == result["size"]


def test_row_counts_come_from_the_dumped_snapshot(server, ansible, sample_db):
    """Counts describe the dump's own snapshot: restoring gives exactly the manifest's counts."""
    dump = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    server.sql(sample_db, "INSERT INTO lifeboat_sample.products (sku, name, price) VALUES ('X-1', 'late', 1)")
    copy = sample_db + "_copy"
    restored = ansible.module("restore", db=copy, backup_db=sample_db, repository=str(ansible.repository))
    try:
        assert restored["changed"], restored
        assert server.count(copy, "lifeboat_sample.products") == dump["row_counts"]["lifeboat_sample.products"]
        assert server.count(sample_db, "lifeboat_sample.products") == dump["row_counts"]["lifeboat_sample.products"] + 1
    finally:
        server.drop_db(copy)


def test_check_mode_reports_the_backup_and_takes_none(ansible, sample_db):
    result = ansible.module("dump", check=True, db=sample_db, repository=str(ansible.repository))
    assert result["changed"] is True
    assert result["actions"][0].startswith(f"Would dump database '{sample_db}'")
    assert not (ansible.repository / sample_db).exists()


def test_keep_last_deletes_old_generations_but_never_the_newest(ansible, sample_db):
    ids = [ansible.module("dump", db=sample_db, repository=str(ansible.repository), keep_last=2)["backup_id"]
           for _ in range(3)]
    assert sorted(backup_sets(ansible.repository / sample_db)) == sorted(ids[1:])

    planned = ansible.module("dump", check=True, db=sample_db, repository=str(ansible.repository), keep_last=1)
    assert planned["deleted"] == [ids[2], ids[1]]
    assert sorted(backup_sets(ansible.repository / sample_db)) == sorted(ids[1:])

    last = ansible.module("dump", db=sample_db, repository=str(ansible.repository), keep_last=1)
    assert last["deleted"] == [ids[2], ids[1]]
    assert backup_sets(ansible.repository / sample_db) == [last["backup_id"]]


def test_keep_last_zero_is_refused_before_anything_is_written(ansible, sample_db):
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), keep_last=0)
    assert result.get("failed")
    assert "keep_last must be at least 1" in result["msg"]
    assert not (ansible.repository / sample_db).exists()


def test_pre_restore_backups_are_not_counted_by_full_retention(ansible, sample_db):
    first = ansible.module("dump", db=sample_db, repository=str(ansible.repository), kind="pre-restore")
    second = ansible.module("dump", db=sample_db, repository=str(ansible.repository), keep_last=1)
    assert second["deleted"] == []
    assert sorted(backup_sets(ansible.repository / sample_db)) == sorted([first["backup_id"], second["backup_id"]])


@embedded_only
def test_retention_never_deletes_the_new_set_for_a_future_one_nor_whole_backups_for_selections(ansible, sample_db):
    """Issue 15 item 6: a set dated in the future (a clock ran ahead) is reported and kept but never
    "newest"; table-selection dumps are counted apart from whole-database backups."""
    repo = ansible.repository
    first = ansible.module("dump", db=sample_db, repository=str(repo))
    assert not first["failed"], first.get("msg")
    # A copy of the first set, dated 30 days ahead, under an id of its own.
    future_id = first["backup_id"].split("-")[0] + "-fff000"
    shutil.copytree(repo / sample_db / first["backup_id"], repo / sample_db / future_id)
    manifest = json.loads((repo / sample_db / future_id / "manifest.json").read_text())
    ahead = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    manifest.update(backup_id=future_id, started_at=ahead.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    (repo / sample_db / future_id / "manifest.json").write_text(json.dumps(manifest))
    base = dict(db=sample_db, repository=str(repo), keep_last=1)
    played = ansible.play([{"name": "whole", "lifeboat.db.dump": base},
                           {"name": "tables 1", "lifeboat.db.dump": dict(base, tables=["lifeboat_sample.customers"])},
                           {"name": "tables 2", "lifeboat.db.dump": dict(base, tables=["lifeboat_sample.customers"])}])
    whole, tables1, tables2 = (played.result(n) for n in ("whole", "tables 1", "tables 2"))
    assert not any(r["failed"] for r in (whole, tables1, tables2)), [r.get("msg") for r in (whole, tables1, tables2)]
    kept = sorted(backup_sets(repo / sample_db))
    # The run that took a set never deletes it; the future set stays and is reported.
    assert whole["deleted"] == [first["backup_id"]] and whole["dated_ahead"] == [future_id]
    assert any("dated in the future" in w for w in whole["warnings"])
    # A selection dump pushes out only the older dump of the same selection, never the whole backup.
    assert tables1["deleted"] == [] and tables2["deleted"] == [tables1["backup_id"]]
    assert kept == sorted([future_id, whole["backup_id"], tables2["backup_id"]])
