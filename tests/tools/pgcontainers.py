"""The container tests' site: the Docker-API engine, PostgreSQL containers on it, and the odd ones.

Every container test file needs the same things (issue 20): the tests' engine acquired
(dockerengine.py) and the postgres:18 image made (pgimage.py); one or two PostgreSQL containers,
each with 5432 published on 127.0.0.1 and a password, ready before the first test; a way to reach
them (psycopg at the published port, a command in the container, `docker exec` as the runbook
does it, lifeboat's own ContainerExec); and, on demand, a stopped container and one without
PostgreSQL's tools. Everything made here carries the engine owner's label and the site's own, and
`close()` removes it - then the engine is released - whatever the tests did.

    with ContainerSite("dr") as site:                      # or the `container_site` fixture helper
        db = site.postgres("db")                           # lifeboat-<worker>-dr-db, ready
        legacy, modern = site.postgres_pair(("legacy", "modern"), network="net")
        db.sql("app", "SELECT 1"); db.exec("psql", "-c", "SELECT 1"); site.stopped; site.toolless

Containers of two test files never share names: the prefix holds PYTEST_XDIST_WORKER and the
site's name. One site at a time in a process: the engine's owner is the process, so a second site's
close() would release the engine under the first one (and remove its containers); two databases are
two containers of one site (postgres_pair).
"""
import os
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(TOOLS.parents[1] / "collections"))
import dockerengine  # noqa: E402
import pgimage  # noqa: E402

SITE_LABEL = "lifeboat.test.site"
READY_TIMEOUT = 60


class SiteError(Exception):
    pass


class PgContainer:
    """One PostgreSQL container of the site: `user` with `password` owns database `db`; 5432 is
    published on 127.0.0.1 at `port`."""

    def __init__(self, site, container, user, password, db):
        self.site = site
        self.container = container
        self.name = container.name
        self.id = container.id
        self.user = user
        self.password = password
        self.db = db
        self.port = None
        self._execer = None

    def published_port(self):
        self.container.reload()
        ports = self.container.attrs["NetworkSettings"]["Ports"].get("5432/tcp") or []
        if not ports:
            raise SiteError("container %s published no port for 5432/tcp" % self.name)
        self.port = int(ports[0]["HostPort"])
        return self.port

    def wait_ready(self, deadline):
        """Until the server answers at the published port. Over TCP: the entry point's first,
        socket-only start is not the server a client will get."""
        if self.port is None:
            self.published_port()
        while True:
            try:
                with self.connect():
                    return self
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    logs = self.container.logs()[-800:].decode(errors="replace")
                    raise SiteError("PostgreSQL in %s was not ready within %d s (%s): %s"
                                    % (self.name, READY_TIMEOUT, exc, logs))
                time.sleep(0.1)

    @property
    def login(self):
        """The module options that reach this server from the Docker host (login_host, port, user, password)."""
        return {"login_host": "127.0.0.1", "port": self.port, "login_user": self.user,
                "login_password": self.password}

    def connect(self, db=None, **kwargs):
        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                               dbname=db or self.db, autocommit=True, connect_timeout=10, **kwargs)

    def sql(self, db, query, params=None):
        """Run one query (or several without params); its rows, or None."""
        with self.connect(db) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else None

    def exec(self, *argv, user=None, environment=None):
        """A command in the container through the SDK's exec_run: (exit code, output as text)."""
        exit_code, output = self.container.exec_run(list(argv), user=user or "", environment=environment)
        return exit_code, output.decode(errors="replace")

    def psql(self, db, query):
        """psql in the container over its local socket, ON_ERROR_STOP; its output, or SiteError."""
        code, output = self.exec("psql", "-v", "ON_ERROR_STOP=1", "-AtX", "-U", self.user, "-d", db, "-c", query)
        if code != 0:
            raise SiteError("psql in %s failed (exit code %d): %s" % (self.name, code, output.strip()))
        return output

    def docker_exec(self, *argv, env=None, stdin=None, stdout=None, timeout=600):
        """`docker exec` as the runbook does it (podman's CLI on the same engine). The environment's
        values come from ours, so a password is never in argv. Output returned unless `stdout` (a
        file) takes it."""
        flags = ["-i"] if stdin is not None else []
        for name in env or {}:
            flags += ["--env", name]
        proc = subprocess.run(["podman", "exec", *flags, self.name, *argv], stdin=stdin,
                              stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(self.site.engine.environ, **(env or {})), timeout=timeout)
        if proc.returncode != 0:
            raise SiteError("podman exec %s %s failed (exit code %d): %s"
                            % (self.name, argv[0], proc.returncode, proc.stderr.decode(errors="replace").strip()))
        return proc.stdout

    @property
    def execer(self):
        """lifeboat's own ContainerExec on this container (module_utils/container)."""
        if self._execer is None:
            from ansible_collections.lifeboat.db.plugins.module_utils.container import engine
            from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import ContainerExec
            self._execer = ContainerExec(engine.Container.find(self.site.api, self.name, self.site.engine.base_url))
        return self._execer

    def scratch_left(self):
        """The scratch folders lifeboat made in the container and did not remove."""
        _, listed = self.exec("sh", "-c", "ls -d /tmp/lifeboat.* 2>/dev/null; true")
        return listed.split()

    def address_on(self, network):
        """The container's address on a network of the site (another container reaches it there)."""
        self.container.reload()
        return self.container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


class ContainerSite:
    """The engine (acquired by start(), released by close()) and what the site made on it."""

    def __init__(self, name, worker=None):
        worker = worker or os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.prefix = "lifeboat-%s-%s-" % (worker, name)
        self.engine = dockerengine.Engine()
        self.client = self.api = None
        self.networks = {}
        self.databases = {}
        self._odd = {}

    @property
    def labels(self):
        return dict(self.engine.labels, **{SITE_LABEL: self.prefix})

    def start(self):
        self.engine.acquire()
        try:
            self.client = self.engine.client()
            self.api = self.client.api
            self.pg_image = pgimage.ensure_image(self.engine, "postgres")
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def network(self, name):
        """A user-defined network of the site (its containers reach each other there by name)."""
        if name not in self.networks:
            self.networks[name] = self.client.networks.create(self.prefix + name, labels=self.labels)
        return self.networks[name]

    def postgres(self, name="db", **kwargs):
        """A started, ready PostgreSQL container (see postgres_pair for the options)."""
        return self.postgres_pair((name,), **kwargs)[0]

    def postgres_pair(self, names=("legacy", "modern"), network=None, user="lifeboat", db="app",
                      command=("postgres", "-c", "fsync=off"), environment=None):
        """PostgreSQL containers started together (their start-ups overlap), each with its own
        password and 5432 published on 127.0.0.1, on `network` (made here) when given; returned
        once all answer."""
        started = []
        for name in names:
            password = secrets.token_urlsafe(18)
            env = {"POSTGRES_PASSWORD": password, "POSTGRES_USER": user, "POSTGRES_DB": db,
                   "POSTGRES_INITDB_ARGS": "--no-sync"}
            env.update(environment or {})
            run = dict(name=self.prefix + name, detach=True, labels=self.labels, environment=env,
                       ports={"5432/tcp": ("127.0.0.1", None)})
            if network:
                run["network"] = self.network(network).name
            container = self.client.containers.run(self.pg_image, list(command), **run)
            db_container = PgContainer(self, container, user, password, db)
            self.databases[name] = db_container
            started.append(db_container)
        deadline = time.monotonic() + READY_TIMEOUT
        return [each.wait_ready(deadline) for each in started]

    def busybox(self, name, running=True):
        """A container without PostgreSQL's tools (busybox alone), running `sleep` or stopped."""
        image = pgimage.ensure_image(self.engine, "busybox")
        container = self.client.containers.run(image, ["sleep", "600"], name=self.prefix + name, detach=True,
                                               labels=self.labels)
        if not running:
            container.stop(timeout=1)
        container.reload()
        return container

    @property
    def stopped(self):
        """A stopped container (made on first use)."""
        if "stopped" not in self._odd:
            self._odd["stopped"] = self.busybox("stopped", running=False)
        return self._odd["stopped"]

    @property
    def toolless(self):
        """A running container without PostgreSQL's tools (made on first use)."""
        if "toolless" not in self._odd:
            self._odd["toolless"] = self.busybox("toolless")
        return self._odd["toolless"]

    def close(self):
        """Remove what the site made (its label), then release the engine - which removes anything
        else this process made and, for the last user, stops the service. Failures are reported
        after everything was tried."""
        failures = []
        if self.client is not None:
            try:
                selector = {"label": "%s=%s" % (SITE_LABEL, self.prefix)}
                for container in self.client.containers.list(all=True, filters=selector):
                    try:
                        container.remove(force=True, v=True)
                    except Exception as exc:  # noqa: BLE001 - the rest must still go
                        failures.append("%s: %s" % (container.name, exc))
                for network in self.client.networks.list(filters=selector):
                    try:
                        network.remove()
                    except Exception as exc:  # noqa: BLE001
                        failures.append("%s: %s" % (network.name, exc))
            except Exception as exc:  # noqa: BLE001 - the engine went away: release() still runs
                failures.append(str(exc))
            finally:
                self.client.close()
                self.client = self.api = None
        try:
            self.engine.release()
        except dockerengine.EngineError as exc:
            failures.append(str(exc))
        if failures:
            raise SiteError("the container site %s left: %s" % (self.prefix, "; ".join(failures)))


@contextmanager
def container_site(name):
    """A started ContainerSite for a module-scoped fixture; closed whatever happens:

        @pytest.fixture(scope="module")
        def site():
            with pgcontainers.container_site("dr") as site:
                site.db = site.postgres("db")
                yield site
    """
    site = ContainerSite(name).start()
    try:
        yield site
    finally:
        site.close()
