"""playbooks/backup.yml: seed 002's kinds, each with its own retention, through the role."""
from conftest import PROJECT, assert_one_line, embedded_only

# A role composes modules whose own tests run on every server; the role itself runs on one.
pytestmark = embedded_only

KEPT = "lifeboat_backup : Keep the backup's result"
FOLLOW = "lifeboat_common : Follow the job in the background - backup of {db}"


def followed(play, db):
    """The labels of the loop that followed the dump of db: progress lines and the job's state."""
    return [item["_ansible_item_label"] for item in play.result(FOLLOW.format(db=db))["results"]]


def dumps(play):
    """The dumps' results, in the order the role took them (each with its database as item)."""
    return play.result(KEPT)["ansible_facts"]["lifeboat_backup_results"]


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
        results = dumps(play)
        assert [r["item"] for r in results] == [sample_db, "postgres"]
        assert play.result("lifeboat_backup : Take a backup of kind " + kind)["ansible_job_id"], "dumps run as async jobs"
        taken[kind].append(results[0]["backup_id"])
        # Each dump is followed until its job has finished, showing what its progress file says
        # (an earlier run's, until this one writes its own).
        for db in (sample_db, "postgres"):
            labels = followed(play, db)
            assert labels[-1].endswith(" finished") and "; job " in labels[-1], labels
            assert all(label.startswith((f"{db}: ", "no progress reported yet")) for label in labels), labels
    # By the last run, each database's progress file is there from the first look on.
    assert [label for label in followed(play, sample_db) if label.startswith(f"{sample_db}: ") and " tables, " in label]
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


def test_a_failed_dump_does_not_stop_the_others_and_fails_the_role_naming_it(server, ansible, sample_db):
    ansible.write_inventory(lifeboat_backup_databases=["no_such_db_gw", sample_db],
                            lifeboat_backup_repository=str(ansible.repository), lifeboat_backup_poll_interval=1)
    play = ansible.run_playbook(PROJECT / "playbooks" / "backup.yml")
    assert play.rc != 0
    failed, taken = dumps(play)
    assert failed["item"] == "no_such_db_gw" and failed["failed"] and taken["item"] == sample_db and taken["backup_id"]
    assert_one_line(play.result("lifeboat_backup : Check every backup was taken"), "no_such_db_gw: ")
    listed = ansible.module("backup_info", repository=str(ansible.repository), db=sample_db)
    assert [b["backup_id"] for b in listed["backups"]] == [taken["backup_id"]]


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
    (result,) = dumps(play)
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


def test_async_progress_follows_a_job_that_outlives_its_retries(ansible):
    """A job running far longer than async_status's three retries of the poll interval is followed to
    its end (the job's status file read as running), not judged finished at its first look."""
    result = ansible.play([
        {"name": "Start a long job", "ansible.builtin.command": {"argv": ["sleep", "6"]},
         "async": 60, "poll": 0, "register": "long_job", "changed_when": False},
        {"name": "Follow it", "ansible.builtin.include_role": {"name": "lifeboat_common", "tasks_from": "async_progress"},
         "vars": {"lifeboat_common_async_job": "{{ long_job }}", "lifeboat_common_async_label": "sleep",
                  "lifeboat_common_async_subject": "sleep", "lifeboat_common_async_timeout": 60,
                  "lifeboat_common_async_poll_interval": 1,
                  "lifeboat_common_async_progress_file": str(ansible.workdir / "no-progress.json")}},
    ], connection=False)
    assert result.rc == 0, result.stdout[-3000:]
    collected = result.result("lifeboat_common : Collect the job's result - sleep")
    assert collected["finished"] and collected["rc"] == 0, collected
    watched = result.result("lifeboat_common : Follow the job in the background - sleep")
    # It kept looking while the job ran: every look but the last saw it running, the last saw its end,
    # and the looks waited on the host most of the job's 6 s (how many looks that takes depends on how
    # long each module run starts up on a busy machine).
    looks = watched["results"]
    assert len(looks) >= 2 and [look["finished"] for look in looks] == [False] * (len(looks) - 1) + [True], looks
    assert sum(look["waited"] for look in looks) >= 3, looks
