#!/usr/bin/env python3
"""A pgBackRest stanza on a throw-away Debian PostgreSQL 15 cluster, for the pgbackrest_info tests.

The cluster is one of scripts/pgserver.py's (as root it runs as `lifeboat-pg`, its data under
/var/lib/lifeboat-pg), restarted with WAL archiving to a path repository beside its data, so the
archive-push that PostgreSQL runs as that account can write there. Then stanza-create, check, a full
and an incremental backup.

`Stanza(name, s3={...})` puts the repository in an S3 bucket instead (moto over TLS in the tests, see
S3_KEYS); the path repository stays the default.

    python tests/tools/pgbackrest_stanza.py start NAME   # prints the facts as JSON
    python tests/tools/pgbackrest_stanza.py stop NAME
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "scripts"))
import pgserver  # noqa: E402

PGBACKREST = Path("/usr/bin/pgbackrest")
DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")
STANZA = "lifeboat"


def missing():
    """Why the stanza cannot be made here, or None."""
    if not PGBACKREST.exists():
        return "pgBackRest is not installed (%s); `make test` installs Debian's as root" % PGBACKREST
    if not (DEBIAN_PG15 / "postgres").exists():
        return "Debian's PostgreSQL 15 is not installed (%s)" % DEBIAN_PG15
    return None


# What Stanza(s3=...) takes: where the bucket is, and the CA file that signed the endpoint's certificate
# (copied beside the configuration, where the account PostgreSQL runs as can read it).
S3_KEYS = {"endpoint", "port", "bucket", "region", "key", "key_secret", "ca_file"}


class Stanza:
    def __init__(self, name, s3=None):
        if s3 is not None and set(s3) != S3_KEYS:
            raise ValueError("s3 needs exactly %s" % ", ".join(sorted(S3_KEYS)))
        self.name = name
        self.s3 = s3
        self.user = pgserver.run_as_user()
        self.paths = pgserver.paths(name)
        self.base = self.paths["base"]
        self.config = self.base / "pgbackrest.conf"
        self.facts = {}

    def own(self, path):
        if self.user:
            account = pgserver.as_user(self.user)
            os.chown(path, account["user"], account["group"])

    def run(self, argv, check=True, env=None):
        """`argv` as the account PostgreSQL runs as (pgBackRest must write the repository as it)."""
        environ = dict(os.environ, PGPASSWORD=self.facts.get("password", ""), **(env or {}))
        proc = subprocess.run(argv, capture_output=True, text=True, env=environ, cwd="/",
                              **pgserver.as_user(self.user))
        if check and proc.returncode:
            raise RuntimeError("%s failed (rc %d): %s" % (" ".join(map(str, argv)), proc.returncode,
                                                           (proc.stderr or proc.stdout).strip()[-2000:]))
        return proc

    def pgbackrest(self, *args, check=True):
        return self.run([str(PGBACKREST), "--config=%s" % self.config, "--stanza=%s" % STANZA, *args], check=check)

    def pg_ctl(self, *args):
        return self.run([self.facts["bin_dir"] + "/pg_ctl", "-D", self.facts["data_dir"], *args])

    def sql(self, query):
        import psycopg
        with psycopg.connect(host=self.facts["host"], port=self.facts["port"], user=self.facts["user"],
                             password=self.facts["password"], dbname="postgres", autocommit=True) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else None

    def start(self):
        self.stop(destroy=True)
        self.facts = pgserver.start(self.name, str(DEBIAN_PG15))
        self.pg_ctl("-m", "fast", "-w", "stop")
        repo = self.base / "repo"
        for folder in (repo, self.base / "log", self.base / "lock", self.base / "spool"):
            folder.mkdir(mode=0o700, exist_ok=True)
            self.own(folder)
        # Never world-readable, not even for a moment: it may hold S3 keys.
        self.config.unlink(missing_ok=True)
        self.config.touch(mode=0o600)
        self.config.write_text(
            "[global]\n"
            + self.repository(repo)
            + "log-path=%s\nlock-path=%s\nspool-path=%s\n" % (self.base / "log", self.base / "lock", self.base / "spool")
            + "log-level-console=warn\nlog-level-file=off\n"
            # Small and quick: the test cluster is a few dozen MB.
            + "compress-type=lz4\nprocess-max=2\nstart-fast=y\narchive-timeout=30\n"
            # A file the tests damage fails verify at once: pgBackRest retries a failed job after 15 s.
            + "job-retry=0\n"
            + "\n[%s]\npg1-path=%s\npg1-port=%d\npg1-socket-path=%s\npg1-user=%s\n"
            % (STANZA, self.facts["data_dir"], self.facts["port"], self.facts["socket_dir"], self.facts["user"]))
        self.config.chmod(0o640)
        self.own(self.config)
        with open(Path(self.facts["data_dir"]) / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# pgBackRest archiving (tests/tools/pgbackrest_stanza.py)\n"
                       "archive_mode = on\nwal_level = replica\nmax_wal_senders = 3\n"
                       "archive_command = '%s --config=%s --stanza=%s archive-push %%p'\n"
                       % (PGBACKREST, self.config, STANZA))
        # The same port again: it was free a moment ago and the facts already name it.
        self.pg_ctl("-l", self.facts["log_file"], "-w", "-t", "60", "-o", "-p %d" % self.facts["port"], "start")
        self.pgbackrest("stanza-create")
        self.pgbackrest("check")
        self.pgbackrest("backup", "--type=full")
        self.sql("CREATE TABLE IF NOT EXISTS marks (at timestamptz DEFAULT now(), payload text)")
        self.sql("INSERT INTO marks (payload) SELECT repeat('x', 200) FROM generate_series(1, 20000)")
        self.pgbackrest("backup", "--type=incr")
        self.sql("INSERT INTO marks (payload) VALUES ('after the incremental')")
        self.switch_wal_and_wait()
        return dict(self.facts, config=str(self.config), stanza=STANZA, repo=str(repo))

    def repository(self, repo):
        """The [global] lines of repo1: the folder `repo`, or the S3 bucket (path-style, the CA checked)."""
        if self.s3 is None:
            return "repo1-path=%s\n" % repo
        ca_file = self.base / "s3-ca.pem"
        ca_file.write_bytes(Path(self.s3["ca_file"]).read_bytes())
        self.own(ca_file)
        return ("repo1-type=s3\nrepo1-path=/%s\nrepo1-s3-endpoint=%s\nrepo1-storage-port=%d\nrepo1-s3-bucket=%s\n"
                "repo1-s3-region=%s\nrepo1-s3-uri-style=path\nrepo1-s3-key=%s\nrepo1-s3-key-secret=%s\n"
                "repo1-storage-ca-file=%s\n"
                % (self.name, self.s3["endpoint"], self.s3["port"], self.s3["bucket"], self.s3["region"],
                   self.s3["key"], self.s3["key_secret"], ca_file))

    def switch_wal_and_wait(self, timeout=30):
        """Write a row, close the current WAL segment and wait until the archiver has tried it (a segment
        with nothing new in it is not switched at all)."""
        import time
        before = self.sql("SELECT archived_count + failed_count FROM pg_stat_archiver")[0][0]
        self.sql("INSERT INTO marks (payload) VALUES ('before a WAL switch')")
        self.sql("SELECT pg_switch_wal()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sql("SELECT archived_count + failed_count FROM pg_stat_archiver")[0][0] > before:
                return
            time.sleep(0.2)
        raise RuntimeError("the archiver did not try the switched WAL segment within %d s" % timeout)

    def stop(self, destroy=True):
        if destroy:
            self.stop_leftovers()
        pgserver.stop(self.name)
        if destroy:
            shutil.rmtree(self.paths["base"], ignore_errors=True)
            shutil.rmtree(self.paths["home"], ignore_errors=True)

    def stop_leftovers(self):
        """Whatever runs under the stanza's folder (a scratch instance a failed test left, a cluster put
        aside or swapped in by a cutover; the stanza's own cluster too, which is removed anyway) is
        stopped before the folder goes, and the short socket folders in /tmp that the scratch instances'
        markers name are removed."""
        for pid_file in self.base.glob("*/postmaster.pid"):
            self.run([str(DEBIAN_PG15 / "pg_ctl"), "-D", str(pid_file.parent), "-m", "immediate", "-w", "stop"],
                     check=False)
        for marker in self.base.glob("*/lifeboat-scratch.json"):
            socket_dir = json.loads(marker.read_text()).get("socket_dir")
            if socket_dir and socket_dir.startswith("/tmp/lifeboat-sock-"):
                shutil.rmtree(socket_dir, ignore_errors=True)


if __name__ == "__main__":
    action, name = sys.argv[1], sys.argv[2]
    stanza = Stanza(name)
    if action == "start":
        facts = stanza.start()
        print(json.dumps({k: v for k, v in facts.items() if k != "password"}, indent=2))
    else:
        stanza.stop()
