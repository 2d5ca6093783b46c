#!/usr/bin/env python3
"""A Docker-API engine for the container tests: Debian's podman serving the Docker REST API.

There is no Docker daemon and no registry on the test machines. podman (`system service`) speaks
the Docker API on a unix socket, and the Docker SDK that lifeboat uses talks to it unchanged. Its
configuration, storage, run state and network definitions live in one private folder (ENGINE_ROOT,
through CONTAINERS_CONF and CONTAINERS_STORAGE_CONF), so nothing here reads or changes the machine's
own podman set-up. The storage is kept between runs: the test image is built once (pgimage.py).

One service serves every test process of a run (`pytest -n 2` runs two): a second podman with its
own storage would hand out the same container subnets and share netavark's iptables chains. Each
process registers itself (`Engine.acquire`); it removes what it made (by the owner label) when it
is done, and the last one out stops the service, removes the netavark chains and /run/netns mounts
it left, and sets net.ipv4.ip_forward back (podman turns it on). Owners that died without cleaning
up are swept by the next acquire.

    python tests/tools/dockerengine.py start    # starts it (registered as this shell's parent) and
    python tests/tools/dockerengine.py stop     # prints the socket; stop releases and cleans up
    python tests/tools/dockerengine.py status
"""
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ENGINE_ROOT = Path(os.environ.get("LIFEBOAT_ENGINE_ROOT", "/var/tmp/lifeboat-engine"))
# What `make test` installs for it (scripts/test-packages.sh): podman with runc (crun refuses this
# machine's hybrid cgroup layout), netavark/aardvark-dns for networks, and iptables, which Debian's
# netavark needs without declaring it.
PROGRAMS = {"podman": "podman", "runc": "runc", "iptables": "iptables", "netavark": "/usr/lib/podman/netavark"}
OWNER_LABEL = "lifeboat.test.owner"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
# Made on the host by podman 4.3 as root wherever its configuration points: netavark's and
# aardvark-dns's state, runc's, and the image library's caches (short-name aliases, blob digests:
# `podman import` writes them). Removed at the end if our first start made them.
NETAVARK_RUN_DIR = Path("/run/containers")
RUNC_ROOT = Path("/run/runc")
IMAGE_CACHES = (Path("/var/lib/containers"), Path("/var/cache/containers"))
HOST_DIRS = (NETAVARK_RUN_DIR, RUNC_ROOT) + IMAGE_CACHES
START_TIMEOUT = 30

try:
    import docker
except ImportError:  # problem() says so
    docker = None
# podman's own network, which the Docker API names "bridge" like Docker's; it cannot be removed.
DEFAULT_NETWORKS = ("podman", "bridge")


class EngineError(Exception):
    pass


def problem():
    """Why the engine cannot run here (one line), or None."""
    if os.geteuid() != 0:
        return "the container tests need root (podman runs the containers rootful); run them as root"
    # sbin too: a root shell's PATH may lack it, and iptables lives there.
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [name for name, program in PROGRAMS.items() if not shutil.which(program, path=search)]
    if missing:
        return ("not installed: %s (`make test` as root installs them: scripts/test-packages.sh)"
                % " ".join(missing))
    if docker is None:
        return "the docker Python package is not installed in this Python; run `make venv`"
    return None


def _start_time(pid):
    """The process's start time (clock ticks since boot), telling a live owner from a reused pid."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class Engine:
    def __init__(self, root=ENGINE_ROOT, owner_pid=None):
        self.root = Path(root)
        # Run state (the socket, podman's tmp_dir and the storage's runroot) where a reboot clears it:
        # podman tells a reboot by its tmp_dir's being empty.
        self.run_dir = Path("/run") / ("lifeboat-engine-%s" % hashlib.sha256(str(self.root).encode()).hexdigest()[:8])
        self.owner_pid = owner_pid or os.getpid()
        self.owner = "%d-%s" % (self.owner_pid, _start_time(self.owner_pid))
        self.socket = self.run_dir / "docker.sock"
        self.base_url = "unix://%s" % self.socket
        self.users = self.root / "users"
        self.environ = dict(os.environ, CONTAINERS_CONF=str(self.root / "containers.conf"),
                            CONTAINERS_STORAGE_CONF=str(self.root / "storage.conf"))
        self.environ.pop("CONTAINER_HOST", None)
        self.environ.pop("DOCKER_HOST", None)

    # -- what a test uses -------------------------------------------------------------------------

    @property
    def labels(self):
        """Put these on every container, network and volume a test makes: release() removes them."""
        return {OWNER_LABEL: self.owner}

    def client(self, timeout=120):
        # The API version podman 4.3 serves, given: asking (version="auto") costs podman half a second.
        return docker.DockerClient(base_url=self.base_url, version="1.41", timeout=timeout)

    def podman(self, *args, check=True, timeout=300, **kwargs):
        """The podman command line on this engine's storage (what `docker ...` is in the runbook)."""
        return subprocess.run(["podman", *args], env=self.environ, check=check, capture_output=True,
                              timeout=timeout, **kwargs)

    def acquire(self):
        """Register this process as a user and start the service unless it runs. Returns self."""
        why = problem()
        if why:
            raise EngineError(why)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        with self.locked():
            self._write_config()
            self.users.mkdir(exist_ok=True)
            if not self._ping():
                self._start_service()
            (self.users / self.owner).write_text(str(self.owner_pid))
        self._sweep_dead_owners()
        return self

    def release(self):
        """Remove what this owner made; the last user out stops the service and cleans the host.
        Whatever could not be removed is reported (EngineError) once everything else is done."""
        failures = []
        with self.locked():
            try:
                if self._ping():
                    failures += self._remove_owned(lambda owner: owner == self.owner)
            finally:
                try:
                    (self.users / self.owner).unlink()
                except FileNotFoundError:
                    pass
                if not self._live_users():
                    failures += self._shut_down()
        if failures:
            raise EngineError("could not remove: %s" % "; ".join(failures))

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    # -- configuration ------------------------------------------------------------------------------

    def _write_config(self):
        for folder in (self.root / "storage", self.root / "networks", self.run_dir, self.run_dir / "tmp"):
            folder.mkdir(mode=0o700, exist_ok=True)
        (self.root / "containers.conf").write_text(
            "# Written by tests/tools/dockerengine.py: the test engine's own settings.\n"
            "[containers]\n"
            "# podman's default open-files limit is above this machine's hard limit, and runc may not raise it.\n"
            "default_ulimits = []\n"
            "[network]\n"
            'network_backend = "netavark"\n'
            'network_config_dir = "%(root)s/networks"\n'
            "[engine]\n"
            "# crun refuses a hybrid cgroup v1/v2 host; runc refuses cgroups=disabled, so cgroupfs.\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            'events_logfile_path = "%(root)s/events.log"\n'
            'tmp_dir = "%(run)s/tmp"\n'
            "# Each exec's conmon waits this long before its clean-up (300 s by default: hundreds of\n"
            "# processes in a test run); an exec's exit code must be read within it.\n"
            "exit_command_delay = 15\n"
            % {"root": self.root, "run": self.run_dir})
        (self.root / "storage.conf").write_text(
            "# Written by tests/tools/dockerengine.py.\n"
            "[storage]\n"
            'driver = "overlay"\n'
            'graphroot = "%(root)s/storage"\n'
            'runroot = "%(run)s/storage"\n'
            % {"root": self.root, "run": self.run_dir})

    def locked(self):
        """The engine's lock: held while it starts or stops, while owners are swept, and while an image
        is built (two test processes would write the same files)."""
        return _FileLock(self.root / "lock")

    # -- the service --------------------------------------------------------------------------------

    def _ping(self):
        if not self.socket.exists():
            return False
        try:
            docker.APIClient(base_url=self.base_url, version="1.41", timeout=5).ping()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not serving"
            return False

    def _start_service(self):
        self._stop_service()  # a service that no longer answers
        saved = self.root / "host-state.json"
        if not saved.exists():
            # The host as it was before any of our runs: a crashed run's record is kept, not overwritten.
            saved.write_text(json.dumps(dict(ip_forward=IP_FORWARD.read_text(),
                                             created=[str(path) for path in HOST_DIRS if not path.exists()])))
        if self.socket.exists():
            self.socket.unlink()
        log = self.root / "service.log"
        # Detached into its own session, its output in a file, no pipe or lock inherited: the shell's
        # `&` hands it to init, so whichever test process is last can stop it by its pid.
        launcher = subprocess.run(
            ["sh", "-c", '"$@" >>"$LOG" 2>&1 </dev/null & echo $!', "sh",
             "podman", "system", "service", "--time=0", self.base_url],
            env=dict(self.environ, LOG=str(log)), start_new_session=True, capture_output=True, text=True,
            check=True, timeout=30)
        pid = int(launcher.stdout.strip())
        (self.root / "service.pid").write_text("%d %s" % (pid, _start_time(pid)))
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ping():
            if _start_time(pid) is None:
                raise EngineError("podman system service exited at start: %s" % _tail(log))
            if time.monotonic() > deadline:
                raise EngineError("podman system service did not answer on %s within %ds: %s"
                                  % (self.socket, START_TIMEOUT, _tail(log)))
            time.sleep(0.1)

    def _stop_service(self):
        record = self.root / "service.pid"
        if not record.exists():
            return
        pid, started = record.read_text().split()
        pid = int(pid)
        if str(_start_time(pid)) == started:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while str(_start_time(pid)) == started and time.monotonic() < deadline:
                time.sleep(0.1)
            if str(_start_time(pid)) == started:
                os.kill(pid, signal.SIGKILL)
        record.unlink()

    # -- owners -------------------------------------------------------------------------------------

    def _live_users(self):
        live = []
        for entry in self.users.iterdir() if self.users.exists() else ():
            pid, _, started = entry.name.partition("-")
            if pid.isdigit() and str(_start_time(int(pid))) == started:
                live.append(entry.name)
            else:
                entry.unlink()
        return live

    def _sweep_dead_owners(self):
        with self.locked():
            live = set(self._live_users())
            # Only what carries a dead owner's label: an anonymous volume (the image's VOLUME) has none,
            # and while its container runs for a live owner it is theirs - it goes with the container.
            failures = self._remove_owned(lambda owner: owner is not None and owner not in live)
        if failures:
            raise EngineError("could not remove what a finished test run left: %s" % "; ".join(failures))

    def _remove_owned(self, doomed):
        """Containers, then networks and volumes, whose owner label `doomed` accepts (every one when
        doomed is None). Returns what could not be removed: the rest of the clean-up goes on."""
        failures = []
        client = self.client(timeout=60)
        try:
            kinds = ((client.containers.list(all=True), lambda c: c.labels, lambda c: c.remove(force=True, v=True)),
                     ([n for n in client.networks.list() if n.name not in DEFAULT_NETWORKS],
                      lambda n: n.attrs.get("Labels"), lambda n: n.remove()),
                     (client.volumes.list(), lambda v: v.attrs.get("Labels"), lambda v: v.remove(force=True)))
            for found, labels, remove in kinds:
                for thing in found:
                    if doomed is not None and not doomed((labels(thing) or {}).get(OWNER_LABEL)):
                        continue
                    try:
                        remove(thing)
                    except docker.errors.APIError as exc:
                        failures.append("%s: %s" % (thing.name, exc.explanation))
        finally:
            client.close()
        return failures

    def _shut_down(self):
        """The last user is gone: every container of the private storage, the service, the processes
        it left (conmon, by pid, only those running on this engine's folders), the storage's mounts,
        the run state (ours, and runc's of our containers), netavark's chains, namespaces and state
        (/run/containers, when our first start made it), and ip_forward as it was. Returns what could
        not be removed (the next start sweeps it: its owners are gone)."""
        failures = self._remove_owned(None) if self._ping() else []
        self._stop_service()
        for pid in _processes_mentioning(str(self.root)) + _processes_mentioning(str(self.run_dir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _unmount_under(self.root)
        _unmount_under(self.run_dir)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        saved = self.root / "host-state.json"
        before = json.loads(saved.read_text()) if saved.exists() else dict(ip_forward=None, created=[])
        created = [Path(path) for path in before["created"]]
        _remove_runc_state(str(self.root), created)
        _remove_netavark_state(created)
        for cache in IMAGE_CACHES:
            if cache in created:
                shutil.rmtree(cache, ignore_errors=True)
        if before["ip_forward"] is not None:
            IP_FORWARD.write_text(before["ip_forward"])
        if saved.exists():
            saved.unlink()
        return failures

    def status(self):
        return dict(root=str(self.root), socket=str(self.socket), serving=self._ping(),
                    users=self._live_users() if self.users.exists() else [])


class _FileLock:
    """flock on a file (non-inheritable: the service must not hold it)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _tail(path, lines=3):
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(no output)"
    except OSError:
        return "(no log)"


def _processes_mentioning(text):
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and ("conmon" in cmdline or "aardvark-dns" in cmdline or "podman" in cmdline):
            found.append(int(entry.name))
    return found


def _unmount_under(root):
    """The mounts the engine left in its folder (the overlay driver binds its own storage folder onto
    itself, and would do so again at the next start); deepest first."""
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True)


def _remove_runc_state(root, created):
    """runc's state of containers of our storage that are gone (runc keeps it under /run/runc when a
    container could not be removed cleanly), then /run/runc itself if that left it empty."""
    for state in RUNC_ROOT.glob("*/state.json") if RUNC_ROOT.exists() else ():
        try:
            ours = root in state.read_text(errors="replace")
        except OSError:
            continue
        if ours:
            shutil.rmtree(state.parent, ignore_errors=True)
    if RUNC_ROOT in created:
        try:
            RUNC_ROOT.rmdir()
        except OSError:
            pass  # a container of another runc user lives on


def _remove_netavark_state(created):
    """netavark's iptables chains, the network namespaces podman mounted under /run/netns, and of
    `created` (what our first start made) what is left empty or is netavark's; only when no netavark
    bridge is left on the machine (another podman could still be using them)."""
    links = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True)
    if any(line.split(":")[1].strip().startswith("podman") for line in links.stdout.splitlines() if ":" in line):
        return
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
        chains = [line.split()[1] for line in rules.splitlines()
                  if line.startswith("-N ") and line.split()[1].startswith("NETAVARK")]
        for line in rules.splitlines():
            # Jumps into netavark's chains from the built-in ones (FORWARD, PREROUTING, ...).
            if line.startswith("-A ") and not line.split()[1].startswith("NETAVARK") and "NETAVARK" in line:
                subprocess.run(["iptables", "-w", "-t", table, "-D"] + shlex.split(line)[1:], capture_output=True)
        for chain in chains:
            subprocess.run(["iptables", "-w", "-t", table, "-F", chain], capture_output=True)
        for chain in chains:
            subprocess.run(["iptables", "-w", "-t", table, "-X", chain], capture_output=True)
    netns = Path("/run/netns")
    for entry in netns.glob("netns-*") if netns.exists() else ():
        subprocess.run(["umount", str(entry)], capture_output=True)
        try:
            entry.unlink()
        except OSError:
            pass
    if NETAVARK_RUN_DIR in created:
        shutil.rmtree(NETAVARK_RUN_DIR, ignore_errors=True)


def main(argv):
    command = argv[1] if len(argv) > 1 else "status"
    # From a shell, the owner is the shell that ran us (our parent), which outlives this command.
    engine = Engine(owner_pid=os.getppid())
    if command == "start":
        engine.acquire()
        print(engine.base_url)
    elif command == "stop":
        engine.release()
    elif command == "status":
        print(json.dumps(engine.status(), indent=2))
    else:
        print("\n".join(__doc__.strip().splitlines()[-3:]), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except EngineError as exc:
        print("dockerengine: %s" % exc, file=sys.stderr)
        sys.exit(1)
