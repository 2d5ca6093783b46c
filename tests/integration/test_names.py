"""One rule for table names (issue 16): every module reads `schema.table` as PostgreSQL does -
unquoted letters fold to lower case, double quotes keep case, dots and spaces - so the same
spelling names the same table in restore mode=tables, integrity (checks and compare), maintenance
and delta.

Before the rule was shared, restore mode=tables took names as exact text: `Public.Orders` and
`public."MixedCase"` were "not in backup" while partition, integrity and maintenance read them.
"""
from conftest import assert_one_line, embedded_only

# schema Odd"S".x, table Tab.le (the table of contents cannot tell a space in a schema's name)
ODD = '"Odd""S"".x"."Tab.le"'

SETUP = """
CREATE TABLE orders (id int PRIMARY KEY, changed_at timestamptz NOT NULL DEFAULT '2026-01-01');
INSERT INTO orders (id) SELECT generate_series(1, 5);
CREATE TABLE "MixedCase" (id int PRIMARY KEY);
INSERT INTO "MixedCase" SELECT generate_series(1, 3);
-- what MixedCase means unquoted: a restore of public.MixedCase must land here, not on "MixedCase"
CREATE TABLE mixedcase (id int);
INSERT INTO mixedcase VALUES (1);
CREATE SCHEMA "Odd""S"".x";
CREATE TABLE "Odd""S"".x"."Tab.le" (id int);
INSERT INTO "Odd""S"".x"."Tab.le" SELECT generate_series(1, 4);
"""

BREAK = """
DELETE FROM orders; DROP TABLE "MixedCase"; DELETE FROM mixedcase; DELETE FROM "Odd""S"".x"."Tab.le";
"""


@embedded_only
def test_every_module_reads_a_table_name_as_postgresql_does(server, ansible, empty_db):
    db, repo = empty_db, str(ansible.repository)
    server.sql(db, SETUP)
    base = ansible.module("dump", db=db, repository=repo)
    assert not base["failed"], base.get("msg")
    server.sql(db, BREAK)

    def restore(*tables):
        return dict(db=db, repository=repo, backup=base["backup_id"], mode="tables", tables=list(tables))

    spellings = ["Public.Orders", 'public."MixedCase"', ODD]
    tasks = [
        {"name": "restore", "lifeboat.db.restore": restore(*spellings), "ignore_errors": True},
        {"name": "unquoted", "lifeboat.db.restore": restore("public.MixedCase"), "ignore_errors": True},
        {"name": "integrity", "lifeboat.db.integrity": dict(
            db=db, required_tables=spellings, min_rows={"Public.Orders": 5, 'public."MixedCase"': 3, ODD: 4}),
         "ignore_errors": True},
        {"name": "compare", "lifeboat.db.integrity": dict(
            db=db, action="compare", repository=repo, backup=base["backup_id"], tables=spellings),
         "ignore_errors": True},
        {"name": "maintenance", "lifeboat.db.maintenance": dict(db=db, analyze=spellings), "ignore_errors": True},
        {"name": "delta", "lifeboat.db.delta": dict(
            action="export", db=db, repository=repo, base=base["backup_id"],
            tables=[dict(name="Public.Orders", change_column="changed_at", key=["id"], since="2025-01-01")]),
         "ignore_errors": True},
    ]
    hostile = {"space unquoted": "public.Odd Name", "open quote": 'public."MixedCase', "three parts": "a.b.c",
               "no table": "public.", "junk after quote": 'public."MixedCase"x', "no schema": "orders"}
    tasks += [{"name": name, "lifeboat.db.restore": restore(spelling), "ignore_errors": True}
              for name, spelling in hostile.items()]
    play = ansible.play(tasks)

    result = play.result("restore")
    assert not result["failed"], result.get("msg")
    assert result["tables"] == [{"name": "public.orders", "action": "replaced", "rows": 5},
                                {"name": "public.MixedCase", "action": "recreated", "rows": 3},
                                {"name": 'Odd"S".x.Tab.le', "action": "replaced", "rows": 4}]
    assert server.count(db, "orders") == 5 and server.count(db, '"MixedCase"') == 3
    assert server.count(db, ODD) == 4

    # public.MixedCase is public.mixedcase, as in SQL: that table is restored, "MixedCase" untouched.
    result = play.result("unquoted")
    assert not result["failed"], result.get("msg")
    assert result["tables"] == [{"name": "public.mixedcase", "action": "replaced", "rows": 1}]

    result = play.result("integrity")
    assert not result["failed"] and result["passed"], result.get("msg") or result["summary"]
    result = play.result("compare")
    assert not result["failed"] and result["passed"], result.get("msg") or result["summary"]
    compared = next(r for r in result["checks"] if r["name"] == "row_counts")
    assert compared["status"] == "passed", compared
    assert sorted(result["row_counts"]) == ['Odd"S".x.Tab.le', "public.MixedCase", "public.orders"]
    result = play.result("maintenance")
    assert not result["failed"], result.get("msg")
    result = play.result("delta")
    assert not result["failed"] and result["rows"] == 5, result.get("msg") or result["tables"]

    for name, spelling in hostile.items():
        assert_one_line(play.result(name))
    assert_one_line(play.result("space unquoted"), "'public.Odd Name' is not")
    assert_one_line(play.result("no schema"), "'orders' is not schema.table")
    assert server.count(db, "mixedcase") == 1 and server.count(db, '"MixedCase"') == 3
