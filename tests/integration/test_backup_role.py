"""playbooks/backup.yml: seed 002's kinds, each with its own retention, through the role."""
from conftest import PROJECT, embedded_only

# A role composes modules whose own tests run on every server; the role itself runs on one.
pytestmark = embedded_only


def test_daily_and_monthly_backups_keep_their_own_generations(server, ansible, sample_db):
    kinds = {"daily": {"format": "custom", "keep_last": 2}, "monthly": {"format": "directory", "jobs": 2,
                                                                        "keep_last": 1}}
    taken = {"daily": [], "monthly": []}
    for kind in ["daily", "daily", "monthly", "daily", "monthly"]:
        ansible.write_inventory(lifeboat_backup_databases=[sample_db, "postgres"], lifeboat_backup_kind=kind,
                                lifeboat_backup_repository=str(ansible.repository), lifeboat_backup_kinds=kinds,
                                lifeboat_backup_poll_interval=1)
        play = ansible.run_playbook(PROJECT / "playbooks" / "backup.yml")
        assert play.rc == 0, play.stdout[-3000:]
        results = play.result("lifeboat_backup : Take a backup of kind " + kind)["results"]
        assert [r["item"] for r in results] == [sample_db, "postgres"]
        taken[kind].append(results[0]["backup_id"])
    listed = ansible.module("backup_info", repository=str(ansible.repository), db=sample_db)
    by_kind = {}
    for backup in listed["backups"]:
        by_kind.setdefault(backup["kind"], []).append(backup["backup_id"])
    assert by_kind == {"daily": taken["daily"][:0:-1], "monthly": taken["monthly"][-1:]}
    assert [b["format"] for b in listed["backups"] if b["kind"] == "monthly"] == ["directory"]


def test_directories_are_backed_up_with_the_databases(server, ansible, sample_db, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "a.txt").write_text("a")
    ansible.write_inventory(lifeboat_backup_databases=[sample_db], lifeboat_backup_repository=str(ansible.repository),
                            lifeboat_backup_files=[{"name": "uploads", "path": str(uploads), "keep_last": 3}],
                            lifeboat_backup_poll_interval=1)
    play = ansible.run_playbook(PROJECT / "playbooks" / "backup.yml")
    assert play.rc == 0, play.stdout[-3000:]
    listed = ansible.module("backup_info", repository=str(ansible.repository), db="uploads")
    assert [b["kind"] for b in listed["backups"]] == ["files"]


def test_unknown_kind_is_refused_before_anything_runs(server, ansible, sample_db):
    ansible.write_inventory(lifeboat_backup_databases=[sample_db], lifeboat_backup_kind="hourly",
                            lifeboat_backup_repository=str(ansible.repository))
    play = ansible.run_playbook(PROJECT / "playbooks" / "backup.yml")
    assert play.rc != 0
    assert "lifeboat_backup_kind must be one of daily, monthly" in play.result("lifeboat_backup : Check the backup kind")["msg"]
    assert not ansible.repository.exists()


def test_daily_backups_go_offsite_to_s3(server, ansible, sample_db, moto):
    moto.bucket("role-offsite")
    kinds = {"daily": {"keep_last": 5, "offsite_url": "s3://role-offsite/prod", "storage_class": "STANDARD_IA",
                       "offsite_keep_last": 1}}
    ansible.write_inventory(lifeboat_backup_databases=[sample_db], lifeboat_backup_repository=str(ansible.repository),
                            lifeboat_backup_kinds=kinds, lifeboat_backup_s3=moto.options(),
                            lifeboat_backup_poll_interval=1)
    for _ in range(2):
        play = ansible.run_playbook(PROJECT / "playbooks" / "backup.yml")
        assert play.rc == 0, play.stdout[-3000:]
    assert moto.options()["aws_secret_key"] not in play.stdout
    (result,) = play.result("lifeboat_backup : Take a backup of kind daily")["results"]
    assert result["offsite"]["url"].startswith("s3://role-offsite/prod/")
    listed = play.result("lifeboat_backup : List the repository")
    assert [len(b["locations"]) for b in listed["backups"]] == [2, 1], "only the newest copy is kept in S3"
    keys = moto.keys("role-offsite")
    assert {k.split("/")[2] for k in keys} == {result["backup_id"]}


def test_delta_kind_exports_the_busy_tables(server, ansible, sample_db):
    kinds = {"daily": {"keep_last": 3},
             "delta": {"keep_last": 6, "delta_tables": {sample_db: [{"name": "lifeboat_sample.orders",
                                                                     "change_column": "ordered_at"}]}}}
    for kind in ("daily", "delta"):
        ansible.write_inventory(lifeboat_backup_databases=[sample_db], lifeboat_backup_kind=kind,
                                lifeboat_backup_repository=str(ansible.repository), lifeboat_backup_kinds=kinds,
                                lifeboat_backup_poll_interval=1)
        play = ansible.run_playbook(PROJECT / "playbooks" / "backup.yml")
        assert play.rc == 0, play.stdout[-3000:]
    (exported,) = play.result("lifeboat_backup : Export the rows changed since the last delta (kind delta)")["results"]
    assert not exported["failed"] and exported["backup_id"], exported
    listed = ansible.module("backup_info", repository=str(ansible.repository), db=sample_db)
    assert [b["kind"] for b in listed["backups"]] == ["delta", "daily"]
    assert [b["format"] for b in listed["backups"]] == ["delta", "custom"]
