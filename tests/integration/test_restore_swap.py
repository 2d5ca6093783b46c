"""restore mode=swap: the live database keeps serving until its replacement is proven."""
import threading
import time

import psycopg

from conftest import backup_sets


def databases(server, prefix):
    return sorted(r[0] for r in server.sql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                                           (prefix + "%",)))


def test_swap_replaces_the_live_database_keeping_its_traits(server, ansible, sample_db):
    repo = str(ansible.repository)
    backup = ansible.module("dump", db=sample_db, repository=repo)
    server.sql(sample_db, "DELETE FROM lifeboat_sample.order_items")
    server.sql("postgres", "DO $$BEGIN CREATE ROLE lb_reader; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
    server.sql("postgres", f'REVOKE ALL ON DATABASE "{sample_db}" FROM PUBLIC')
    server.sql("postgres", f'GRANT CONNECT ON DATABASE "{sample_db}" TO lb_reader')
    server.sql("postgres", f'ALTER DATABASE "{sample_db}" SET work_mem = \'7MB\'')
    server.sql("postgres", f'COMMENT ON DATABASE "{sample_db}" IS \'the shop\'')
    result = ansible.module("restore", db=sample_db, repository=repo)
    assert not result["failed"], result.get("msg")
    assert result["mode"] == "swap" and result["row_count_check"]["status"] == "passed"
    swap = result["swap"]
    assert swap["previous_db"].startswith(sample_db + "_prev_") and swap["window_seconds"] < 2
    assert server.count(sample_db, "lifeboat_sample.order_items") == backup["row_counts"]["lifeboat_sample.order_items"]
    assert server.count(swap["previous_db"], "lifeboat_sample.order_items") == 0, "the previous database is kept"
    acl = server.sql("postgres", "SELECT datacl::text FROM pg_database WHERE datname = %s", (sample_db,))[0][0]
    assert "lb_reader=c/" in acl and not acl.startswith("{=")
    settings = server.sql("postgres", "SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d ON "
                                      "d.oid = s.setdatabase WHERE d.datname = %s", (sample_db,))
    assert settings == [(["work_mem=7MB"],)]
    assert server.sql("postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                  "WHERE datname = %s", (sample_db,))[0][0] == "the shop"
    again = ansible.module("restore", db=sample_db, repository=repo, keep_previous=1)
    assert again["previous_dropped"] == [swap["previous_db"]]
    assert databases(server, sample_db + "_prev_") == [again["swap"]["previous_db"]]
    assert databases(server, sample_db + "_lbstage_") == []
    for name in databases(server, sample_db + "_prev_"):
        server.drop_db(name)


def test_failed_restore_leaves_the_live_database_serving(server, ansible, sample_db):
    repo = str(ansible.repository)
    ansible.module("dump", db=sample_db, repository=repo)
    # Owners kept (no_owner: false) with the owning role gone: pg_restore fails half-way.
    server.sql("postgres", "DO $$BEGIN CREATE ROLE lb_gone; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
    server.sql(sample_db, "ALTER TABLE lifeboat_sample.orders OWNER TO lb_gone")
    ansible.module("dump", db=sample_db, repository=repo)
    server.sql(sample_db, "ALTER TABLE lifeboat_sample.orders OWNER TO CURRENT_USER")
    server.sql("postgres", "DROP ROLE lb_gone")
    before = server.count(sample_db, "lifeboat_sample.orders")
    with server.connect(sample_db) as live:
        result = ansible.module("restore", db=sample_db, repository=repo, no_owner=False)
        assert result["failed"] and "was not touched" in result["msg"] and "\n" not in result["msg"]
        assert live.execute("SELECT count(*) FROM lifeboat_sample.orders").fetchone()[0] == before
    assert databases(server, sample_db + "_lbstage_") == [] and databases(server, sample_db + "_prev_") == []


def test_next_run_drops_a_staging_database_left_by_a_killed_run(server, ansible, sample_db):
    repo = str(ansible.repository)
    ansible.module("dump", db=sample_db, repository=repo)
    # What a killed run leaves: its staging database with the mark it got when created.
    server.sql("postgres", f'CREATE DATABASE "{sample_db}_lbstage_dead01"')
    server.sql("postgres", f'COMMENT ON DATABASE "{sample_db}_lbstage_dead01" IS \'lifeboat staging of {sample_db}\'')
    result = ansible.module("restore", db=sample_db, repository=repo, keep_previous=0)
    assert not result["failed"], result.get("msg")
    assert any("left by an interrupted restore" in a for a in result["actions"])
    assert databases(server, sample_db + "_lbstage_") == [] and databases(server, sample_db + "_prev_") == []


def test_swap_under_writers_completes_and_clients_reconnect(server, ansible, sample_db):
    repo = str(ansible.repository)
    ansible.module("dump", db=sample_db, repository=repo)
    server.sql(sample_db, "CREATE TABLE public.ticks (n bigint)")  # not in the backup: marks the old database
    stop, errors, after = threading.Event(), [], []
    swapped = threading.Event()

    def writer():
        while not stop.is_set():
            try:
                with server.connect(sample_db) as conn:
                    while not stop.is_set():
                        conn.execute("UPDATE lifeboat_sample.orders SET status = status WHERE id = 1")
                        if swapped.is_set():
                            after.append(conn.execute("SELECT count(*) FROM lifeboat_sample.orders").fetchone()[0])
                        time.sleep(0.005)
            except psycopg.Error as exc:
                errors.append(type(exc).__name__)
                time.sleep(0.05)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        result = ansible.module("restore", db=sample_db, repository=repo, grace_seconds=0.2, keep_previous=0)
        swapped.set()
        deadline = time.monotonic() + 10
        while not after and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not result["failed"], result.get("msg")
    assert result["swap"]["sessions_terminated"] >= 1 and result["swap"]["window_seconds"] < 2
    assert after, "clients reconnected to the swapped-in database"
    assert server.sql(sample_db, "SELECT to_regclass('public.ticks')")[0][0] is None, "it is the restored one"
    assert backup_sets(ansible.repository / sample_db)
