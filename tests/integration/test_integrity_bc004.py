"""lifeboat.db.integrity on the BC-004 "consulting_tool" fixture (tests/fixtures/bc004).

The clean fixture passes every check: the built-ins, the declared relationships of the closure
table organization_hierarchies (which has no foreign keys), the runbook's integrity-check.sql run
unmodified, min_rows, required tables and columns, and sequences. Every other test applies ONE
breakage and shows the check that catches it, with a sample of the offending row, and that no
other check fails (tests/fixtures/bc004/README.md has the table).
"""
import hashlib
import json
import re

import psycopg
import pytest

from conftest import PROJECT, assert_one_line, fixture_database, the_check, with_status

FIXTURE = PROJECT / "tests" / "fixtures" / "bc004"
RUNBOOK_SQL = FIXTURE / "integrity-check.sql"

# integrity-check.sql holds six statements; each is a check named `bc004: <its check_name>`.
RUNBOOK_CHECKS = ["bc004: " + name for name in (
    "organization_units orphans", "organization_hierarchies orphans", "organization_units member_count mismatch",
    "teams member_count mismatch", "over-allocated users", "teams without leaders")]

# The eleven tables of the runbook's daily backup (pg_dump -t ...), and users.
TABLES = ["organizations", "organization_units", "organization_hierarchies", "organization_members", "teams",
          "team_members", "team_leaders", "governance_policies", "governance_rules", "policy_scopes",
          "policy_violations", "users"]

# One check per foreign key; policy_violations is partitioned and only its parent's constraints count.
FOREIGN_KEYS = ["foreign_key public." + name for name in (
    "organization_units.organization_units_organization_id_fkey",
    "organization_units.organization_units_parent_unit_id_fkey",
    "organization_members.organization_members_unit_id_fkey",
    "organization_members.organization_members_user_id_fkey",
    "teams.teams_organization_id_fkey",
    "teams.teams_unit_id_fkey",
    "team_members.team_members_team_id_fkey",
    "team_members.team_members_user_id_fkey",
    "team_leaders.team_leaders_team_id_fkey",
    "team_leaders.team_leaders_user_id_fkey",
    "governance_policies.governance_policies_organization_id_fkey",
    "governance_rules.governance_rules_policy_id_fkey",
    "policy_scopes.policy_scopes_policy_id_fkey",
    "policy_violations.policy_violations_policy_id_fkey",
    "policy_violations.policy_violations_rule_id_fkey")]

# Rows data.sql loads, used as min_rows.
MIN_ROWS = {"public.users": 300, "public.organization_units": 51, "public.organization_hierarchies": 135,
            "public.team_leaders": 76, "public.policy_violations": 600}

# Columns the runbook's SQL (integrity checks, retention, partition indexes) relies on.
REQUIRED_COLUMNS = {
    "public.organization_units": ["id", "parent_unit_id", "member_count"],
    "public.organization_hierarchies": ["ancestor_unit_id", "descendant_unit_id", "depth"],
    "public.organization_members": ["unit_id", "user_id", "status", "joined_at", "left_at"],
    "public.teams": ["id", "member_count", "status"],
    "public.team_members": ["team_id", "user_id", "allocation_rate", "status", "left_at"],
    "public.team_leaders": ["team_id", "user_id", "status", "removed_at"],
    "public.policy_violations": ["policy_id", "status", "detected_at", "target_type", "target_id", "context"],
}

BUILT_INS = ["sequences", "invalid_indexes", "not_valid_constraints", "amcheck"]

EVERY_CHECK = sorted(
    FOREIGN_KEYS + BUILT_INS
    + ["relationship hierarchy_ancestor", "relationship hierarchy_descendant", "required_tables", "required_columns"]
    + ["min_rows " + table for table in MIN_ROWS]
    + ["sequence public.users_id_seq", "sequence public.policy_violations_id_seq"]
    + RUNBOOK_CHECKS)


def options(**overrides):
    """Every option of the BC-004 gate; a test overrides or adds what it needs."""
    opts = dict(
        # organization_hierarchies has no foreign keys: its two columns are declared here.
        relationships=[
            dict(name="hierarchy_ancestor", table="public.organization_hierarchies", columns="ancestor_unit_id",
                 references="public.organization_units"),
            dict(name="hierarchy_descendant", table="public.organization_hierarchies", columns=["descendant_unit_id"],
                 references="public.organization_units", referenced_columns=["id"]),
        ],
        checks=[dict(name="bc004", file=str(RUNBOOK_SQL), value=0)],
        min_rows=dict(MIN_ROWS),
        # Unqualified means public.
        required_tables=["public." + table for table in TABLES[:-1]] + ["users"],
        required_columns={table: list(columns) for table, columns in REQUIRED_COLUMNS.items()},
        sequences=["public.users_id_seq", dict(name="public.policy_violations_id_seq", next_at_least=601)],
    )
    opts.update(overrides)
    return opts


def run(ansible, db, check=False, **overrides):
    return ansible.module("integrity", check=check, db=db, **options(**overrides))


def db_name(request, suffix=""):
    raw = request.node.name.lower()
    slug = re.sub(r"[^a-z0-9]+", "_", raw).strip("_")
    return "t_%s_%s%s" % (slug[:40], hashlib.sha1(raw.encode()).hexdigest()[:6], suffix)


def load_bc004(server, db):
    """A new database `db` holding schema.sql and data.sql."""
    fixture_database(server, db, FIXTURE / "schema.sql", FIXTURE / "data.sql")


@pytest.fixture
def bc004(server, request):
    db = db_name(request)
    load_bc004(server, db)
    yield db
    server.drop_db(db)


def sample_has(check, **values):
    """Some sample row holds all these column values."""
    return any(all(row.get(column) == value for column, value in values.items()) for row in check["sample"])


def assert_caught(result, *names):
    """The task failed because exactly these checks failed; every other check ran and passed
    (amcheck may be skipped), and the one-line message names the failed checks of severity error."""
    assert result["failed"] and result["passed"] is False, result.get("msg")
    assert with_status(result, "failed") == sorted(names), [(c["name"], c["summary"]) for c in result["checks"]
                                                            if c["status"] != "passed"]
    assert with_status(result, "error") == []
    others = [check for check in result["checks"] if check["name"] not in names]
    assert all(c["status"] == "passed" or (c["name"] == "amcheck" and c["status"] == "skipped") for c in others)
    errors = [name for name in names if the_check(result, name)["severity"] == "error"]
    assert set(errors) <= set(result["failed_checks"]) <= set(names)
    assert result["msg"] == result["summary"]
    assert_one_line(result, *errors)
    for name in names:
        check = the_check(result, name)
        assert "\n" not in check["summary"] and len(check["sample"]) <= 5


def test_fixture_is_clean_and_every_check_passes(server, ansible, bc004):
    amcheck = bool(server.sql(bc004, "SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'"))
    if amcheck:
        server.sql(bc004, "CREATE EXTENSION amcheck")
    result = run(ansible, bc004)
    assert not result["failed"], result.get("msg")
    assert result["passed"] is True and result["failed_checks"] == [] and result["changed"] is False
    assert sorted(check["name"] for check in result["checks"]) == EVERY_CHECK
    for check in result["checks"]:
        assert {"name", "kind", "severity", "status", "summary", "sample"} <= set(check), check
        assert check["status"] == ("skipped" if check["name"] == "amcheck" and not amcheck else "passed"), check
        assert check["severity"] == ("warning" if check["name"] == "not_valid_constraints" else "error"), check
        assert "\n" not in check["summary"]
    skipped = 0 if amcheck else 1
    assert result["counts"] == {"passed": len(EVERY_CHECK) - skipped, "failed": 0, "skipped": skipped, "error": 0}
    assert "\n" not in result["summary"]

    fk = the_check(result, "foreign_key public.policy_violations.policy_violations_policy_id_fkey")
    assert fk["orphans"] == 0 and fk["sample"] == []
    sequence = the_check(result, "sequence public.policy_violations_id_seq")
    assert (sequence["last_value"], sequence["is_called"], sequence["next_value"]) == (600, True, 601)
    # Reading a sequence's state does not consume a value.
    assert server.sql(bc004, "SELECT last_value FROM policy_violations_id_seq") == [(600,)]


@pytest.mark.parametrize("how", ["disabled_triggers", "replica_into_partition"])
def test_orphan_behind_a_foreign_key_is_found(server, ansible, bc004, how):
    if how == "disabled_triggers":
        # As the runbook's full-restore.sh loads: ALTER TABLE ... DISABLE TRIGGER ALL turns the FK off.
        server.sql(bc004, "ALTER TABLE team_members DISABLE TRIGGER ALL; "
                          "INSERT INTO team_members (team_id, user_id, allocation_rate, status, joined_at, left_at) "
                          "VALUES (9999, 1, 0.10, 'inactive', '2024-01-01', '2024-02-01'); "
                          "ALTER TABLE team_members ENABLE TRIGGER ALL")
        name, evidence = "foreign_key public.team_members.team_members_team_id_fkey", dict(team_id=9999)
    else:
        # A replica-role session skips FK triggers; the row lands in partition policy_violations_2025,
        # and the check is the partitioned parent's constraint (not one per partition).
        server.sql(bc004, "SET session_replication_role = replica; "
                          "INSERT INTO policy_violations (policy_id, target_type, target_id, detected_at) "
                          "VALUES (999, 'user', 1, '2025-06-15 12:00:00+00')")
        name, evidence = "foreign_key public.policy_violations.policy_violations_policy_id_fkey", dict(policy_id=999)
    result = run(ansible, bc004)
    assert_caught(result, name)
    check = the_check(result, name)
    assert check["kind"] == "foreign_key" and check["orphans"] == 1
    assert sample_has(check, **evidence), check["sample"]


def test_orphan_under_a_not_valid_foreign_key_is_found(server, ansible, bc004):
    """ADD CONSTRAINT ... NOT VALID skips the existing rows: an orphan stays, and the constraint
    itself is reported (as a warning) too."""
    server.sql(bc004, "UPDATE teams SET created_by = 99999 WHERE id = 5; "
                      "ALTER TABLE teams ADD CONSTRAINT teams_created_by_fkey "
                      "FOREIGN KEY (created_by) REFERENCES users (id) NOT VALID")
    result = run(ansible, bc004)
    name = "foreign_key public.teams.teams_created_by_fkey"
    assert_caught(result, name, "not_valid_constraints")
    check = the_check(result, name)
    assert check["orphans"] == 1 and sample_has(check, created_by=99999), check["sample"]
    assert "teams_created_by_fkey" in json.dumps(the_check(result, "not_valid_constraints")["sample"])


def test_orphan_in_the_closure_table_is_found_by_the_declared_relationship(server, ansible, bc004):
    """organization_hierarchies has no foreign keys: only the declared relationship (and the
    runbook's own check) see a descendant that is not a unit."""
    server.sql(bc004, "INSERT INTO organization_hierarchies (ancestor_unit_id, descendant_unit_id, depth, created_at) "
                      "VALUES (2, 9999, 1, '2024-01-01 00:00:00+00')")
    result = run(ansible, bc004)
    assert_caught(result, "relationship hierarchy_descendant", "bc004: organization_hierarchies orphans")
    relationship = the_check(result, "relationship hierarchy_descendant")
    assert sample_has(relationship, descendant_unit_id=9999), relationship["sample"]
    assert the_check(result, "bc004: organization_hierarchies orphans")["sample"] == [
        {"check_name": "organization_hierarchies orphans", "count": 1}]


def test_sequence_behind_its_column_is_found(server, ansible, bc004):
    server.sql(bc004, "SELECT setval(pg_get_serial_sequence('organization_units', 'id'), 10)")
    named = "sequence public.organization_units_id_seq"
    result = run(ansible, bc004, sequences=["public.users_id_seq",
                                            dict(name="public.policy_violations_id_seq", next_at_least=601),
                                            dict(name="public.organization_units_id_seq", next_at_least=52)])
    assert_caught(result, "sequences", named)
    assert "organization_units_id_seq" in json.dumps(the_check(result, "sequences")["sample"])
    sequence = the_check(result, named)
    assert (sequence["last_value"], sequence["is_called"], sequence["next_value"]) == (10, True, 11)
    assert server.sql(bc004, "SELECT last_value FROM organization_units_id_seq") == [(10,)]


def test_invalid_index_left_by_a_failed_concurrent_build_is_found(server, ansible, bc004):
    server.sql(bc004, "INSERT INTO users (name, email, created_at, updated_at) "
                      "VALUES ('User 007', 'user007.again@example.com', '2024-01-01', '2024-01-01')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        server.sql(bc004, "CREATE UNIQUE INDEX CONCURRENTLY users_name_key ON users (name)")
    assert server.sql(bc004, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_name_key'::regclass") == [
        (False,)]
    result = run(ansible, bc004)
    assert_caught(result, "invalid_indexes")
    assert "users_name_key" in json.dumps(the_check(result, "invalid_indexes")["sample"])


def test_not_valid_constraint_is_a_warning(server, ansible, bc004):
    """A NOT VALID check constraint (the data even satisfies it) is reported; the task fails on it
    only with fail_on=warning."""
    server.sql(bc004, "ALTER TABLE team_members ADD CONSTRAINT team_members_left_after_joined "
                      "CHECK (left_at IS NULL OR left_at > joined_at) NOT VALID")
    result = run(ansible, bc004)
    assert not result["failed"], result.get("msg")
    check = the_check(result, "not_valid_constraints")
    assert check["status"] == "failed" and check["severity"] == "warning"
    assert "team_members_left_after_joined" in json.dumps(check["sample"])
    assert with_status(result, "failed") == ["not_valid_constraints"] and with_status(result, "error") == []

    strict = run(ansible, bc004, fail_on="warning")
    assert_one_line(strict, "not_valid_constraints")
    assert the_check(strict, "not_valid_constraints")["status"] == "failed"


def test_missing_required_column_is_found(server, ansible, bc004):
    # The runbook's retention script deletes team_leaders by removed_at.
    server.sql(bc004, "ALTER TABLE team_leaders DROP COLUMN removed_at")
    result = run(ansible, bc004)
    assert_caught(result, "required_columns")
    check = the_check(result, "required_columns")
    evidence = check["summary"] + json.dumps(check["sample"])
    assert "team_leaders" in evidence and "removed_at" in evidence


def test_min_rows_not_met_is_found(server, ansible, bc004):
    # A lost yearly partition: policy_violations keeps 400 of its 600 rows.
    server.sql(bc004, "TRUNCATE policy_violations_2026")
    result = run(ansible, bc004)
    assert_caught(result, "min_rows public.policy_violations")
    assert "400" in the_check(result, "min_rows public.policy_violations")["summary"]


@pytest.mark.parametrize("breakage, check_name", [
    ("UPDATE organization_units SET member_count = member_count + 1 WHERE id = 6",
     "organization_units member_count mismatch"),
    # User 15 holds 0.60 + 0.40 + 0.50; a fourth active allocation of 0.90 makes 2.40 (member_count kept right).
    ("INSERT INTO team_members (team_id, user_id, allocation_rate, status, joined_at) "
     "VALUES (20, 15, 0.90, 'active', '2025-01-01'); UPDATE teams SET member_count = member_count + 1 WHERE id = 20",
     "over-allocated users"),
    ("UPDATE team_leaders SET status = 'inactive', removed_at = '2025-01-01' WHERE team_id = 7 AND status = 'active'",
     "teams without leaders"),
], ids=["member_count", "over_allocated", "no_leader"])
def test_runbook_check_catches(server, ansible, bc004, breakage, check_name):
    server.sql(bc004, breakage)
    result = run(ansible, bc004)
    name = "bc004: " + check_name
    assert_caught(result, name)
    assert the_check(result, name)["sample"] == [{"check_name": check_name, "count": 1}]


def test_missing_row_against_a_captured_baseline_and_tolerance(server, ansible, bc004, tmp_path):
    baseline = tmp_path / "bc004-baseline.json"
    captured = ansible.module("integrity", db=bc004, action="capture", baseline=str(baseline))
    assert not captured["failed"] and captured["changed"], captured.get("msg")
    data = json.loads(baseline.read_text())
    assert data["kind"] == "baseline" and data["database"] == bc004
    assert data["row_counts"]["public.organization_members"] == 360
    assert data["sequences"]["public.organization_members_id_seq"] == {"last_value": 360, "is_called": True}

    # One ended membership goes missing (organization_members is not under min_rows; member_count
    # counts active members only, so the runbook's checks still hold).
    server.sql(bc004, "DELETE FROM organization_members WHERE id = 360 AND status = 'inactive'")
    result = run(ansible, bc004, action="compare", baseline=str(baseline))
    row_counts = [check for check in result["checks"] if check["kind"] == "row_counts"]
    assert len(row_counts) == 1, [check["name"] for check in result["checks"]]
    assert_caught(result, row_counts[0]["name"])
    table = [t for t in row_counts[0]["tables"] if t["table"] == "public.organization_members"]
    assert len(table) == 1 and (table[0]["expected"], table[0]["actual"], table[0]["status"]) == (360, 359, "mismatch")

    # On a live database a small difference is expected: 1 row of 360 is within 1% or 1 row, not 0.1%.
    for tolerance in ("1%", "1"):
        tolerant = run(ansible, bc004, baseline=str(baseline), tolerance=tolerance)
        assert not tolerant["failed"] and tolerant["passed"] is True, tolerant.get("msg")
    strict = run(ansible, bc004, baseline=str(baseline), tolerance="0.1%")
    assert_caught(strict, row_counts[0]["name"])


def assert_reported_errors(result, names, *fragments):
    """Bad input: the task fails with one line naming the check(s) that could not run, those have
    status error with a one-line summary, and every other check still ran and passed."""
    assert names and with_status(result, "error") == sorted(names), [
        (c["name"], c["status"], c["summary"]) for c in result["checks"] if c["status"] != "passed"]
    assert_one_line(result, *names, *fragments)
    assert with_status(result, "failed") == [] and result["passed"] is False
    assert result["counts"]["error"] == len(names)
    for name in names:
        assert "\n" not in the_check(result, name)["summary"]
    others = [c for c in result["checks"] if c["name"] not in names]
    assert set(RUNBOOK_CHECKS + FOREIGN_KEYS + BUILT_INS) <= {c["name"] for c in others}
    assert all(c["status"] == "passed" or (c["name"] == "amcheck" and c["status"] == "skipped") for c in others)


def test_custom_check_that_does_not_parse(server, ansible, bc004):
    checks = [dict(name="bc004", file=str(RUNBOOK_SQL), value=0), dict(name="broken", sql="SELEC id FROM users")]
    result = run(ansible, bc004, checks=checks)
    assert_reported_errors(result, ["broken"])
    assert "syntax error" in the_check(result, "broken")["summary"]


def test_relationship_naming_an_unknown_table(server, ansible, bc004):
    relationships = options()["relationships"] + [dict(name="ghost", table="public.organization_ghosts",
                                                       columns="unit_id", references="public.organization_units")]
    result = run(ansible, bc004, relationships=relationships)
    assert_reported_errors(result, ["relationship ghost"])
    assert "organization_ghosts" in the_check(result, "relationship ghost")["summary"]


def test_baseline_captured_from_another_database(server, ansible, bc004, request, tmp_path):
    other = db_name(request, "_other")
    load_bc004(server, other)
    try:
        baseline = tmp_path / "other.json"
        captured = ansible.module("integrity", db=other, action="capture", baseline=str(baseline))
        assert not captured["failed"], captured.get("msg")
    finally:
        server.drop_db(other)
    result = run(ansible, bc004, baseline=str(baseline))
    # The comparison with the baseline cannot run (it describes `other`); the checks on the database do.
    errors = with_status(result, "error")
    assert_reported_errors(result, errors, other)
    assert all(other in the_check(result, name)["summary"] for name in errors)


def test_check_mode_runs_the_checks(server, ansible, bc004):
    clean = run(ansible, bc004, check=True)
    assert not clean["failed"] and clean["passed"] is True and clean["changed"] is False, clean.get("msg")
    # amcheck is not installed in this database: skipped; every other check ran.
    assert with_status(clean, "skipped") == ["amcheck"]
    assert with_status(clean, "passed") == [name for name in EVERY_CHECK if name != "amcheck"]

    server.sql(bc004, "UPDATE teams SET member_count = 0 WHERE id = 3")
    broken = run(ansible, bc004, check=True)
    assert_caught(broken, "bc004: teams member_count mismatch")
    assert broken["changed"] is False
