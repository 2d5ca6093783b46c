"""lifeboat.db.restore against a real server, including the paths that must lose nothing."""

from conftest import backup_sets

TABLES = ("customers", "products", "orders", "order_items", "events")


def counts(server, db):
    return {t: server.count(db, f"lifeboat_sample.{t}") for t in TABLES}


def test_restore_new_recreates_every_row(server, ansible, sample_db):
    backup = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    copy = sample_db + "_new"
    try:
        result = ansible.module("restore", db=copy, backup_db=sample_db, backup=backup["backup_id"],
                                repository=str(ansible.repository), mode="new", jobs=2)
        assert result["changed"] and result["mode"] == "new", result
        assert counts(server, copy) == counts(server, sample_db)
        assert set(result["timings"]) >= {"verify_seconds", "restore_seconds", "total_seconds"}
        assert int(result["pg_restore"]["version"].split(".")[0]) >= server.major
        # Foreign keys, indexes and identity sequences came back too.
        constraints = "SELECT conname, contype FROM pg_constraint WHERE connamespace = 'lifeboat_sample'::regnamespace ORDER BY 1"
        assert server.sql(copy, constraints) == server.sql(sample_db, constraints)
        assert len([c for c in server.sql(copy, constraints) if c[1] == "f"]) == 4
        server.sql(copy, "INSERT INTO lifeboat_sample.products (sku, name, price) VALUES ('N-1', 'n', 2)")
    finally:
        server.drop_db(copy)


def test_restore_new_refuses_an_existing_database(server, ansible, sample_db):
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    before = counts(server, sample_db)
    result = ansible.module("restore", db=sample_db, repository=str(ansible.repository), mode="new")
    assert result["failed"] and "already exists and mode=new never overwrites" in result["msg"]
    assert counts(server, sample_db) == before


def test_replace_takes_a_safety_backup_and_restores(server, ansible, sample_db):
    backup = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    before = counts(server, sample_db)
    server.sql(sample_db, "TRUNCATE lifeboat_sample.events")
    result = ansible.module("restore", db=sample_db, repository=str(ansible.repository), mode="replace")
    assert result["changed"] and result["backup_id"] == backup["backup_id"], result
    assert counts(server, sample_db) == before
    safety = ansible.repository / sample_db / result["safety_backup_id"]
    assert (safety / "manifest.json").exists()
    assert '"kind": "pre-restore"' in (safety / "manifest.json").read_text()


def test_check_mode_verifies_and_changes_nothing(server, ansible, sample_db):
    ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    server.sql(sample_db, "TRUNCATE lifeboat_sample.events")
    result = ansible.module("restore", check=True, db=sample_db, repository=str(ansible.repository), mode="replace")
    assert result["changed"] is True and not result["failed"], result
    assert any(a.startswith("Would drop database") for a in result["actions"])
    assert server.count(sample_db, "lifeboat_sample.events") == 0
    assert len(backup_sets(ansible.repository / sample_db)) == 1  # no safety backup either


def test_corrupted_dump_is_refused_and_the_target_untouched(server, ansible, sample_db):
    backup = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    dump_file = ansible.repository / sample_db / backup["backup_id"] / f"{sample_db}.dump"
    data = bytearray(dump_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump_file.write_bytes(bytes(data))
    server.sql(sample_db, "DELETE FROM lifeboat_sample.events WHERE id > 500")
    before = counts(server, sample_db)

    result = ansible.module("restore", db=sample_db, repository=str(ansible.repository), mode="replace")
    assert result["failed"]
    assert f"backup {backup['backup_id']} is damaged: sha256 of {sample_db}.dump" in result["msg"]
    assert "\n" not in result["msg"]
    assert counts(server, sample_db) == before
    assert backup_sets(ansible.repository / sample_db) == [backup["backup_id"]]  # not even a safety backup


def dump_owned_by_a_vanished_role(server, ansible, db, table, role):
    """A backup in which `table` belongs to `role`, which is dropped afterwards: restoring its
    ownership (no_owner: false) then fails half-way through pg_restore."""
    server.sql("postgres", f"DROP ROLE IF EXISTS {role}")
    server.sql("postgres", f"CREATE ROLE {role}")
    server.sql(db, f"ALTER TABLE lifeboat_sample.{table} OWNER TO {role}")
    ansible.module("dump", db=db, repository=str(ansible.repository))
    server.sql(db, f"ALTER TABLE lifeboat_sample.{table} OWNER TO postgres")
    server.sql("postgres", f"DROP ROLE {role}")


def test_failed_replace_half_way_puts_the_database_back(server, ansible, sample_db):
    """Break the restore after the old database was dropped: the safety backup must be put back."""
    dump_owned_by_a_vanished_role(server, ansible, sample_db, "events", "lifeboat_gone")
    # Changes made after the backup: exactly what a failed restore must not lose.
    server.sql(sample_db, "INSERT INTO lifeboat_sample.products (sku, name, price) VALUES ('LATE-1', 'late', 3)")
    before = counts(server, sample_db)

    # Restoring ownership needs the dropped role, so pg_restore fails half-way through.
    result = ansible.module("restore", db=sample_db, repository=str(ansible.repository), mode="replace",
                            no_owner=False)
    assert result["failed"]
    assert "pg_restore into database" in result["msg"] and "lifeboat_gone" in result["msg"]
    assert f"database '{sample_db}' was put back as it was from safety backup" in result["msg"]
    assert counts(server, sample_db) == before
    assert server.sql(sample_db, "SELECT name FROM lifeboat_sample.products WHERE sku = 'LATE-1'") == [("late",)]


def test_failed_new_restore_leaves_no_half_database(server, ansible, sample_db):
    dump_owned_by_a_vanished_role(server, ansible, sample_db, "orders", "lifeboat_gone2")
    copy = sample_db + "_half"
    result = ansible.module("restore", db=copy, backup_db=sample_db, repository=str(ansible.repository),
                            mode="new", no_owner=False)
    assert result["failed"] and "was dropped" in result["msg"]
    assert not server.exists(copy)
