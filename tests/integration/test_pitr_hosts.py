"""playbooks/pitr_drill.yml and playbooks/pitr.yml on a real Debian host over SSH (the multi-host harness),
with the example inventory as a user copies it: a login that becomes postgres, the scratch instance in
the role's default /var/lib/postgresql/lifeboat-pitr-main on port 5499, Debian's configuration in /etc
(which a restored data directory lacks). pitr_setup.yml makes db1 archive into a path repository first;
db1 is put back as it was at the end (archive_mode off, no pgBackRest files, the test's databases and
dumps gone), as the other tests share the hosts.

Not here: restoring onto a second host - the path repository is db1's own (docs/pitr.md)."""
import json
import time

from report_checks import assert_reports

HOST = "db1"
REPO = "/var/backups/pgbackrest"
SCRATCH = "/var/lib/postgresql/lifeboat-pitr-main"
# What the test writes on the host: removed at the end.
WRITTEN = ["/etc/pgbackrest", REPO, "/var/log/pgbackrest", "/tmp/pgbackrest", SCRATCH, "/var/backups/lifeboat/shop"]


def test_pitr_drill_and_a_table_at_a_point_in_time_on_a_host(db_hosts, tmp_path):
    inventory = db_hosts.inventory({"staging": [HOST]}, overrides={"staging": {
        "lifeboat_pgbackrest_repo_path": REPO, "lifeboat_pitr_drill_evidence_dir": str(tmp_path / "drill"),
        "lifeboat_pitr_evidence_dir": str(tmp_path / "pitr")}})
    had_log_folder = db_hosts.enter(HOST, "test", "-d", "/var/log/pgbackrest", check=False).returncode == 0
    try:
        setup = db_hosts.run_playbook(inventory, "pitr_setup.yml")
        assert setup.rc == 0, setup.stdout[-3000:]
        # The example's staging settings name app_drill as the drill's database.
        db_hosts.psql(HOST, "postgres", "CREATE DATABASE app_drill")
        started = time.monotonic()
        drill = db_hosts.run_playbook(inventory, "pitr_drill.yml", "-e", json.dumps({
            "lifeboat_pitr_drill_markers": 3, "lifeboat_pitr_drill_interval": 0.5}))
        print("pitr_drill.yml on db1: %.1f s" % (time.monotonic() - started))
        assert drill.rc == 0, drill.stdout[-4000:]
        (run_dir,) = (tmp_path / "drill").glob("*-db1-main")
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "passed" and summary["markers"]["verified"] is True, summary
        assert summary["reached"]["timeline"] >= 2 and 1.0 <= summary["rpo_seconds"] < 30
        assert summary["scratch"]["data_dir"] == SCRATCH and summary["scratch"]["state"] == "absent", summary["scratch"]
        assert db_hosts.enter(HOST, "test", "-e", SCRATCH, check=False).returncode != 0
        assert db_hosts.psql(HOST, "app_drill", "SELECT count(*) FROM lifeboat_pitr_drill.marks") == [["0"]]
        # Seed 002's targets of the example inventory (4 hours each) are met.
        assert_reports(run_dir, "en", "passed", {"rto-verdict": ("data-verdict", "met"),
                                                "rpo-verdict": ("data-verdict", "met")})

        # DELETE without WHERE a second after a known time; the table comes back, the later row elsewhere stays.
        db_hosts.psql(HOST, "postgres", "CREATE DATABASE shop")
        db_hosts.psql(HOST, "shop", "CREATE TABLE t (id integer PRIMARY KEY); CREATE TABLE log (line text); "
                                    "INSERT INTO t SELECT generate_series(1, 50)")
        time.sleep(0.3)
        target = db_hosts.psql(HOST, "postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                                                 "'YYYY-MM-DD HH24:MI:SS.US') || '+00'")[0][0]
        time.sleep(1.0)
        db_hosts.psql(HOST, "shop", "DELETE FROM t")
        db_hosts.psql(HOST, "shop", "INSERT INTO log VALUES ('after the fault')")
        archived = int(db_hosts.psql(HOST, "postgres", "SELECT archived_count FROM pg_stat_archiver")[0][0])
        db_hosts.psql(HOST, "postgres", "SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while int(db_hosts.psql(HOST, "postgres", "SELECT archived_count FROM pg_stat_archiver")[0][0]) <= archived:
            assert time.monotonic() < deadline, "the switched WAL segment did not reach the repository in 30 s"
            time.sleep(0.2)
        pitr = db_hosts.run_playbook(inventory, "pitr.yml", "-e", json.dumps({
            "pitr_target_type": "time", "pitr_target": target, "pitr_scope": "tables", "pitr_db": "shop",
            "pitr_tables": ["public.t"], "pitr_state": "absent"}))
        assert pitr.rc == 0, pitr.stdout[-4000:]
        assert db_hosts.psql(HOST, "shop", "SELECT count(*) FROM t") == [["50"]]
        assert db_hosts.psql(HOST, "shop", "SELECT line FROM log") == [["after the fault"]]
        (run_dir,) = (tmp_path / "pitr").glob("*-db1-main")
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "passed" and summary["tables_restored"] == ["public.t"], summary
        assert db_hosts.enter(HOST, "test", "-e", SCRATCH, check=False).returncode != 0
    finally:
        # db1 as it was: no archiving, no test databases, no pgBackRest files, no dumps of shop.
        for statement in ("ALTER SYSTEM RESET archive_mode", "ALTER SYSTEM RESET archive_command",
                          "DROP DATABASE IF EXISTS app_drill WITH (FORCE)", "DROP DATABASE IF EXISTS shop WITH (FORCE)"):
            db_hosts.enter(HOST, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-c", statement, check=False)
        # A scratch instance a failed run left: stopped before its folder goes.
        db_hosts.enter(HOST, "runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", SCRATCH,
                       "-m", "immediate", "stop", check=False)
        db_hosts.enter(HOST, "pg_ctlcluster", "15", "main", "restart", check=False, timeout=60)
        db_hosts.enter(HOST, "rm", "-rf", *[path for path in WRITTEN
                                            if path != "/var/log/pgbackrest" or not had_log_folder], check=False)
