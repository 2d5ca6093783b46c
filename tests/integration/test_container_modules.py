"""lifeboat.db.seed, integrity, partition and files against a database that lives in a container (issue 20).

Through ansible-playbook, as a user runs them, with `container` in the play's module_defaults: the
Docker host (this machine, the tests' podman engine serving the Docker API) has the files, the
migrations, the repository and the schema dump; the client tools are the container's own
(postgres:18; this host's are PostgreSQL 15, whose pg_dump refuses a PostgreSQL 18 server).
Two PostgreSQL containers (the task's, and another holding a database of the same name for
parity_with.container) and one busybox container with a bind mount (the uploads) and no network
for the files module; the work in one play, the bad inputs in a second one beside it.
"""
import concurrent.futures
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from conftest import PlayResult, ansible_playbook, assert_one_line, backup_sets, leftovers
from test_files import make_uploads

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "tests" / "tools"))
import dockerengine  # noqa: E402
import pgcontainers  # noqa: E402

MISSING = dockerengine.problem()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "")

HOST = "dockerhost"
UPLOADS = "/srv/uploads"  # where the uploads' bind mount is in the busybox container
SCHEMA = """
CREATE TABLE customer (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL REFERENCES customer, total numeric(10, 2));
CREATE INDEX orders_customer ON orders (customer);
"""
SEED = """
INSERT INTO customer (name) SELECT 'c' || g FROM generate_series(1, 50) g;
INSERT INTO orders (customer, total) SELECT 1 + g % 50, g FROM generate_series(1, 500) g;
"""
MIGRATION = "ALTER TABLE customer ADD COLUMN email text;\nCREATE TABLE invoice (id int PRIMARY KEY, orders int REFERENCES orders);\n"
# Monthly partitions of 2026; on 2026-05-15 with two periods kept, January and February retire.
PARTITIONS = "".join(
    "CREATE TABLE events_2026_%02d PARTITION OF events FOR VALUES FROM ('2026-%02d-01') TO ('%s');" % (
        month, month, "2026-%02d-01" % (month + 1)) for month in range(1, 6))
EVENTS = ("CREATE TABLE events (id bigint, at date NOT NULL, what text) PARTITION BY RANGE (at);" + PARTITIONS +
          "INSERT INTO events SELECT g, DATE '2026-01-01' + (g % 140), 'e' || g FROM generate_series(1, 7000) g;")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("container-modules")
    with pgcontainers.container_site("mod") as site:
        # `other` has a database `copy` too, with a table of its own: parity_with.container must reach it.
        site.db, site.other = site.postgres_pair(("db", "other"))
        # The uploads on a bind mount of a busybox container: the files module needs no PostgreSQL, and never
        # connects - so the container may have no address at all (no network).
        site.mounted = base / "mounted"
        (site.mounted / "app").mkdir(parents=True)
        site.uploads = make_uploads(site.mounted / "app")
        site.app = site.client.containers.run(
            site.toolless.image, ["sleep", "600"], name=site.prefix + "app", detach=True, labels=site.labels,
            volumes={str(site.mounted): {"bind": UPLOADS, "mode": "rw"}}, network_mode="none")
        # A link the container made in its volume, pointing at the Docker host's root once seen from there.
        code, output = site.app.exec_run(["ln", "-s", "/", UPLOADS + "/escape"])
        assert code == 0, output
        site.base = base
        db = site.db
        db.sql("app", "CREATE EXTENSION amcheck;" + EVENTS)
        db.sql("postgres", "CREATE DATABASE copy")
        site.other.sql("postgres", "CREATE DATABASE copy")
        site.other.sql("copy", "CREATE TABLE only_in_other (id int)")
        # A login that may not read one table: pg_dump --schema-only locks every table, so it fails in the container.
        db.sql("app", "CREATE ROLE reader LOGIN PASSWORD 'reader-pw-1'; CREATE TABLE secret (id int);"
                      "REVOKE ALL ON secret FROM PUBLIC")
        yield site


def write_files(base):
    files = base / "files"
    (files / "migrations").mkdir(parents=True)
    (files / "schema.sql").write_text(SCHEMA)
    (files / "seed.sql").write_text(SEED)
    (files / "migrations" / "V1__email_and_invoice.sql").write_text(MIGRATION)
    return files


def task(title, module, ignore=False, **args):
    entry = {"name": title, "lifeboat.db.%s" % module: args}
    if ignore:
        entry["ignore_errors"] = True
    return entry


def play(site, workdir, tasks):
    """Run `tasks` on the Docker host (this machine), `container` and the login in module_defaults."""
    inventory = workdir / "inventory.json"
    fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"all": {"hosts": {HOST: {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            # No login_host: lifeboat finds the server at the port the container publishes.
            "lifeboat_container": {"container": site.db.name, "docker_host": site.engine.base_url,
                                   "login_user": site.db.user, "login_password": site.db.password},
            "lifeboat_other_password": site.other.password}}}}, out)
    playbook = workdir / "play.yml"
    playbook.write_text(json.dumps([{
        "name": "containers", "hosts": "all", "gather_facts": False,
        "module_defaults": {"group/lifeboat.db.all": "{{ lifeboat_container }}"}, "tasks": tasks}], indent=1))
    record = workdir / "results.jsonl"
    proc = ansible_playbook(["-i", inventory, playbook], record)
    result = PlayResult(proc, HOST, record)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def ran(site):
    """The one play: each module's work in the container, then each bad input."""
    files = write_files(site.base)
    repo, work = site.base / "repo", site.base / "work"
    work.mkdir(mode=0o700)
    dump = work / "schema_dump.sql"
    files_args = dict(container=site.app.name, repository=str(repo), name="uploads")
    tasks = [
        task("apply", "seed", db="app", schema_files=[str(files / "schema.sql")], seed_files=[str(files / "seed.sql")]),
        task("migrate", "seed", db="app", action="migrate", migrations=[str(files / "migrations")],
             baseline_on_migrate=True, baseline_version="0"),
        task("export", "seed", db="app", action="export_schema", dest=str(dump), exclude_tables=["public.secret"]),
        task("export again", "seed", db="app", action="export_schema", dest=str(dump),
             exclude_tables=["public.secret"]),
        task("apply the dump", "seed", db="copy", schema_files=[str(dump)]),
        task("integrity", "integrity", db="app", fail_on="never", min_rows={"orders": 500},
             parity_with={"db": "copy"}),
        task("parity with the other container", "integrity", db="app", fail_on="never", parity_with={
            "db": "copy", "container": site.other.name, "password": "{{ lifeboat_other_password }}"}),
        task("retire", "partition", db="app", table="events", interval="monthly", premake=1, now="2026-05-15",
             retain=2, retention_action="archive_and_drop", repository=str(repo)),
        task("restore partition", "partition", db="app", table="events", interval="monthly",
             restore_partition="events_2026_01", repository=str(repo)),
        task("files backup", "files", path=UPLOADS + "/app", **files_args),
        task("files restore", "files", action="restore", dest=UPLOADS + "/restored", **files_args),
    ]
    # Bad input, one line each: nothing here depends on the work above, so it runs beside it.
    bad = [
        task("export denied", "seed", ignore=True, db="app", action="export_schema", dest=str(work / "denied.sql"),
             login_user="reader", login_password="reader-pw-1"),
        task("container without tools", "seed", ignore=True, db="app", action="export_schema",
             dest=str(work / "x.sql"), container=site.toolless.name, login_host="127.0.0.1", port=site.db.port),
        task("stopped container", "integrity", ignore=True, db="app", container=site.stopped.name),
        task("unknown container", "partition", ignore=True, db="app", table="events", interval="monthly",
             restore_partition="events_2026_02", repository=str(repo), container=site.prefix + "nosuch"),
        task("engine not reachable", "files", ignore=True, path=UPLOADS + "/app", container=site.app.name,
             docker_host="unix://%s/no-engine.sock" % site.base, repository=str(repo), name="uploads"),
        task("path in the container's layer", "files", ignore=True, path="/etc", **files_args),
        task("dest at the mount point", "files", ignore=True, action="restore", dest=UPLOADS, **files_args),
        task("parity with host and container", "integrity", ignore=True, db="app",
             parity_with={"db": "copy", "container": site.db.name, "port": 5432}),
        task("backup through a link", "files", ignore=True, path=UPLOADS + "/escape/etc",
             **dict(files_args, name="escape")),
        task("restore through a link", "files", ignore=True, action="restore",
             dest=UPLOADS + "/escape" + str(site.base / "escaped"), **files_args),
    ]
    (site.base / "bad").mkdir()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        good, failing = pool.map(lambda args: play(site, *args), ((site.base, tasks), (site.base / "bad", bad)))
    assert good.rc == 0, good.stdout[-3000:]
    assert failing.rc == 0, failing.stdout[-3000:]
    return dict(result=good, bad=failing, repo=repo, work=work, dump=dump)


def ok(ran, name):
    result = ran["result"].result(name)
    assert not result["failed"], result
    return result


def test_seed_in_container(site, ran):
    applied = ok(ran, "apply")
    assert applied["changed"] and applied["container"]["name"] == site.db.name, applied
    assert applied["container"]["image"].endswith("postgres:18")  # podman names it localhost/postgres:18
    assert site.db.sql("app", "SELECT count(*), (SELECT count(*) FROM orders) FROM customer") == [(50, 500)]
    migrated = ok(ran, "migrate")
    assert migrated["changed"], migrated
    assert site.db.sql("app", "SELECT version FROM flyway_schema_history WHERE success ORDER BY installed_rank") == \
        [("0",), ("1",)]

    # The container's own pg_dump (PostgreSQL 18) wrote the dump, on the Docker host, 0600, without history tables.
    export = ok(ran, "export")
    assert export["changed"] and "pg_dump in container %s" % site.db.name in export["actions"][0], export
    text = ran["dump"].read_text()
    assert "Dumped by pg_dump version 18." in text and "CREATE TABLE public.invoice" in text, text[:500]
    assert "flyway_schema_history" not in text and "lifeboat_seed_history" not in text
    assert stat.S_IMODE(ran["dump"].stat().st_mode) == 0o600
    again = ok(ran, "export again")
    assert not again["changed"], again
    assert sorted(os.listdir(ran["work"])) == ["schema_dump.sql"]  # no staging file, nothing from the failures
    ok(ran, "apply the dump")
    assert site.db.sql("copy", "SELECT count(*) FROM information_schema.columns WHERE table_name = 'customer' "
                               "AND column_name = 'email'") == [(1,)]


def test_integrity_in_container(site, ran):
    checked = ok(ran, "integrity")
    assert checked["container"]["name"] == site.db.name, checked
    by_name = {c["name"]: c for c in checked["checks"]}
    # amcheck ran in the container's server (its extension there), on every B-tree index.
    assert by_name["amcheck"]["status"] == "passed", by_name["amcheck"]
    assert by_name["amcheck"]["summary"].endswith("btree index(es) verified")
    assert not by_name["amcheck"]["summary"].startswith("0 "), by_name["amcheck"]
    assert [c["status"] for c in checked["checks"] if c["kind"] == "min_rows"] == ["passed"], checked["checks"]
    # parity_with on the task's own server: the copy, made from the dump, lacks only what the dump left out
    # (Flyway's history table, the table excluded).
    parity = by_name["schema_parity"]
    assert parity["status"] == "failed", parity
    assert parity["diff"] and all("flyway_schema_history" in line or "secret" in line
                                  for line in parity["diff"]), parity["diff"]
    # parity_with.container reaches that container's server, not the task's: its `copy` (same name) holds only
    # only_in_other, which the task's `copy` has not, and none of app's tables.
    other = {c["name"]: c for c in ok(ran, "parity with the other container")["checks"]}["schema_parity"]
    assert other["status"] == "failed", other
    assert "only in copy: table public.only_in_other" in other["diff"], other["diff"]
    assert "only in app: table public.orders" in other["diff"], other["diff"]


def test_partition_in_container(site, ran):
    retired = ok(ran, "retire")
    assert retired["container"]["name"] == site.db.name, retired
    archived = {a["partition"]: a for a in retired["archived"]}
    assert "public.events_2026_01" in archived, retired
    january = archived["public.events_2026_01"]
    app = ran["repo"] / "app"
    manifest = json.loads((app / january["backup_id"] / "manifest.json").read_text())
    assert manifest["kind"] == "partition-archive" and manifest["container"]["name"] == site.db.name
    assert manifest["pg_dump_version"].startswith("18")
    assert manifest["row_counts"] == {"public.events_2026_01": january["rows"]}
    assert [d["partition"] for d in retired["dropped"]] == sorted(archived)
    restored = ok(ran, "restore partition")
    assert restored["changed"] and restored["rows"] == january["rows"], restored
    assert site.db.sql("app", "SELECT count(*) FROM events WHERE at < '2026-02-01'") == [(january["rows"],)]
    assert site.db.scratch_left() == []
    # One set per archived partition, nothing half-written.
    assert len(backup_sets(app)) == len(archived) and leftovers(app) == []


def test_files_in_container(site, ran):
    taken = ok(ran, "files backup")
    assert taken["file_count"] == len(site.uploads), taken
    assert taken["container"]["path_in_container"] == UPLOADS + "/app"
    assert taken["container"]["name"] == site.app.name
    restored = ok(ran, "files restore")
    assert restored["dest"] == str(site.mounted / "restored"), restored
    # The application container has no network, so no server address to find: files never looks one up.
    site.app.reload()
    assert site.app.attrs["HostConfig"]["NetworkMode"] == "none", site.app.attrs["HostConfig"]
    # Restored on the Docker host, seen by the container through its mount.
    code, output = site.app.exec_run(["cat", UPLOADS + "/restored/notes.txt"])
    assert (code, output) == (0, site.uploads["notes.txt"])


def test_bad_input_in_container(site, ran):
    result = ran["bad"]
    assert_one_line(result.result("export denied"),
                    "pg_dump --schema-only of database 'app' failed in container %r (exit code 1)" % site.db.name,
                    "permission denied for table")
    assert not (ran["work"] / "denied.sql").exists()
    assert_one_line(result.result("unknown container"), "container %r does not exist on the engine at %s"
                    % (site.prefix + "nosuch", site.engine.base_url))
    assert_one_line(result.result("stopped container"), "container %r is exited" % site.stopped.name,
                    "docker start %s" % site.stopped.name)
    assert_one_line(result.result("container without tools"), "container %r has no pg_dump" % site.toolless.name)
    assert_one_line(result.result("engine not reachable"), "cannot reach the container engine at unix://",
                    "no such socket")
    assert_one_line(result.result("path in the container's layer"),
                    "path /etc is not on a volume or bind mount of container %r (its mounts: %s)"
                    % (site.app.name, UPLOADS))
    assert_one_line(result.result("dest at the mount point"),
                    "dest %s is where %s is mounted in container %r" % (UPLOADS, site.mounted, site.app.name),
                    "restore into a folder below it")
    assert_one_line(result.result("parity with host and container"), "give the container")
    # A link the container made is never followed: neither the host's /etc backed up, nor a restore outside.
    for title, option, path in (("backup through a link", "path", UPLOADS + "/escape/etc"),
                                ("restore through a link", "dest", UPLOADS + "/escape" + str(site.base / "escaped"))):
        assert_one_line(result.result(title), "%s %s: %s/escape is a symbolic link inside mount %s of container %r; "
                        "lifeboat never follows a link the container made" % (option, path, UPLOADS, UPLOADS,
                                                                               site.app.name))
    assert not (ran["repo"] / "escape").exists() and not (site.base / "escaped").exists()
    assert site.db.password not in result.stdout + result.stderr
    assert "reader-pw-1" not in result.stdout + result.stderr
