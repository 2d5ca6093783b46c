"""lifeboat.db.partition against pg_partman on the same table and premake: the partitions we keep
are the ones pg_partman keeps (bounds and names). pg_partman 4 is Debian's postgresql-15-partman,
so this runs on the system PostgreSQL 15 where that package is installed, and skips elsewhere
(make test installs it as root: scripts/test-packages.sh)."""
import re

import pytest

# pg_partman 4's own interval keywords, which also choose its names (p2026_11, p2026w48, ...).
INTERVALS = ("yearly", "quarterly", "monthly", "weekly", "daily")


@pytest.fixture
def partman_db(server, empty_db):
    if not server.sql("postgres", "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_partman'"):
        pytest.skip("pg_partman is not installed for this server (Debian: postgresql-15-partman)")
    server.sql("postgres", f'ALTER DATABASE "{empty_db}" SET TimeZone = \'UTC\'')
    server.sql(empty_db, "CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman")
    return empty_db


def kept(server, db, parent):
    rows = server.sql(db, "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                          "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass "
                          "AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT' ORDER BY 2", (parent,))
    return [(name[len(parent):], bound) for name, bound in rows]


def test_the_partitions_we_keep_are_the_ones_pg_partman_keeps(server, ansible, partman_db):
    tasks = []
    for interval in INTERVALS:
        for table in ("%s_partman" % interval, "%s_lifeboat" % interval):
            server.sql(partman_db, f"CREATE TABLE {table} (id bigint, created_at timestamptz NOT NULL) "
                                   "PARTITION BY RANGE (created_at)")
        # pg_partman 4's create_parent makes premake partitions behind the current one and ahead of it.
        server.sql(partman_db, "SELECT partman.create_parent(p_parent_table := %s, p_control := 'created_at', "
                               "p_type := 'native', p_interval := %s, p_premake := 4)",
                   ("public.%s_partman" % interval, interval))
    server.sql(partman_db, "CALL partman.run_maintenance_proc()")
    for interval in INTERVALS:
        theirs = kept(server, partman_db, "%s_partman" % interval)
        first = re.match(r"FOR VALUES FROM \('(\d{4}-\d\d-\d\d) 00:00:00\+00'\)", theirs[0][1]).group(1)
        tasks.append({"name": interval, "lifeboat.db.partition": dict(
            db=partman_db, table="public.%s_lifeboat" % interval, interval=interval, premake=4, start=first)})
    result = ansible.play(tasks)
    for interval in INTERVALS:
        assert not result.result(interval).get("failed"), result.result(interval).get("msg")
        ours, theirs = kept(server, partman_db, "%s_lifeboat" % interval), kept(server, partman_db, "%s_partman" % interval)
        assert len(ours) == 9 and ours == theirs, interval
