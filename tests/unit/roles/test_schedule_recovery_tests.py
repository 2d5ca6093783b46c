"""roles/lifeboat_schedule's recovery tests (issue 21, seed 003's cadence): a job per kind running its playbook
from the project's checkout, the three sharing one lock, and the variables checked in one line each - a restore
test that could land on the live database and a full recovery on a production host refused."""
import importlib.util
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "lifeboat_schedule"
spec = importlib.util.spec_from_file_location("lifeboat_schedule_filters", ROLE / "filter_plugins" / "schedule.py")
schedule = importlib.util.module_from_spec(spec)
spec.loader.exec_module(schedule)

DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
TIMES = DEFAULTS["lifeboat_schedule_recovery_tests_times"]
PLAYBOOKS = DEFAULTS["lifeboat_schedule_recovery_tests_playbooks"]
ARGS = dict(DEFAULTS["lifeboat_schedule_recovery_tests_args"],
            monthly=["-e", "restore_db=app_restore_test", "-e", "restore_backup_db=app"])
START = ["/opt/lifeboat/.venv/bin/ansible-playbook", "-i", "/opt/lifeboat/inventories/staging", "--limit", "db1"]


def jobs(times=TIMES, playbooks=PLAYBOOKS, args=ARGS):
    return schedule.recovery_test_jobs(times, playbooks, args, START, "/opt/lifeboat", "/var/lib/lifeboat/locks")


def test_off_by_default_with_seed_003s_cadence_and_playbooks():
    assert DEFAULTS["lifeboat_schedule_recovery_tests"] is False
    assert PLAYBOOKS == {"weekly": "drill.yml", "monthly": "restore.yml", "quarterly": "full_recovery.yml"}
    # weekly, monthly, quarterly: the cron fields say so.
    assert TIMES["weekly"].split()[2:] == ["*", "*", "3"]
    assert TIMES["monthly"].split()[2:] == ["8", "*", "*"]
    assert TIMES["quarterly"].split()[2:] == ["15", "1,4,7,10", "*"]


def test_a_job_per_kind_running_its_playbook_from_the_checkout():
    made = jobs()
    assert [job["name"] for job in made] == ["recovery-test-weekly", "recovery-test-monthly", "recovery-test-quarterly"]
    assert made[0]["command"] == [*START, "/opt/lifeboat/playbooks/drill.yml"]
    assert made[1]["command"] == [*START, "/opt/lifeboat/playbooks/restore.yml", "-e", "restore_db=app_restore_test",
                                  "-e", "restore_backup_db=app"]
    assert made[2]["command"] == [*START, "/opt/lifeboat/playbooks/full_recovery.yml"]
    assert {job["chdir"] for job in made} == {"/opt/lifeboat"}
    # One lock: two recovery tests never run at once on a host.
    assert {job["lock"] for job in made} == {"/var/lib/lifeboat/locks/recovery-test.lock"}
    assert "quarterly full recovery test: full_recovery.yml (seed 003)" == made[2]["description"]
    for backend in ("cron", "systemd"):
        assert schedule.job_problems(made, backend) == []


def test_the_playbook_is_a_setting_and_an_empty_time_schedules_none():
    made = jobs(dict(TIMES, weekly=""), dict(PLAYBOOKS, quarterly="/srv/ops/full-recovery-test.yml"))
    assert [job["name"] for job in made] == ["recovery-test-monthly", "recovery-test-quarterly"]
    assert made[1]["command"][len(START)] == "/srv/ops/full-recovery-test.yml"


def test_rendered_cron_line_and_systemd_units():
    """The role's own templates, rendered with the filters Ansible gives them (quote is shlex.quote)."""
    import shlex
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), keep_trailing_newline=True)
    env.filters.update(quote=shlex.quote, lifeboat_systemd_quote=schedule.systemd_quote)
    for backend in ("cron", "systemd"):
        active = schedule.normalize_jobs(jobs(), "/usr/local/libexec/lifeboat/run-job", "/var/log/lifeboat",
                                         "/var/lib/lifeboat/locks", backend)
        if backend == "cron":
            cron = env.get_template("cron.j2").render(lifeboat_schedule_active_jobs=active,
                                                      lifeboat_schedule_runner="/usr/local/libexec/lifeboat/run-job")
            assert ("30 6 8 * * root /usr/local/libexec/lifeboat/run-job recovery-test-monthly --log "
                    "/var/log/lifeboat/recovery-test-monthly.log --lock /var/lib/lifeboat/locks/recovery-test.lock "
                    "--chdir /opt/lifeboat -- " + " ".join(START) + " /opt/lifeboat/playbooks/restore.yml -e "
                    "restore_db=app_restore_test -e restore_backup_db=app") in cron.splitlines()
            assert "# recovery-test-weekly: weekly automatic-recovery test: drill.yml (seed 003)" in cron
        else:
            quarterly = active[2]
            timer = env.get_template("job.timer.j2").render(item=quarterly)
            assert "OnCalendar=*-01,04,07,10-15 08:00:00" in timer.splitlines()
            service = env.get_template("job.service.j2").render(item=quarterly)
            assert [line for line in service.splitlines() if line.startswith("ExecStart=")] == [
                "ExecStart=/usr/local/libexec/lifeboat/run-job recovery-test-quarterly --log "
                "/var/log/lifeboat/recovery-test-quarterly.log --lock /var/lib/lifeboat/locks/recovery-test.lock "
                "--chdir /opt/lifeboat -- " + " ".join(START) + " /opt/lifeboat/playbooks/full_recovery.yml"]
            assert "OnCalendar=Wed *-*-* 05:00:00" in env.get_template("job.timer.j2").render(item=active[0])


def test_restoring_tests_only_on_a_host_marked_staging():
    assert DEFAULTS["lifeboat_schedule_recovery_tests_staging"] is False
    assert schedule.recovery_test_problems(TIMES, PLAYBOOKS, ARGS, staging=True) == []
    # Not marked: taken as production, whatever lifeboat_production says.
    assert schedule.recovery_test_problems(TIMES, PLAYBOOKS, ARGS) == [
        "the monthly restore.yml and quarterly full_recovery.yml tests restore on this host (a full recovery replaces "
        "the live database and uploads), and it is not marked as a staging copy: set lifeboat_staging: true (or "
        "lifeboat_schedule_recovery_tests_staging: true) on a staging host, as seed 003 runs them, or empty their "
        "times in lifeboat_schedule_recovery_tests_times"]
    # The kind restores whatever playbook runs it; a restoring playbook whatever kind runs it.
    (problem,) = schedule.recovery_test_problems(dict(TIMES, monthly=""), dict(PLAYBOOKS, quarterly="/srv/ops/fr.yml"),
                                                 ARGS)
    assert problem.startswith("the quarterly fr.yml test restores on this host")
    (problem,) = schedule.recovery_test_problems({"weekly": TIMES["weekly"]}, dict(PLAYBOOKS, weekly="full_recovery.yml"),
                                                 ARGS)
    assert problem.startswith("the weekly full_recovery.yml test restores on this host")
    # The weekly drill alone needs no mark (lifeboat_drill refuses a production host itself).
    assert schedule.recovery_test_problems({"weekly": TIMES["weekly"]}, PLAYBOOKS, ARGS) == []


def test_bad_variables_are_named_one_line_each():
    assert schedule.recovery_test_problems(TIMES, PLAYBOOKS, ARGS, staging=True) == []
    # The default arguments: the monthly restore test does not say where it restores.
    (problem,) = schedule.recovery_test_problems(TIMES, PLAYBOOKS, DEFAULTS["lifeboat_schedule_recovery_tests_args"],
                                                 staging=True)
    assert problem.startswith("lifeboat_schedule_recovery_tests_args: the monthly restore test must restore into a "
                              "scratch database from another one's backups, never over the live one")
    # Restoring a database's backups over itself is the live database: refused too.
    assert len(schedule.recovery_test_problems(TIMES, PLAYBOOKS, dict(ARGS, monthly=[
        "-e", "restore_db=app", "-e", "restore_backup_db=app"]), staging=True)) == 1
    # Without a monthly time there is no restore test to refuse.
    assert schedule.recovery_test_problems(dict(TIMES, monthly=""), PLAYBOOKS, {}, staging=True) == []
    assert schedule.recovery_test_problems(TIMES, PLAYBOOKS, ARGS, production=True, staging=True) == [
        "the quarterly full recovery test replaces the live database and uploads, and this host is marked "
        "lifeboat_production: schedule it on a staging copy (seed 003's test environment)"]
    assert schedule.recovery_test_problems(dict(TIMES, yearly="0 1 1 1 *"), PLAYBOOKS, ARGS, staging=True) == [
        "lifeboat_schedule_recovery_tests_times: yearly is not one of weekly, monthly, quarterly"]
    assert schedule.recovery_test_problems(TIMES, dict(PLAYBOOKS, weekly="drill"), ARGS, staging=True) == [
        "lifeboat_schedule_recovery_tests_playbooks: the weekly test needs a playbook (a .yml under the project's "
        "playbooks/, or an absolute path), not 'drill'"]
    assert schedule.recovery_test_problems("weekly", PLAYBOOKS, ARGS) == [
        "lifeboat_schedule_recovery_tests_times must be a mapping of weekly, monthly and quarterly to cron expressions"]
    assert schedule.recovery_test_problems(TIMES, PLAYBOOKS, dict(ARGS, weekly="-e x=1"), staging=True) == [
        "lifeboat_schedule_recovery_tests_args: the weekly test's arguments must be a list of strings ([-e, name=value])"]
