"""roles/lifeboat_schedule's pgBackRest jobs (issue 19): one per stanza and kind, as the database OS user,
a stanza's jobs sharing one lock, and the variables checked in one line each."""
import importlib.util
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[3] / "roles" / "lifeboat_schedule" / "filter_plugins" / "schedule.py"
spec = importlib.util.spec_from_file_location("lifeboat_schedule_filters", PLUGIN)
schedule = importlib.util.module_from_spec(spec)
spec.loader.exec_module(schedule)

TIMES = {"full": "30 1 * * 0", "diff": "30 1 * * 1-6", "incr": "15 * * * *", "verify": "30 4 * * 6"}
CONFIG = "/etc/pgbackrest/pgbackrest.conf"


def jobs(stanzas, times=TIMES):
    return schedule.pgbackrest_jobs(stanzas, times, "/usr/bin/pgbackrest", CONFIG, "postgres", "/var/lib/lifeboat/locks/")


def test_a_job_per_stanza_and_kind_run_directly_as_the_database_user():
    made = jobs([{"name": "main", "cluster": "15/main"}, {"name": "main.reports"}])
    assert [job["name"] for job in made] == [f"pgbackrest-{kind}-{stanza}" for stanza in ("main", "main_reports")
                                             for kind in TIMES]
    full = made[0]
    assert full["command"] == ["/usr/bin/pgbackrest", f"--config={CONFIG}", "--stanza=main", "--log-level-console=info",
                               "backup", "--type=full"]
    assert (full["schedule"], full["user"]) == ("30 1 * * 0", "postgres")
    assert made[3]["command"][-1:] == ["verify"] and made[5]["command"][2] == "--stanza=main.reports"
    # One lock per stanza: a backup still running makes the next job of that stanza wait its turn.
    assert {job["lock"] for job in made[:4]} == {"/var/lib/lifeboat/locks/pgbackrest-main.lock"}
    assert {job["lock"] for job in made[4:]} == {"/var/lib/lifeboat/locks/pgbackrest-main_reports.lock"}
    # They pass the check every job passes, for both backends.
    for backend in ("cron", "systemd"):
        assert schedule.job_problems(made, backend) == []


def test_an_empty_time_schedules_none_of_that_kind():
    made = jobs([{"name": "main"}], dict(TIMES, incr="", verify=None))
    assert [job["name"] for job in made] == ["pgbackrest-full-main", "pgbackrest-diff-main"]


def test_bad_variables_are_named_one_line_each():
    assert schedule.pgbackrest_problems([{"name": "main"}], TIMES) == []
    assert schedule.pgbackrest_problems([{"name": "main"}], dict(TIMES, weekly="0 1 * * 0")) == [
        "lifeboat_schedule_pgbackrest_times: weekly is not one of full, diff, incr, verify"]
    assert schedule.pgbackrest_problems([{"name": "a b"}, {"cluster": "15/main"}], TIMES) == [
        "lifeboat_schedule_pgbackrest_stanzas: stanza name 'a b' must be letters, digits, . _ and - (as "
        "lifeboat_pgbackrest takes it)",
        "lifeboat_schedule_pgbackrest_stanzas: stanza name None must be letters, digits, . _ and - (as "
        "lifeboat_pgbackrest takes it)"]
    assert schedule.pgbackrest_problems([], TIMES) == [
        "lifeboat_schedule_pgbackrest_stanzas must be a non-empty list of stanzas (lifeboat_pgbackrest_stanzas)"]
    assert schedule.pgbackrest_problems([{"name": "main"}], "weekly") == [
        "lifeboat_schedule_pgbackrest_times must be a mapping of full, diff, incr and verify to cron expressions"]
    # A time that is not a cron expression is the jobs' check's to name, like any job's.
    (problem,) = schedule.job_problems(jobs([{"name": "main"}], {"full": "30 1 * *"}), "cron")
    assert problem.startswith("job pgbackrest-full-main: schedule '30 1 * *' has 4 fields")
