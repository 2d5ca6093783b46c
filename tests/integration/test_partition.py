"""lifeboat.db.partition through ansible-playbook on seed 002's policy_violations (yearly, the BC-004
fixture: partitions 2024, 2025 and 2026 made by hand, 200 rows each) and on an integer-keyed table.

Premake and gaps, rows in the default partition, retention with the archive proven before the
drop, the archived partition restored and attached, interruptions half-way, and bad input.
"""
import json
import os
import threading
import time

import pytest

from conftest import PROJECT, assert_one_line, backup_sets, embedded_only, fixture_database

BC004 = PROJECT / "tests" / "fixtures" / "bc004"
TABLE = "public.policy_violations"
NOW = "2026-11-29"


@pytest.fixture
def bc004(server, request):
    db = "p_" + request.node.name.split("[")[0][-40:].lower()
    fixture_database(server, db, BC004 / "schema.sql", BC004 / "data.sql")
    yield db
    server.drop_db(db)


def partitions(server, db, parent="policy_violations"):
    """{name: bound} of the table's partitions."""
    rows = server.sql(db, "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                          "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass", (parent,))
    return dict(rows)


def keep(ansible, db, check=False, **options):
    args = dict(db=db, table=TABLE, interval="yearly", premake=1, now=NOW, name_pattern="{table}_{YYYY}")
    args.update(options)
    return ansible.module("partition", check=check, **args)


def indexes(server, db, table):
    return sorted(r[0] for r in server.sql(db, "SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)))


def test_premake_fills_the_gap_and_the_year_ahead_with_the_parents_indexes(server, ansible, bc004):
    # Seed 002's runbook makes next year's partition by cron; a missed year is a gap.
    server.sql(bc004, "DROP TABLE policy_violations_2025")
    before = server.count(bc004, TABLE)
    server.sql(bc004, "CREATE INDEX policy_violations_detected_idx ON policy_violations (detected_at)")

    check = keep(ansible, bc004, check=True, partition_indexes=[
        {"name": "idx_{partition}_context", "definition": "USING GIN (context)"}])
    assert check["changed"] and not check.get("failed"), check
    assert [(c["name"], c["reason"]) for c in check["created"]] == [
        ("public.policy_violations_2025", "gap"), ("public.policy_violations_2027", "ahead")]
    assert sorted(partitions(server, bc004)) == ["policy_violations_2024", "policy_violations_2026"]

    result = keep(ansible, bc004, partition_indexes=[
        {"name": "idx_{partition}_context", "definition": "USING GIN (context)"}])
    assert result["changed"], result
    bounds = partitions(server, bc004)
    assert sorted(bounds) == ["policy_violations_2024", "policy_violations_2025", "policy_violations_2026",
                              "policy_violations_2027"]
    assert "2027-01-01" in bounds["policy_violations_2027"] and "2028-01-01" in bounds["policy_violations_2027"]
    # The parent's partitioned index reached the new partitions, and so did the declared extra.
    assert "idx_policy_violations_2027_context" in indexes(server, bc004, "policy_violations_2027")
    assert any("detected_at" in name for name in indexes(server, bc004, "policy_violations_2027"))
    server.sql(bc004, "INSERT INTO policy_violations (policy_id, rule_id, target_type, target_id, status, context, "
                      "detected_at) SELECT policy_id, rule_id, target_type, target_id, status, context, "
                      "'2025-06-01 12:00+00' FROM policy_violations LIMIT 1")
    assert server.count(bc004, "policy_violations_2025") == 1
    assert server.count(bc004, TABLE) == before + 1

    again = keep(ansible, bc004)
    assert not again["changed"] and again["created"] == [] and again["actions"] == [], again


@embedded_only
def test_rows_in_the_default_partition_move_into_the_new_partition(server, ansible, bc004):
    server.sql(bc004, "CREATE TABLE policy_violations_default PARTITION OF policy_violations DEFAULT")
    server.sql(bc004, "INSERT INTO policy_violations (policy_id, rule_id, target_type, target_id, status, context, "
                      "detected_at) SELECT policy_id, rule_id, target_type, target_id, status, context, "
                      "detected_at + interval '1 year' FROM policy_violations_2026 WHERE id % 4 = 0")
    in_default = server.count(bc004, "policy_violations_default")
    assert in_default > 0
    total = server.count(bc004, TABLE)

    refused = keep(ansible, bc004, default_rows="refuse")
    assert_one_line(refused, "default partition public.policy_violations_default holds %d rows of 2027" % in_default,
                    "default_rows: move")
    assert "policy_violations_2027" not in partitions(server, bc004)

    check = keep(ansible, bc004, check=True)
    assert check["created"][0]["default_rows"] == in_default
    assert server.count(bc004, "policy_violations_default") == in_default

    result = keep(ansible, bc004)
    assert result["created"][0]["moved_rows"] == in_default, result
    assert server.count(bc004, "policy_violations_2027") == in_default
    assert server.count(bc004, "policy_violations_default") == 0
    assert server.count(bc004, TABLE) == total


def archived_sets(ansible, db):
    directory = ansible.repository / db
    sets = backup_sets(directory) if directory.exists() else []
    return [json.loads((directory / name / "manifest.json").read_text()) for name in sets]


def test_retention_archives_verifies_then_drops_and_the_archive_restores(server, ansible, bc004):
    # In 2028-02, three years kept: 2024 ends 2025-01-01, wholly older than 2025-02.
    rows_2024 = server.count(bc004, "policy_violations_2024")
    total = server.count(bc004, TABLE)
    options = dict(now="2028-02-01", retain=3, retention_action="archive_and_drop",
                   repository=str(ansible.repository))

    check = keep(ansible, bc004, check=True, **options)
    assert check["detached"] == ["public.policy_violations_2024"], check
    assert [d["partition"] for d in check["dropped"]] == ["public.policy_violations_2024"]
    assert "policy_violations_2024" in partitions(server, bc004) and not archived_sets(ansible, bc004)

    result = keep(ansible, bc004, **options)
    assert result["changed"] and not result.get("failed"), result
    assert [c["name"] for c in result["created"]] == ["public.policy_violations_2027", "public.policy_violations_2028",
                                                      "public.policy_violations_2029"]
    [archive] = result["archived"]
    assert archive["rows"] == rows_2024 and archive["partition"] == "public.policy_violations_2024"
    assert result["dropped"] == [{"partition": "public.policy_violations_2024", "backup_id": archive["backup_id"],
                                  "rows": rows_2024}]
    assert any("Verified backup" in a for a in result["actions"]), result["actions"]
    assert server.sql(bc004, "SELECT to_regclass('public.policy_violations_2024')") == [(None,)]
    [manifest] = archived_sets(ansible, bc004)
    assert manifest["kind"] == "partition-archive"
    assert manifest["row_counts"] == {"public.policy_violations_2024": rows_2024}
    assert manifest["partition"]["parent"] == TABLE and "2024-01-01" in manifest["partition"]["bound"]
    archive_file = ansible.repository / bc004 / archive["backup_id"] / manifest["archive"]
    assert oct(os.stat(archive_file).st_mode & 0o777) == "0o600"
    assert server.count(bc004, TABLE) == total - rows_2024

    again = keep(ansible, bc004, **options)
    assert not again["changed"], again

    restored = ansible.module("partition", db=bc004, table=TABLE, interval="yearly",
                              restore_partition="policy_violations_2024", repository=str(ansible.repository))
    assert restored["changed"] and restored["rows"] == rows_2024, restored
    assert restored["backup_id"] == archive["backup_id"]
    assert "policy_violations_2024" in partitions(server, bc004)
    assert server.count(bc004, TABLE) == total
    # Attached again with the parent's indexes and no retirement mark left on it.
    assert server.sql(bc004, "SELECT obj_description('policy_violations_2024'::regclass, 'pg_class')") == [(None,)]


@embedded_only
def test_archive_keeps_the_table_and_a_later_drop_uses_that_archive(server, ansible, bc004):
    rows_2024 = server.count(bc004, "policy_violations_2024")
    options = dict(now="2028-02-01", retain=3, repository=str(ansible.repository))
    detached = keep(ansible, bc004, retention_action="detach", **options)
    assert detached["detached"] == ["public.policy_violations_2024"] and detached["archived"] == []
    assert server.count(bc004, "policy_violations_2024") == rows_2024  # a table of its own now
    assert "policy_violations_2024" not in partitions(server, bc004)

    archived = keep(ansible, bc004, retention_action="archive", **options)
    assert [a["partition"] for a in archived["archived"]] == ["public.policy_violations_2024"], archived
    assert archived["dropped"] == [] and server.count(bc004, "policy_violations_2024") == rows_2024
    assert not keep(ansible, bc004, retention_action="archive", **options)["changed"]

    # Rows written into the detached table after it was archived: the drop refuses, nothing lost.
    server.sql(bc004, "INSERT INTO policy_violations_2024 (id, policy_id, rule_id, target_type, target_id, status, "
                      "context, detected_at) SELECT id + 100000, policy_id, rule_id, target_type, target_id, status, "
                      "context, detected_at FROM policy_violations_2024 LIMIT 1")
    refused = keep(ansible, bc004, retention_action="archive_and_drop", **options)
    assert_one_line(refused, "holds %d rows but backup" % (rows_2024 + 1), "not dropped")
    assert server.count(bc004, "policy_violations_2024") == rows_2024 + 1

    server.sql(bc004, "DELETE FROM policy_violations_2024 WHERE id > 100000")
    dropped = keep(ansible, bc004, retention_action="archive_and_drop", **options)
    assert dropped["archived"] == [] and [d["backup_id"] for d in dropped["dropped"]] == [
        archived["archived"][0]["backup_id"]], dropped
    assert len(archived_sets(ansible, bc004)) == 1


@embedded_only
def test_a_failed_archive_drops_nothing_and_the_next_run_finishes(server, ansible, bc004):
    rows_2024 = server.count(bc004, "policy_violations_2024")
    options = dict(now="2028-02-01", retain=3, retention_action="archive_and_drop")
    # The repository cannot be written: the partition is detached, its archive fails, it is kept.
    blocked = ansible.workdir / "blocked"
    blocked.write_text("a file where the repository should be a folder")
    failed = keep(ansible, bc004, repository=str(blocked / "repo"), **options)
    assert_one_line(failed, "cannot write to repository")
    # What was done before the failure is reported with it.
    assert failed["changed"] and failed["detached"] == ["public.policy_violations_2024"], failed
    assert [c["name"] for c in failed["created"]] == ["public.policy_violations_2027", "public.policy_violations_2028",
                                                      "public.policy_violations_2029"]
    assert server.count(bc004, "policy_violations_2024") == rows_2024
    assert "policy_violations_2024" not in partitions(server, bc004)

    finished = keep(ansible, bc004, repository=str(ansible.repository), **options)
    assert [d["partition"] for d in finished["dropped"]] == ["public.policy_violations_2024"], finished
    assert finished["detached"] == [] and finished["archived"][0]["rows"] == rows_2024


@embedded_only
def test_a_tampered_archive_is_not_trusted_and_the_table_is_kept(server, ansible, bc004):
    rows_2024 = server.count(bc004, "policy_violations_2024")
    options = dict(now="2028-02-01", retain=3, repository=str(ansible.repository))
    archived = keep(ansible, bc004, retention_action="archive", **options)
    backup_id = archived["archived"][0]["backup_id"]
    [manifest] = archived_sets(ansible, bc004)
    archive_file = ansible.repository / bc004 / backup_id / manifest["archive"]
    data = bytearray(archive_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive_file.write_bytes(bytes(data))
    refused = keep(ansible, bc004, retention_action="archive_and_drop", **options)
    assert_one_line(refused, "sha256")
    assert server.count(bc004, "policy_violations_2024") == rows_2024


BAD_INPUT = [
    ("a table that is not partitioned", dict(table="public.users"), "is not a partitioned table"),
    ("a missing table", dict(table="public.nope"), "table public.nope not found"),
    ("monthly over yearly partitions", dict(interval="monthly"), "is not one monthly period"),
    ("an integer step on a timestamp key", dict(interval="1000"), "interval must be one of"),
    ("retain 0", dict(retain=0), "retain must be 1 or more"),
    ("a retention past every partition", dict(retain=1, now="2035-01-01", premake=0), "would retire every partition"),
    ("archive without a repository", dict(retain=3, retention_action="archive"), "needs repository"),
    ("an unknown placeholder", dict(name_pattern="{table}_{year}"), "uses {year}"),
    ("a pattern without the year", dict(name_pattern="{table}_new", premake=3), "gives the same name"),
    ("a bad now", dict(now="next tuesday"), "now must be a date"),
    ("an unknown time zone", dict(time_zone="Mars/Olympus"), "time_zone"),
    ("an index without definition", dict(partition_indexes=[{"name": "x_{partition}"}]), "needs a name"),
]


def test_bad_input_is_one_line_and_changes_nothing(server, ansible, bc004):
    before = partitions(server, bc004)
    tasks = []
    for name, options, dummy in BAD_INPUT:
        args = dict(db=bc004, table=TABLE, interval="yearly", premake=1, now=NOW, name_pattern="{table}_{YYYY}")
        args.update(options)
        tasks.append({"name": name, "lifeboat.db.partition": args, "ignore_errors": True})
    result = ansible.play(tasks)
    for name, dummy, fragment in BAD_INPUT:
        assert_one_line(result.result(name), fragment)
    assert partitions(server, bc004) == before


@embedded_only
def test_a_list_partitioned_table_is_refused(server, ansible, empty_db):
    server.sql(empty_db, "CREATE TABLE regions (code text, name text) PARTITION BY LIST (code); "
                         "CREATE TABLE regions_eu PARTITION OF regions FOR VALUES IN ('eu')")
    result = ansible.module("partition", db=empty_db, table="regions", interval="monthly")
    assert_one_line(result, "public.regions is partitioned BY LIST", "RANGE partitions only")


@embedded_only
def test_integer_keys_in_steps_ahead_of_the_highest_key(server, ansible, empty_db):
    server.sql(empty_db, "CREATE TABLE events (id bigint NOT NULL, body text) PARTITION BY RANGE (id); "
                         "CREATE TABLE events_p0 PARTITION OF events FOR VALUES FROM (0) TO (1000); "
                         "INSERT INTO events SELECT g, 'e' FROM generate_series(0, 999) g")
    result = ansible.module("partition", db=empty_db, table="events", interval=1000, premake=2)
    assert [c["name"] for c in result["created"]] == ["public.events_p1000", "public.events_p2000"], result
    server.sql(empty_db, "INSERT INTO events SELECT g, 'e' FROM generate_series(1000, 2500) g")
    ahead = ansible.module("partition", db=empty_db, table="events", interval=1000, premake=2)
    assert [c["name"] for c in ahead["created"]] == ["public.events_p3000", "public.events_p4000"], ahead
    mismatch = ansible.module("partition", db=empty_db, table="events", interval=500)
    assert_one_line(mismatch, "is not one step of 500")


def test_pagila_payment_monthly_ahead_and_old_months_archived_to_glacier(server, ansible, pagila, moto):
    """pagila's payment: monthly partitions 2022-01..2026-07 made by hand (timestamptz bounds).
    In 2026-11, four months ahead fills 2026-08..2027-03; four years kept retires 2022-01..2022-10,
    each archived, copied to S3 in GLACIER, proven and dropped; one comes back from its archive."""
    payment = "public.payment"
    total = server.count(pagila, payment)
    old = dict(server.sql(pagila, "SELECT c.relname, (SELECT count(*) FROM payment p WHERE p.tableoid = c.oid) "
                                  "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                  "WHERE i.inhparent = 'payment'::regclass AND c.relname < 'payment_p2022_11'"))
    assert len(old) == 10
    bucket = moto.bucket("pagila-archive")
    options = dict(db=pagila, table=payment, interval="monthly", premake=4, now="2026-11-29", retain=48,
                   retention_action="archive_and_drop", repository=str(ansible.repository),
                   offsite_url=f"s3://{bucket}/payment", s3_storage_class="GLACIER", **moto.options())

    result = ansible.module("partition", **options)
    assert not result.get("failed"), result.get("msg")
    assert [c["name"] for c in result["created"]] == ["public.payment_p2026_%02d" % m for m in (8, 9, 10, 11, 12)] + [
        "public.payment_p2027_%02d" % m for m in (1, 2, 3)]
    assert sorted(d["partition"] for d in result["dropped"]) == sorted("public." + name for name in old)
    for archive in result["archived"]:
        assert archive["rows"] == old[archive["partition"].split(".")[1]]
        assert archive["storage_class"] == "GLACIER" and archive["offsite_url"].startswith(f"s3://{bucket}/payment/")
    keys = moto.keys(bucket, "payment/")
    dumps = [k for k in keys if k.endswith(".dump")]
    assert len(dumps) == 10
    head = moto.client().head_object(Bucket=bucket, Key=dumps[0])
    assert head.get("StorageClass") == "GLACIER"
    assert server.count(pagila, payment) == total - sum(old.values())
    bounds = partitions(server, pagila, "payment")
    assert "payment_p2022_10" not in bounds and "payment_p2022_11" in bounds and "payment_p2027_03" in bounds
    # Timestamptz bounds at UTC midnight, like pagila's own.
    assert "2027-03-01 00:00:00+00" in bounds["payment_p2027_03"], bounds["payment_p2027_03"]

    again = ansible.module("partition", **options)
    assert not again["changed"], again["actions"]

    restored = ansible.module("partition", db=pagila, table=payment, interval="monthly",
                              restore_partition="payment_p2022_03", repository=str(ansible.repository))
    assert restored["rows"] == old["payment_p2022_03"], restored
    assert server.count(pagila, payment) == total - sum(old.values()) + old["payment_p2022_03"]


@embedded_only
def test_a_move_from_the_default_partition_that_fails_half_way_leaves_the_rows_where_they_were(server, ansible, bc004):
    server.sql(bc004, "CREATE TABLE policy_violations_default PARTITION OF policy_violations DEFAULT")
    server.sql(bc004, "INSERT INTO policy_violations (policy_id, rule_id, target_type, target_id, status, context, "
                      "detected_at) SELECT policy_id, rule_id, target_type, target_id, status, context, "
                      "detected_at + interval '1 year' FROM policy_violations_2026")
    in_default = server.count(bc004, "policy_violations_default")
    # The rows are deleted from the default partition, the partition is created, then its extra
    # index fails: the whole transaction goes back.
    result = keep(ansible, bc004, partition_indexes=[{"name": "broken_{partition}", "definition": "(no_such_column)"}])
    assert_one_line(result, "no_such_column")
    assert "policy_violations_2027" not in partitions(server, bc004)
    assert server.count(bc004, "policy_violations_default") == in_default


def test_an_interrupted_concurrent_detach_is_finished(server, ansible, bc004):
    """DETACH ... CONCURRENTLY cancelled while it waits for older snapshots leaves the partition
    'detach pending'; the next run finalizes it, then archives and drops it."""
    rows_2024 = server.count(bc004, "policy_violations_2024")
    reader = server.connect(bc004)
    reader.autocommit = False
    reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    reader.execute("SELECT count(*) FROM policy_violations").fetchone()
    detacher = server.connect(bc004)
    pid = detacher.info.backend_pid
    outcome = {}

    def detach():
        try:
            detacher.execute("ALTER TABLE policy_violations DETACH PARTITION policy_violations_2024 CONCURRENTLY")
        except Exception as exc:  # cancelled, as intended
            outcome["error"] = str(exc)
    worker = threading.Thread(target=detach)
    worker.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not server.sql(
            bc004, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'", (pid,)):
        time.sleep(0.1)
    server.sql(bc004, "SELECT pg_cancel_backend(%s)", (pid,))
    worker.join(20)
    reader.rollback()
    reader.close()
    detacher.close()
    assert "canceling statement" in outcome.get("error", ""), outcome
    assert server.sql(bc004, "SELECT inhdetachpending FROM pg_inherits "
                             "WHERE inhrelid = 'policy_violations_2024'::regclass") == [(True,)]

    result = keep(ansible, bc004, now="2028-02-01", retain=3, retention_action="archive_and_drop",
                  repository=str(ansible.repository))
    assert not result.get("failed"), result.get("msg")
    assert any(a.startswith("Finished detaching partition public.policy_violations_2024") for a in result["actions"])
    assert result["dropped"][0]["rows"] == rows_2024


@embedded_only
def test_an_archive_that_cannot_be_attached_again_is_dropped_again_and_kept_in_the_repository(server, ansible, bc004):
    options = dict(now="2028-02-01", retain=3, retention_action="archive_and_drop", repository=str(ansible.repository))
    dropped = keep(ansible, bc004, **options)
    backup_id = dropped["dropped"][0]["backup_id"]
    # Someone re-created the year by hand: the archive restores, but cannot be attached.
    server.sql(bc004, "CREATE TABLE policy_violations_2024_new PARTITION OF policy_violations "
                      "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
    refused = ansible.module("partition", db=bc004, table=TABLE, interval="yearly",
                             restore_partition="policy_violations_2024", repository=str(ansible.repository))
    assert_one_line(refused, "cannot attach public.policy_violations_2024", "dropped again",
                    "backup %s is unchanged" % backup_id)
    assert server.sql(bc004, "SELECT to_regclass('public.policy_violations_2024')") == [(None,)]
    assert (ansible.repository / bc004 / backup_id / "manifest.json").exists()


@embedded_only
def test_an_offsite_copy_that_fails_drops_nothing(server, ansible, bc004, moto):
    rows_2024 = server.count(bc004, "policy_violations_2024")
    result = keep(ansible, bc004, now="2028-02-01", retain=3, retention_action="archive_and_drop",
                  repository=str(ansible.repository), offsite_url="s3://no-such-bucket/archive",
                  s3_storage_class="GLACIER", **moto.options())
    assert_one_line(result, "offsite copy", "no-such-bucket")
    assert server.count(bc004, "policy_violations_2024") == rows_2024


@embedded_only
def test_a_quoted_mixed_case_name_is_kept_archived_and_dropped(server, ansible, empty_db):
    server.sql(empty_db, 'CREATE TABLE "Audit Log" (id bigint NOT NULL, body text) PARTITION BY RANGE (id); '
                         'CREATE TABLE "Audit Log_p0" PARTITION OF "Audit Log" FOR VALUES FROM (0) TO (100); '
                         'CREATE TABLE "Audit Log_p100" PARTITION OF "Audit Log" FOR VALUES FROM (100) TO (200); '
                         'CREATE TABLE "Audit Log_p200" PARTITION OF "Audit Log" FOR VALUES FROM (200) TO (300); '
                         'INSERT INTO "Audit Log" SELECT g, \'x\' FROM generate_series(0, 250) g')
    # The highest key is 250: one step kept behind it retires 0..99 (it ends at 100 <= 150).
    result = ansible.module("partition", db=empty_db, table='public."Audit Log"', interval=100, premake=1, retain=1,
                            retention_action="archive_and_drop", repository=str(ansible.repository))
    assert not result.get("failed"), result.get("msg")
    assert [c["name"] for c in result["created"]] == ["public.Audit Log_p300"]
    assert result["dropped"] == [{"partition": "public.Audit Log_p0", "backup_id": result["archived"][0]["backup_id"],
                                  "rows": 100}]
    assert server.count(empty_db, '"Audit Log"') == 151
