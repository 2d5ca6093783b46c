"""Filters of the lifeboat_schedule role: job validation, cron expressions and systemd timers.

PRIVATE to the role lifeboat_schedule. Cron expressions are checked by the rules every cron
accepts (Debian's Vixie cron, cronie), and converted to systemd's OnCalendar= where the two mean
the same thing; anything else is refused with a message asking for an explicit on_calendar.
"""
import re

# (field name, lowest, highest, names)
FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # systemd's names, Monday = 1
ELEMENT = re.compile(r"^(?:(?P<all>\*)|(?P<low>\d+)(?:-(?P<high>\d+))?)(?:/(?P<step>\d+))?$")
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
PLAIN_WORD = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")
USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")


class CronError(ValueError):
    """A cron expression that is not valid, or has no OnCalendar= equivalent."""


def _field(text, name, low, high, names):
    """One field as a list of (kind, values) elements: ('all', step) or ('values', sorted list)."""
    if names and text.lower() in names:
        return [("values", [names.index(text.lower()) + low])]
    elements = []
    for part in text.split(","):
        match = ELEMENT.match(part)
        if not match:
            hint = " (names only alone, not in ranges or lists)" if re.search(r"[A-Za-z]", part) else ""
            raise CronError(f"{name} {part!r} is not a number, range, step or *{hint}")
        step = int(match["step"]) if match["step"] else None
        if step == 0:
            raise CronError(f"{name} {part!r} has a step of 0")
        if match["all"]:
            elements.append(("all", step))
            continue
        first = int(match["low"])
        last = int(match["high"]) if match["high"] else first
        if step and not match["high"]:
            raise CronError(f"{name} {part!r}: a step needs * or a range (e.g. {low}-{high}/{step})")
        for value in (first, last):
            if not low <= value <= high:
                raise CronError(f"{name} {value} is outside {low}-{high}")
        if first > last:
            raise CronError(f"{name} range {part!r} runs backwards")
        elements.append(("values", list(range(first, last + 1, step or 1))))
    return elements


def parse_cron(expression):
    """The five fields of a cron expression, each parsed; CronError when it is not valid."""
    if not isinstance(expression, str):
        raise CronError(f"schedule must be a string, not {type(expression).__name__}")
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(f"schedule {expression!r} has {len(fields)} fields; cron needs 5: minute hour day-of-month month day-of-week")
    return [_field(text, *spec) for text, spec in zip(fields, FIELDS)]


def _restricted(elements):
    return elements != [("all", None)]


def _calendar_field(elements, low, width=2):
    """A time or date field in OnCalendar= syntax: *, start/step, a..b, or a comma list."""
    parts = []
    for kind, value in elements:
        if kind == "all":
            parts.append("*" if value is None else f"{low:0{width}d}/{value}")
        elif len(value) > 1 and value == list(range(value[0], value[-1] + 1)):
            parts.append(f"{value[0]:0{width}d}..{value[-1]:0{width}d}")
        else:
            parts.extend(f"{v:0{width}d}" for v in value)
    return ",".join(parts)


def _calendar_weekdays(elements):
    """The day-of-week field as systemd weekdays (Mon..Fri, Sat,Sun); '' when every day."""
    days = set()
    for kind, value in elements:
        values = range(0, 7, value or 1) if kind == "all" else value
        days.update(7 if v == 0 else v for v in values)  # cron: 0 and 7 are Sunday
    if len(days) == 7:
        return ""
    runs, ordered = [], sorted(days)
    for day in ordered:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        names = [WEEKDAYS[d - 1] for d in run]
        parts.append(f"{names[0]}..{names[-1]}" if len(run) > 2 else ",".join(names))
    return ",".join(parts)


def on_calendar(expression):
    """The systemd OnCalendar= expression that fires when the cron expression does."""
    minute, hour, dom, month, dow = parse_cron(expression)
    if _restricted(dom) and _restricted(dow):
        raise CronError(f"schedule {expression!r} restricts both day of month and day of week, which cron "
                        "combines with OR and systemd with AND")
    date = f"*-{_calendar_field(month, 1)}-{_calendar_field(dom, 1)}"
    time = f"{_calendar_field(hour, 0)}:{_calendar_field(minute, 0)}:00"
    weekdays = _calendar_weekdays(dow)
    return f"{weekdays} {date} {time}" if weekdays else f"{date} {time}"


def systemd_quote(word):
    """One argument of a systemd Exec*= line, double-quoted unless plain; specifiers and variables kept literal."""
    word = str(word)
    if PLAIN_WORD.match(word):
        return word
    word = word.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + word.replace("%", "%%").replace("$", "$$") + '"'


def _has_control(text):
    return any(ch in text for ch in "\n\r\0")


def _job_problems(job, backend):
    name = job.get("name")
    label = f"job {name}" if isinstance(name, str) and name else "a job"
    problems = []
    if not isinstance(name, str) or not JOB_NAME.match(name):
        problems.append(f"{label}: name must be letters, digits, - and _ (it names files and units), not {name!r}")
    command = job.get("command")
    if not isinstance(command, list) or not command:
        problems.append(f"{label}: command must be a non-empty list of arguments (argv)")
    elif any(not isinstance(arg, (str, int, float)) or _has_control(str(arg)) for arg in command):
        problems.append(f"{label}: every command argument must be a string without newlines")
    schedule, calendar = job.get("schedule"), job.get("on_calendar")
    if backend == "systemd" and calendar:
        if not isinstance(calendar, str) or _has_control(calendar):
            problems.append(f"{label}: on_calendar must be a one-line string")
    elif schedule is None:
        wanted = "a schedule (cron: m h dom mon dow) or an on_calendar" if backend == "systemd" else "a schedule (m h dom mon dow)"
        problems.append(f"{label}: needs {wanted}")
    else:
        try:
            if backend == "systemd":
                on_calendar(schedule)
            else:
                parse_cron(schedule)
        except CronError as exc:
            hint = "; give the job an explicit on_calendar" if backend == "systemd" else ""
            problems.append(f"{label}: {exc}{hint}")
    description = job.get("description")
    if description is not None and (not isinstance(description, str) or _has_control(description)):
        problems.append(f"{label}: description must be one line of text")
    user = job.get("user", "root")
    if not isinstance(user, str) or not USER_NAME.match(user):
        problems.append(f"{label}: user {user!r} is not a user name")
    for key in ("log", "lock", "chdir"):
        path = job.get(key)
        if path is not None and (not isinstance(path, str) or not path.startswith("/") or _has_control(path)):
            problems.append(f"{label}: {key} must be an absolute path, not {path!r}")
    timeout = job.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0):
        problems.append(f"{label}: timeout must be a positive number of seconds, not {timeout!r}")
    return problems


def job_problems(jobs, backend):
    """Every problem of a job list, one line each; [] when the list can be installed."""
    if not isinstance(jobs, list):
        return ["lifeboat_schedule_jobs must be a list of jobs"]
    problems, seen = [], set()
    for job in jobs:
        if not isinstance(job, dict):
            problems.append(f"every job must be a mapping, not {job!r}")
            continue
        problems.extend(_job_problems(job, backend))
        name = job.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append(f"job name {name} is used twice")
            seen.add(name)
    return problems


def _enabled(job):
    enabled = job.get("enabled", True)
    return enabled.strip().lower() in ("true", "yes", "1") if isinstance(enabled, str) else bool(enabled)


def normalize_jobs(jobs, runner, log_dir, lock_dir, backend):
    """The enabled jobs with every default filled in and the runner's argv built once."""
    result = []
    for job in jobs:
        if not _enabled(job):
            continue
        name = job["name"]
        log = job.get("log") or f"{log_dir.rstrip('/')}/{name}.log"
        lock = job.get("lock") or f"{lock_dir.rstrip('/')}/{name}.lock"
        argv = [runner, name, "--log", log, "--lock", lock]
        if job.get("timeout"):
            argv += ["--timeout", str(job["timeout"])]
        if job.get("chdir"):
            argv += ["--chdir", job["chdir"]]
        argv += ["--", *(str(arg) for arg in job["command"])]
        entry = {"name": name, "description": job.get("description") or "",
                 "user": job.get("user", "root"), "log": log, "lock": lock, "argv": argv,
                 "schedule": " ".join(job["schedule"].split()) if job.get("schedule") else None}
        if backend == "systemd":
            entry["on_calendar"] = job.get("on_calendar") or on_calendar(job["schedule"])
        result.append(entry)
    return result


def _ancestors(path):
    """Every folder above a file, from / down to its own folder."""
    parts = path.rstrip("/").split("/")[1:-1]
    return ["/" + "/".join(parts[:index]) for index in range(len(parts) + 1)]


def _checked_jobs(jobs, owner):
    """The jobs whose user is neither root nor the owner of the role's folders: those that need access."""
    return [job for job in jobs if job["user"] not in ("root", owner)]


def access_paths(jobs, owner):
    """The folders to look at (stat) before judging whether each job's user reaches its log and lock."""
    return sorted({folder for job in _checked_jobs(jobs, owner) for key in ("log", "lock")
                   for folder in _ancestors(job[key])})


def access_problems(jobs, owner, group, made_folders, passwd, groups, stats):
    """One line per job whose user could not open its log or lock (the runner would exit 73 on every run).

    The role makes each such job's log and lock, owned by the job's user, so the user needs only to
    pass through every folder above them. A folder the role makes (made_folders, and the missing ones
    above them) will be owner:group 0750: the user must be in the group. Any other folder is judged by
    its stat (it must exist: the role does not make it). `passwd` and `groups` are getent's facts,
    `stats` {path: stat result} of access_paths()."""
    group_entry = groups.get(group)
    made_folders = [folder.rstrip("/") for folder in made_folders]
    made = set(made_folders)
    for folder in made_folders:
        made.update(path for path in _ancestors(folder + "/x") if not stats.get(path, {}).get("exists"))
    problems = []
    for job in _checked_jobs(jobs, owner):
        user = job["user"]
        label = f"job {job['name']}: user {user}"
        if user not in passwd:
            problems.append(f"{label} does not exist on this host; create it or run the job as another user")
            continue
        uid, gid = int(passwd[user][1]), int(passwd[user][2])
        gids = {gid} | {int(entry[1]) for entry in groups.values()
                        if user in [m for m in (entry[2] or "").split(",") if m]}
        for key in ("log", "lock"):
            for folder in _ancestors(job[key]):
                stat = stats.get(folder, {})
                if folder in made:
                    if group_entry is None or int(group_entry[1]) not in gids:
                        problems.append(f"{label} cannot open its {key} {job[key]}: {folder} is {owner}:{group} 0750 "
                                        f"and {user} is not in group {group}; add {user} to {group} or run the job as "
                                        f"{owner}")
                        break
                    continue
                if not stat.get("exists"):
                    problems.append(f"{label} cannot open its {key} {job[key]}: folder {folder} does not exist and "
                                    "the role does not make it; create it or choose another path")
                    break
                mode = int(stat["mode"], 8)
                bit = 0o100 if stat["uid"] == uid else 0o010 if stat["gid"] in gids else 0o001
                if not (stat.get("isdir") and mode & bit):
                    problems.append(f"{label} cannot open its {key} {job[key]}: it cannot pass through {folder} "
                                    f"(mode {stat['mode']}, uid {stat['uid']}, gid {stat['gid']})")
                    break
            else:
                continue
            break  # one line per job is enough to act on
    return problems


def installed_paths(jobs, log_dir, lock_dir):
    """{logs, locks}: where each named job of the list keeps its log and lock (disabled ones too), for
    state absent. The list is not validated then: a job without a usable name has nothing to remove."""
    logs, locks = set(), set()
    for job in jobs if isinstance(jobs, list) else []:
        name = job.get("name") if isinstance(job, dict) else None
        if not isinstance(name, str) or not JOB_NAME.match(name):
            continue
        for key, folder, found in (("log", log_dir, logs), ("lock", lock_dir, locks)):
            path = job.get(key) or f"{folder.rstrip('/')}/{name}.{key}"
            if isinstance(path, str) and path.startswith("/") and not _has_control(path):
                found.add(path)
    return {"logs": sorted(logs), "locks": sorted(locks)}


# What each pgBackRest job runs after --config and --stanza (issue 19): the backup types, and verify,
# which reads every file of the repository back against its checksum.
PGBACKREST_COMMANDS = {
    "full": ["backup", "--type=full"],
    "diff": ["backup", "--type=diff"],
    "incr": ["backup", "--type=incr"],
    "verify": ["verify"],
}
PGBACKREST_DESCRIPTIONS = {
    "full": "pgBackRest full backup",
    "diff": "pgBackRest differential backup (what changed since the last full)",
    "incr": "pgBackRest incremental backup (what changed since the last backup)",
    "verify": "pgBackRest verify (every file of the repository read back against its checksum)",
}


def pgbackrest_jobs(stanzas, times, program, config, user, lock_dir):
    """The scheduled pgBackRest jobs: one per stanza and kind (full, diff, incr, verify) with a time in
    `times` ({kind: cron expression}; an empty one schedules none of that kind), run as `user` (the
    database OS user, who owns the repository). Every job of a stanza shares one lock, so a backup still
    running makes the next job of that stanza log `skipped` instead of failing on pgBackRest's own lock.
    The variables are checked first (pgbackrest_problems), the jobs then like every other."""
    jobs = []
    for stanza in stanzas:
        name = stanza["name"]
        # Job names take no dot; a stanza name may have one.
        label = name.replace(".", "_")
        for kind, schedule in times.items():
            if not schedule:
                continue
            jobs.append({
                "name": f"pgbackrest-{kind}-{label}",
                "description": f"{PGBACKREST_DESCRIPTIONS[kind]} of stanza {name}",
                "schedule": schedule,
                "user": user,
                "lock": f"{lock_dir.rstrip('/')}/pgbackrest-{label}.lock",
                # Its INFO lines (the backup's label, the WAL it needs) go to the job's log.
                "command": [program, f"--config={config}", f"--stanza={name}", "--log-level-console=info",
                            *PGBACKREST_COMMANDS[kind]],
            })
    return jobs


def pgbackrest_problems(stanzas, times):
    """One line per problem of the pgBackRest schedule's variables; [] when it can be installed."""
    problems = []
    if not isinstance(times, dict):
        return ["lifeboat_schedule_pgbackrest_times must be a mapping of full, diff, incr and verify to cron "
                "expressions"]
    unknown = sorted(set(times) - set(PGBACKREST_COMMANDS))
    if unknown:
        problems.append(f"lifeboat_schedule_pgbackrest_times: {', '.join(map(str, unknown))} is not one of "
                        f"{', '.join(PGBACKREST_COMMANDS)}")
    if not isinstance(stanzas, list) or not stanzas:
        problems.append("lifeboat_schedule_pgbackrest_stanzas must be a non-empty list of stanzas "
                        "(lifeboat_pgbackrest_stanzas)")
        return problems
    for stanza in stanzas:
        name = stanza.get("name") if isinstance(stanza, dict) else None
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name):
            problems.append(f"lifeboat_schedule_pgbackrest_stanzas: stanza name {name!r} must be letters, digits, "
                            ". _ and - (as lifeboat_pgbackrest takes it)")
    return problems


# Seed 003's recovery tests (issue 21): its "毎週 自動復旧テスト / 毎月 コンポーネント復旧テスト / 毎四半期
# 完全復旧テスト", each a playbook of this project run by the schedule like the default jobs.
RECOVERY_TEST_KINDS = {
    "weekly": "weekly automatic-recovery test",
    "monthly": "monthly component restore test",
    "quarterly": "quarterly full recovery test",
}


def _recovery_playbook(playbook, project_dir):
    return playbook if playbook.startswith("/") else f"{project_dir.rstrip('/')}/playbooks/{playbook}"


def recovery_test_jobs(times, playbooks, args, ansible_command, project_dir, lock_dir):
    """The scheduled recovery tests: one job per kind with a time in `times` ({kind: cron expression}; an empty
    one schedules none of that kind), running `playbooks[kind]` (a name under the project's playbooks/, or an
    absolute path) with `args[kind]` after `ansible_command`, from the project's folder. The three share one
    lock: two recovery tests never run at once on a host (the later logs `skipped`). Checked first by
    recovery_test_problems()."""
    jobs = []
    for kind, schedule in times.items():
        if not schedule or kind not in RECOVERY_TEST_KINDS:
            continue
        playbook = _recovery_playbook(str(playbooks.get(kind) or ""), project_dir)
        jobs.append({
            "name": f"recovery-test-{kind}",
            "description": f"{RECOVERY_TEST_KINDS[kind]}: {playbook.rsplit('/', 1)[-1]} (seed 003)",
            "schedule": schedule,
            "lock": f"{lock_dir.rstrip('/')}/recovery-test.lock",
            "chdir": project_dir,
            "command": [*ansible_command, playbook, *(str(arg) for arg in (args or {}).get(kind) or [])],
        })
    return jobs


def _extra_vars(arguments):
    """{name: value} of the -e name=value pairs of an argument list."""
    values = {}
    for flag, value in zip(arguments, arguments[1:]):
        if flag in ("-e", "--extra-vars") and isinstance(value, str) and "=" in value:
            name, _, rest = value.partition("=")
            values[name.strip()] = rest.strip()
    return values


# The kinds that restore by what they are (seed 003's component restore and full recovery), whatever playbook
# runs them, and the project's playbooks that restore, whatever kind runs them.
RESTORING_KINDS = ("monthly", "quarterly")
RESTORING_PLAYBOOKS = ("restore.yml", "full_recovery.yml")


def recovery_test_problems(times, playbooks, args, production=False, staging=False):
    """One line per problem of the recovery tests' variables; [] when they can be installed. A test that restores
    is installed only on a host that says it is a staging copy (`staging`): nothing marks a production host for
    sure (an inventory without lifeboat_production is production by default), so the opt-in is the staging
    side's."""
    problems = []
    for label, value in (("times", times), ("playbooks", playbooks), ("args", args)):
        if not isinstance(value, dict):
            problems.append(f"lifeboat_schedule_recovery_tests_{label} must be a mapping of weekly, monthly and "
                            "quarterly to " + {"times": "cron expressions", "playbooks": "playbooks",
                                               "args": "argument lists"}[label])
        else:
            unknown = sorted(set(value) - set(RECOVERY_TEST_KINDS))
            if unknown:
                problems.append(f"lifeboat_schedule_recovery_tests_{label}: {', '.join(map(str, unknown))} is not one "
                                f"of {', '.join(RECOVERY_TEST_KINDS)}")
    if problems:
        return problems
    restoring = []
    for kind in RECOVERY_TEST_KINDS:
        if not times.get(kind):
            continue
        playbook, arguments = playbooks.get(kind), args.get(kind) or []
        if not isinstance(playbook, str) or not playbook.endswith((".yml", ".yaml")) or _has_control(playbook):
            problems.append(f"lifeboat_schedule_recovery_tests_playbooks: the {kind} test needs a playbook (a .yml "
                            f"under the project's playbooks/, or an absolute path), not {playbook!r}")
            continue
        if not isinstance(arguments, list) or not all(isinstance(a, (str, int)) for a in arguments):
            problems.append(f"lifeboat_schedule_recovery_tests_args: the {kind} test's arguments must be a list of "
                            "strings ([-e, name=value])")
            continue
        name = playbook.rsplit("/", 1)[-1]
        if kind in RESTORING_KINDS or name in RESTORING_PLAYBOOKS:
            restoring.append(f"{kind} {name}")
        extra = _extra_vars([str(a) for a in arguments])
        # A restore test restores a copy beside the live database, never over it: restore.yml swaps the
        # latest backup into restore_db, so restore_db must be a scratch database fed by another's backups.
        if name == "restore.yml" and not (extra.get("restore_db") and extra.get("restore_backup_db")
                                          and extra["restore_db"] != extra["restore_backup_db"]):
            problems.append(f"lifeboat_schedule_recovery_tests_args: the {kind} restore test must restore into a "
                            "scratch database from another one's backups, never over the live one: give it "
                            "[-e, restore_db=<scratch>, -e, restore_backup_db=<live>] with two different names")
        # A full recovery replaces the live database and uploads: a test of it belongs on a staging copy.
        if name == "full_recovery.yml" and production:
            problems.append(f"the {kind} full recovery test replaces the live database and uploads, and this host is "
                            "marked lifeboat_production: schedule it on a staging copy (seed 003's test environment)")
    if restoring and not staging:
        problems.append(f"the {' and '.join(restoring)} test{'s' if len(restoring) > 1 else ''} restore"
                        f"{'' if len(restoring) > 1 else 's'} on this host (a full recovery replaces the live database "
                        "and uploads), and it is not marked as a staging copy: set lifeboat_staging: true (or "
                        "lifeboat_schedule_recovery_tests_staging: true) on a staging host, as seed 003 runs them, or "
                        "empty their times in lifeboat_schedule_recovery_tests_times")
    return problems


class FilterModule:
    def filters(self):
        return {
            "lifeboat_systemd_quote": systemd_quote,
            "lifeboat_schedule_problems": job_problems,
            "lifeboat_schedule_normalize": normalize_jobs,
            "lifeboat_schedule_access_paths": access_paths,
            "lifeboat_schedule_access_problems": access_problems,
            "lifeboat_schedule_installed_paths": installed_paths,
            "lifeboat_schedule_pgbackrest_jobs": pgbackrest_jobs,
            "lifeboat_schedule_pgbackrest_problems": pgbackrest_problems,
            "lifeboat_schedule_recovery_test_jobs": recovery_test_jobs,
            "lifeboat_schedule_recovery_test_problems": recovery_test_problems,
        }
