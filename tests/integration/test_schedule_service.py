"""roles/lifeboat_schedule's recovery tests (issue 21) through ansible-playbook: the settings reach the cron file
and the systemd units, and bad ones are refused in one line before anything is written.

Two hosts (local, each with its own fake root under tmp_path: every path of the role is a variable) in one run:
one installed with cron, one refused. The rendering of every cron line and systemd unit is proven in
tests/unit/roles/test_schedule_recovery_tests.py; this proves the role's wiring (systemd's goes through the same
list of jobs, and the suite's time is short).
"""
import grp
import json
import os
import pwd

from conftest import BIN, PlayResult, ansible_playbook, assert_one_line

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
ARGS = {"weekly": [], "monthly": ["-e", "restore_db=app_restore_test", "-e", "restore_backup_db=app"], "quarterly": []}


def host(root, **variables):
    return {"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python"),
            "lifeboat_schedule_activate": False, "lifeboat_schedule_owner": USER, "lifeboat_schedule_group": GROUP,
            "lifeboat_schedule_runner": str(root / "libexec/run-job"), "lifeboat_schedule_log_dir": str(root / "log"),
            "lifeboat_schedule_lock_dir": str(root / "locks"), "lifeboat_schedule_cron_file": str(root / "cron.d/lifeboat"),
            "lifeboat_schedule_systemd_dir": str(root / "systemd"), "lifeboat_schedule_logrotate_file": "",
            "lifeboat_schedule_project_dir": "/opt/lifeboat", "lifeboat_schedule_inventory": "/opt/lifeboat/inventories/staging",
            # Only the recovery tests: the seed 002 jobs are test_schedule.py's.
            "lifeboat_schedule_jobs": [], "lifeboat_schedule_recovery_tests": True, **variables}


def test_recovery_tests_installed_and_refused(tmp_path):
    roots = {name: tmp_path / name for name in ("cron", "staging", "refused", "unmarked")}
    for root in roots.values():
        (root / "cron.d").mkdir(parents=True)
        (root / "systemd").mkdir()
    hosts = {
        # Both opt-ins that the host is a staging copy, where restoring tests may run: the role's and the inventory's.
        "cron": host(roots["cron"], lifeboat_schedule_recovery_tests_args=ARGS, lifeboat_schedule_recovery_tests_staging=True,
                     # The playbook is a setting: full_recovery.yml is the default, here one of the operator's.
                     lifeboat_schedule_recovery_tests_playbooks={"weekly": "drill.yml", "monthly": "restore.yml",
                                                                 "quarterly": "/srv/ops/full-recovery-test.yml"}),
        # The defaults' monthly restore test names no scratch database, and this host is production.
        "refused": host(roots["refused"], lifeboat_production=True),
        "staging": host(roots["staging"], lifeboat_schedule_recovery_tests_args=ARGS, lifeboat_staging=True),
        # Settings that are right but no staging mark: an unmarked host is taken as production.
        "unmarked": host(roots["unmarked"], lifeboat_schedule_recovery_tests_args=ARGS),
    }
    (tmp_path / "inventory.json").write_text(json.dumps({"all": {"hosts": hosts}}))
    (tmp_path / "play.yml").write_text(json.dumps([{"name": "schedule", "hosts": "all", "gather_facts": False,
                                                    "roles": ["lifeboat_schedule"]}]))
    record = tmp_path / "results.jsonl"
    proc = ansible_playbook(["-i", tmp_path / "inventory.json", tmp_path / "play.yml"], record, timeout=300)
    results = {name: PlayResult(proc, name, record) for name in hosts}

    assert not any(r["failed"] for _, r in results["cron"].tasks), proc.stdout[-3000:]
    cron = (roots["cron"] / "cron.d/lifeboat").read_text().splitlines()
    lines = [line for line in cron if line and not line.startswith("#")]
    start = "/opt/lifeboat/.venv/bin/ansible-playbook -i /opt/lifeboat/inventories/staging --limit cron"
    lock = f"--lock {roots['cron']}/locks/recovery-test.lock --chdir /opt/lifeboat --"
    assert lines == [
        f"0 5 * * 3 root {roots['cron']}/libexec/run-job recovery-test-weekly --log {roots['cron']}/log/recovery-test-weekly.log "
        f"{lock} {start} /opt/lifeboat/playbooks/drill.yml",
        f"30 6 8 * * root {roots['cron']}/libexec/run-job recovery-test-monthly --log "
        f"{roots['cron']}/log/recovery-test-monthly.log {lock} {start} /opt/lifeboat/playbooks/restore.yml "
        "-e restore_db=app_restore_test -e restore_backup_db=app",
        f"0 8 15 1,4,7,10 * root {roots['cron']}/libexec/run-job recovery-test-quarterly --log "
        f"{roots['cron']}/log/recovery-test-quarterly.log {lock} {start} /srv/ops/full-recovery-test.yml"]
    assert (roots["cron"] / "libexec/run-job").exists()

    refused = results["refused"].result("lifeboat_schedule : Check the recovery tests' times, playbooks and arguments")
    assert_one_line(refused, "lifeboat_schedule_recovery_tests: lifeboat_schedule_recovery_tests_args: the monthly "
                             "restore test must restore into a scratch database",
                    "the quarterly full recovery test replaces the live database and uploads, and this host is marked "
                    "lifeboat_production")
    assert not any(r["failed"] for _, r in results["staging"].tasks), proc.stdout[-3000:]
    assert "recovery-test-quarterly" in (roots["staging"] / "cron.d/lifeboat").read_text()
    unmarked = results["unmarked"].result("lifeboat_schedule : Check the recovery tests' times, playbooks and arguments")
    assert_one_line(unmarked, "lifeboat_schedule_recovery_tests: the monthly restore.yml and quarterly full_recovery.yml "
                              "tests restore on this host", "not marked as a staging copy: set lifeboat_staging: true "
                              "(or lifeboat_schedule_recovery_tests_staging: true)")
    assert "scratch database" not in unmarked["msg"]
    for name in ("refused", "unmarked"):
        assert not (roots[name] / "cron.d/lifeboat").exists() and not (roots[name] / "libexec").exists()
