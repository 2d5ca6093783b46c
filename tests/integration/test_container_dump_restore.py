"""lifeboat.db.dump and lifeboat.db.restore against a database that lives in a container (issue 20).

Through ansible-playbook, as a user runs them: the Docker host (this machine, through the tests'
podman engine serving the Docker API, tests/tools/dockerengine.py) has the repository, and the
client tools are the container's own (postgres:18, tests/tools/pgimage.py; this host's client
tools are PostgreSQL 15, which could not even read that server's archives). One container for the
module; each test runs its cases in one play.
"""
import gzip
import hashlib
import json
import os
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from conftest import PlayResult, ansible_playbook, assert_one_line, backup_sets, leftovers

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "tests" / "tools"))
import dockerengine  # noqa: E402
import pgcontainers  # noqa: E402

MISSING = dockerengine.problem()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "")

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
ROWS = 20000
HOST = "dockerhost"


@pytest.fixture(scope="module")
def site():
    """The Docker host's side: the engine and the database container (port 5432 published on
    127.0.0.1, database app with ROWS items and 300 tags); the stopped and the tool-less containers
    are made by the test that names them."""
    with pgcontainers.container_site("dr") as site:
        db = site.postgres("db")
        db.sql("app", "CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL);"
               "INSERT INTO item SELECT g, md5(g::text) FROM generate_series(1, %d) g;"
               "CREATE TABLE tag (item int REFERENCES item, label text);"
               "INSERT INTO tag SELECT g, 'l' || g FROM generate_series(1, 300) g;" % ROWS)
        site.db = db
        yield site


def play(site, workdir, tasks, check=False):
    """Run `tasks` on the Docker host (this machine) with the container's connection as module defaults."""
    inventory = workdir / "inventory.json"
    fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"all": {"hosts": {HOST: {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "repository": str(workdir / "repo"),
            # No login_host: lifeboat finds the server at the port the container publishes.
            "lifeboat_container": {"container": site.db.name, "docker_host": site.engine.base_url,
                                   "login_user": "lifeboat", "login_password": site.db.password}}}}}, out)
    playbook = workdir / "play.yml"
    playbook.write_text(json.dumps([{
        "name": "containers", "hosts": "all", "gather_facts": False,
        "module_defaults": {"group/lifeboat.db.all": "{{ lifeboat_container }}"}, "tasks": tasks}], indent=1))
    record = workdir / "results.jsonl"
    proc = ansible_playbook(["-i", inventory, playbook] + (["--check"] if check else []), record)
    result = PlayResult(proc, HOST, record)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
    return result


def task(name, module, ignore=False, check=False, **args):
    entry = {"name": name, "lifeboat.db.%s" % module: args}
    if ignore:
        entry["ignore_errors"] = True
    if check:
        entry["check_mode"] = True
    return entry


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_dump_in_container(site, tmp_path):
    repo = tmp_path / "repo"
    gone = "lifeboat-%s-no-such-container" % WORKER
    result = play(site, tmp_path, [
        task("custom", "dump", db="app", repository=str(repo), globals=True),
        task("plain", "dump", db="app", repository=str(repo), format="plain", kind="plain"),
        task("check mode", "dump", check=True, db="app", repository=str(repo)),
        task("directory", "dump", db="app", repository=str(repo), format="directory", kind="dir", jobs=2),
        task("failing pg_dump", "dump", ignore=True, db="app", repository=str(repo), tables=["public.nosuch"]),
        task("failing directory pg_dump", "dump", ignore=True, db="app", repository=str(repo), format="directory",
             kind="dir", tables=["public.nosuch"]),
        task("unknown container", "dump", ignore=True, db="app", repository=str(repo), container=gone),
        task("stopped container", "dump", ignore=True, db="app", repository=str(repo),
             container=site.stopped.name),
        task("container without tools", "dump", ignore=True, db="app", repository=str(repo),
             container=site.toolless.name, login_host="127.0.0.1", port=site.db.port),
        task("engine not reachable", "dump", ignore=True, db="app", repository=str(repo),
             docker_host="unix://%s/no-engine.sock" % tmp_path),
        task("s3 unreachable", "dump", ignore=True, db="app", repository="s3://bucket/prefix",
             cache_dir=str(tmp_path / "cache"), s3_endpoint_url="http://127.0.0.1:9",
             aws_access_key="lifeboat-test-key", aws_secret_key="lifeboat-test-secret-value"),
        task("pg_bin_dir", "dump", ignore=True, db="app", repository=str(repo), pg_bin_dir="/usr/bin"),
    ])
    assert result.rc == 0, result.stdout[-3000:]  # the bad inputs failed (ignored), the rest did not

    custom = result.result("custom")
    assert not custom["failed"], custom
    manifest = custom["manifest"]
    assert manifest["container"]["name"] == site.db.name and manifest["container"]["id"] == site.db.id
    # podman names a local image localhost/postgres:18, Docker postgres:18.
    assert manifest["container"]["image"].split("/")[-1] == "postgres:18"
    assert manifest["container"]["image_id"].split(":")[-1] == site.db.container.image.id.split(":")[-1]
    # The container's own tools (18), not this host's (15); the dump streamed out and hashed on the way.
    assert manifest["pg_dump_version"].startswith("18") and manifest["server_version"].startswith("18")
    assert custom["pg_dump"]["path"] == "pg_dump" and manifest["checksums"] == "streamed"
    assert manifest["row_counts"] == {"public.item": ROWS, "public.tag": 300}
    folder = Path(custom["backup_path"])
    files = {f["name"]: f for f in manifest["files"]}
    assert set(files) == {"app.dump", "globals.sql"} and files["globals.sql"]["secret"]
    for name, entry in files.items():
        assert sha256(folder / name) == entry["sha256"] and (folder / name).stat().st_size == entry["size"]
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    assert (folder / "app.dump").read_bytes()[:5] == b"PGDMP"
    assert b"CREATE ROLE lifeboat" in (folder / "globals.sql").read_bytes()
    plain = result.result("plain")
    assert not plain["failed"], plain
    text = gzip.decompress(Path(plain["backup_path"], "app.sql.gz").read_bytes())
    assert sha256(Path(plain["backup_path"], "app.sql.gz")) == plain["sha256"]
    copy = text.split(b"COPY public.item (id, name) FROM stdin;\n", 1)[1].split(b"\n\\.\n", 1)[0]
    assert len(copy.splitlines()) == ROWS
    assert plain["manifest"]["container"]["name"] == site.db.name

    would = result.result("check mode")
    assert not would["failed"] and would["pg_dump"]["version"].startswith("18"), would
    # pg_dump -Fd -j 2 in the container, the folder copied out file by file: each one 0600, hashed as
    # it arrived, read back by the container's pg_restore, and the folder in the container gone.
    directory = result.result("directory")
    assert not directory["failed"], directory
    assert directory["manifest"]["format"] == "directory" and directory["manifest"]["jobs"] == 2
    assert directory["manifest"]["row_counts"] == {"public.item": ROWS, "public.tag": 300}
    files = directory["manifest"]["files"]
    assert "app.dir/toc.dat" in {f["name"] for f in files} and len(files) >= 3
    for entry in files:
        path = Path(directory["backup_path"], entry["name"])
        assert sha256(path) == entry["sha256"] and path.stat().st_size == entry["size"]
        assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    sets = [custom["backup_id"], plain["backup_id"], directory["backup_id"]]
    assert sorted(backup_sets(repo / "app")) == sorted(sets)

    failing = result.result("failing pg_dump")
    assert_one_line(failing, "pg_dump of database 'app' failed in container %r (exit code 1): " % site.db.name,
                    'no matching tables were found for pattern "public.nosuch"')
    assert_one_line(result.result("failing directory pg_dump"), "pg_dump of database 'app' failed in container %r "
                    "(exit code 1): " % site.db.name, 'no matching tables were found for pattern "public.nosuch"')
    # The failed dumps count for nothing: no set, nothing half-written left behind here or in the container.
    assert sorted(backup_sets(repo / "app")) == sorted(sets)
    assert leftovers(repo / "app") == [] and site.db.scratch_left() == []
    assert_one_line(result.result("unknown container"), "container %r does not exist on the engine at %s"
                    % (gone, site.engine.base_url))
    assert_one_line(result.result("stopped container"), "container %r is exited" % site.stopped.name,
                    "docker start %s" % site.stopped.name)
    assert_one_line(result.result("container without tools"), "container %r has no pg_dump" % site.toolless.name)
    assert_one_line(result.result("engine not reachable"), "cannot reach the container engine at unix://",
                    "no such socket")
    # An S3 that cannot be reached: one line, before pg_dump ran, nothing left in the cache.
    assert_one_line(result.result("s3 unreachable"), "http://127.0.0.1:9")
    assert leftovers(tmp_path / "cache" / "app") == [] and backup_sets(tmp_path / "cache" / "app") == []
    assert "lifeboat-test-secret-value" not in result.stdout + result.stderr
    assert_one_line(result.result("pg_bin_dir"), "drop pg_bin_dir (or container)")
    assert site.db.password not in result.stdout + result.stderr


def test_restore_in_container(site, moto, bucket, tmp_path):
    repo = str(tmp_path / "repo")
    # An s3:// repository: the container's dump is written into the cache and uploaded when whole; the
    # restore downloads into the cache, checks every file, and restores in the container.
    s3 = dict(moto.options(), repository="s3://%s/sets" % bucket, cache_dir=str(tmp_path / "cache"))
    # A database whose table belongs to a role that is gone by the time it is restored with its owners:
    # pg_restore then fails inside the container, halfway through a replace.
    site.db.sql("postgres", "DROP DATABASE IF EXISTS ghosty")
    site.db.sql("postgres", "DROP ROLE IF EXISTS ghost")
    site.db.sql("postgres", "CREATE ROLE ghost")
    site.db.sql("postgres", "CREATE DATABASE ghosty")
    site.db.sql("ghosty", "CREATE TABLE haunted (id int); INSERT INTO haunted VALUES (1);"
             "ALTER TABLE haunted OWNER TO ghost")
    dumps = play(site, tmp_path, [
        task("custom", "dump", db="app", repository=repo),
        task("directory", "dump", db="app", repository=repo, format="directory", kind="dir", jobs=2),
        task("s3 directory", "dump", db="app", format="directory", kind="dir", jobs=2, **s3),
        task("s3 custom", "dump", db="app", **s3),
        task("plain", "dump", db="app", repository=repo, format="plain", kind="plain"),
        task("ghosty", "dump", db="ghosty", repository=repo),
    ])
    assert dumps.rc == 0, dumps.stdout[-3000:]
    site.db.sql("ghosty", "DROP TABLE haunted")
    site.db.sql("postgres", "DROP ROLE ghost")
    with site.db.connect("app") as conn:
        conn.execute("DELETE FROM tag; DELETE FROM item WHERE id > 10")  # the live database drifts after the backup
    # A hand-made plain dump cut in the middle of its rows: psql in the container must not keep any of it.
    # (Its first MiB, which the restore's preflight reads for extensions, is whole: a comment.)
    text = gzip.decompress(Path(dumps.result("plain")["backup_path"], "app.sql.gz").read_bytes())
    head, rest = text.split(b"\nSET ", 1)
    whole = gzip.compress(head + b"\n" + b"-- padding\n" * 120000 + b"SET " + rest)
    cut = tmp_path / "cut.sql.gz"
    cut.write_bytes(whole[:len(whole) // 2])
    for db in ("app_new", "app_plain", "app_cut", "app_dir", "app_s3dir", "app_s3", "app_tbl"):
        site.db.sql("postgres", "DROP DATABASE IF EXISTS %s" % db)
    # mode=tables restores into a live copy of the drifted database (app itself is swapped below).
    site.db.sql("postgres", "CREATE DATABASE app_tbl TEMPLATE app")

    result = play(site, tmp_path, [
        task("new", "restore", db="app_new", backup_db="app", repository=repo, mode="new", kind="full", jobs=2),
        task("plain", "restore", db="app_plain", backup_db="app", repository=repo, mode="new", kind="plain"),
        task("directory", "restore", db="app_dir", backup_db="app", repository=repo, mode="new", kind="dir", jobs=2),
        task("s3 directory", "restore", db="app_s3dir", backup_db="app", mode="new", kind="dir", jobs=2, **s3),
        task("s3 custom", "restore", db="app_s3", backup_db="app", mode="new", kind="full", **s3),
        task("check mode", "restore", check=True, db="app", repository=repo, mode="swap", kind="full"),
        task("swap", "restore", db="app", repository=repo, mode="swap", kind="full", keep_previous=1),
        task("replace failing", "restore", ignore=True, db="app_new", backup_db="ghosty", repository=repo,
             mode="replace", no_owner=False),
        task("cut plain dump", "restore", ignore=True, db="app_cut", repository=repo, mode="new", backup=str(cut)),
        task("tables orphaned", "restore", ignore=True, db="app_tbl", backup_db="app", repository=repo, mode="tables",
             kind="dir", tables=["public.tag"]),
        task("tables", "restore", db="app_tbl", backup_db="app", repository=repo, mode="tables", kind="full",
             tables=["public.item", "public.tag"]),
        task("new over existing", "restore", ignore=True, db="app_new", backup_db="app", repository=repo,
             mode="new"),
    ])
    assert result.rc == 0, result.stdout[-3000:]

    new = result.result("new")
    assert not new["failed"], new
    assert new["container"]["name"] == site.db.name and new["pg_restore"]["version"].startswith("18")
    assert new["backup_id"] == dumps.result("custom")["backup_id"]
    assert site.db.sql("app_new", "SELECT count(*), (SELECT count(*) FROM tag) FROM item") == [(ROWS, 300)]
    plain = result.result("plain")
    assert not plain["failed"] and plain["pg_restore"]["name"] == "psql", plain
    assert site.db.sql("app_plain", "SELECT count(*), (SELECT count(*) FROM tag) FROM item") == [(ROWS, 300)]
    directory = result.result("directory")
    assert not directory["failed"] and directory["backup_id"] == dumps.result("directory")["backup_id"], directory
    assert directory["pg_restore"]["name"] == "pg_restore", directory
    assert site.db.sql("app_dir", "SELECT count(*), (SELECT count(*) FROM tag) FROM item") == [(ROWS, 300)]
    for name, db in (("s3 directory", "app_s3dir"), ("s3 custom", "app_s3")):
        dumped, restored = dumps.result(name), result.result(name)
        assert dumped["backup_path"] == "s3://%s/sets/app/%s" % (bucket, dumped["backup_id"]), dumped
        keys = moto.keys(bucket, "sets/app/%s/" % dumped["backup_id"])
        assert {k.split("/", 3)[3] for k in keys} == {f["name"] for f in dumped["manifest"]["files"]} | {
            "manifest.json"}
        assert not restored["failed"] and restored["backup_id"] == dumped["backup_id"], restored
        assert restored["container"]["name"] == site.db.name
        assert site.db.sql(db, "SELECT count(*), (SELECT count(*) FROM tag) FROM item") == [(ROWS, 300)]
    # The cache kept neither the uploaded sets nor the downloads once restored (only the restore's progress).
    assert backup_sets(tmp_path / "cache" / "app") == []
    assert leftovers(tmp_path / "cache" / "app") == [".restore-progress.json"]

    would = result.result("check mode")
    assert not would["failed"] and would["container"]["name"] == site.db.name, would
    assert any(step.startswith("Would ") for step in would["actions"]), would["actions"]
    swap = result.result("swap")
    assert not swap["failed"], swap
    assert swap["row_count_check"]["status"] == "passed", swap["row_count_check"]
    previous = swap["swap"]["previous_db"]
    assert site.db.sql("app", "SELECT count(*) FROM item") == [(ROWS,)]
    assert site.db.sql(previous, "SELECT count(*) FROM item") == [(10,)]

    failing = result.result("replace failing")
    safety = failing.get("safety_backup_id")
    assert_one_line(failing, "pg_restore into database 'app_new' failed in container %r" % site.db.name,
                    'role "ghost" does not exist', "was put back as it was from safety backup %s" % safety)
    assert site.db.sql("app_new", "SELECT count(*) FROM item") == [(ROWS,)]
    manifest = json.loads((Path(repo) / "app_new" / safety / "manifest.json").read_text())
    assert manifest["kind"] == "pre-restore" and manifest["container"]["name"] == site.db.name

    assert_one_line(result.result("cut plain dump"), "cannot read %s: Compressed file ended" % cut,
                    "nothing of it was kept in database 'app_cut'", "the half-restored database 'app_cut' was dropped")
    assert site.db.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'app_cut'") == [(0,)]
    # mode=tables in the container: the set's folder (a directory set) or file copied in, the container's
    # pg_restore's SQL fed into its psql in one transaction - rolled back when a check fails.
    assert_one_line(result.result("tables orphaned"), "restoring table(s) public.tag from backup %s into database "
                    "'app_tbl' failed: " % dumps.result("directory")["backup_id"],
                    "has 290 row(s) without a match in public.item", "nothing was changed")
    tables = result.result("tables")
    assert not tables["failed"] and tables["container"]["name"] == site.db.name, tables
    assert tables["backup_id"] == dumps.result("custom")["backup_id"] and tables["safety_backup_id"], tables
    assert site.db.sql("app_tbl", "SELECT count(*), (SELECT count(*) FROM tag) FROM item") == [(ROWS, 300)]
    assert_one_line(result.result("new over existing"), "database 'app_new' already exists and mode=new")
    # Every archive copied in was removed again, the failed one's too.
    assert site.db.scratch_left() == []
    assert site.db.password not in result.stdout + result.stderr


def test_drill_in_container(site, tmp_path):
    """playbooks/drill.yml on the containerized database: the backup and the restore run the
    container's tools; the other steps reach its server at the published port; the evidence names
    the container and its image."""
    evidence = tmp_path / "evidence"
    inventory = tmp_path / "inventory.json"
    fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"all": {"hosts": {HOST: {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "lifeboat_connection": {"login_host": "127.0.0.1", "port": site.db.port, "login_user": "lifeboat",
                                    "login_password": site.db.password},
            "lifeboat_drill_container": site.db.name, "lifeboat_drill_docker_host": site.engine.base_url,
            "lifeboat_drill_db": "drill", "lifeboat_drill_sample_scale": 100,
            "lifeboat_drill_repository": str(tmp_path / "repo"),
            "lifeboat_drill_evidence_dir": str(evidence)}}}}, out)
    record = tmp_path / "results.jsonl"
    proc = ansible_playbook(["-i", inventory, "playbooks/drill.yml", "-e", "lifeboat_drill_hosts=all"], record)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = json.loads((evidence / "latest-summary.json").read_text())
    assert summary["status"] == "passed", summary
    assert summary["container"]["name"] == site.db.name
    assert summary["container"]["image"].split("/")[-1] == "postgres:18"
    report = (evidence / summary["run_id"] / "report.md").read_text()
    assert "| Container | %s (image " % site.db.name in report
    manifest = json.loads((tmp_path / "repo" / "drill" / summary["backup_id"] / "manifest.json").read_text())
    assert manifest["container"]["id"] == site.db.id and manifest["pg_dump_version"].startswith("18")
    assert site.db.scratch_left() == []


def test_plain_dump_cut_short_keeps_nothing(site, tmp_path):
    """restore/container's psql path on its own, into a database that stays: a script whose end
    could not be read never reaches lifeboat's COMMIT, so even the CREATE TABLEs psql ran are gone.
    The file is a pipe: its start (the schema, then more than the 1 MiB lifeboat reads at a time)
    arrives, psql has a second and a half to run it, then the rest is cut short."""
    sys.path.insert(0, str(PROJECT / "collections"))
    from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
    from ansible_collections.lifeboat.db.plugins.module_utils.container import engine, exec as container_exec
    from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import ConnectionOptions
    from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import Tool
    from ansible_collections.lifeboat.db.plugins.module_utils.restore import container

    _, script = site.db.exec("pg_dump", "-U", "lifeboat", "--restrict-key=lifeboat", "app")
    head, rest = script.encode().split(b"COPY public.item", 1)
    assert b"CREATE TABLE public.item" in head
    gz = zlib.compressobj(wbits=31)  # gzip framing
    start = gz.compress(head + b"-- padding\n" * 200000) + gz.flush(zlib.Z_SYNC_FLUSH)
    end = gz.compress(b"COPY public.item" + rest) + gz.flush()
    site.db.sql("postgres", "DROP DATABASE IF EXISTS app_kept")
    site.db.sql("postgres", "CREATE DATABASE app_kept")
    pipe = tmp_path / "cut.sql.gz"
    os.mkfifo(pipe)

    def feed():
        with open(pipe, "wb") as out:
            out.write(start + end[:len(end) // 2])
            out.flush()
            time.sleep(1.5)
    feeder = threading.Thread(target=feed)
    feeder.start()

    class Ctx:
        api = site.engine.client().api
        container = engine.Container.find(api, site.db.name, site.engine.base_url)
        execer = container_exec.ContainerExec(container)
        options = ConnectionOptions(dict(login_user="lifeboat", login_password=site.db.password))

    class Request:
        target_db, role, warnings = "app_kept", None, []

    manifest = dict(format="plain", compression=dict(method="gzip"))
    psql = Tool("psql", "psql", "18", 18)
    try:
        with pytest.raises(LifeboatError) as failed:
            container.run_restore(Ctx, psql, str(pipe), Request, manifest, [], None)
        assert "cannot read %s" % pipe in failed.value.msg and "\n" not in failed.value.msg
        assert site.db.sql("app_kept", "SELECT to_regclass('public.item') IS NULL, to_regclass('public.tag') IS NULL") \
            == [(True, True)]
        # The same script whole goes in.
        whole = tmp_path / "whole.sql.gz"
        whole.write_bytes(start + end)
        container.run_restore(Ctx, psql, str(whole), Request, manifest, [], None)
        assert site.db.sql("app_kept", "SELECT count(*) FROM item") == site.db.sql("app", "SELECT count(*) FROM item")
    finally:
        feeder.join()
        Ctx.api.close()
        site.db.sql("postgres", "DROP DATABASE IF EXISTS app_kept")
