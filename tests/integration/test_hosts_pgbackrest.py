"""playbooks/pitr_setup.yml (role lifeboat_pgbackrest) on a real host over SSH, with the example inventory as
a user copies it: bad variables are refused in one line before anything changes, check mode changes nothing,
a run makes the Debian PostgreSQL 15 cluster archive its WAL into a path repository with a first full backup,
and a second run changes nothing. db1 is put back as it was at the end (archive_mode off, no pgBackRest files),
as the other tests share the hosts."""
import json
import time

from conftest import assert_one_line

HOST = "db1"
# A folder the test host has of its own: /var/lib/pgbackrest (the role's default) is the machine's.
REPO = "/var/backups/pgbackrest"
CHECK = "lifeboat_pgbackrest : Check the stanzas and the repository path"
# The files the role writes on the host: removed at the end.
WRITTEN = ["/etc/pgbackrest", REPO, "/var/log/pgbackrest", "/tmp/pgbackrest"]
INFO_PLAY = """
- name: Read the stanza pitr_setup.yml made
  hosts: %s
  gather_facts: false
  tasks:
    - name: Read the stanza
      lifeboat.db.pgbackrest_info:
        stanza: main
        login_unix_socket: /var/run/postgresql
        login_user: postgres
""" % HOST


def setting(db_hosts, name):
    return db_hosts.psql(HOST, "postgres", f"SELECT setting FROM pg_settings WHERE name = '{name}'")[0][0]


def untouched(db_hosts):
    """No pgBackRest configuration or repository on the host, and the cluster not archiving."""
    present = db_hosts.enter(HOST, "ls", "-d", "/etc/pgbackrest", REPO, check=False).stdout.split()
    assert present == [], present
    assert setting(db_hosts, "archive_mode") == "off"
    assert setting(db_hosts, "archive_command") == "(disabled)"


def test_pitr_setup_archives_backs_up_and_is_idempotent(db_hosts, tmp_path):
    inventory = db_hosts.inventory({"production": [HOST]}, overrides={"production": {"lifeboat_pgbackrest_repo_path": REPO}})
    had_log_folder = db_hosts.enter(HOST, "test", "-d", "/var/log/pgbackrest", check=False).returncode == 0
    try:
        # Bad variables: the role's first task refuses each in one line, nothing on the host changes.
        for bad in ({"lifeboat_pgbackrest_stanzas": [{"name": "my main", "cluster": "15/main",
                                                      "pg_path": "/var/lib/postgresql/15/main"}]},
                    {"lifeboat_pgbackrest_stanzas": [{"name": "a/b", "cluster": "15/main",
                                                      "pg_path": "/var/lib/postgresql/15/main"}]},
                    {"lifeboat_pgbackrest_repo_path": "backups/pgbackrest"}):
            refused = db_hosts.run_playbook(inventory, "pitr_setup.yml", "-e", json.dumps(bad))
            assert refused.rc != 0, refused.stdout[-3000:]
            tasks = refused.on(HOST).tasks
            assert tasks[-1][0] == CHECK, [name for name, _ in tasks]
            assert_one_line(tasks[-1][1], "no spaces or '/'", "absolute paths")
            untouched(db_hosts)
        # A wrong type is argument_specs' to refuse, before the role's first task.
        typed = db_hosts.run_playbook(inventory, "pitr_setup.yml", "-e", '{"lifeboat_pgbackrest_process_max": "many"}')
        assert typed.rc != 0 and "lifeboat_pgbackrest_process_max" in typed.stdout, typed.stdout[-3000:]
        assert CHECK not in [name for name, _ in typed.on(HOST).tasks]

        # Check mode on the fresh host: it says what would change and changes nothing.
        planned = db_hosts.run_playbook(inventory, "pitr_setup.yml", "--check")
        assert planned.rc == 0, planned.stdout[-3000:]
        assert planned.changed(HOST) > 0, planned.stdout[-3000:]
        untouched(db_hosts)

        started = time.monotonic()
        setup = db_hosts.run_playbook(inventory, "pitr_setup.yml")
        assert setup.rc == 0, setup.stdout[-3000:]
        print(f"pitr_setup.yml, first run: {time.monotonic() - started:.1f} s")
        assert setup.changed(HOST) > 0
        # archive_mode took a restart; the settings are the running ones now.
        assert setting(db_hosts, "archive_mode") == "on"
        assert setting(db_hosts, "archive_command") == "pgbackrest --stanza=main archive-push %p"
        # It may hold S3 keys: never world-readable.
        assert db_hosts.enter(HOST, "stat", "-c", "%U %G %a", "/etc/pgbackrest/pgbackrest.conf").stdout.split() \
            == ["root", "postgres", "640"]
        conf = db_hosts.enter(HOST, "cat", "/etc/pgbackrest/pgbackrest.conf").stdout
        for line in (f"repo1-path={REPO}", "repo1-retention-full=2", "compress-type=lz4", "start-fast=y",
                     "[main]", "pg1-path=/var/lib/postgresql/15/main", "pg1-port=5432"):
            assert line in conf.splitlines(), conf

        # The cluster archives: a closed WAL segment reaches the repository, none fails.
        archived = int(db_hosts.psql(HOST, "postgres", "SELECT archived_count FROM pg_stat_archiver")[0][0])
        db_hosts.psql(HOST, "postgres", "SELECT txid_current()")
        db_hosts.psql(HOST, "postgres", "SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while int(db_hosts.psql(HOST, "postgres", "SELECT archived_count FROM pg_stat_archiver")[0][0]) <= archived:
            assert time.monotonic() < deadline, "the switched WAL segment did not reach the repository in 30 s"
            time.sleep(0.3)
        playbook = tmp_path / "info.yml"
        playbook.write_text(INFO_PLAY)
        read = db_hosts.run_playbook(inventory, str(playbook))
        assert read.rc == 0, read.stdout[-3000:]
        info = read.on(HOST).result("Read the stanza")
        assert info["status"]["code"] == 0, info["status"]
        assert [backup["type"] for backup in info["backups"]] == ["full"], info["backups"]
        assert info["archiver"]["failed_count"] == 0 and not info["archiver"]["failing"], info["archiver"]
        assert info["exposure_seconds"] is not None and info["exposure_seconds"] < 60, info["exposure_seconds"]

        # Idempotent: the second run changes nothing (no restart, no reload, no second backup), and nor
        # does check mode now.
        again = db_hosts.run_playbook(inventory, "pitr_setup.yml")
        assert again.rc == 0 and again.changed(HOST) == 0, again.stdout[-3000:]
        planned = db_hosts.run_playbook(inventory, "pitr_setup.yml", "--check")
        assert planned.rc == 0 and planned.changed(HOST) == 0, planned.stdout[-3000:]

        # Only archive_command differs (still a working one): it is set back with a reload, no restart.
        started_at = db_hosts.psql(HOST, "postgres", "SELECT pg_postmaster_start_time()")[0][0]
        db_hosts.psql(HOST, "postgres", "ALTER SYSTEM SET archive_command = 'pgbackrest  --stanza=main archive-push %p'")
        db_hosts.psql(HOST, "postgres", "SELECT pg_reload_conf()")
        fixed = db_hosts.run_playbook(inventory, "pitr_setup.yml")
        assert fixed.rc == 0 and fixed.changed(HOST) == 1, fixed.stdout[-3000:]
        assert setting(db_hosts, "archive_command") == "pgbackrest --stanza=main archive-push %p"
        assert db_hosts.psql(HOST, "postgres", "SELECT pg_postmaster_start_time()")[0][0] == started_at
    finally:
        # db1 as it was: no archiving (RESET one by one: ALTER SYSTEM runs outside a transaction only).
        for name in ("archive_mode", "archive_command"):
            db_hosts.enter(HOST, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-c", f"ALTER SYSTEM RESET {name}",
                           check=False)
        db_hosts.enter(HOST, "pg_ctlcluster", "15", "main", "restart", check=False, timeout=60)
        db_hosts.enter(HOST, "rm", "-rf", *[path for path in WRITTEN
                                            if path != "/var/log/pgbackrest" or not had_log_folder])
    untouched(db_hosts)
