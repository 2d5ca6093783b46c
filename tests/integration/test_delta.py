"""lifeboat.db.delta against a real server: a full backup plus deltas rebuilds the live tables."""
import gzip
import json
import os
import stat

import pytest

from conftest import assert_one_line, backup_sets, leftovers

SCHEMA = """
CREATE SCHEMA shop;
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END$$;
CREATE TABLE shop.customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE shop.orders (
    id          serial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers(id),
    total       numeric(10,2) NOT NULL,
    note        jsonb,
    total_cents integer GENERATED ALWAYS AS ((total * 100)::integer) STORED,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE shop.settings (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    code        text NOT NULL UNIQUE,
    value       text,
    updated_at  timestamp(3) NOT NULL DEFAULT (clock_timestamp() AT TIME ZONE 'UTC'));
CREATE TABLE shop.ledger (
    entry_no    bigint PRIMARY KEY,
    amount      numeric NOT NULL);
CREATE TABLE shop.audit (msg text, updated_at timestamptz DEFAULT clock_timestamp());
CREATE TRIGGER touch BEFORE UPDATE ON shop.customers FOR EACH ROW EXECUTE FUNCTION shop.touch();
CREATE TRIGGER touch BEFORE UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.touch();
"""
SETTINGS_TOUCH = ("CREATE FUNCTION shop.touch_local() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$BEGIN NEW.updated_at := clock_timestamp() AT TIME ZONE 'UTC'; RETURN NEW; END$$; "
                  "CREATE TRIGGER touch BEFORE UPDATE ON shop.settings FOR EACH ROW EXECUTE FUNCTION shop.touch_local()")
SEED = """
INSERT INTO shop.customers (name) SELECT 'customer ' || i FROM generate_series(1, 20) i;
INSERT INTO shop.orders (customer_id, total, note)
  SELECT 1 + i % 20, i * 1.5, jsonb_build_object('n', i) FROM generate_series(1, 50) i;
INSERT INTO shop.settings (code, value) VALUES ('currency', 'EUR'), ('vat', '20');
INSERT INTO shop.ledger SELECT i, i * 10 FROM generate_series(1, 10) i;
INSERT INTO shop.audit (msg) VALUES ('created');
"""
# Listed children first on purpose: apply must load parents first whatever the order here.
TABLES = [
    {"name": "shop.orders", "change_column": "updated_at"},
    {"name": "shop.customers", "change_column": "updated_at"},
    {"name": "shop.settings", "change_column": "updated_at", "key": ["code"]},
    {"name": "shop.ledger", "change_column": "entry_no", "since": "0"},
]
COMPARED = ("customers", "orders", "settings", "ledger")


@pytest.fixture
def shop(server, request):
    db = "d_" + request.node.name.split("[")[0][-40:].lower()
    server.drop_db(db)
    server.sql("postgres", f'CREATE DATABASE "{db}"')
    with server.connect(db) as conn:
        conn.execute(SCHEMA)
        conn.execute(SETTINGS_TOUCH)
        conn.execute(SEED)
    yield db
    server.drop_db(db)
    server.drop_db(db + "_copy")


def delta_task(name, **args):
    return {"name": name, "lifeboat.db.delta": args}


def delta(ansible, check=False, **args):
    return ansible.module("delta", check=check, **args)


def fingerprint(server, db, table):
    return server.sql(db, f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM shop.{table} t")[0]


def fingerprints(server, db):
    return {t: fingerprint(server, db, t) for t in COMPARED}


def test_full_backup_plus_deltas_rebuilds_the_live_tables(server, ansible, shop):
    repo = str(ansible.repository)
    base = ansible.module("dump", db=shop, repository=repo)
    assert base["changed"], base

    # Changes for delta 1: a new parent with a new child, updates, an integer-watermarked table.
    server.sql(shop, "INSERT INTO shop.customers (name) VALUES ('late customer')")
    server.sql(shop, "INSERT INTO shop.orders (customer_id, total) SELECT max(id), 99.99 FROM shop.customers")
    server.sql(shop, "UPDATE shop.orders SET total = total + 1 WHERE id IN (1, 2)")
    server.sql(shop, "UPDATE shop.settings SET value = '21' WHERE code = 'vat'")
    server.sql(shop, "INSERT INTO shop.ledger VALUES (11, 110), (12, 120)")
    d1 = delta(ansible, action="export", db=shop, repository=repo, tables=TABLES)
    assert d1["changed"] and d1["base_backup_id"] == base["backup_id"] and d1["previous_delta_id"] is None, d1
    assert d1["tables"]["shop.ledger"]["rows"] == 12  # since: "0" - everything, harmlessly
    assert d1["tables"]["shop.ledger"]["until"] == "12"

    # Changes for delta 2, including rows delta 1 already carried.
    server.sql(shop, "INSERT INTO shop.customers (name) VALUES ('later customer')")
    server.sql(shop, "INSERT INTO shop.orders (customer_id, total, note) "
                     "SELECT max(id), 5, '{\"gift\": true}' FROM shop.customers")
    server.sql(shop, "UPDATE shop.orders SET total = total * 2 WHERE id = 1 OR customer_id = "
                     "(SELECT min(id) FROM shop.customers WHERE name = 'late customer')")
    server.sql(shop, "UPDATE shop.customers SET name = 'renamed' WHERE id = 3")
    server.sql(shop, "INSERT INTO shop.settings (code, value) VALUES ('locale', 'de')")
    server.sql(shop, "INSERT INTO shop.ledger VALUES (13, 130)")
    # No overlap: exactly the rows changed after delta 1's watermark.
    d2 = delta(ansible, action="export", db=shop, repository=repo, tables=TABLES, overlap_seconds=0)
    assert d2["previous_delta_id"] == d1["backup_id"], d2
    assert {t: e["rows"] for t, e in d2["tables"].items()} == {
        "shop.customers": 2, "shop.orders": 3, "shop.settings": 1, "shop.ledger": 1}
    assert d2["tables"]["shop.orders"]["since"] == d1["tables"]["shop.orders"]["until"]
    assert d2["tables"]["shop.orders"]["since_from"] == f"delta {d1['backup_id']}"
    assert "total_cents" not in d2["tables"]["shop.orders"]["columns"]  # generated: never exported

    # The delta set: an ordinary backup set, private, its manifest the watermark, files hashed.
    path = ansible.repository / shop / d2["backup_id"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["kind"] == "delta" and manifest["format"] == "delta"
    assert manifest["delta"]["base_backup_id"] == base["backup_id"]
    assert manifest["delta"]["tables"]["shop.orders"]["until"] == d2["tables"]["shop.orders"]["until"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for entry in manifest["files"]:
        assert stat.S_IMODE((path / entry["name"]).stat().st_mode) == 0o600
    assert stat.S_IMODE((path / "manifest.json").stat().st_mode) == 0o600
    with gzip.open(path / d2["tables"]["shop.ledger"]["file"], "rt") as copied:
        assert copied.read() == "13\t130\n"
    assert sorted(backup_sets(ansible.repository / shop)) == sorted([base["backup_id"], d1["backup_id"], d2["backup_id"]])
    assert leftovers(ansible.repository / shop) == []

    # Rebuild: restore the base into a new database, check-apply (nothing happens), then apply.
    copy = shop + "_copy"
    played = ansible.play([
        {"name": "restore", "lifeboat.db.restore": {"db": copy, "backup_db": shop, "backup": base["backup_id"],
                                                    "repository": repo, "mode": "new"}},
        {**delta_task("check", action="apply", db=copy, backup_db=shop, base=base["backup_id"], repository=repo),
         "check_mode": True},
    ])
    assert not played.result("restore")["failed"], played.result("restore")
    check = played.result("check")
    assert check["changed"] is True and check["deltas"] == [d1["backup_id"], d2["backup_id"]], check
    assert check["applied"]["shop.customers"]["inserted"] == 2
    assert any(a.startswith("Would advance sequence") for a in check["actions"]), check["actions"]
    restored = fingerprints(server, copy)
    assert restored != fingerprints(server, shop)

    applied = delta(ansible, action="apply", db=copy, backup_db=shop, repository=repo)  # base: latest
    assert applied["changed"] is True and applied["base_backup_id"] == base["backup_id"], applied
    assert applied["applied"] == check["applied"]
    assert fingerprints(server, copy) == fingerprints(server, shop)
    # Delta 1 re-exported the base's 50 orders (the overlap) plus 51; delta 2 carries 1, 51, 52 again.
    assert applied["applied"]["shop.orders"] == {"deltas": [d1["backup_id"], d2["backup_id"]], "rows": 54,
                                                 "superseded": 2, "inserted": 2, "updated": 2, "unchanged": 48}
    assert {s["sequence"] for s in applied["sequences"]} == {"shop.customers_id_seq", "shop.orders_id_seq",
                                                             "shop.settings_id_seq"}
    # The sequences are past the loaded rows: default ids work at once on the rebuilt database.
    new_id = server.sql(copy, "INSERT INTO shop.customers (name) VALUES ('after') RETURNING id")[0][0]
    assert new_id == server.sql(shop, "SELECT max(id) FROM shop.customers")[0][0] + 1
    server.sql(copy, "INSERT INTO shop.orders (customer_id, total) VALUES (%s, 1)", (new_id,))
    server.sql(copy, "DELETE FROM shop.orders WHERE customer_id = %s", (new_id,))
    server.sql(copy, "DELETE FROM shop.customers WHERE id = %s", (new_id,))

    # Applying the chain again changes nothing and says so.
    again = delta(ansible, action="apply", db=copy, backup_db=shop, base=base["backup_id"], repository=repo)
    assert again["changed"] is False and again["sequences"] == [], again
    assert all(c["inserted"] == c["updated"] == 0 for c in again["applied"].values())
    assert fingerprints(server, copy) == fingerprints(server, shop)

    # The next export (check mode) continues from delta 2's watermark, minus the overlap.
    nxt = delta(ansible, check=True, action="export", db=shop, repository=repo, tables=TABLES)
    assert nxt["changed"] is True and nxt["previous_delta_id"] == d2["backup_id"], nxt
    assert nxt["tables"]["shop.ledger"]["since"] == "13"
    assert nxt["tables"]["shop.orders"]["since"] < d2["tables"]["shop.orders"]["until"]
    assert len(backup_sets(ansible.repository / shop)) == 3


def test_check_mode_writes_nothing(server, ansible, shop):
    repo = str(ansible.repository)
    base = ansible.module("dump", db=shop, repository=repo)
    before = sorted((ansible.repository / shop).iterdir())
    result = delta(ansible, check=True, action="export", db=shop, repository=repo, tables=TABLES, keep_last=1)
    assert result["changed"] is True and not result["failed"], result
    assert result["tables"]["shop.orders"]["since_from"] == f"base {base['backup_id']} started_at"
    assert result["tables"]["shop.ledger"]["since"] == "0"
    assert any(a.startswith("Would export the rows of shop.orders with updated_at >") for a in result["actions"])
    assert result["deleted"] == []  # the base is a full backup: delta retention never counts it
    assert sorted((ansible.repository / shop).iterdir()) == before


def test_bad_input_fails_in_one_line_and_changes_nothing(server, ansible, shop):
    repo = str(ansible.repository)
    base = ansible.module("dump", db=shop, repository=repo)
    d1 = delta(ansible, action="export", db=shop, repository=repo, tables=TABLES)
    server.sql(shop, "UPDATE shop.orders SET total = 1 WHERE id = 7")
    d2 = delta(ansible, action="export", db=shop, repository=repo, tables=TABLES)
    assert not d1["failed"] and not d2["failed"], (d1, d2)
    # Damage one file of delta 2: delta 1 is intact, yet nothing at all may be applied.
    damaged = ansible.repository / shop / d2["backup_id"] / d2["tables"]["shop.orders"]["file"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    copy = shop + "_copy"
    server.sql("postgres", f'CREATE DATABASE "{copy}"')
    with server.connect(copy) as conn:
        conn.execute(SCHEMA)
    sets_before = sorted(backup_sets(ansible.repository / shop))

    def bad(name, db=shop, **args):
        return {**delta_task(name, db=db, repository=repo, **args), "ignore_errors": True}
    played = ansible.play([
        bad("unknown table", action="export", tables=[{"name": "shop.nope", "change_column": "updated_at"}]),
        bad("unknown column", action="export", tables=[{"name": "shop.orders", "change_column": "changed_on"}]),
        bad("no key", action="export", tables=[{"name": "shop.audit", "change_column": "updated_at"}]),
        bad("not a unique key", action="export",
            tables=[{"name": "shop.orders", "change_column": "updated_at", "key": ["customer_id"]}]),
        # Another kind is another chain: one without any watermark yet.
        bad("integer without since", action="export", kind="ledger",
            tables=[{"name": "shop.ledger", "change_column": "entry_no"}]),
        bad("unknown base", action="export", tables=TABLES, base="20200101T000000Z-000000"),
        bad("tampered", action="apply", db=copy, backup_db=shop),
        {"name": "verify", "lifeboat.db.backup_info": {"db": shop, "repository": repo, "kind": "delta",
                                                       "verify": True, "fail_on": "never"}},
        bad("unknown backup_db", action="apply", db=copy, backup_db="nowhere"),
        bad("unknown delta", action="apply", db=copy, backup_db=shop, deltas=["20200101T000000Z-000000"]),
        bad("apply with tables", action="apply", db=copy, backup_db=shop, tables=TABLES),
        {"name": "lose delta 1", "ansible.builtin.file": {"path": str(ansible.repository / shop / d1["backup_id"]),
                                                          "state": "absent"}},
        bad("gap", action="apply", db=copy, backup_db=shop),
    ])
    assert_one_line(played.result("unknown table"), "table 'shop.nope' does not exist in database")
    assert_one_line(played.result("unknown column"), "table shop.orders has no column 'changed_on'")
    assert_one_line(played.result("no key"), "table shop.audit has no primary key; set key")
    assert_one_line(played.result("not a unique key"), "key (customer_id) of table shop.orders is not the column set "
                                                      "of a unique index")
    assert_one_line(played.result("integer without since"), "table shop.ledger has no watermark yet",
                    "set since for this table")
    assert_one_line(played.result("unknown base"), "backup '20200101T000000Z-000000' of database")
    assert_one_line(played.result("tampered"), f"backup {d2['backup_id']} is damaged: sha256 of ")
    # Delta sets are ordinary sets to backup_info: verified by checksum like any other.
    verified = played.result("verify")
    assert verified["verified"][d1["backup_id"]]["status"] == "passed", verified
    assert verified["verified"][d2["backup_id"]]["status"] == "failed"
    assert {b["format"] for b in verified["backups"]} == {"delta"}
    assert_one_line(played.result("unknown backup_db"), "no full backup of database 'nowhere'")
    assert not (ansible.repository / "nowhere").exists()
    assert_one_line(played.result("unknown delta"), "delta(s) 20200101T000000Z-000000 are not deltas of base")
    assert_one_line(played.result("apply with tables"), "tables cannot be used with action=apply")
    assert_one_line(played.result("gap"), f"delta {d2['backup_id']} continues from delta {d1['backup_id']}, which is "
                                          "not in the repository")
    assert server.sql(copy, "SELECT (SELECT count(*) FROM shop.customers) + (SELECT count(*) FROM shop.orders)")[0][0] == 0
    assert sorted(backup_sets(ansible.repository / shop)) == sorted(set(sets_before) - {d1["backup_id"]})
    assert leftovers(ansible.repository / shop) == []
    assert base["backup_id"] in sets_before


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_a_delta_whose_manifest_reads_a_file_outside_its_set_applies_nothing(server, ansible, shop):
    """Issue 15 item 1: a delta set is untrusted input too. The file each table is loaded from must
    be one of the set's own listed (and checked) files: a manifest pointing elsewhere makes the set
    refused in one line naming it, never listed as a backup, and nothing is applied."""
    repo = ansible.repository
    base = ansible.module("dump", db=shop, repository=str(repo))
    server.sql(shop, "INSERT INTO shop.ledger VALUES (11, 110)")
    d1 = delta(ansible, action="export", db=shop, repository=str(repo), tables=TABLES)
    assert not base["failed"] and not d1["failed"], (base.get("msg"), d1.get("msg"))
    copy = shop + "_copy"
    restored = ansible.module("restore", db=copy, backup_db=shop, backup=base["backup_id"], repository=str(repo),
                              mode="new")
    assert not restored["failed"], restored.get("msg")
    before = fingerprints(server, copy)
    # Ledger rows no delta of this database holds, in a file outside the repository.
    outside = ansible.workdir / "planted.copy.gz"
    with gzip.open(outside, "wt") as planted:
        planted.write("999\t9990\n")
    folder = repo / shop / d1["backup_id"]
    original = json.loads((folder / "manifest.json").read_text())

    def reading(file):
        manifest = json.loads(json.dumps(original))
        manifest["delta"]["tables"]["shop.ledger"]["file"] = file
        return manifest
    cases = {"climbing": reading(os.path.relpath(outside, folder)), "absolute": reading(str(outside)),
             "not listed": reading("999-shop.ledger.copy.gz"),
             "tables not an object": dict(original, delta=dict(original["delta"], tables=["shop.ledger"]))}
    tasks = []
    for name, manifest in cases.items():
        tasks += [{"name": "write " + name, "ansible.builtin.copy": dict(
                      dest=str(folder / "manifest.json"), content=json.dumps(manifest), mode="0600")},
                  {**delta_task("apply " + name, action="apply", db=copy, backup_db=shop, repository=str(repo)),
                   "ignore_errors": True},
                  {"name": "list " + name, "lifeboat.db.backup_info": dict(db=shop, repository=str(repo),
                                                                          kind="delta")}]
    (folder / "999-shop.ledger.copy.gz").write_bytes(outside.read_bytes())  # in the set, but not listed
    played = ansible.play(tasks)
    for name in cases:
        assert_one_line(played.result("apply " + name), d1["backup_id"], "refused")
        listed = played.result("list " + name)
        assert listed["backups"] == [] and [i["backup_id"] for i in listed["invalid"]] == [d1["backup_id"]], listed
    assert server.sql(copy, "SELECT count(*) FROM shop.ledger WHERE entry_no = 999")[0][0] == 0
    assert fingerprints(server, copy) == before


def test_overlap_catches_a_transaction_that_commits_after_the_snapshot(server, ansible, shop):
    repo = str(ansible.repository)
    ansible.module("dump", db=shop, repository=repo)
    orders = [{"name": "shop.orders", "change_column": "updated_at"}]
    with server.connect(shop) as slow:
        slow.autocommit = False
        # Stamped now, committed only after the next export's snapshot: older than its watermark.
        slow.execute("UPDATE shop.orders SET total = 1000 WHERE id = 10")
        server.sql(shop, "UPDATE shop.orders SET total = 2000 WHERE id = 20")
        d1 = delta(ansible, action="export", db=shop, repository=repo, tables=orders)
        slow.commit()
    assert not d1["failed"], d1
    # Without overlap, the late commit is behind the watermark and lost...
    d2 = delta(ansible, action="export", db=shop, repository=repo, tables=orders, overlap_seconds=0)
    assert d2["tables"]["shop.orders"]["rows"] == 0, d2
    # ...with the default overlap, the next export carries it again.
    d3 = delta(ansible, action="export", db=shop, repository=repo, tables=orders)
    path = ansible.repository / shop / d3["backup_id"] / d3["tables"]["shop.orders"]["file"]
    with gzip.open(path, "rt") as copied:
        ids = {line.split("\t")[0] for line in copied}
    assert {"10", "20"} <= ids


def test_restore_and_integrity_refuse_a_delta_set(server, ansible, shop):
    repo = str(ansible.repository)
    ansible.module("dump", db=shop, repository=repo)
    exported = delta(ansible, action="export", db=shop, repository=repo, tables=TABLES)
    restored = ansible.module("restore", db=shop + "_copy", backup_db=shop, backup=exported["backup_id"],
                              repository=repo)
    assert_one_line(restored, "is a delta export", "lifeboat.db.delta")
    assert not server.exists(shop + "_copy")
    compared = ansible.module("integrity", action="compare", db=shop, repository=repo, backup=exported["backup_id"])
    assert_one_line(compared, "is a delta export")


@pytest.fixture
def local_time_db(server, request):
    """A database whose TimeZone is America/New_York, with `timestamp` (no time zone) change columns."""
    db = "d_" + request.node.name.split("[")[0][-40:].lower()
    server.drop_db(db)
    server.sql("postgres", f'CREATE DATABASE "{db}"')
    server.sql("postgres", f"ALTER DATABASE \"{db}\" SET timezone = 'America/New_York'")
    with server.connect(db) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, v text, "
                     "changed timestamp NOT NULL DEFAULT localtimestamp)")
        conn.execute("CREATE TABLE public.days (id int PRIMARY KEY, v text, changed date NOT NULL DEFAULT current_date)")
        # Older than the base backup, in the database's own terms.
        conn.execute("INSERT INTO public.items SELECT i, 'seed', localtimestamp - interval '1 hour' "
                     "FROM generate_series(1, 30) i")
        conn.execute("INSERT INTO public.days SELECT i, 'seed', current_date - 2 FROM generate_series(1, 5) i")
    yield db
    server.drop_db(db)
    server.drop_db(db + "_copy")


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_local_timestamps_are_compared_in_the_databases_time_zone(server, ansible, local_time_db):
    db, copy, repo = local_time_db, local_time_db + "_copy", str(ansible.repository)
    tables = [{"name": "public.items", "change_column": "changed"}, {"name": "public.days", "change_column": "changed"}]
    base = ansible.module("dump", db=db, repository=repo)
    assert not base["failed"], base
    # 20 changed rows, stamped by the database's DEFAULT in New York time (hours behind UTC).
    for sql in ("UPDATE public.items SET v = 'changed', changed = DEFAULT WHERE id <= 10",
                "INSERT INTO public.items (id, v) SELECT i, 'new' FROM generate_series(31, 40) i",
                "INSERT INTO public.days (id, v) VALUES (6, 'new')"):
        with server.connect(db) as conn:  # a session in the database's time zone, like the application's
            conn.execute(sql)
    d1 = delta(ansible, action="export", db=db, repository=repo, tables=tables, overlap_seconds=0)
    assert not d1["failed"], d1
    assert d1["tables"]["public.items"]["rows"] == 20, d1["tables"]["public.items"]
    assert d1["tables"]["public.days"]["rows"] >= 1, d1["tables"]["public.days"]
    restored = ansible.module("restore", db=copy, backup_db=db, backup=base["backup_id"], repository=repo, mode="new")
    assert not restored["failed"], restored
    applied = delta(ansible, action="apply", db=copy, backup_db=db, repository=repo)
    assert not applied["failed"] and applied["row_count_differences"] == [], applied
    query = "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM public.items t"
    assert server.sql(copy, query) == server.sql(db, query)

    # A delete on the source: no delta can carry it, the apply says so.
    server.sql(db, "DELETE FROM public.items WHERE id IN (1, 2, 3)")
    d2 = delta(ansible, action="export", db=db, repository=repo, tables=tables)
    assert d2["tables"]["public.items"]["table_rows"] == 37, d2["tables"]["public.items"]
    again = delta(ansible, action="apply", db=copy, backup_db=db, repository=repo)
    assert not again["failed"], again
    assert again["row_count_differences"] == [{"table": "public.items", "delta": d2["backup_id"],
                                               "source_rows": 37, "rows": 40}], again
    warnings = again.get("warnings", [])
    assert len(warnings) == 1 and "public.items" in warnings[0] and "deleted" in warnings[0], warnings
