"""roles/lifeboat_schedule's check that each job's user can open its log and lock (else every run exits 73)."""
import importlib.util
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[3] / "roles" / "lifeboat_schedule" / "filter_plugins" / "schedule.py"
spec = importlib.util.spec_from_file_location("lifeboat_schedule_filters", PLUGIN)
schedule = importlib.util.module_from_spec(spec)
spec.loader.exec_module(schedule)

PASSWD = {"root": ["x", "0", "0", "", "/root", "/bin/sh"], "backup": ["x", "34", "34", "", "/", "/bin/sh"],
          "app": ["x", "1000", "1000", "", "/home/app", "/bin/sh"]}
GROUPS = {"root": ["x", "0", ""], "lifeboat": ["x", "900", "backup,other"], "app": ["x", "1000", ""]}
OPEN = {"exists": True, "isdir": True, "mode": "0755", "uid": 0, "gid": 0}


def job(user, log="/var/log/lifeboat/j.log", lock="/var/lib/lifeboat/locks/j.lock"):
    return {"name": "j", "user": user, "log": log, "lock": lock}


def problems(jobs, stats, group="lifeboat"):
    paths = schedule.access_paths(jobs, "root")
    return schedule.access_problems(jobs, "root", group, ["/var/log/lifeboat", "/var/lib/lifeboat/locks"], PASSWD,
                                    GROUPS, {path: stats.get(path, OPEN) for path in paths})


def test_root_the_owner_and_a_member_of_the_group_pass():
    assert schedule.access_paths([job("root")], "root") == []
    assert problems([job("backup")], {}) == []  # in the group as a supplementary member


def test_a_user_outside_the_group_a_closed_folder_a_missing_folder_and_no_such_user_are_refused():
    assert problems([job("app")], {}) == [
        "job j: user app cannot open its log /var/log/lifeboat/j.log: /var/log/lifeboat is root:lifeboat 0750 and "
        "app is not in group lifeboat; add app to lifeboat or run the job as root"]
    closed = {"/srv": dict(OPEN, mode="0700")}
    assert "it cannot pass through /srv (mode 0700, uid 0, gid 0)" in problems([job("backup", log="/srv/j.log")], closed)[0]
    group_only = {"/srv": dict(OPEN, mode="0710", gid=900)}
    assert problems([job("backup", log="/srv/j.log")], group_only) == []
    missing = {"/srv": {"exists": False}}
    assert "folder /srv does not exist and the role does not make it" in problems([job("backup", log="/srv/j.log")],
                                                                                  missing)[0]
    assert problems([job("ghost")], {}) == ["job j: user ghost does not exist on this host; create it or run the job "
                                            "as another user"]


def test_missing_folders_above_the_role_folders_count_as_made_by_the_role():
    stats = {"/var/lib/lifeboat": {"exists": False}, "/var/lib/lifeboat/locks": {"exists": False}}
    assert problems([job("backup")], stats) == []
    assert "/var/lib/lifeboat is root:lifeboat 0750" in problems([job("app", log="/tmp/j.log")], stats)[0]
