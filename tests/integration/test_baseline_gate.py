"""playbooks/baseline.yml (role lifeboat_baseline), seed 000's baseline gate, through ansible-playbook on the opendolphin fixture:
Legacy on the session's embedded server, Modernized on a second embedded server of this module's own.

A run of the gate costs some 20 s here (about 25 module runs and 17 evidence files), so the runs are
made once, by a module fixture, two at a time where that cannot blur what a test checks: the gate
on fresh databases, a broken gate and a check-mode run on empty databases side by side (each on its
own databases); then the re-run of the gate and a check-mode run on the databases it made. The tests
read what those runs did and left.
"""
import concurrent.futures
import json
import os
import stat

import pytest

from conftest import PROJECT, Ansible, Server, assert_one_line, pgserver

pytestmark = pytest.mark.parametrize("server", ["embedded"], indirect=True)

BASELINE = PROJECT / "playbooks" / "baseline.yml"
FIXTURE = PROJECT / "tests" / "fixtures" / "opendolphin"
MIGRATIONS = FIXTURE / "migrations"
LATEST = sorted(p.name for p in MIGRATIONS.glob("V*__*.sql"))[-1][1:5]
EVIDENCE = {"README.md", "legacy_schema_dump.sql", "legacy_schema_apply.log", "modern_schema_apply.log",
            "psql_legacy_dt.log", "psql_modern_dt.log", "legacy_seed.log", "modern_seed.log",
            "psql_legacy_d_users_count.log", "psql_modern_d_users_count.log", "flyway_migrate_legacy.log",
            "flyway_info_legacy.log", "flyway_migrate_modern.log", "flyway_info_modern.log", "sequences.log",
            "audit_smoke.log", "modern_required_objects.log"}
GATES = list(range(8))
ROLE = "lifeboat_baseline : "
STATS = ROLE + "Hand the gate's outcome to AWX"
REPORT = ROLE + "Report the gates"
VERDICT = ROLE + "Fail when a gate did not pass"
ROLE_TASKS = ("lifeboat_seed : Apply the schema and seed files to ", "lifeboat_seed : Run the migration action on ")
# The runbook's restart scenario (6.1): LOCAL.FACILITY.0001:nurse lost, two users left.
WITHOUT_NURSE = """
DELETE FROM d_module WHERE creator_id = 12;
DELETE FROM d_document WHERE creator_id = 12;
DELETE FROM d_roles WHERE user_id = 12;
DELETE FROM d_users WHERE id = 12;
"""


@pytest.fixture(scope="module")
def modern():
    """Modernized's server, on a port of its own (seed 000's 55433 next to Legacy's 5432)."""
    name = f"gate-modern-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    pgserver("stop", "--name", name, "--destroy")
    pgserver("start", "--name", name)
    yield Server(json.loads((PROJECT / ".lifeboat" / "servers" / name / "server.json").read_text()))
    pgserver("stop", "--name", name, "--destroy")


class Gate:
    """A Legacy and a Modernized database, created empty, and the gate's runs on them."""

    def __init__(self, legacy, modern, workdir, name, modern_seed_files=None):
        self.legacy, self.modern, self.workdir = legacy, modern, workdir
        self.legacy_db, self.modern_db = f"gate_{name}", f"gate_{name}_modern"
        self.evidence = workdir / "evidence"
        for srv, db in ((legacy, self.legacy_db), (modern, self.modern_db)):
            srv.drop_db(db)
            srv.sql("postgres", f'CREATE DATABASE "{db}"')
        modern_settings = {"db": self.modern_db, **modern.connection_options()}
        if modern_seed_files:
            modern_settings["seed_files"] = modern_seed_files
        self.settings = dict(
            lifeboat_baseline_legacy={"db": self.legacy_db, "port": legacy.port}, lifeboat_baseline_modern=modern_settings,
            lifeboat_baseline_schema_file=str(FIXTURE / "legacy_schema.sql"),
            lifeboat_baseline_seed_files=[str(FIXTURE / "local_synthetic_seed.sql")], lifeboat_baseline_migrations=str(MIGRATIONS),
            lifeboat_baseline_evidence_dir=str(self.evidence), lifeboat_baseline_work_dir=str(workdir / "work"))

    def run(self, label, *args):
        """ansible-playbook playbooks/baseline.yml in a folder of its own, so that runs can overlap."""
        (self.workdir / label).mkdir(parents=True)
        ansible = Ansible(self.legacy, self.workdir / label)
        ansible.write_inventory(**self.settings)
        return ansible.run_playbook(BASELINE, *args)

    def state(self):
        """What a run may change in both databases: tables, columns, indexes, row counts, sequences
        (all but the audit table's, which a rolled-back insert still advances), both histories."""
        return {name: database_state(srv, db, skip_sequences=("d_audit_event_id_seq",))
                for name, srv, db in (("legacy", self.legacy, self.legacy_db), ("modern", self.modern, self.modern_db))}


def database_state(srv, db, skip_sequences=()):
    tables = [r[0] for r in srv.sql(db, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                                        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")]
    state = {"rows": {t: srv.count(db, t) for t in tables},
             "columns": srv.sql(db, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                                    "WHERE table_schema = 'public' ORDER BY 1, 2"),
             "indexes": srv.sql(db, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"),
             "sequences": [r for r in srv.sql(db, "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1")
                           if r[0] not in skip_sequences]}
    for table in ("public.flyway_schema_history", "public.lifeboat_seed_history"):
        if table in tables:
            state[table] = srv.sql(db, f"SELECT * FROM {table} ORDER BY 1, 2")
    return state


def together(*runs):
    """Run ansible-playbook processes side by side (this machine has two cores) and return their results."""
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        return [future.result() for future in [pool.submit(run) for run in runs]]


@pytest.fixture(scope="module")
def gates(server, modern, tmp_path_factory):
    base = tmp_path_factory.mktemp("baseline")
    seed = base / "local_synthetic_seed_without_nurse.sql"
    seed.write_text((FIXTURE / "local_synthetic_seed.sql").read_text() + WITHOUT_NURSE)
    good = Gate(server, modern, base / "good", "good")
    broken = Gate(server, modern, base / "broken", "broken", modern_seed_files=[str(seed)])
    empty = Gate(server, modern, base / "empty", "empty")
    empty_before = empty.state()
    first, failing, preview = together(lambda: good.run("first"), lambda: broken.run("broken"),
                                       lambda: empty.run("preview", "--check"))
    gated, failed = good.state(), broken.state()
    again, check, recheck = together(lambda: good.run("again"), lambda: good.run("check", "--check"),
                                     lambda: broken.run("recheck", "--check"))
    yield dict(good=good, broken=broken, empty=empty, first=first, failing=failing, preview=preview,
               again=again, check=check, recheck=recheck, gated=gated, failed=failed, empty_before=empty_before)
    for gate in (good, broken, empty):
        gate.legacy.drop_db(gate.legacy_db)
        gate.modern.drop_db(gate.modern_db)


def stats(play):
    return play.result(STATS)["ansible_stats"]["data"]["lifeboat_baseline"]


def statuses(play):
    return stats(play)["gates"]


def run_dirs(gate):
    return sorted(p for p in gate.evidence.iterdir()) if gate.evidence.exists() else []


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def role_results(play, db):
    """The results of the role's apply and migrate tasks on database `db` (run or skipped)."""
    return [(name, result) for name, result in play.tasks if name in (ROLE_TASKS[0] + db, ROLE_TASKS[1] + db)]


def test_the_gate_passes_on_the_fixture_project_with_its_evidence(server, modern, gates):
    good, play = gates["good"], gates["first"]
    assert play.rc == 0, play.stdout[-3000:]
    assert statuses(play) == {str(n): "passed" for n in GATES}
    assert stats(play)["passed"] is True and stats(play)["failed_gates"] == []
    assert play.result(VERDICT)["_status"] == "skipped"
    report = play.result(REPORT)["msg"]
    assert report[0].endswith(": PASSED") and all(line.startswith("PASSED  ") for line in report[1:]), report

    # Legacy at the latest version, Modernized at 0222, each from Flyway's own history table.
    def versions(srv, db):
        return [r[0] for r in srv.sql(db, "SELECT version FROM flyway_schema_history WHERE success AND version IS NOT "
                                          "NULL ORDER BY installed_rank")]
    legacy, modernized = versions(server, good.legacy_db), versions(modern, good.modern_db)
    assert legacy[0] == "0" and legacy[-1] == LATEST and modernized[0] == "0" and modernized[-1] == "0222"
    assert "0223" not in modernized and len(legacy) > len(modernized) > 15
    for srv, db in ((server, good.legacy_db), (modern, good.modern_db)):
        assert srv.count(db, "d_users") >= 3
        assert srv.count(db, "d_audit_event") == 0, "the smoke insert was left behind"
        assert srv.sql(db, "SELECT last_value, is_called FROM facility_num") == [(103, True)]

    run_dir = good.evidence / stats(play)["run_id"]
    assert stats(play)["evidence"] == str(run_dir)
    assert len(run_dir.name) == 16 and run_dir.name.startswith("20") and run_dir.name.endswith("Z")
    assert {p.name for p in run_dir.iterdir()} == EVIDENCE
    assert mode(run_dir) == 0o700 and {p.name: mode(p) for p in run_dir.iterdir()} == dict.fromkeys(EVIDENCE, 0o600)

    readme = (run_dir / "README.md").read_text()
    assert readme.startswith("# DB baseline gate (seed 000 §6.2): PASSED\n")
    assert f"| Run | {run_dir.name} |" in readme
    assert f"`{good.legacy_db}` at 127.0.0.1:{server.port}, migrated to latest (now v{LATEST})" in readme
    assert f"`{good.modern_db}` at 127.0.0.1:{modern.port}, migrated to 0222 (now v0222)" in readme
    rows = [line for line in readme.splitlines() if line[:4] in {f"| {n} " for n in GATES}]
    assert [row.split(" | ")[0] for row in rows] == [f"| {n}" for n in GATES]
    assert all(" | PASSED | " in row for row in rows), rows
    assert "`psql_legacy_d_users_count.log`" in readme and "- None: every gate passed" in readme

    # The evidence says what the runbook's tee'd logs say.
    dump = (run_dir / "legacy_schema_dump.sql").read_text()
    assert "CREATE TABLE public.d_users" in dump and "flyway_schema_history" not in dump
    assert "applied schema file legacy_schema_dump.sql" in (run_dir / "modern_schema_apply.log").read_text()
    assert " public | d_users " in (run_dir / "psql_legacy_dt.log").read_text()
    assert "PASSED  schema_parity: same schema" in (run_dir / "psql_modern_dt.log").read_text()
    assert "\n     3\n(1 row)\n" in (run_dir / "psql_modern_d_users_count.log").read_text()
    info = (run_dir / "flyway_info_modern.log").read_text()
    assert "Schema version: 0222\n" in info
    assert [line.split("|")[6].strip() for line in info.splitlines() if "| 0222 " in line or "| 0223 " in line] \
        == ["Success", "Above Target"]
    assert f'now at version v{LATEST}' in (run_dir / "flyway_migrate_legacy.log").read_text()
    assert "sequence public.facility_num: next value 104" in (run_dir / "sequences.log").read_text()
    assert (run_dir / "audit_smoke.log").read_text().count("INSERT 0 1\nROLLBACK\n") == 2
    everything = play.stdout + "".join(p.read_text() for p in run_dir.iterdir())
    assert server.password not in everything and modern.password not in everything


def test_a_second_run_passes_and_changes_nothing(server, modern, gates):
    good, play = gates["good"], gates["again"]
    assert play.rc == 0, play.stdout[-3000:]
    # Gate 2's parity is checked before Flyway; now Legacy (latest) and Modernized (0222) differ by design.
    expected = {str(n): "passed" for n in GATES}
    expected["2"] = "skipped"
    assert statuses(play) == expected
    parity = next(line for line in play.result(REPORT)["msg"] if line.startswith("SKIPPED 2 "))
    assert "Flyway has already migrated" in parity and "only in " + good.legacy_db in parity

    for db in (good.legacy_db, good.modern_db):
        results = role_results(play, db)
        ran = [(name, r) for name, r in results if r["_status"] != "skipped"]
        assert len(ran) >= 3, results  # gate 0, 3 and 4 on each database
        assert [name for name, r in ran if r["changed"] or r["failed"]] == [], ran
        assert all(f.get("status") in ("unchanged", "changed") for _, r in ran for f in r.get("files", []))
        assert all(r.get("applied", []) == [] for _, r in ran)
    # Nothing changed in either database, the sequences included (but for the audit table's id,
    # which the rolled-back insert took).
    assert good.state() == gates["gated"]
    assert len(run_dirs(good)) == 2


def test_check_mode_changes_neither_database(server, modern, gates):
    good, check = gates["good"], gates["check"]
    assert check.rc == 0, check.stdout[-3000:]
    assert stats(check)["check_mode"] is True and stats(check)["evidence"] is None
    expected = {str(n): "passed" for n in GATES}
    expected.update({"2": "skipped", "6": "skipped"})
    assert statuses(check) == expected
    for db in (good.legacy_db, good.modern_db):
        ran = [r for name, r in role_results(check, db) if r["_status"] != "skipped"]
        assert len(ran) == 4 and not any(r["changed"] for r in ran), ran  # gates 0, 3, 4 and 5
    assert good.state() == gates["gated"]
    assert len(run_dirs(good)) == 2, "check mode wrote evidence"

    # On empty databases, check mode says what gate 0 would do and stops there, applying nothing.
    empty, preview = gates["empty"], gates["preview"]
    assert preview.rc == 0, preview.stdout[-3000:]
    assert statuses(preview) == {str(n): "skipped" for n in GATES}
    report = preview.result(REPORT)["msg"]
    assert report[0].endswith("PASSED - check mode")
    assert report[1].startswith("SKIPPED 0 ") and "check mode: would apply schema file legacy_schema.sql" in report[1]
    assert all("not run: gate 0 would change Legacy first (check mode)" in line for line in report[2:]), report
    assert empty.state() == gates["empty_before"] and gates["empty_before"]["legacy"]["rows"] == {}
    assert run_dirs(empty) == []


def test_a_failed_gate_is_in_the_readme_and_fails_the_play_naming_it(server, modern, gates):
    broken, play = gates["broken"], gates["failing"]
    assert play.rc != 0
    assert statuses(play) == {"0": "passed", "1": "passed", "2": "passed", "3": "failed",
                              **{str(n): "skipped" for n in GATES[4:]}}
    assert stats(play)["failed_gates"] == [3] and stats(play)["passed"] is False
    assert_one_line(play.result(VERDICT), "FAILED at gate 3 (Seed data and users)", broken.modern_db,
                    "min_rows public.d_users: 2 row(s), at least 3 required", "README.md")
    assert modern.count(broken.modern_db, "d_users") == 2 and server.count(broken.legacy_db, "d_users") == 3
    # Gates after the failed one were not run: neither database was migrated.
    for srv, db in ((server, broken.legacy_db), (modern, broken.modern_db)):
        assert srv.sql(db, "SELECT to_regclass('flyway_schema_history')") == [(None,)]

    [run_dir] = run_dirs(broken)
    readme = (run_dir / "README.md").read_text()
    assert readme.startswith("# DB baseline gate (seed 000 §6.2): FAILED at gate 3\n")
    row = next(line for line in readme.splitlines() if line.startswith("| 3 | "))
    assert " | FAILED | " in row and "2 row(s), at least 3 required" in row
    assert all(" | SKIPPED | not run: gate 3 failed | " in line for line in readme.splitlines()
               if line[:4] in ("| 4 ", "| 5 ", "| 6 ", "| 7 ")), readme
    assert "- Gate 3 (Seed data and users) FAILED: " in readme and "runbook 4.7 No. 4" in readme
    count = (run_dir / "psql_modern_d_users_count.log").read_text()
    assert "\n     2\n(1 row)\n" in count and "FAILED  min_rows public.d_users" in count
    assert "applied seed file local_synthetic_seed_without_nurse.sql" in (run_dir / "modern_seed.log").read_text()
    assert {p.name for p in run_dir.iterdir()} == {
        "README.md", "legacy_schema_dump.sql", "legacy_schema_apply.log", "modern_schema_apply.log",
        "psql_legacy_dt.log", "psql_modern_dt.log", "legacy_seed.log", "modern_seed.log",
        "psql_legacy_d_users_count.log", "psql_modern_d_users_count.log"}

    # Check mode finds the same failure and changes nothing. Legacy's seed added facility_num since its
    # schema was dumped, so its new dump differs from the one Modernized got, which is left alone.
    recheck = gates["recheck"]
    assert recheck.rc != 0 and statuses(recheck) == statuses(play)
    assert_one_line(recheck.result(VERDICT), "FAILED at gate 3", "2 row(s), at least 3 required")
    gate0 = next(line for line in recheck.result(REPORT)["msg"] if line.startswith("PASSED  0 "))
    assert "Legacy: legacy_schema.sql unchanged; Modernized: legacy_schema_dump.sql differs from the dump " \
           "applied before, left alone" in gate0, gate0
    assert broken.state() == gates["failed"] and run_dirs(broken) == [run_dir]


def test_settings_are_checked_before_anything_runs(server, tmp_path):
    """The role's argument_specs and its own checks refuse bad settings in one line, before any database
    is touched or any evidence written."""
    ansible = Ansible(server, tmp_path)
    required = dict(lifeboat_baseline_legacy={"db": "gate_never"}, lifeboat_baseline_modern={"db": "gate_never_modern"},
                    lifeboat_baseline_schema_file=str(FIXTURE / "legacy_schema.sql"),
                    lifeboat_baseline_seed_files=[str(FIXTURE / "local_synthetic_seed.sql")],
                    lifeboat_baseline_migrations=str(MIGRATIONS), lifeboat_baseline_evidence_dir=str(tmp_path / "evidence"))
    # argument_specs (ansible-core's message: "Validation of arguments failed:" and a line of reasons),
    # then the role's own checks (one line).
    cases = [
        ({}, "missing required arguments: lifeboat_baseline_evidence_dir, lifeboat_baseline_legacy", False),
        (dict(required, lifeboat_baseline_min_users="many"), "lifeboat_baseline_min_users", False),
        (dict(required, lifeboat_baseline_legacy={"port": 5432}), "lifeboat_baseline_legacy", False),
        (dict(required, lifeboat_baseline_reset=True), "-e lifeboat_baseline_confirm=public", True),
        (dict(required, lifeboat_baseline_modern_target=222), "must be quoted strings (lifeboat_baseline_modern_target", True),
    ]
    for settings, fragment, one_line in cases:
        ansible.write_inventory(**settings)
        play = ansible.run_playbook(BASELINE)
        assert play.rc != 0, settings
        if one_line:
            assert_one_line(play.last, fragment)
        else:
            assert play.last["failed"] and fragment in play.last["msg"], play.last["msg"]
        assert not any(name.startswith(("lifeboat_seed", "Apply")) for name, _ in play.tasks), play.tasks
    assert not (tmp_path / "evidence").exists()
    assert not server.exists("gate_never")
