"""PostgreSQL in a container, reached through a real Docker-API engine (issue 20's groundwork).

podman serves the Docker API from a private folder (tests/tools/dockerengine.py) and runs a
postgres:18 image made on this machine (tests/tools/pgimage.py). lifeboat's container layer
(plugins/module_utils/container) runs pg_dump, pg_restore and psql inside the container: what it
streams out must be byte for byte what `docker exec` gives, the exit codes must be the command's,
and each bad input must end in one line that says what to do.
"""
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "tests" / "tools"))
sys.path.insert(0, str(PROJECT / "collections"))
import dockerengine  # noqa: E402
import pgcontainers  # noqa: E402
import pgimage  # noqa: E402
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError  # noqa: E402
from ansible_collections.lifeboat.db.plugins.module_utils.container import archive, engine, tools  # noqa: E402
from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import ContainerExec  # noqa: E402
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import ConnectionOptions  # noqa: E402

MISSING = dockerengine.problem()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "")

ROWS = 50000


@pytest.fixture(scope="module")
def site():
    """The engine, a network, a PostgreSQL container on it with a published port (filled with
    ROWS items); the stopped and the tool-less containers are made by the test that uses them."""
    started = time.monotonic()
    with pgcontainers.container_site("ce") as site:
        db = site.postgres("db", network="net")
        db.execer.check(["psql", "-v", "ON_ERROR_STOP=1", "-U", "lifeboat", "-d", "app", "-c",
                         "CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL);"
                         "INSERT INTO item SELECT g, md5(g::text) FROM generate_series(1, %d) g;" % ROWS],
                        "filling database app")
        print("container engine and site ready in %.1f s" % (time.monotonic() - started))
        yield site


@pytest.fixture(scope="module")
def db(site):
    return site.databases["db"]


def test_pg_dump_streams_out_byte_exact_and_hashed(site, db, tmp_path):
    digest = hashlib.sha256()
    target = tmp_path / "app.sql"
    argv = ["pg_dump", "-h", "127.0.0.1", "-U", "lifeboat", "--restrict-key=lifeboat", "app"]
    with open(target, "wb") as out:
        def write(block):
            out.write(block)
            digest.update(block)
        result = db.execer.check(argv, "pg_dump of database app", environment={"PGPASSWORD": db.password},
                                  on_stdout=write)
    assert result.exit_code == 0 and result.stdout is None
    by_docker_exec = db.docker_exec(*argv, env={"PGPASSWORD": db.password})
    assert result.size == len(by_docker_exec) == target.stat().st_size > ROWS * 30
    assert digest.hexdigest() == hashlib.sha256(by_docker_exec).hexdigest() == hashlib.sha256(
        target.read_bytes()).hexdigest()
    assert b"COPY public.item (id, name) FROM stdin;" in by_docker_exec


def test_exit_codes_and_stderr_are_the_commands(site, db):
    shell = db.execer.run(["sh", "-c", "echo out; echo 'ERROR: broken' >&2; exit 3"])
    assert (shell.exit_code, shell.stdout, shell.stderr) == (3, b"out\n", "ERROR: broken\n")
    assert db.execer.run(["true"]).exit_code == 0
    with pytest.raises(LifeboatError) as failed:
        db.execer.check(["pg_dump", "-U", "lifeboat", "nosuchdb"], "pg_dump of database 'nosuchdb'")
    msg = failed.value.msg
    assert "\n" not in msg and msg.startswith("pg_dump of database 'nosuchdb' failed in container %r (exit code 1): "
                                              % db.name), msg
    assert 'database "nosuchdb" does not exist' in msg, msg


def test_password_travels_in_the_exec_environment_only(site, db):
    argv = ["psql", "-h", "127.0.0.1", "-U", "lifeboat", "-d", "app", "-Atc", "SELECT count(*) FROM item"]
    # Over TCP the server asks for the password: without it the command fails, with it in the
    # exec's environment it succeeds.
    refused = db.execer.run(argv, environment={"PGPASSWORD": ""})
    assert refused.exit_code == 2 and "no password supplied" in refused.stderr
    counted = db.execer.check(argv, "counting", environment={"PGPASSWORD": db.password})
    assert counted.stdout == b"%d\n" % ROWS
    shown = site.api.exec_inspect(counted.exec_id)
    assert db.password not in json.dumps(shown["ProcessConfig"])
    assert db.password.encode() not in db.container.logs()


def test_server_address_on_its_network_and_published_port(site, db):
    host, port = db.execer.container.address()
    published = site.api.inspect_container(db.id)["NetworkSettings"]["Ports"]["5432/tcp"][0]
    assert (host, port) == ("127.0.0.1", int(published["HostPort"]))
    on_network = db.execer.container.address(network=site.networks["net"].name)
    assert on_network[1] == 5432 and on_network[0] != "127.0.0.1"
    for address in ((host, port), on_network):
        with psycopg.connect(host=address[0], port=address[1], user="lifeboat", password=db.password,
                             dbname="app", connect_timeout=10) as conn:
            assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS
    with pytest.raises(LifeboatError) as wrong:
        db.execer.container.address(network="nosuchnet")
    assert "has no address on network 'nosuchnet'" in wrong.value.msg and site.networks["net"].name in wrong.value.msg


def test_custom_archive_copied_in_and_restored_in_parallel(site, db, tmp_path):
    archive_file = tmp_path / "app.dump"
    with open(archive_file, "wb") as out:
        db.execer.check(["pg_dump", "-Fc", "-U", "lifeboat", "app"], "pg_dump -Fc", on_stdout=out.write)
    scratch = archive.scratch_dir(db.execer, "the restore of app")
    try:
        inside = archive.copy_in(db.execer, str(archive_file), scratch, "app.dump", uid=999, gid=999)
        listed = db.execer.check(["sha256sum", inside], "sha256sum").stdout.split()[0].decode()
        assert listed == hashlib.sha256(archive_file.read_bytes()).hexdigest()
        db.execer.check(["createdb", "-U", "lifeboat", "app_restored"], "createdb")
        # -j needs a file it can seek in: the reason the archive is copied in rather than streamed.
        db.execer.check(["pg_restore", "-U", "lifeboat", "-d", "app_restored", "-j", "2", "--exit-on-error", inside],
                         "pg_restore of app")
        counted = db.execer.check(["psql", "-U", "lifeboat", "-d", "app_restored", "-Atc",
                                    "SELECT count(*), sum(length(name)) FROM item"], "count")
        assert counted.stdout == b"%d|%d\n" % (ROWS, ROWS * 32)
    finally:
        assert archive.remove_in(db.execer, scratch) is None
    assert db.execer.run(["test", "-e", scratch]).exit_code == 1


def test_directory_format_dump_copied_out(site, db, tmp_path):
    scratch = archive.scratch_dir(db.execer, "a directory-format dump")
    try:
        db.execer.check(["pg_dump", "-Fd", "-j", "2", "-U", "lifeboat", "-f", scratch + "/app.dir", "app"],
                         "pg_dump -Fd")
        inside = {}
        for line in db.execer.check(["sh", "-c", "cd %s && sha256sum app.dir/*" % scratch],
                                     "sha256sum").stdout.decode().splitlines():
            checksum, name = line.split()
            inside[name] = checksum
        files = archive.copy_out(db.execer, scratch + "/app.dir", str(tmp_path))
    finally:
        archive.remove_in(db.execer, scratch)
    assert {f["name"]: f["sha256"] for f in files} == inside and "app.dir/toc.dat" in inside
    for f in files:
        path = tmp_path / f["name"]
        assert path.stat().st_size == f["size"] and path.stat().st_mode & 0o777 == 0o600
    # The host's own pg_restore of the same major version reads the copy.
    pg_restore = pgimage.wheel_dirs()[0] / "pginstall" / "bin" / "pg_restore"
    listing = subprocess.run([str(pg_restore), "--list", str(tmp_path / "app.dir")], capture_output=True, text=True,
                             check=True).stdout
    assert "TABLE DATA public item" in listing


def test_script_fed_through_stdin(site, db):
    payload = os.urandom(3 * 1024 * 1024)
    summed = db.execer.run(["sha256sum"], stdin=iter([payload[:1000], payload[1000:]]))
    assert summed.exit_code == 0
    assert summed.stdout.split()[0].decode() == hashlib.sha256(payload).hexdigest()
    script = b"CREATE TABLE fed (n int);\nINSERT INTO fed SELECT generate_series(1, 10);\n"
    db.execer.check(["psql", "-v", "ON_ERROR_STOP=1", "-1", "-q", "-U", "lifeboat", "-d", "app"], "psql",
                     stdin=[script])
    stopped = db.execer.run(["psql", "-v", "ON_ERROR_STOP=1", "-1", "-q", "-U", "lifeboat", "-d", "app"],
                             stdin=[b"INSERT INTO fed VALUES (11);\nSELECT nosuchcolumn FROM fed;\n"])
    assert stopped.exit_code == 3 and 'column "nosuchcolumn" does not exist' in stopped.stderr
    counted = db.execer.check(["psql", "-U", "lifeboat", "-d", "app", "-Atc", "SELECT count(*) FROM fed"], "count")
    assert counted.stdout == b"10\n"


def test_a_command_that_stops_reading_its_input_never_passes_for_a_whole_result(site, db):
    # head reads 10 bytes and ends: the engine drops the rest of the input and, at times, what it
    # had not yet sent of the output. Whichever happens, the result is exact or refused, never short.
    payload = os.urandom(16 * 1024 * 1024)
    outcomes = set()
    for _ in range(5):
        try:
            result = db.execer.run(["head", "-c", "10"], stdin=[payload[i:i + 65536]
                                                                for i in range(0, len(payload), 65536)])
        except LifeboatError as exc:
            assert exc.msg == ("head in container %r ended before reading all its input, and the engine dropped "
                               "the end of its output with it; the result is not trusted" % db.name)
            outcomes.add("refused")
        else:
            assert (result.exit_code, result.stdout) == (0, payload[:10])
            outcomes.add("exact")
    assert outcomes
    # psql stopped by its first error in a long script: its exit code, and its own error line.
    script = b"SELECT nosuchcolumn FROM item;\n" + b"SELECT 1;\n" * 2000000
    stopped = db.execer.run(["psql", "-v", "ON_ERROR_STOP=1", "-q", "-U", "lifeboat", "-d", "app"], stdin=[script])
    assert stopped.exit_code == 3
    msg = db.execer.failure("psql", "applying the script", stopped)
    assert msg.startswith("applying the script failed in container %r (exit code 3): " % db.name), msg
    assert 'column "nosuchcolumn" does not exist' in msg or "it stopped reading its input" in msg, msg


def test_the_callers_own_failures_come_back_as_they_are(site, db):
    # Reading the input failed: that error, not one of the engine's, once the command has ended.
    def cut_short():
        yield b"some input\n"
        raise OSError(5, "Input/output error")
    with pytest.raises(OSError) as failed:
        db.execer.run(["cat"], stdin=cut_short())
    assert failed.value.errno == 5
    # Writing the output failed (a full disk): that error, and the dump does not linger in the
    # container holding its snapshot.
    def full(block):
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError) as failed:
        db.execer.run(["pg_dump", "-U", "lifeboat", "app"], on_stdout=full)
    assert failed.value.errno == 28
    deadline = time.monotonic() + 10
    while b"pg_dump" in db.execer.check(["ps", "-o", "args"], "ps").stdout:
        assert time.monotonic() < deadline, "pg_dump still runs in the container after lifeboat stopped reading"
        time.sleep(0.2)


def one_line(call):
    with pytest.raises(LifeboatError) as failed:
        call()
    msg = failed.value.msg
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


def test_bad_inputs_end_in_one_line(site, db, tmp_path):
    url = site.engine.base_url
    msg = one_line(lambda: engine.Container.find(site.api, "lifeboat-nosuch-container", url))
    assert msg == ("container 'lifeboat-nosuch-container' does not exist on the engine at %s; check its name with "
                   "`docker ps -a`" % url)
    msg = one_line(lambda: engine.Container.find(site.api, site.stopped.name, url))
    assert msg.startswith("container %r is exited, so nothing can run in it; start it" % site.stopped.name), msg
    toolless = ContainerExec(engine.Container.find(site.api, site.toolless.name, url))
    msg = one_line(lambda: toolless.check(["pg_dump", "--version"], "pg_dump"))
    assert msg.startswith("container %r has no pg_dump (not found in its PATH)" % site.toolless.name), msg
    nowhere = "unix://%s" % (tmp_path / "no-engine.sock")
    msg = one_line(lambda: engine.connect(nowhere, timeout=5))
    assert msg == ("cannot reach the container engine at %s: no such socket; start Docker (or podman system "
                   "service) there, or point docker_host (or DOCKER_HOST) at its socket" % nowhere)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = "tcp://127.0.0.1:%d" % probe.getsockname()[1]
    msg = one_line(lambda: engine.connect(closed, timeout=5))
    assert msg.startswith("cannot reach the container engine at %s: connection refused; " % closed), msg
    # Found running, then stopped before the command: the engine's refusal, in one line.
    doomed = site.client.containers.run("lifeboat-busybox:test", ["sleep", "600"], name=site.prefix + "doomed",
                                         detach=True, labels=site.labels)
    found = ContainerExec(engine.Container.find(site.api, doomed.name, url))
    doomed.stop(timeout=1)
    msg = one_line(lambda: found.run(["true"]))
    assert msg.startswith("container %r is not running, so true cannot run in it" % doomed.name), msg
    doomed.remove()


def test_the_containers_own_tools_write_a_dump_into_a_file_here(site, db, tmp_path):
    assert tools.open_container(dict(container=None, docker_host=site.engine.base_url)) == (None, None)
    container, execer = tools.open_container(dict(container=db.name, docker_host=site.engine.base_url))
    assert container.id == db.id and container.image["name"] == "localhost/postgres:18"
    finder = tools.ContainerToolFinder(execer)
    pg_dump = finder.find("pg_dump", 18, "the server is PostgreSQL 18")
    assert (pg_dump.name, pg_dump.path, pg_dump.major) == ("pg_dump", "pg_dump", 18)
    assert pg_dump.version.startswith("18.")
    msg = one_line(lambda: finder.find("pg_dump", 19, "compress_method foo needs pg_dump 19 or newer"))
    assert msg == ("pg_dump in container %r is version %s, but 19 or newer is needed (compress_method foo needs "
                   "pg_dump 19 or newer); run it against the container of the server itself, whose image has the "
                   "matching tools" % (db.name, pg_dump.version))
    toolless = ContainerExec(engine.Container.find(site.api, site.toolless.name, site.engine.base_url))
    msg = one_line(lambda: tools.ContainerToolFinder(toolless).find("pg_dump", 18, "x"))
    assert msg.startswith("container %r has no pg_dump" % site.toolless.name), msg

    env = tools.container_tool_environment(ConnectionOptions(dict(login_user="lifeboat",
                                                                  login_password=db.password)), "app")
    target = tmp_path / "app.dump"
    seen = []
    checksum = tools.stream_to_file(db.execer, ["pg_dump", "-Fc"], env, str(target), "pg_dump of database 'app'",
                                    progress=seen.append)
    assert checksum == hashlib.sha256(target.read_bytes()).hexdigest()
    assert target.stat().st_mode & 0o777 == 0o600 and seen[-1] == target.stat().st_size
    pg_restore = pgimage.wheel_dirs()[0] / "pginstall" / "bin" / "pg_restore"
    listing = subprocess.run([str(pg_restore), "--list", str(target)], capture_output=True, text=True,
                             check=True).stdout
    assert "TABLE DATA public item" in listing
    # Read back by the container's own pg_restore, fed from here: the same table of contents.
    assert tools.read_toc(execer, "pg_restore", str(target), "reading back app.dump") == listing
    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(target.read_bytes()[:5] + b"\xff" * 64)
    msg = one_line(lambda: tools.read_toc(execer, "pg_restore", str(damaged), "reading back damaged.dump"))
    assert msg.startswith("reading back damaged.dump failed in container %r (exit code 1): pg_restore: error: "
                          % db.name), msg
    # An existing file is never written over; a failing pg_dump ends in its own error line.
    msg = one_line(lambda: tools.stream_to_file(db.execer, ["pg_dump"], env, str(target), "pg_dump again"))
    assert msg.startswith("pg_dump again could not be written to %s: File exists" % target), msg
    failing = dict(env, PGDATABASE="nosuchdb")
    msg = one_line(lambda: tools.stream_to_file(db.execer, ["pg_dump", "-Fc"], failing, str(tmp_path / "x.dump"),
                                                "pg_dump of database 'nosuchdb'"))
    assert msg.startswith("pg_dump of database 'nosuchdb' failed in container %r (exit code 1): " % db.name)
    assert 'database "nosuchdb" does not exist' in msg and db.password not in msg


def test_pg_dump_in_the_container_reads_the_snapshot_exported_here(site, db, tmp_path):
    # How the dump module takes its row counts: in the snapshot pg_dump reads, exported by this host's
    # connection (at the container's published port) and read by the container's pg_dump.
    host, port = db.execer.container.address()
    login = dict(host=host, port=port, user="lifeboat", password=db.password, dbname="app")
    with psycopg.connect(autocommit=True, **login) as writer:
        writer.execute("CREATE TABLE moving AS SELECT g AS n FROM generate_series(1, 1000) g")
        with psycopg.connect(**login) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
            counted = conn.execute("SELECT count(*) FROM moving").fetchone()[0]
            writer.execute("INSERT INTO moving SELECT generate_series(1001, 1500)")
            env = tools.container_tool_environment(ConnectionOptions(dict(login_user="lifeboat",
                                                                          login_password=db.password)), "app")
            target = tmp_path / "moving.sql"
            tools.stream_to_file(db.execer, ["pg_dump", "--snapshot", snapshot, "-t", "moving", "--restrict-key=k"],
                                 env, str(target), "pg_dump of table moving")
        assert writer.execute("SELECT count(*) FROM moving").fetchone()[0] == 1500
    text = target.read_text()
    rows = text.split("COPY public.moving (n) FROM stdin;\n", 1)[1].split("\\.\n", 1)[0].splitlines()
    assert counted == len(rows) == 1000 and rows[-1] == "1000"


def test_an_output_that_is_data_arrives_proven_whole(site, db):
    # Run between the markers of a nonce in its environment (exec.WholeOutput): the command's own bytes,
    # markers stripped, its exit code; the exec's arguments are the command's behind the shell's script.
    tricky = b"lifeboat-start-\nlifeboat-end-\n\x00\xff"
    result = db.execer.run(["sh", "-c", "printf 'lifeboat-start-\\nlifeboat-end-\\n\\000\\377'; exit 4"], whole=True)
    assert (result.exit_code, result.stdout, result.size) == (4, tricky, len(tricky))
    shown = site.api.exec_inspect(result.exec_id)["ProcessConfig"]
    assert shown["entrypoint"] == "sh" and shown["arguments"][2:4] == ["sh", "-c"]
    assert not re.search(r"lifeboat-(start|end)-[0-9a-f]{32}", json.dumps(shown))
    # A small question asked many times under load: always the whole answer.
    expected = (int(db.docker_exec("id", "-u")), int(db.docker_exec("id", "-g")))
    for _ in range(10):
        assert archive.exec_user(db.execer) == expected
    # In the tool-less busybox (its sh): a missing tool still named as such.
    toolless = ContainerExec(engine.Container.find(site.api, site.toolless.name, site.engine.base_url))
    assert toolless.ask(["id", "-u"], "id").stdout == b"0\n"
    msg = one_line(lambda: toolless.check(["pg_restore", "--list"], "reading the list", whole=True))
    assert msg.startswith("container %r has no pg_restore (not found in its PATH)" % site.toolless.name), msg
    # A container without sh: said in one line.
    shless = site.busybox("shless")
    assert shless.exec_run(["/bin/busybox", "rm", "-f", "/bin/sh", "/usr/bin/sh"])[0] == 0
    bare = ContainerExec(engine.Container.find(site.api, shless.name, site.engine.base_url))
    msg = one_line(lambda: bare.run(["pg_dump", "app"], on_stdout=lambda block: None))
    assert msg == ("container %r has no sh, which lifeboat runs pg_dump under to prove its output arrived whole; use "
                   "an image with a POSIX shell (every official PostgreSQL image has one)" % shless.name), msg
