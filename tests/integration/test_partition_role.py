"""playbooks/maintenance.yml (role lifeboat_partition) on the BC-004 fixture, part by part as
roles/lifeboat_schedule runs it: partitions (seed 002's policy_violations, yearly, three years kept,
archived and dropped), refresh_hourly (two of the runbook's views), purge (its three-year cleanup)."""
import pytest

from conftest import PROJECT, embedded_only, fixture_database

# The role's logic is in the modules, whose own tests run on every server.
pytestmark = embedded_only

BC004 = PROJECT / "tests" / "fixtures" / "bc004"
PLAYBOOK = PROJECT / "playbooks" / "maintenance.yml"
OLD_MEMBERS = "status = 'inactive' AND left_at < timestamptz '2028-02-01' - interval '3 years'"


@pytest.fixture
def bc004(server, ansible, request):
    db = "r_" + request.node.name.split("[")[0][-40:].lower()
    fixture_database(server, db, BC004 / "schema.sql", BC004 / "data.sql")
    ansible.write_inventory(
        lifeboat_partition_db=db, lifeboat_partition_repository=str(ansible.repository),
        lifeboat_partition_now="2028-02-01",
        lifeboat_partition_tables=[{
            "table": "public.policy_violations", "interval": "yearly", "premake": 1, "name_pattern": "{table}_{YYYY}",
            "partition_indexes": [{"name": "idx_{partition}_context", "definition": "USING GIN (context)"}],
            "retain": 3, "retention_action": "archive_and_drop"}],
        lifeboat_partition_refresh=[{"group": "hourly", "views": ["mv_user_allocation_summary", "mv_team_statistics"]},
                                    {"group": "daily", "views": ["mv_unit_statistics"]}],
        lifeboat_partition_purges=[{"table": "public.organization_members", "where": OLD_MEMBERS, "batch_size": 5,
                                    "pause": 0, "vacuum": True}])
    yield db
    server.drop_db(db)


def run(ansible, *args):
    return ansible.run_playbook(PLAYBOOK, *args)


def test_each_part_runs_alone_and_a_second_run_changes_nothing(server, ansible, bc004):
    rows_2024 = server.count(bc004, "policy_violations_2024")
    old_members = server.count(bc004, f"organization_members WHERE {OLD_MEMBERS}")
    members = server.count(bc004, "organization_members")
    assert old_members > 0

    check = run(ansible, "--check")
    assert check.rc == 0, check.stdout[-3000:]
    assert "Would create partition public.policy_violations_2027 for 2027" in check.stdout
    assert "would create 3" in check.stdout and "would drop 1" in check.stdout, check.stdout[-3000:]
    assert f"would purge {old_members} rows" in check.stdout
    assert server.sql(bc004, "SELECT to_regclass('policy_violations_2024')") != [(None,)]
    assert server.count(bc004, "organization_members") == members

    parts = run(ansible, "-e", "maintenance_task=partitions")
    assert parts.rc == 0, parts.stdout[-3000:]
    kept = parts.result("lifeboat_partition : Keep the partitions of each table")
    [table] = kept["results"]
    assert [c["name"] for c in table["created"]] == ["public.policy_violations_2027", "public.policy_violations_2028",
                                                     "public.policy_violations_2029"]
    assert table["dropped"][0]["rows"] == rows_2024
    assert "public.policy_violations: create 3" in parts.stdout
    assert server.count(bc004, "organization_members") == members  # the purge is another part
    again = run(ansible, "-e", "maintenance_task=partitions")
    assert "changed=0" in again.stdout, again.stdout[-2000:]

    hourly = run(ansible, "-e", "maintenance_task=refresh_hourly")
    assert hourly.rc == 0, hourly.stdout[-3000:]
    [group] = hourly.result("lifeboat_partition : Refresh the materialized views of each group")["results"]
    assert sorted(v["view"] for v in group["refreshed"]) == ["public.mv_team_statistics",
                                                             "public.mv_user_allocation_summary"]
    assert all(v["concurrently"] for v in group["refreshed"])

    purge = run(ansible, "-e", "maintenance_task=purge")
    assert purge.rc == 0, purge.stdout[-3000:]
    assert f"purge {old_members} rows" in purge.stdout
    assert server.count(bc004, "organization_members") == members - old_members
    assert server.count(bc004, f"organization_members WHERE {OLD_MEMBERS}") == 0


def test_an_unknown_part_fails_in_one_line_before_anything_runs(server, ansible, bc004):
    result = run(ansible, "-e", "maintenance_task=refresh_weekly")
    assert result.rc != 0
    failed = result.result("lifeboat_partition : Check that lifeboat_partition_task names a part of the upkeep")
    assert "refresh_weekly is not one of all, partitions, purge, refresh_hourly, refresh_daily" in failed["msg"]
    assert server.sql(bc004, "SELECT to_regclass('policy_violations_2027')") == [(None,)]
