"""Backups proven on another host, and a fleet in one run (issue 17, items 5 and 6), over SSH as
inventories/example runs them (login deploy, become postgres).

- playbooks/fleet.yml on db1..db4 with forks: db1, db3 and db4 are production hosts whose backups
  db2 (staging, lifeboat_drill_prove_on) proves; db4 is cut off (its link down) and db3's repository
  belongs to root (its backup fails for real). db1 and db2 finish; the summary on the controller
  (JSON and Markdown, 0600 in 0700) shows each host's state, backup and drill. db1's and db3's daily
  backups are copied to S3 (moto's server on the bridge address), so db2 picks and restores db1's
  from there; db4's are not, so its proof tries to carry the set from db4 through the controller.
- playbooks/drill.yml -e lifeboat_drill_source=db1 on the whole inventory: db1 (production) is
  refused as a target, db2 restores and verifies db1's latest backup, and db1's server sees not
  one connection (log_connections), no database is created there and its data is unchanged.
"""
import json
import re
import stat
from types import SimpleNamespace

import pytest

from conftest import PROJECT, ansible_playbook
from report_checks import assert_reports, figure

APP, STAGE, PROOF = "fleet_app", "fleet_stage", "fleet_proof"
REPOSITORY = "/var/backups/lifeboat"
CUSTOMERS, ORDERS = 300, 900
TABLES = (f"CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);"
          f"CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), total numeric);"
          f"INSERT INTO customers(name) SELECT 'c' || g FROM generate_series(1, {CUSTOMERS}) g;"
          f"INSERT INTO orders(customer_id, total) SELECT 1 + g % {CUSTOMERS}, g FROM generate_series(1, {ORDERS}) g;")
DATABASES = {"db1": APP, "db2": STAGE, "db3": APP, "db4": APP}
PG_LOG = "/var/log/postgresql/postgresql-15-main.log"
BUCKET = "lb-fleet"  # made by conftest's s3 fixture (moto on the bridge)
DAILY = {"format": "directory", "jobs": 4, "keep_days": 30}


def drop(db_hosts, host, db):
    db_hosts.psql(host, "postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def private(root):
    """Entries under root that are not 0700 folders or 0600 files."""
    return {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in [root, *root.rglob("*")]
            if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)}


def settings(tmp):
    """The example inventory's settings, and what these tests must change: database names, the
    evidence folders, no writer services on the staging host, a short poll of the async backups."""
    return {"all": {"lifeboat_drill_evidence_dir": str(tmp / "drill"), "lifeboat_fleet_evidence_dir": str(tmp / "fleet"),
                    "lifeboat_backup_poll_interval": 1},
            "production": {"lifeboat_backup_databases": [APP]},
            "staging": {"lifeboat_backup_databases": [STAGE], "lifeboat_drill_db": PROOF,
                        "lifeboat_drill_writer_services": []}}


@pytest.fixture(scope="module")
def fleet(db_hosts, s3, tmp_path_factory):
    """One fleet.yml run over db1..db4 (forks 4), db4 unreachable and db3 failing; hosts restored after."""
    tmp = tmp_path_factory.mktemp("fleet")
    for host, db in DATABASES.items():
        drop(db_hosts, host, db)
        db_hosts.psql(host, "postgres", f'CREATE DATABASE "{db}"')
        db_hosts.psql(host, db, TABLES)
    overrides = settings(tmp)
    overrides["production"]["lifeboat_drill_prove_on"] = "db2"
    # Production's dailies go to S3 too (db4's not), and db2 proves the dailies.
    overrides["production"]["lifeboat_backup_kinds"] = {"daily": dict(DAILY, offsite_url=f"s3://{BUCKET}/{{{{ inventory_hostname }}}}")}
    overrides["staging"]["lifeboat_drill_source_kind"] = "daily"
    s3_settings = s3.options()
    overrides["all"].update(lifeboat_backup_s3=s3_settings, lifeboat_restore_s3=s3_settings)
    inventory = db_hosts.inventory({"production": ["db1", "db3", "db4"], "staging": ["db2"]}, overrides=overrides,
                                   host_vars={"db4": {"lifeboat_backup_kinds": {"daily": DAILY}}})
    db_hosts.enter("db3", "chown", "root:root", REPOSITORY)
    db_hosts.enter("db4", "ip", "link", "set", "eth0", "down")
    try:
        play = db_hosts.run_playbook(inventory, "fleet.yml", "--forks", "4")
    finally:
        db_hosts.enter("db4", "ip", "link", "set", "eth0", "up")
        db_hosts.enter("db4", "ip", "route", "replace", "default", "via", db_hosts.gateway)
        db_hosts.enter("db3", "chown", "postgres:postgres", REPOSITORY)
    yield SimpleNamespace(play=play, tmp=tmp, s3=s3)
    for host, db in DATABASES.items():
        drop(db_hosts, host, db)
        db_hosts.enter(host, "rm", "-rf", f"{REPOSITORY}/{db}")
    drop(db_hosts, "db2", PROOF)


def test_fleet_backs_up_and_proves_every_reachable_host_and_summarizes_all(db_hosts, fleet, chromium):
    play = fleet.play
    output = play.stdout + play.stderr
    # The run fails at its end, after the summary, because db3 failed and db4 did not answer.
    assert play.rc != 0, output[-4000:]
    assert "Fail the run when a host did not finish cleanly" in output, output[-4000:]
    summary = json.loads((fleet.tmp / "fleet" / "latest-summary.json").read_text())
    hosts = {row["host"]: row for row in summary["hosts"]}
    assert {host: row["state"] for host, row in hosts.items()} == {
        "db1": "ok", "db2": "ok", "db3": "failed", "db4": "unreachable"}, json.dumps(summary, indent=1)
    assert summary["counts"] == {"ok": 2, "failed": 1, "unreachable": 1}

    # db1: backed up, its backup listed (age, size, verified) and proven on db2 with RTO and RPO.
    (app,) = hosts["db1"]["databases"]
    assert app["database"] == APP and app["backup"] == "taken" and app["verified"] is True
    assert app["last_backup_id"] and app["size"] > 0 and app["age_seconds"] >= 0
    drill = app["drill"]
    assert drill["status"] == "passed" and drill["took_on"] == "db1" and drill["proved_on"] == "db2", drill
    assert drill["backup_id"] == app["last_backup_id"]
    assert drill["rto_seconds"] > 0 and drill["rpo_seconds"] > 0
    # db2: its own backup; production's proof restored there.
    (stage,) = hosts["db2"]["databases"]
    assert stage["database"] == STAGE and stage["backup"] == "taken" and stage["last_backup_id"]
    assert db_hosts.psql("db2", PROOF, "SELECT count(*) FROM orders") == [[str(ORDERS)]]
    # db3: the backup failed on the repository it cannot write, and so did the proof of it on db2.
    (broken,) = hosts["db3"]["databases"]
    assert broken["backup"] == "failed" and broken["last_backup_id"] is None
    assert broken["drill"]["status"] == "failed" and broken["drill"]["proved_on"] == "db2"
    assert any(problem.startswith(f"backup of {APP}:") for problem in hosts["db3"]["problems"]), hosts["db3"]
    assert any(problem.startswith(f"drill of {APP} on db2:") for problem in hosts["db3"]["problems"]), hosts["db3"]
    # db4: unreachable, and the run went on without it.
    assert hosts["db4"]["problems"] == ["db4 did not answer over SSH"]
    assert "UNREACHABLE!" in output and "db4" in output
    # Every reachable host ran its backup (in parallel: forks 4); db4 none.
    for host in ("db1", "db2", "db3"):
        assert any(name.endswith("Take a backup of kind daily") for name, _ in play.on(host).tasks), host
    assert not any(name.endswith("Take a backup of kind daily") for name, _ in play.on("db4").tasks)

    markdown = (fleet.tmp / "fleet" / "latest-summary.md").read_text()
    for line in (f"| db1 | ok | {APP} | taken | {app['last_backup_id']} |", f"| db2 | ok | {STAGE} | taken |",
                 f"| db3 | failed | {APP} | failed | - |", "| db4 | unreachable |"):
        assert line in markdown, markdown
    assert "2 ok, 1 failed, 1 unreachable" in markdown and "## Problems" in markdown
    assert "| passed | db2 |" in markdown and "| failed | db2 |" in markdown, markdown
    # The page: one row per host, its state and its drill's RTO and RPO.
    page, _ = assert_reports(fleet.tmp / "fleet" / stamp_of(summary), "en", "failed", {
        "hosts-ok": ("data-ok", 2), "rto": ("data-seconds", drill["rto_seconds"])}, recovery=False, chromium=chromium)
    for host, state in (("db1", "ok"), ("db2", "ok"), ("db3", "failed"), ("db4", "unreachable")):
        assert f'data-host="{host}" data-state="{state}"' in page, host
    assert f'data-rto="{drill["rto_seconds"]!r}"' in page
    # The drill evidence of each proof says which host took and which host proved the backup.
    proofs = [json.loads(p.read_text()) for p in (fleet.tmp / "drill").glob("*/summary.json")]
    assert sorted((p["took_on"], p["proved_on"], p["status"]) for p in proofs) == [
        ("db1", "db2", "passed"), ("db3", "db2", "failed"), ("db4", "db2", "failed")], proofs
    by_source = {p["took_on"]: p for p in proofs}
    # db1's backup came from its S3 copy (db1 not contacted for it); db3 has none there; db4 did not answer.
    assert by_source["db1"]["carried_via"] == "s3", by_source["db1"]
    assert by_source["db1"]["carried_from"] == f"s3://{BUCKET}/db1/{APP}/{app['last_backup_id']}"
    assert by_source["db1"]["verification"].startswith(f"integrity of '{PROOF}'")
    assert by_source["db1"]["restore_row_count_check"] == "2 of 2 tables match"
    assert any(key.startswith(f"db1/{APP}/{app['last_backup_id']}/") for key in fleet.s3.keys(BUCKET))
    assert by_source["db3"]["failure"] == f"no backup latest of {APP} of db3 in s3://{BUCKET}/db3: take one there first (playbooks/backup.yml)"
    assert by_source["db4"]["carried_via"] == "controller"
    assert by_source["db4"]["failure"].startswith("db4 is unreachable"), by_source["db4"]
    assert private(fleet.tmp) == {}


def test_drill_proves_a_production_backup_on_a_staging_host_without_touching_production(db_hosts, fleet, tmp_path):
    """db1's latest backup (the fleet's) restored and verified on db2; db1 refused as a target and untouched."""
    inventory = db_hosts.inventory({"production": ["db1"], "staging": ["db2"]}, overrides=settings(tmp_path))
    databases = db_hosts.psql("db1", "postgres", "SELECT datname FROM pg_database ORDER BY 1")
    counts = "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT sum(total) FROM orders)"
    before = db_hosts.psql("db1", APP, counts)
    sets = db_hosts.enter("db1", "ls", "-a", f"{REPOSITORY}/{APP}").stdout
    db_hosts.psql("db1", "postgres", "ALTER SYSTEM SET log_connections = on")
    db_hosts.psql("db1", "postgres", "SELECT pg_reload_conf()")
    log_size = int(db_hosts.enter("db1", "stat", "-c", "%s", PG_LOG).stdout)
    try:
        play = db_hosts.run_playbook(inventory, "drill.yml", "-e", "lifeboat_drill_source=db1")
        log = db_hosts.enter("db1", "tail", "-c", f"+{log_size + 1}", PG_LOG).stdout
    finally:
        db_hosts.psql("db1", "postgres", "ALTER SYSTEM RESET log_connections")
        db_hosts.psql("db1", "postgres", "SELECT pg_reload_conf()")
    output = play.stdout + play.stderr
    # db1 is production: refused as a drill target (the only failure of the run).
    refused = play.on("db1").result("lifeboat_drill : Refuse to drill on a production host")
    assert refused["failed"] and "db1 is marked lifeboat_production" in refused["msg"], refused
    assert "lifeboat_drill_prove_on" in refused["msg"]
    assert play.on("db2").tasks and not any(result["failed"] for _, result in play.on("db2").tasks), output[-3000:]

    summary = json.loads((tmp_path / "drill" / "latest-summary.json").read_text())
    assert summary["status"] == "passed", summary
    assert (summary["took_on"], summary["proved_on"], summary["database"], summary["restored_as"]) == ("db1", "db2", APP, PROOF)
    assert summary["backup_id"] == fleet_backup_id(fleet)
    assert summary["baseline_total_rows"] == summary["restored_total_rows"] == CUSTOMERS + ORDERS
    assert [t["status"] for t in summary["tables"]] == ["ok", "ok"]
    assert summary["rto_seconds"] > 0 and summary["rpo_seconds"] > 0
    assert "integrity of 'fleet_proof'" in summary["verification"] and "0 failed" in summary["verification"]
    report = (tmp_path / "drill" / summary["run_id"] / "report.md").read_text()
    assert "| Backup taken on | db1 |" in report and "| Backup proved on | db2 |" in report
    assert private(tmp_path / "drill") == {}
    assert db_hosts.psql("db2", PROOF, "SELECT count(*) FROM customers") == [[str(CUSTOMERS)]]
    # Nothing of db1's backup is left on db2 (the carried set) or on the controller.
    assert db_hosts.enter("db2", "ls", "-A", f"{REPOSITORY}/.proving").stdout == ""

    # db1: not one connection to its server, no database created, its data and repository as they were.
    assert "connection received" not in log and "connection authorized" not in log, log
    assert db_hosts.psql("db1", "postgres", "SELECT datname FROM pg_database ORDER BY 1") == databases
    assert db_hosts.psql("db1", APP, counts) == before
    assert db_hosts.enter("db1", "ls", "-a", f"{REPOSITORY}/{APP}").stdout == sets


def test_drill_refuses_a_source_that_is_not_another_host(db_hosts, fleet, tmp_path):
    inventory = db_hosts.inventory({"production": ["db1"], "staging": ["db2"]}, overrides=settings(tmp_path))
    play = db_hosts.run_playbook(inventory, "drill.yml", "-e", "lifeboat_drill_source=db9,db2", limit="db2")
    assert play.rc != 0
    refused = play.on("db2").result("lifeboat_drill : Check the source hosts")
    assert refused["failed"] and "\n" not in refused["msg"], refused
    assert "lifeboat_drill_source names db9, db2: a source must be another host" in refused["msg"], refused
    assert not (tmp_path / "drill").exists()


def fleet_backup_id(fleet):
    summary = json.loads((fleet.tmp / "fleet" / "latest-summary.json").read_text())
    return next(row for row in summary["hosts"] if row["host"] == "db1")["databases"][0]["last_backup_id"]


def test_a_fleet_where_no_host_answers_still_gets_its_summary(tmp_path, chromium):
    """Were every host to leave the run at the first play, ansible-playbook would end it there, before
    the summary: the one run that most needs it. Two hosts nobody answers for (loopback, port 1)."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"children": {"databases": {"hosts": {
        name: {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "nobody"} for name in ("gone1", "gone2")}}}}}))
    proc = ansible_playbook(["-i", inventory, PROJECT / "playbooks" / "fleet.yml",
                             "-e", f"lifeboat_fleet_evidence_dir={tmp_path / 'fleet'}"], tmp_path / "results.jsonl",
                            timeout=120)
    assert proc.returncode != 0
    assert "fleet: 0 ok, 0 failed, 2 unreachable - gone1, gone2" in proc.stdout, proc.stdout[-3000:]
    summary = json.loads((tmp_path / "fleet" / "latest-summary.json").read_text())
    assert summary["counts"] == {"ok": 0, "failed": 0, "unreachable": 2}
    assert [row["problems"] for row in summary["hosts"]] == [["gone1 did not answer over SSH"],
                                                            ["gone2 did not answer over SSH"]]
    assert "0 ok, 0 failed, 2 unreachable" in (tmp_path / "fleet" / "latest-summary.md").read_text()
    assert private(tmp_path / "fleet") == {}
    page, _ = assert_reports(tmp_path / "fleet" / stamp_of(summary), "en", "failed",
                             {"hosts-ok": ("data-ok", 0)}, recovery=False, chromium=chromium)
    assert figure(page, "hosts-ok", "data-hosts") == "2.0"
    assert 'data-host="gone1" data-state="unreachable"' in page and 'id="history-none"' in page

    # A second run, in Japanese: its history holds the first.
    again = ansible_playbook(["-i", inventory, PROJECT / "playbooks" / "fleet.yml", "-e", "lifeboat_report_lang=ja",
                              "-e", f"lifeboat_fleet_evidence_dir={tmp_path / 'fleet'}"], tmp_path / "again.jsonl",
                             timeout=120)
    assert again.returncode != 0
    second = json.loads((tmp_path / "fleet" / "latest-summary.json").read_text())
    page, _ = assert_reports(tmp_path / "fleet" / stamp_of(second), "ja", "failed", {}, recovery=False, chromium=chromium)
    assert "<h1>フリートレポート</h1>" in page and 'data-runs="2"' in page
    assert f'data-run="{stamp_of(summary)}"' in page


def stamp_of(summary):
    """The fleet run's folder name, as fleet.yml makes it from generated_at."""
    return re.sub(r"[-:]|\.\d+", "", summary["generated_at"])
