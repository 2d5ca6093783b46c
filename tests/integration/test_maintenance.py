"""lifeboat.db.maintenance on the BC-004 fixture: seed 002's view refresh and data retention.

The fixture's three materialized views are created WITH NO DATA and each has a unique index; its
retention tables (organization_members, team_members, team_leaders) get rows that left more than
three years ago, added here next to rows the runbook's conditions must keep. Expected counts come
from count(*) with the same conditions, so the tests do not depend on today's date.
"""
import math
import os
import re
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import PROJECT, assert_one_line, embedded_only, fixture_database

FIXTURE = PROJECT / "tests" / "fixtures" / "bc004"
VIEWS = ["public.mv_user_allocation_summary", "public.mv_team_statistics", "public.mv_unit_statistics"]
INDEXES = {"public.mv_user_allocation_summary": "idx_mv_user_allocation_summary_user",
           "public.mv_team_statistics": "idx_mv_team_statistics_team",
           "public.mv_unit_statistics": "idx_mv_unit_statistics_unit"}

# The runbook's cleanup-old-data.sh, as conditions (its RETENTION_DATE is three years ago).
RETENTION = {
    "public.organization_members": "status = 'inactive' AND left_at < now() - interval '3 years'",
    "public.team_members": "status = 'inactive' AND left_at < now() - interval '3 years'",
    "public.team_leaders": "status = 'inactive' AND removed_at < now() - interval '3 years'",
}


@pytest.fixture
def bc004(server, request):
    db = "m_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.split("[")[0].lower())[-40:]
    fixture_database(server, db, FIXTURE / "schema.sql", FIXTURE / "data.sql")
    yield db
    server.drop_db(db)


def add_old_rows(server, db, members, team_members=0, leaders=0):
    """Rows that left more than three years ago, and as many that must stay: inactive but recent,
    or active since long ago."""
    server.sql(db, """
        INSERT INTO organization_members (unit_id, user_id, status, joined_at, left_at)
        SELECT 1 + mod(g, 50), 1 + mod(g, 300), 'inactive', now() - interval '6 years',
               now() - interval '4 years' - g * interval '1 minute'
          FROM generate_series(1, %(n)s) g
        UNION ALL
        SELECT 1 + mod(g, 50), 1 + mod(g, 300), 'inactive', now() - interval '6 years', now() - interval '2 years'
          FROM generate_series(1, %(n)s / 10) g
        UNION ALL
        SELECT 1 + mod(g, 50), 1 + mod(g, 300), 'active', now() - interval '6 years', NULL
          FROM generate_series(1, %(n)s / 10) g""", {"n": members})
    server.sql(db, """
        INSERT INTO team_members (team_id, user_id, allocation_rate, status, joined_at, left_at)
        SELECT 1 + mod(g, 40), 1 + mod(g, 300), 0.10, 'inactive', now() - interval '5 years', now() - interval '3 years 1 month'
          FROM generate_series(1, %(n)s) g
        UNION ALL
        SELECT 1 + mod(g, 40), 1 + mod(g, 300), 0.10, 'inactive', now() - interval '5 years', now() - interval '2 years 11 months'
          FROM generate_series(1, %(n)s) g""", {"n": team_members})
    server.sql(db, """
        INSERT INTO team_leaders (team_id, user_id, status, appointed_at, removed_at)
        SELECT 1 + mod(g, 40), 1 + mod(g, 300), 'inactive', now() - interval '7 years', now() - interval '5 years'
          FROM generate_series(1, %(n)s) g""", {"n": leaders})


def purge_entries(**overrides):
    return [dict(table=table, where=where, **overrides) for table, where in RETENTION.items()]


def counts(server, db):
    """{table: (rows matching its retention condition, rows in all)}"""
    return {table: tuple(server.sql(db, f"SELECT count(*) FILTER (WHERE {where}), count(*) FROM {table}")[0])
            for table, where in RETENTION.items()}


def populated(server, db):
    return dict(server.sql(db, "SELECT relname, relispopulated FROM pg_class WHERE relkind = 'm'"))


def allocation(server, db, user_id):
    return server.sql(db, "SELECT active_team_count, total_allocation_rate FROM mv_user_allocation_summary "
                          "WHERE user_id = %s", (user_id,))


def test_refresh_concurrently_where_a_unique_index_allows_it(server, ansible, bc004):
    # Besides the fixture's three (populated by data.sql): a view whose only unique index is
    # partial, which CONCURRENTLY cannot use, and one not populated yet.
    server.sql(bc004, "CREATE MATERIALIZED VIEW leaders_per_team AS "
                      "SELECT team_id, count(*) AS leaders FROM team_leaders GROUP BY team_id")
    server.sql(bc004, "CREATE UNIQUE INDEX ON leaders_per_team (team_id) WHERE leaders > 0")
    server.sql(bc004, "CREATE MATERIALIZED VIEW members_per_unit AS "
                      "SELECT unit_id, count(*) AS members FROM organization_members GROUP BY unit_id WITH NO DATA")
    server.sql(bc004, "CREATE UNIQUE INDEX members_per_unit_unit ON members_per_unit (unit_id)")
    views = VIEWS + ["leaders_per_team", "public.members_per_unit"]

    first = ansible.module("maintenance", db=bc004, refresh=views)
    assert not first["failed"], first.get("msg")
    assert first["changed"] is True
    assert [(r["view"], r["index"]) for r in first["refreshed"]] == [(v, INDEXES[v]) for v in VIEWS] + \
        [("public.leaders_per_team", None), ("public.members_per_unit", None)]
    assert [r["concurrently"] for r in first["refreshed"]] == [True] * 3 + [False] * 2
    assert "no unique index" in first["refreshed"][3]["reason"]
    assert "not populated" in first["refreshed"][4]["reason"]
    assert all(entry["seconds"] >= 0 for entry in first["refreshed"])
    assert populated(server, bc004)["members_per_unit"] is True

    # New data in the base tables; the views show it only after a refresh.
    server.sql(bc004, "INSERT INTO team_members (team_id, user_id, allocation_rate, status, joined_at) "
                      "VALUES (20, 299, 0.25, 'active', now())")
    server.sql(bc004, "INSERT INTO team_leaders (team_id, user_id, status, appointed_at) VALUES (40, 299, 'active', now())")
    server.sql(bc004, "INSERT INTO organization_members (unit_id, user_id, joined_at) VALUES (51, 299, now())")
    assert allocation(server, bc004, 299) == [(1, Decimal("0.60"))]
    members = server.sql(bc004, "SELECT members FROM members_per_unit WHERE unit_id = 51")
    # A reader holds the views open for the whole run: only CONCURRENTLY lets a refresh through
    # (a plain REFRESH needs ACCESS EXCLUSIVE and would hit the lock_timeout set below).
    reader = server.connect(bc004)
    reader.autocommit = False
    for view in VIEWS + ["members_per_unit"]:
        reader.execute(f"SELECT count(*) FROM {view}")
    try:
        second = ansible.module("maintenance", db=bc004, refresh=views, analyze=["team_members"],
                                vacuum=["public.team_leaders"], env={"PGOPTIONS": "-c lock_timeout=5s"})
    finally:
        reader.rollback()
        reader.close()
    assert not second["failed"], second.get("msg")
    assert [(r["view"], r["concurrently"], r["index"]) for r in second["refreshed"]] == \
        [(v, True, INDEXES[v]) for v in VIEWS] + [("public.leaders_per_team", False, None),
                                                  ("public.members_per_unit", True, "members_per_unit_unit")]
    assert allocation(server, bc004, 299) == [(2, Decimal("0.85"))]
    assert server.sql(bc004, "SELECT leaders FROM leaders_per_team WHERE team_id = 40") == [(2,)]
    assert server.sql(bc004, "SELECT members FROM members_per_unit WHERE unit_id = 51") == \
        [((members[0][0] if members else 0) + 1,)]
    assert [a["table"] for a in second["analyzed"]] == ["public.team_members"]
    assert [v["table"] for v in second["vacuumed"]] == ["public.team_leaders"]
    assert second["purged"] == [] and second["changed"] is True
    assert any("concurrently, by unique index idx_mv_team_statistics_team" in a for a in second["actions"])
    assert any("leaders_per_team" in a and "not concurrently" in a for a in second["actions"])


def test_retention_purge_removes_exactly_the_old_rows(server, ansible, bc004):
    add_old_rows(server, bc004, members=1200, team_members=300, leaders=40)
    # Rows the views would show after a refresh: check mode must not refresh them.
    server.sql(bc004, "UPDATE team_members SET status = 'inactive', left_at = now() WHERE user_id = 299 AND status = 'active'")
    before = counts(server, bc004)
    assert all(matching > 0 for matching, _ in before.values()) and before["public.team_members"][0] >= 300
    # policy_violations is partitioned by year: it is purged one partition at a time; the
    # condition names the table, which works for each partition too.
    violations = "policy_violations.status = 'resolved' AND detected_at < '2025-07-01'"
    old_violations, all_violations = server.sql(
        bc004, f"SELECT count(*) FILTER (WHERE {violations}), count(*) FROM policy_violations")[0]
    assert old_violations > 0
    entries = purge_entries(batch_size=500, pause=0, vacuum=True) + [
        dict(table="policy_violations", where=violations, batch_size=20, pause=0)]

    check = ansible.module("maintenance", check=True, db=bc004, purge=entries, refresh=VIEWS[1:2], refresh_all=True)
    assert not check["failed"], check.get("msg")
    assert check["changed"] is True
    assert {p["table"]: p["rows"] for p in check["purged"]} == dict(
        {table: matching for table, (matching, _) in before.items()}, **{"public.policy_violations": old_violations})
    assert all(p["batches"] is None and p["seconds"] is None for p in check["purged"])
    assert [v["table"] for v in check["vacuumed"]] == list(RETENTION)
    # refresh_all: the named view first, then every other one, oldest first.
    assert [(r["view"], r["concurrently"], r["seconds"]) for r in check["refreshed"]] == \
        [(view, True, None) for view in (VIEWS[1], VIEWS[0], VIEWS[2])]
    assert counts(server, bc004) == before
    assert allocation(server, bc004, 299) == [(1, Decimal("0.60"))]
    assert any(a.startswith("Would purge %d rows of public.organization_members" % before["public.organization_members"][0])
               for a in check["actions"])

    run = ansible.module("maintenance", db=bc004, purge=entries)
    assert not run["failed"], run.get("msg")
    assert run["changed"] is True
    purged = {p["table"]: p for p in run["purged"]}
    for table, (matching, total) in before.items():
        assert purged[table]["rows"] == matching
        # Every full batch, then a pass from the start that finds nothing left.
        assert purged[table]["batches"] >= math.ceil(matching / 500) + 1
        assert 0 <= purged[table]["longest_batch_seconds"] <= purged[table]["seconds"]
        assert counts(server, bc004)[table] == (0, total - matching)
    assert purged["public.policy_violations"]["rows"] == old_violations
    assert server.count(bc004, "policy_violations") == all_violations - old_violations
    assert purged["public.policy_violations"]["batches"] > math.ceil(old_violations / 20)
    assert [v["table"] for v in run["vacuumed"]] == list(RETENTION)
    vacuumed = server.sql(bc004, "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL ORDER BY 1")
    assert [name for (name,) in vacuumed] == ["organization_members", "team_leaders", "team_members"]

    again = ansible.module("maintenance", db=bc004, purge=purge_entries())
    assert not again["failed"], again.get("msg")
    assert again["changed"] is False
    assert [(p["rows"], p["batches"]) for p in again["purged"]] == [(0, 1)] * 3
    assert all("Purged no rows" in a for a in again["actions"])


def pgbench(server, *args):
    binary = Path(server.bin_dir) / "pgbench"
    env = dict(os.environ, PGPASSWORD=server.password)
    return [str(binary), "-h", "127.0.0.1", "-p", str(server.port), "-U", server.user, *args], env


@embedded_only
def test_purge_while_pgbench_writes(server, ansible, bc004):
    rows, seconds = 50000, 12
    add_old_rows(server, bc004, members=rows)
    matching, total = counts(server, bc004)["public.organization_members"]
    argv, env = pgbench(server, "-i", "-q", "-s", "1", bc004)
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)
    argv, env = pgbench(server, "-n", "-c", "2", "-j", "2", "-T", str(seconds), bc004)
    started = time.time()
    bench = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        result = ansible.module("maintenance", db=bc004, purge=[dict(
            table="organization_members", where=RETENTION["public.organization_members"], batch_size=1000, pause=0.05)])
    finally:
        out, err = bench.communicate(timeout=seconds + 60)
    assert not result["failed"], result.get("msg")
    purge = result["purged"][0]
    assert matching >= rows and purge["rows"] == matching and purge["batches"] > matching // 1000
    assert counts(server, bc004)["public.organization_members"] == (0, total - matching)
    # The whole purge ran while pgbench was writing, and pgbench lost nothing to it.
    assert started < result["timing"]["started_epoch"] and result["timing"]["finished_epoch"] < started + seconds
    assert bench.returncode == 0, err
    assert re.search(r"number of failed transactions: 0 ", out), out
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    assert processed > 0


def test_bad_input_fails_in_one_line_and_changes_nothing(server, ansible, bc004):
    add_old_rows(server, bc004, members=100)
    before = counts(server, bc004)
    good = dict(table="organization_members", where=RETENTION["public.organization_members"])
    cases = {
        "missing view": dict(refresh=[VIEWS[0], "mv_nope"], purge=[good]),
        "missing table": dict(analyze=["organization_members", "audit.nope"], purge=[good]),
        "view named as a table": dict(vacuum=["teams"], purge=[dict(good, table="mv_team_statistics")]),
        "invalid where": dict(purge=[good, dict(table="team_members", where="left_at < now() - interval '3 years")]),
        "unknown column": dict(purge=[good, dict(table="team_members", where="gone_at < now()")]),
        "second statement": dict(purge=[dict(good, where="true); DROP TABLE teams; SELECT (true")]),
        "batch_size 0": dict(purge=[good, dict(good, table="team_members", batch_size=0)]),
        "lock_timeout": dict(purge=[good, dict(good, lock_timeout="soon")]),
    }
    play = ansible.play([{"name": name, "lifeboat.db.maintenance": dict(db=bc004, **args), "ignore_errors": True}
                         for name, args in cases.items()])
    assert_one_line(play.result("missing view"), "public.mv_nope does not exist", "materialized view")
    assert_one_line(play.result("missing table"), "audit.nope does not exist", "nothing was done")
    assert_one_line(play.result("view named as a table"), "public.mv_team_statistics is a materialized view")
    assert_one_line(play.result("invalid where"), "purge of public.team_members", "where condition",
                    "nothing was done")
    assert_one_line(play.result("unknown column"), "gone_at", "nothing was done")
    assert_one_line(play.result("second statement"), "nothing was done")
    assert_one_line(play.result("batch_size 0"), "batch_size must be 1 or more", "nothing was done")
    assert_one_line(play.result("lock_timeout"), "lock_timeout must be a time", "'soon'")
    assert counts(server, bc004) == before
    assert server.count(bc004, "teams") == 40


def test_purge_gives_up_on_a_locked_row_and_reports_what_it_removed(server, ansible, bc004):
    add_old_rows(server, bc004, members=1000)
    matching, total = counts(server, bc004)["public.organization_members"]
    where = RETENTION["public.organization_members"]
    # Another session holds the matching row stored last: the batches before it go through.
    holder = server.connect(bc004)
    holder.autocommit = False
    holder.execute(f"SELECT id FROM organization_members WHERE ctid = (SELECT max(ctid) FROM organization_members "
                   f"WHERE {where}) FOR UPDATE")
    try:
        result = ansible.module("maintenance", db=bc004, purge=[dict(
            table="organization_members", where=where, batch_size=100, pause=0, lock_timeout="100ms")])
    finally:
        holder.rollback()
        holder.close()
    left = counts(server, bc004)["public.organization_members"]
    removed = matching - left[0]
    assert 0 < removed < matching and removed % 100 == 0
    assert_one_line(result, "could not get its locks within lock_timeout 100ms in 4 attempts",
                    "%d rows were already removed" % removed)
    assert result["purged"][0]["rows"] == removed and result["changed"] is True
    assert left[1] == total - removed
