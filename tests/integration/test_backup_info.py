"""lifeboat.db.backup_info: listing and re-verification, and what retention makes of it."""
import json
import time

from conftest import backup_sets, embedded_only


def test_lists_backups_newest_first_across_databases(server, ansible, sample_db):
    first = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    second = ansible.module("dump", db=sample_db, repository=str(ansible.repository), format="plain")
    other = ansible.module("dump", db="postgres", repository=str(ansible.repository))
    listed = ansible.module("backup_info", repository=str(ansible.repository))
    assert listed["changed"] is False and listed["count"] == 3
    assert [b["backup_id"] for b in listed["backups"]] == [other["backup_id"], second["backup_id"], first["backup_id"]]
    newest_of_db = ansible.module("backup_info", repository=str(ansible.repository), db=sample_db, backup="latest")
    entry = newest_of_db["backups"][0]
    assert entry["backup_id"] == second["backup_id"] and entry["format"] == "plain" and entry["verified"] is True
    assert entry["size"] == second["size"] and entry["total_rows"] == 3620 and entry["locations"] == ["local"]
    assert 0 <= entry["age_seconds"] < 600


def test_verify_records_damage_and_retention_keeps_the_newest_verified(server, ansible, sample_db):
    good = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    bad = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    archive = ansible.repository / sample_db / bad["backup_id"] / f"{sample_db}.dump"
    archive.write_bytes(archive.read_bytes()[:-10])  # truncated after the fact

    checked = ansible.module("backup_info", repository=str(ansible.repository), db=sample_db, verify=True)
    assert checked["failed"] and "1 backup set(s) failed verification" in checked["msg"]
    assert f"backup {bad['backup_id']} is damaged" in checked["msg"]
    record = json.loads((archive.parent / "verification.json").read_text())
    assert record["status"] == "failed"
    assert checked["verified"][good["backup_id"]]["status"] == "passed"

    # A later run lists the damaged set as not verified.
    listed = ansible.module("backup_info", repository=str(ansible.repository), db=sample_db)
    assert {b["backup_id"]: b["verified"] for b in listed["backups"]} == {good["backup_id"]: True,
                                                                        bad["backup_id"]: False}


def test_keep_days_deletes_older_sets_once_a_new_verified_one_exists(server, ansible, sample_db):
    old = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    time.sleep(1)
    # 0.00001 days is under a second: every older set is out of the window, the new one stays.
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), keep_days=0.00001)
    assert result["deleted"] == [old["backup_id"]]
    assert backup_sets(ansible.repository / sample_db) == [result["backup_id"]]


def test_check_mode_verify_writes_no_record(ansible, sample_db):
    taken = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    result = ansible.module("backup_info", check=True, repository=str(ansible.repository), verify=True)
    assert result["verified"][taken["backup_id"]]["status"] == "passed" and result["changed"] is False
    assert not (ansible.repository / sample_db / taken["backup_id"] / "verification.json").exists()


def test_missing_repository_is_a_clear_error(ansible):
    result = ansible.module("backup_info", repository=str(ansible.repository / "nope"))
    assert result["failed"] and "does not exist; check the repository path" in result["msg"]


@embedded_only
def test_a_verification_that_cannot_run_is_unchecked_not_failed(ansible, sample_db, tmp_path):
    """Issue 15 item 6c: no pg_restore (an empty pg_bin_dir) proves nothing about a set: it stays
    verified and `latest`, the task warns instead of failing."""
    taken = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    empty = tmp_path / "no-tools"
    empty.mkdir()
    checked = ansible.module("backup_info", repository=str(ansible.repository), db=sample_db, verify=True,
                             pg_bin_dir=str(empty))
    assert not checked["failed"], checked.get("msg")
    assert checked["verified"][taken["backup_id"]]["status"] == "unchecked"
    assert checked["backups"][0]["verified"] is True
    assert any("could not be verified" in w for w in checked["warnings"])
    listed = ansible.module("backup_info", repository=str(ansible.repository), db=sample_db, backup="latest")
    assert listed["backups"][0]["backup_id"] == taken["backup_id"] and listed["backups"][0]["verified"] is True
