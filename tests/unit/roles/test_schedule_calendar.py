"""roles/lifeboat_schedule's filters: cron expressions checked and turned into systemd's OnCalendar=."""
import datetime
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[3] / "roles" / "lifeboat_schedule" / "filter_plugins" / "schedule.py"
spec = importlib.util.spec_from_file_location("lifeboat_schedule_filters", PLUGIN)
schedule = importlib.util.module_from_spec(spec)
spec.loader.exec_module(schedule)

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed")

CONVERSIONS = [
    # seed 002's schedule
    ("0 2 * * *", "*-*-* 02:00:00"),
    ("0 */4 * * *", "*-*-* 00/4:00:00"),
    ("0 3 1 * *", "*-*-01 03:00:00"),
    ("0 4 1 12 *", "*-12-01 04:00:00"),
    ("0 5 15 1 *", "*-01-15 05:00:00"),
    ("0 * * * *", "*-*-* *:00:00"),
    ("15 * * * *", "*-*-* *:15:00"),
    ("0 1 * * *", "*-*-* 01:00:00"),
    # steps, ranges, lists, names
    ("*/15 * * * *", "*-*-* *:00/15:00"),
    ("* * * * *", "*-*-* *:*:00"),
    ("0,30 8-17 * * *", "*-*-* 08..17:00,30:00"),
    ("0 8-17/3 * * *", "*-*-* 08,11,14,17:00:00"),
    ("0 0 */2 */3 *", "*-01/3-01/2 00:00:00"),
    ("30 8 * * 1-5", "Mon..Fri *-*-* 08:30:00"),
    ("30 8 * * mon", "Mon *-*-* 08:30:00"),
    ("0 6 * * 0", "Sun *-*-* 06:00:00"),
    ("0 6 * * 7", "Sun *-*-* 06:00:00"),
    ("0 6 * * 6,0", "Sat,Sun *-*-* 06:00:00"),
    ("0 6 * * 1,3,5", "Mon,Wed,Fri *-*-* 06:00:00"),
    ("0 6 * * 0-6", "*-*-* 06:00:00"),
    ("0 6 * * */2", "Tue,Thu,Sat,Sun *-*-* 06:00:00"),
    ("0 6 1 jan *", "*-01-01 06:00:00"),
    ("  0   2 *  * * ", "*-*-* 02:00:00"),
]


@pytest.mark.parametrize("cron, calendar", CONVERSIONS)
def test_cron_expressions_become_on_calendar(cron, calendar):
    assert schedule.on_calendar(cron) == calendar


@pytest.mark.parametrize("cron, message", [
    ("0 2 * *", "has 4 fields; cron needs 5"),
    ("0 2 * * * *", "has 6 fields"),
    ("60 2 * * *", "minute 60 is outside 0-59"),
    ("0 24 * * *", "hour 24 is outside 0-23"),
    ("0 2 0 * *", "day of month 0 is outside 1-31"),
    ("0 2 * 13 *", "month 13 is outside 1-12"),
    ("0 2 * * 8", "day of week 8 is outside 0-7"),
    ("0 17-8 * * *", "runs backwards"),
    ("*/0 * * * *", "step of 0"),
    ("5/10 * * * *", "a step needs * or a range"),
    ("0 2 * * mon-fri", "names only alone"),
    ("0 2 * jan,feb *", "names only alone"),
    ("0 2 * * monday", "is not a number"),
    ("@daily", "has 1 fields"),
])
def test_invalid_cron_expressions_are_refused_in_one_line(cron, message):
    with pytest.raises(schedule.CronError) as caught:
        schedule.parse_cron(cron)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_day_of_month_with_day_of_week_is_cron_only():
    """Cron runs such a job when either field matches, systemd when both do: no faithful conversion."""
    schedule.parse_cron("0 2 1 * 1")
    with pytest.raises(schedule.CronError, match="combines with OR and systemd with AND"):
        schedule.on_calendar("0 2 1 * 1")
    assert schedule.job_problems([{"name": "x", "schedule": "0 2 1 * 1", "command": ["true"]}], "cron") == []
    (problem,) = schedule.job_problems([{"name": "x", "schedule": "0 2 1 * 1", "command": ["true"]}], "systemd")
    assert problem.endswith("give the job an explicit on_calendar")
    assert schedule.job_problems([{"name": "x", "schedule": "0 2 1 * 1", "on_calendar": "*-*-01 02:00:00",
                                   "command": ["true"]}], "systemd") == []


def test_job_problems_name_every_mistake_once():
    jobs = [
        {"name": "ok", "schedule": "0 2 * * *", "command": ["true"]},
        {"name": "ok", "schedule": "0 3 * * *", "command": ["true"]},
        {"name": "no-command", "schedule": "0 2 * * *"},
        {"name": "text-command", "schedule": "0 2 * * *", "command": "pg_dump app"},
        {"name": "bad name", "schedule": "0 2 * * *", "command": ["true"]},
        {"schedule": "0 2 * * *", "command": ["true"]},
        {"name": "newline", "schedule": "0 2 * * *", "command": ["echo", "a\nb"]},
        {"name": "no-schedule", "command": ["true"]},
        {"name": "relative", "schedule": "0 2 * * *", "command": ["true"], "log": "x.log"},
        {"name": "user", "schedule": "0 2 * * *", "command": ["true"], "user": "root; rm"},
        {"name": "timeout", "schedule": "0 2 * * *", "command": ["true"], "timeout": 0},
    ]
    assert schedule.job_problems(jobs, "cron") == [
        "job name ok is used twice",
        "job no-command: command must be a non-empty list of arguments (argv)",
        "job text-command: command must be a non-empty list of arguments (argv)",
        "job bad name: name must be letters, digits, - and _ (it names files and units), not 'bad name'",
        "a job: name must be letters, digits, - and _ (it names files and units), not None",
        "job newline: every command argument must be a string without newlines",
        "job no-schedule: needs a schedule (m h dom mon dow)",
        "job relative: log must be an absolute path, not 'x.log'",
        "job user: user 'root; rm' is not a user name",
        "job timeout: timeout must be a positive number of seconds, not 0",
    ]
    assert schedule.job_problems("daily", "cron") == ["lifeboat_schedule_jobs must be a list of jobs"]


def test_normalized_jobs_carry_their_defaults_and_the_runner_argv():
    jobs = [
        {"name": "daily", "schedule": "0  2 * * *", "command": ["ansible-playbook", "-e", "kind=daily"],
         "timeout": 3600, "chdir": "/opt/lifeboat"},
        {"name": "off", "schedule": "0 3 * * *", "command": ["true"], "enabled": False},
        {"name": "templated-off", "schedule": "0 3 * * *", "command": ["true"], "enabled": "False"},
        {"name": "custom", "on_calendar": "Mon *-*-* 01:00", "command": ["true"], "user": "postgres",
         "log": "/srv/custom.log", "lock": "/srv/custom.lock", "description": "mine"},
    ]
    daily, custom = schedule.normalize_jobs(jobs, "/usr/local/libexec/lifeboat/run-job", "/var/log/lifeboat/",
                                            "/var/lib/lifeboat/locks", "systemd")
    assert daily == {
        "name": "daily", "description": "", "user": "root", "schedule": "0 2 * * *", "on_calendar": "*-*-* 02:00:00",
        "log": "/var/log/lifeboat/daily.log", "lock": "/var/lib/lifeboat/locks/daily.lock",
        "argv": ["/usr/local/libexec/lifeboat/run-job", "daily", "--log", "/var/log/lifeboat/daily.log",
                 "--lock", "/var/lib/lifeboat/locks/daily.lock", "--timeout", "3600", "--chdir", "/opt/lifeboat",
                 "--", "ansible-playbook", "-e", "kind=daily"]}
    assert (custom["user"], custom["log"], custom["lock"], custom["on_calendar"], custom["description"]) == (
        "postgres", "/srv/custom.log", "/srv/custom.lock", "Mon *-*-* 01:00", "mine")


@pytest.mark.parametrize("word, quoted", [
    ("/usr/bin/ansible-playbook", "/usr/bin/ansible-playbook"),
    ("lifeboat_backup_kind=daily", "lifeboat_backup_kind=daily"),
    ("two words", '"two words"'),
    ("100%", '"100%%"'),
    ("$HOME", '"$$HOME"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    (";", '";"'),
    ("", '""'),
])
def test_systemd_arguments_are_quoted_literally(word, quoted):
    assert schedule.systemd_quote(word) == quoted


@needs_systemd_analyze
def test_systemd_accepts_every_converted_expression():
    calendars = [calendar for _, calendar in CONVERSIONS]
    proc = subprocess.run([SYSTEMD_ANALYZE, "calendar", *calendars], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def cron_times(expression, start, count):
    """The next `count` times after `start` a cron expression fires: a slow, obvious reference."""
    limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    names = {"jan": 1, "mon": 1, "sun": 0}

    def expand(field, low, high):
        values = set()
        for part in field.split(","):
            base, _, step = part.partition("/")
            first, last = (low, high) if base == "*" else map(int, (base.split("-") * 2)[:2]) if base[0].isdigit() \
                else (names[base],) * 2
            values.update(range(first, last + 1, int(step or 1)))
        return values

    minute, hour, dom, month, dow = (expand(f, *lim) for f, lim in zip(expression.split(), limits))
    dow = {d % 7 for d in dow}
    times, day = [], start.date()
    while len(times) < count:
        if day.month in month and day.day in dom and (day.isoweekday() % 7) in dow:
            times += [datetime.datetime.combine(day, datetime.time(h, m)) for h in sorted(hour) for m in sorted(minute)]
            times = [t for t in times if t > start]
        day += datetime.timedelta(days=1)
    return times[:count]


@needs_systemd_analyze
@pytest.mark.parametrize("cron", [c for c, _ in CONVERSIONS if c.split()[2] == "*" or c.split()[4] == "*"])
def test_converted_expressions_fire_when_cron_would(cron):
    """systemd's own next elapses of the converted expression equal cron's next runs."""
    start = datetime.datetime(2025, 12, 30, 22, 7)
    proc = subprocess.run([SYSTEMD_ANALYZE, "calendar", "--iterations=12", f"--base-time={start:%Y-%m-%d %H:%M:%S} UTC",
                           schedule.on_calendar(cron)], capture_output=True, text=True, env=dict(os.environ, TZ="UTC"))
    assert proc.returncode == 0, proc.stderr
    fired = [datetime.datetime.strptime(m, "%Y-%m-%d %H:%M:%S")
             for m in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+)", proc.stdout)]
    assert fired == cron_times(cron, start, 12)
