"""Test hosts on this machine: each a network, mount and UTS namespace with its own sshd and PostgreSQL.

One harness for pytest (tests/integration/test_hosts.py) and Molecule (molecule/hosts):

    python tests/tools/testhosts.py create --state DIR --count 2 [--name-prefix db] [--s3 BUCKET]
    python tests/tools/testhosts.py destroy --state DIR

A host is what our users' database hosts are: Debian 12 with its own sshd, Debian's PostgreSQL 15
as a `pg_createcluster` cluster, `python3` from the distribution, and a login user `deploy` with
NOPASSWD sudo. Its own address on a bridge that only this harness makes; its own /etc (a copy),
/home, /root, /tmp, /var/tmp, /var/backups, /var/lib/postgresql, /var/run/postgresql, /var/log and /srv (bind
mounts of folders under DIR/<host>/), so nothing a test does on a host touches the machine's own.
The controller reaches a host only over SSH (DIR/inventory.yml says how).

Packages are the machine's: the hosts share /usr, so `make test` installs openssh-server, sudo, acl,
python3-psycopg and python3-boto3 as root before the tests (prepare.yml then finds them present).
Root is needed for namespaces; `missing()` says in one line what is missing when it cannot run.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from s3server import start_moto  # beside this file: on the path when run as a script and from conftest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
NEEDED = {
    "/usr/sbin/sshd": "openssh-server", "/usr/bin/sudo": "sudo", "/usr/bin/setfacl": "acl",
    "/usr/lib/python3/dist-packages/psycopg": "python3-psycopg", "/usr/lib/python3/dist-packages/boto3": "python3-boto3",
    str(PG_BIN / "postgres"): "postgresql-15", "/usr/bin/pg_createcluster": "postgresql-common",
}
LOGIN = "deploy"
LOGIN_UID = 1733
# What each host has of its own, bind-mounted over the machine's folder of the same name.
INSIDE = "/mnt"  # where a host sees its own folder DIR/<host>
# /srv too: where applications keep their files (seed 003's uploads), which tests write.
OWN = ["etc", "home", "root", "tmp", "var/tmp", "var/backups", "var/lib/postgresql", "var/run/postgresql",
       "var/log", "srv"]


def missing():
    """One line saying why the harness cannot run here, or None."""
    if os.geteuid() != 0:
        return "multi-host tests need root (network and mount namespaces); run make test as root"
    absent = sorted({package for path, package in NEEDED.items() if not os.path.exists(path)})
    if absent:
        return f"multi-host tests need Debian packages {', '.join(absent)} (make test installs them as root)"
    return None


def run(*argv, **kwargs):
    kwargs.setdefault("check", True)
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)


class Harness:
    def __init__(self, state):
        self.state = Path(state).resolve()
        # Names derive from the state folder, so two harnesses (pytest, Molecule) never collide.
        digest = hashlib.sha256(str(self.state).encode()).hexdigest()
        self.tag = "lb" + digest[:4]
        self.bridge = self.tag + "br"
        self.subnet = f"10.{200 + int(digest[4:6], 16) % 50}.{int(digest[6:8], 16)}"
        self.gateway = self.subnet + ".1"
        self.key = self.state / "id_ed25519"
        self.known_hosts = self.state / "known_hosts"

    # -- the record of what exists, so destroy undoes exactly that
    @property
    def record_path(self):
        return self.state / "hosts.json"

    def record(self):
        return json.loads(self.record_path.read_text()) if self.record_path.exists() else {"hosts": {}}

    def save(self, record):
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(self.record_path)

    # -- create
    def create(self, count, prefix="db"):
        if count < 1 or count > 40:
            raise SystemExit("count must be between 1 and 40")
        self.destroy()
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o700)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lifeboat-test-controller", "-f", self.key)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        record = {"bridge": self.bridge, "gateway": self.gateway, "hosts": {}}
        run("ip", "link", "add", self.bridge, "type", "bridge")
        self.save(record)
        run("ip", "addr", "add", self.gateway + "/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        names = [f"{prefix}{i}" for i in range(1, count + 1)]
        for index, name in enumerate(names):
            record["hosts"][name] = {"netns": f"{self.tag}-{name}", "veth": f"{self.tag}h{index}",
                                     "address": f"{self.subnet}.{10 + index}", "dir": str(self.state / name)}
        self.save(record)
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(self._make_host, name, facts) for name, facts in record["hosts"].items()]:
                future.result()
        self.save(record)
        self._write_inventory(record)
        self._wait_for_ssh(record)
        return record

    def start_s3(self, bucket="lifeboat-test"):
        """moto's S3 server on the bridge's address (the hosts reach it; nothing outside does), with
        one bucket; DIR/s3.json says how to reach it. Stopped by destroy()."""
        try:
            server = start_moto(self.gateway, detach=True)
        except RuntimeError as error:
            raise SystemExit(str(error)) from None
        record = self.record()
        record["s3_pid"] = server.proc.pid
        self.save(record)
        server.bucket(bucket)
        facts = {"endpoint_url": server.endpoint_url, "bucket": bucket,
                 "access_key": server.ACCESS_KEY, "secret_key": server.SECRET_KEY}
        (self.state / "s3.json").write_text(json.dumps(facts, indent=1))
        return facts

    def _make_host(self, name, facts):
        root = Path(facts["dir"])
        if root.exists():
            shutil.rmtree(root)
        for own in OWN:
            (root / own).mkdir(parents=True, exist_ok=True)
        self._make_files(name, root, facts)
        netns, veth = facts["netns"], facts["veth"]
        run("ip", "netns", "add", netns)
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "n")
        run("ip", "link", "set", veth + "n", "netns", netns)
        run("ip", "link", "set", veth, "master", self.bridge)
        run("ip", "link", "set", veth, "up")
        inside = ["ip", "netns", "exec", netns]
        run(*inside, "ip", "link", "set", "lo", "up")
        run(*inside, "ip", "link", "set", veth + "n", "name", "eth0")
        run(*inside, "ip", "addr", "add", facts["address"] + "/24", "dev", "eth0")
        run(*inside, "ip", "link", "set", "eth0", "up")
        run(*inside, "ip", "route", "add", "default", "via", self.gateway)
        # The holder process keeps the host's mount and UTS namespaces alive; everything else on the
        # host (sshd, PostgreSQL, every SSH session) is entered into them through its pid.
        # The host's folder is bound at /mnt first: the state may live under a folder about to be
        # covered (/tmp, /root, /home), and the later binds and sshd read from /mnt.
        mounts = " && ".join([f"mount --bind {root} {INSIDE}"] + [f"mount --bind {INSIDE}/{own} /{own}" for own in OWN])
        holder = subprocess.Popen(
            [*inside, "unshare", "--mount", "--uts", "--propagation", "private", "--", "sh", "-c",
             f"hostname {name} && {mounts} && touch {INSIDE}/.ready && exec sleep infinity"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        facts["holder"] = holder.pid
        deadline = time.monotonic() + 20
        while not (root / ".ready").exists():
            if holder.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"host {name} did not start: {holder.stderr.read().strip()}")
            time.sleep(0.05)
        # `unshare` execs sh which execs sleep: the holder's pid is the namespaces' process.
        self.enter(facts, "pg_createcluster", "15", "main", "--start", "--",
                   "--auth-local=peer", "--auth-host=scram-sha-256")
        self.enter(facts, "/usr/sbin/sshd", "-f", f"{INSIDE}/sshd_config")
        deadline = time.monotonic() + 10
        while not (root / "sshd.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # sshd writes its pid file once it has detached

    def _make_files(self, name, root, facts):
        etc = root / "etc"
        shutil.rmtree(etc)
        run("cp", "-a", "/etc", etc)
        # The machine's own cluster (if any) is not this host's: each host makes its own.
        shutil.rmtree(etc / "postgresql", ignore_errors=True)
        (etc / "postgresql").mkdir()
        (etc / "hostname").write_text(name + "\n")
        with open(etc / "hosts", "a") as hosts:
            hosts.write(f"127.0.1.1 {name}\n")
        with open(etc / "passwd", "a") as out:
            out.write(f"{LOGIN}:x:{LOGIN_UID}:{LOGIN_UID}:lifeboat test login:/home/{LOGIN}:/bin/bash\n")
        with open(etc / "group", "a") as out:
            out.write(f"{LOGIN}:x:{LOGIN_UID}:\n")
        # '*' and not '!': sshd refuses a locked account even with a key.
        with open(etc / "shadow", "a") as out:
            out.write(f"{LOGIN}:*:20000:0:99999:7:::\n")
        sudoers = etc / "sudoers.d" / "lifeboat-test"
        sudoers.write_text(f"{LOGIN} ALL=(ALL:ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
        home = root / "home" / LOGIN
        (home / ".ssh").mkdir(parents=True)
        shutil.copy(self.key.with_suffix(".pub"), home / ".ssh" / "authorized_keys")
        (home / ".ssh").chmod(0o700)
        (home / ".ssh" / "authorized_keys").chmod(0o600)
        for path in [home, home / ".ssh", home / ".ssh" / "authorized_keys"]:
            os.chown(path, LOGIN_UID, LOGIN_UID)
        (root / "root").chmod(0o700)
        (root / "tmp").chmod(0o1777)
        (root / "var/tmp").chmod(0o1777)
        pg = run("id", "-u", "postgres").stdout.strip(), run("id", "-g", "postgres").stdout.strip()
        for own in ["var/lib/postgresql", "var/run/postgresql"]:
            os.chown(root / own, int(pg[0]), int(pg[1]))
        (root / "var/run/postgresql").chmod(0o2775)
        (root / "var/log/postgresql").mkdir()
        os.chown(root / "var/log/postgresql", int(pg[0]), int(pg[1]))
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", root / "ssh_host_ed25519_key")
        (root / "sshd_config").write_text("\n".join([
            f"ListenAddress {facts['address']}",
            f"HostKey {INSIDE}/ssh_host_ed25519_key",
            f"PidFile {INSIDE}/sshd.pid",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin no",
            "UsePAM no", "AuthorizedKeysFile .ssh/authorized_keys", "MaxStartups 100",
            "MaxSessions 100", "Subsystem sftp /usr/lib/openssh/sftp-server", ""]))

    @staticmethod
    def enter(facts, *argv, check=True, **kwargs):
        """Run a command inside a host (its network, mount and UTS namespaces), as root."""
        return run("nsenter", "--target", facts["holder"], "--mount", "--net", "--uts", "--", *argv,
                   check=check, **kwargs)

    def _write_inventory(self, record):
        args = (f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes "
                "-o IdentitiesOnly=yes -o ConnectTimeout=10")
        hosts = {name: {"ansible_host": facts["address"]} for name, facts in record["hosts"].items()}
        inventory = {"all": {"children": {"databases": {"hosts": hosts}}, "vars": {
            "ansible_user": LOGIN, "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_common_args": args, "ansible_python_interpreter": "/usr/bin/python3",
            "lifeboat_test_gateway": self.gateway}}}
        lines = []
        for name, facts in record["hosts"].items():
            key = (Path(facts["dir"]) / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{facts['address']} {key[0]} {key[1]}")
        self.known_hosts.write_text("\n".join(lines) + "\n")
        (self.state / "inventory.yml").write_text(json.dumps(inventory, indent=1))

    def _wait_for_ssh(self, record):
        for name, facts in record["hosts"].items():
            deadline = time.monotonic() + 20
            while True:
                probe = run("ssh", "-i", self.key, *self.ssh_options(), f"{LOGIN}@{facts['address']}",
                            "sudo", "-n", "true", check=False)
                if probe.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"host {name} does not answer over SSH: {probe.stderr.strip()}")
                time.sleep(0.2)

    def ssh_options(self):
        return ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]

    # -- destroy: by the record, in reverse, never failing half-way
    def destroy(self):
        record = self.record()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(_stop_host, record.get("hosts", {}).values()))
        for name, facts in record.get("hosts", {}).items():
            if facts.get("netns"):
                run("ip", "netns", "del", facts["netns"], check=False)
            if facts.get("veth"):
                run("ip", "link", "del", facts["veth"], check=False)
        if record.get("s3_pid"):
            _kill([record["s3_pid"]])
        run("ip", "link", "del", record.get("bridge", self.bridge), check=False)
        if self.state.exists():
            shutil.rmtree(self.state, ignore_errors=True)


def _stop_host(facts):
    holder = facts.get("holder")
    if holder and _alive(holder):
        # A fast shutdown, so that PostgreSQL releases its shared memory; then the rest.
        Harness.enter(facts, "pg_ctlcluster", "15", "main", "stop", "-m", "fast", check=False, timeout=60)
        _kill([*_processes_in_namespace_of(holder), holder])


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # A zombie is dead: its parent (not us, for most) reaps it.
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _processes_in_namespace_of(holder):
    try:
        namespace = os.readlink(f"/proc/{holder}/ns/mnt")
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != holder:
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == namespace:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _kill(pids):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            for pid in pids:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.05)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["create", "destroy", "check"])
    parser.add_argument("--state", help="the harness's folder (create, destroy)")
    parser.add_argument("--count", type=int, default=2)
    parser.add_argument("--name-prefix", default="db")
    parser.add_argument("--s3", metavar="BUCKET", help="also start moto's S3 server on the bridge, with this bucket")
    options = parser.parse_args(argv)
    problem = missing()
    if options.action == "check":
        print(problem or "ok")
        return 0 if problem is None else 1
    if not options.state:
        parser.error("--state is required for create and destroy")
    harness = Harness(options.state)
    if options.action == "destroy":
        harness.destroy()
        return 0
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        harness.create(options.count, options.name_prefix)
        if options.s3:
            harness.start_s3(options.s3)
    except BaseException:
        harness.destroy()
        raise
    print(json.dumps(harness.record(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
