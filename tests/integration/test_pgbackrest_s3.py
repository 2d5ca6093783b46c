"""playbooks/pitr_setup.yml (role lifeboat_pgbackrest) with an S3 repository, on a real host over SSH: moto's
S3 server on the test hosts' bridge, over TLS with a CA this module makes (Debian's pgBackRest 2.45 speaks S3
over TLS only) and checked by pgBackRest (repo1-storage-ca-file: the certificate checks stay on), path-style
URIs, credentials moto checks, and the repository encrypted client-side (aes-256-cbc).

Bad input ends in one line before the cluster changes; a run archives the WAL into the bucket and takes the
first full backup there, which pgbackrest_info reads; a second run changes nothing. Then S3 becomes unreachable
(a firewall rule on the host): archive_command fails, pgbackrest_info reports the archiver failing and the
exposure growing, and the role stops in one line; once S3 is back the archive catches up. Last, a restore from
the bucket into a new data directory replays WAL up to a row written after the backup. The S3 secret and the
cipher passphrase appear in no play output, task result or pgBackRest log, and the configuration is 0640.
db2 is put back as it was at the end."""
import json
import secrets
import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import assert_one_line, start_moto

HOST = "db2"
BUCKET = "lifeboat-pitr-s3"
REPO = "/lifeboat/db2"
CA_DIR = "/etc/lifeboat-test-s3"
RESTORED = "/var/lib/postgresql/restored-s3"
RESTORED_PORT = 5499
# A fresh passphrase per run, so finding it anywhere can only mean the role leaked it.
CIPHER_PASS = "lifeboat-cipher-" + secrets.token_hex(12)
WRITTEN = ["/etc/pgbackrest", "/var/log/pgbackrest", "/tmp/pgbackrest", CA_DIR, RESTORED]
REACH = "lifeboat_pgbackrest : Stop when pgBackRest cannot use the repository, stanza main"
INFO_PLAY = """
- name: Read the S3 stanza pitr_setup.yml made
  hosts: %s
  gather_facts: false
  tasks:
    - name: Read the stanza
      lifeboat.db.pgbackrest_info:
        stanza: main
        login_unix_socket: /var/run/postgresql
        login_user: postgres
""" % HOST


@pytest.fixture(scope="module")
def tls_moto(db_hosts, tmp_path_factory):
    """moto over TLS on the bridge (db hosts reach it), checking credentials after the three requests that
    make the one IAM user whose key is valid, with the module's bucket."""
    server = start_moto(db_hosts.gateway, env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"},
                        tls_dir=tmp_path_factory.mktemp("s3-tls"))
    try:
        import boto3
        iam = boto3.client("iam", endpoint_url=server.endpoint_url, region_name="us-east-1", verify=str(server.ca_file),
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="pgbackrest")
        iam.put_user_policy(UserName="pgbackrest", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="pgbackrest")["AccessKey"]
        server.ACCESS_KEY, server.SECRET_KEY = key["AccessKeyId"], key["SecretAccessKey"]
        server.bucket(BUCKET)
        yield server
    finally:
        server.stop()


class ArgvWatch(threading.Thread):
    """Every process's argv and environment, sampled while the plays run (the test hosts share this machine's
    process table, so pgbackrest, psql and the modules on db2 are seen too), kept where a secret shows."""

    def __init__(self, *secrets):
        super().__init__(daemon=True)
        self.secrets = [secret.encode() for secret in secrets]
        self.done, self.seen, self.samples = threading.Event(), [], 0

    def run(self):
        while not self.done.is_set():
            for proc in Path("/proc").glob("[0-9]*"):
                for part in ("cmdline", "environ"):
                    try:
                        data = (proc / part).read_bytes()
                    except OSError:
                        continue
                    if any(secret in data for secret in self.secrets):
                        self.seen.append((proc.name, part, data[:300]))
            self.samples += 1
            self.done.wait(0.05)


def setting(db_hosts, name):
    return db_hosts.psql(HOST, "postgres", f"SELECT setting FROM pg_settings WHERE name = '{name}'")[0][0]


def archiver(db_hosts):
    archived, failed = db_hosts.psql(HOST, "postgres", "SELECT archived_count, failed_count FROM pg_stat_archiver")[0]
    return int(archived), int(failed)


def switch_wal(db_hosts, payload):
    db_hosts.psql(HOST, "postgres", f"INSERT INTO s3_marks VALUES ('{payload}')")
    db_hosts.psql(HOST, "postgres", "SELECT pg_switch_wal()")


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.3)


def test_pitr_setup_with_s3_over_tls(db_hosts, tls_moto, tmp_path):
    moto = tls_moto
    s3 = {"endpoint": db_hosts.gateway, "port": moto.port, "bucket": BUCKET, "region": "us-east-1",
          "uri_style": "path", "key": moto.ACCESS_KEY, "key_secret": moto.SECRET_KEY, "ca_file": f"{CA_DIR}/ca.pem"}
    inventory = db_hosts.inventory({"production": [HOST]}, overrides={"production": {
        "lifeboat_pgbackrest_repo_type": "s3", "lifeboat_pgbackrest_repo_path": REPO, "lifeboat_pgbackrest_s3": s3,
        "lifeboat_pgbackrest_cipher_type": "aes-256-cbc", "lifeboat_pgbackrest_cipher_pass": CIPHER_PASS,
        # pgBackRest retries an unreachable endpoint until io-timeout, several times per file (a minute by
        # default makes one `info` take four): short here, so the outage below costs seconds.
        "lifeboat_pgbackrest_options": {"io-timeout": 2, "archive-timeout": 30}}})
    ca_only = tmp_path / "ca"
    ca_only.mkdir()
    shutil.copy(moto.ca_file, ca_only / "ca.pem")
    db_hosts.copy_in(HOST, ca_only, CA_DIR)
    info_play = tmp_path / "info.yml"
    info_play.write_text(INFO_PLAY)
    outputs = []
    # The host's firewall refusing the endpoint: S3 unreachable, and moto keeps the bucket meanwhile.
    blocked = ["OUTPUT", "-d", db_hosts.gateway, "-p", "tcp", "--dport", str(moto.port), "-j", "REJECT",
               "--reject-with", "tcp-reset"]

    def play(*args, playbook="pitr_setup.yml"):
        run = db_hosts.run_playbook(inventory, playbook, *args)
        outputs.append(run.stdout + run.stderr)
        return run

    def extra_vars(extra):
        """-e @file: the test's own ansible-playbook argv must not hold a secret either (ArgvWatch)."""
        path = tmp_path / f"extra-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(extra))
        path.chmod(0o600)
        return f"@{path}"

    def refused(extra, task, *fragments):
        run = play("-e", extra_vars(extra))
        assert run.rc != 0, run.stdout[-3000:]
        name, result = run.on(HOST).tasks[-1]
        assert name == task, [name for name, _ in run.on(HOST).tasks]
        assert_one_line(result, *fragments)
        assert setting(db_hosts, "archive_mode") == "off"
        return result["msg"]

    def read_info():
        run = play(str(info_play), playbook=str(info_play))
        assert run.rc == 0, run.stdout[-3000:]
        return run.on(HOST).result("Read the stanza")

    watch = ArgvWatch(moto.SECRET_KEY, CIPHER_PASS)
    watch.start()
    try:
        db_hosts.psql(HOST, "postgres", "CREATE TABLE s3_marks (payload text)")
        # Bad input, each one line before the cluster changes (archive_mode stays off).
        started = time.monotonic()
        refused({"lifeboat_pgbackrest_s3": {"endpoint": db_hosts.gateway}},
                "lifeboat_pgbackrest : Check that the S3 repository has an endpoint, a bucket and a region",
                "missing: bucket, region")
        refused({"lifeboat_pgbackrest_s3": dict(s3, endpoint=f"https://{db_hosts.gateway}:{moto.port}")},
                "lifeboat_pgbackrest : Check the S3 endpoint and bucket", "without scheme, port or path")
        refused({"lifeboat_pgbackrest_cipher_pass": ""}, "lifeboat_pgbackrest : Check the repository encryption settings",
                "aes-256-cbc needs a passphrase")
        # An unknown URI style is argument_specs' to refuse, before the role's first task.
        styled = play("-e", extra_vars({"lifeboat_pgbackrest_s3": dict(s3, uri_style="virtual")}))
        assert styled.rc != 0 and "uri_style" in styled.stdout and "host, path" in styled.stdout, styled.stdout[-3000:]
        # Keys moto does not know: pgBackRest's 403 in one line, nothing on the cluster changed.
        wrong = refused({"lifeboat_pgbackrest_s3": dict(s3, key_secret="not-the-secret-" + secrets.token_hex(8))},
                        REACH, "403", "check lifeboat_pgbackrest_s3 key and key_secret", "nothing was changed")
        print(f"bad input, 5 runs: {time.monotonic() - started:.1f} s; wrong keys: {wrong}")

        started = time.monotonic()
        setup = play()
        assert setup.rc == 0, setup.stdout[-3000:]
        print(f"pitr_setup.yml with S3 over TLS, first run: {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        assert setting(db_hosts, "archive_mode") == "on"
        assert db_hosts.enter(HOST, "stat", "-c", "%U %G %a", "/etc/pgbackrest/pgbackrest.conf").stdout.split() \
            == ["root", "postgres", "640"]
        conf = db_hosts.enter(HOST, "cat", "/etc/pgbackrest/pgbackrest.conf").stdout.splitlines()
        for line in ("repo1-type=s3", f"repo1-path={REPO}", f"repo1-s3-endpoint={db_hosts.gateway}",
                     f"repo1-storage-port={moto.port}", f"repo1-s3-bucket={BUCKET}", "repo1-s3-uri-style=path",
                     f"repo1-storage-ca-file={CA_DIR}/ca.pem", "repo1-cipher-type=aes-256-cbc", "io-timeout=2"):
            assert line in conf, conf
        assert not any(line.startswith("repo1-storage-verify-tls") for line in conf), "certificate checks stay on"
        # The repository is in the bucket, encrypted: pgBackRest's files there are OpenSSL-salted ciphertext.
        keys = moto.keys(BUCKET, REPO.lstrip("/"))
        assert f"{REPO.lstrip('/')}/backup/main/backup.info" in keys, keys
        assert any("/archive/main/15-1/" in key for key in keys), keys
        body = moto.client().get_object(Bucket=BUCKET, Key=f"{REPO.lstrip('/')}/backup/main/backup.info")["Body"].read()
        assert body.startswith(b"Salted__"), body[:40]

        # A row after the backup, in a WAL segment that reaches the bucket (the restore below must replay it).
        archived, failed = archiver(db_hosts)
        switch_wal(db_hosts, "after the backup")
        wait_for(lambda: archiver(db_hosts)[0] > archived, "the switched WAL segment reached S3")
        info = read_info()
        assert info["status"]["code"] == 0 and info["stanza"]["cipher"] == "aes-256-cbc", info["stanza"]
        assert [backup["type"] for backup in info["backups"]] == ["full"], info["backups"]
        assert info["archives"][0]["max_wal"] >= info["backups"][0]["wal_stop"], info["archives"]
        assert not info["archiver"]["failing"] and info["exposure_seconds"] < 60, info["archiver"]
        exposure_before = info["exposure_seconds"]

        again = play()
        assert again.rc == 0 and again.changed(HOST) == 0, again.stdout[-3000:]

        print(f"archived, read, second run: {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        # S3 unreachable from the host (its firewall refuses the endpoint): archive_command fails.
        db_hosts.enter(HOST, "iptables", "-A", *blocked)
        archived, failed = archiver(db_hosts)
        switch_wal(db_hosts, "during the outage")
        wait_for(lambda: archiver(db_hosts)[1] > failed, "archive_command failed against the unreachable S3", 90)
        outage = read_info()
        assert outage["archiver"]["failing"] and outage["archiver"]["failed_count"] > failed, outage["archiver"]
        assert outage["exposure_seconds"] > exposure_before, (exposure_before, outage["exposure_seconds"])
        assert outage["status"]["code"] == 99 and "HostConnectError" in outage["stanza"]["repos"][0]["status"]["message"]
        assert any("WAL archiving is failing" in warning for warning in outage.get("warnings", [])), outage.get("warnings")
        # The status-99 warning says why, from the repository's own status.
        assert any("status code 99" in warning and "repo1: " in warning and "HostConnectError" in warning
                   for warning in outage.get("warnings", [])), outage.get("warnings")
        stopped = play()
        assert stopped.rc != 0, stopped.stdout[-3000:]
        name, result = stopped.on(HOST).tasks[-1]
        assert name == REACH, [name for name, _ in stopped.on(HOST).tasks]
        assert_one_line(result, "HostConnectError", f"{db_hosts.gateway}:{moto.port}", "check lifeboat_pgbackrest_s3 endpoint")
        print(f"the role while S3 is unreachable: {result['msg']}")
        assert archiver(db_hosts)[0] == archived, "nothing reached the archive during the outage"

        print(f"the outage: {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        # S3 back: the role's check passes once the archiver has pushed what waited, and nothing is failing.
        db_hosts.enter(HOST, "iptables", "-D", *blocked)
        back = play()
        assert back.rc == 0 and back.changed(HOST) == 0, back.stdout[-3000:]
        caught_up = read_info()
        assert not caught_up["archiver"]["failing"] and caught_up["archiver"]["archived_count"] > archived, \
            caught_up["archiver"]
        assert caught_up["exposure_seconds"] < outage["exposure_seconds"] + 60, caught_up["exposure_seconds"]

        print(f"S3 back: {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        # A restore from the bucket into a new data directory, recovering to the end of the archived WAL.
        db_hosts.enter(HOST, "install", "-d", "-m", "0700", "-o", "postgres", "-g", "postgres", RESTORED)
        restore = db_hosts.enter(HOST, "runuser", "-u", "postgres", "--", "pgbackrest", "--stanza=main",
                                 f"--pg1-path={RESTORED}", "--archive-mode=off", "restore", check=False, timeout=300)
        assert restore.returncode == 0, restore.stderr
        db_hosts.enter(HOST, "sh", "-c", f"printf \"port = {RESTORED_PORT}\\nunix_socket_directories = '/tmp'\\n\" "
                       f"> {RESTORED}/postgresql.conf && cp /etc/postgresql/15/main/pg_hba.conf {RESTORED}/ && "
                       f"chown postgres: {RESTORED}/postgresql.conf {RESTORED}/pg_hba.conf")
        db_hosts.enter(HOST, "runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", RESTORED,
                       "-l", f"{RESTORED}/server.log", "-w", "-t", "120", "start", timeout=180)

        def restored(query):
            return db_hosts.enter(HOST, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-h", "/tmp", "-p",
                                  str(RESTORED_PORT), "-d", "postgres", "-c", query).stdout.strip()

        wait_for(lambda: restored("SELECT pg_is_in_recovery()") == "f", "the restored cluster promoted", 120)
        marks = restored("SELECT string_agg(payload, ',' ORDER BY payload) FROM s3_marks").split(",")
        assert "after the backup" in marks and "during the outage" in marks, marks

        print(f"restore from S3: {time.monotonic() - started:.1f} s")

        # pgBackRest's own check failing (the stanza pointed at a data directory that is not the cluster's):
        # the role's check task says so in one line, not pgBackRest's page of hints.
        wrong_path = play("-e", json.dumps({"lifeboat_pgbackrest_stanzas": [
            {"name": "main", "cluster": "15/main", "pg_path": "/var/lib/postgresql/15/elsewhere"}]}))
        assert wrong_path.rc != 0, wrong_path.stdout[-3000:]
        name, result = wrong_path.on(HOST).tasks[-1]
        assert name == "lifeboat_pgbackrest : Report a failed check of stanza main", [n for n, _ in wrong_path.on(HOST).tasks]
        assert_one_line(result, "pgbackrest check of stanza main failed (rc 27)", "ERROR: [027]",
                        "the stanza's pg_path, port and socket_path must be those of the running cluster 15/main")
        assert "HINT" not in result["msg"], result["msg"]
        print(f"a failed check: {result['msg']}")
        # No secret anywhere: not in any play's output or the recorded task results, not in pgBackRest's logs.
        record = (db_hosts.workdir / "results.jsonl").read_text()
        for secret in (moto.SECRET_KEY, CIPHER_PASS):
            assert not [out for out in outputs if secret in out], "a secret in ansible-playbook's output"
            assert secret not in record, "a secret in a task result"
            leaked = db_hosts.enter(HOST, "grep", "-rlF", secret, "/var/log/pgbackrest", "/var/log/postgresql", check=False)
            assert leaked.returncode == 1 and not leaked.stdout, leaked.stdout
        assert db_hosts.enter(HOST, "sh", "-c", "ls /var/log/pgbackrest | wc -l").stdout.strip() != "0"
        watch.done.set()
        watch.join()
        assert watch.samples > 100 and not watch.seen, (watch.samples, watch.seen[:3])
    finally:
        watch.done.set()
        db_hosts.enter(HOST, "iptables", "-D", *blocked, check=False)
        db_hosts.enter(HOST, "runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", RESTORED,
                       "-m", "immediate", "stop", check=False)
        db_hosts.enter(HOST, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-c", "DROP TABLE IF EXISTS s3_marks",
                       check=False)
        for name in ("archive_mode", "archive_command"):
            db_hosts.enter(HOST, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-c", f"ALTER SYSTEM RESET {name}",
                           check=False)
        db_hosts.enter(HOST, "pg_ctlcluster", "15", "main", "restart", check=False, timeout=60)
        db_hosts.enter(HOST, "rm", "-rf", *WRITTEN)
    assert setting(db_hosts, "archive_mode") == "off"
