"""The password never appears in a process list, a result or the repository."""
import json
import os
import stat
import subprocess
import time
from pathlib import Path

from conftest import BIN, PROJECT


def processes():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield entry, (entry / "comm").read_text().strip(), (entry / "cmdline").read_bytes()
            except OSError:
                continue


def parent(proc):
    """The parent pid of a /proc entry, or None once the process has gone."""
    try:
        stat_line = (proc / "stat").read_text()
    except OSError:
        return None
    return int(stat_line.rsplit(")", 1)[1].split()[1])


def descends_from(proc, ancestor):
    pid = int(proc.name)
    while pid and pid > 1:
        if pid == ancestor:
            return True
        pid = parent(Path("/proc") / str(pid))
    return False


def test_password_is_not_in_the_process_list_while_pg_dump_runs(server, ansible, sample_db):
    password = server.password.encode()
    blocker = server.connect(sample_db)
    blocker.autocommit = False
    # pg_dump waits for this lock, which keeps it running long enough to be inspected.
    blocker.execute("LOCK TABLE lifeboat_sample.events IN ACCESS EXCLUSIVE MODE")
    play = ansible.workdir / "dump.yml"
    play.write_text(json.dumps([{"hosts": "databases", "gather_facts": False,
                                 "tasks": [{"name": "dump", "lifeboat.db.dump": {
                                     **server.connection_options(), "db": sample_db,
                                     "repository": str(ansible.repository)}}]}]))
    play.chmod(0o600)
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))
    runner = subprocess.Popen([str(BIN / "ansible-playbook"), "-i", str(ansible.inventory), str(play)],
                              cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen_pg_dump = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen_pg_dump is None:
            for proc, comm, cmdline in processes():
                assert password not in cmdline, f"password in the command line of {comm} ({proc.name})"
                # Other tests run pg_dump at the same time: look only at this play's.
                if comm == "pg_dump" and descends_from(proc, runner.pid):
                    try:
                        environ = (proc / "environ").read_bytes().split(b"\0")
                    except OSError:
                        continue  # it ended between the listing and this read
                    assert not any(password in item for item in environ), "password in pg_dump's environment"
                    passfile = [item.split(b"=", 1)[1] for item in environ if item.startswith(b"PGPASSFILE=")]
                    if not passfile:
                        continue  # caught between fork and exec; look again
                    assert stat.S_IMODE(os.stat(passfile[0]).st_mode) == 0o600
                    seen_pg_dump = (cmdline, passfile[0])
            time.sleep(0.05)
    finally:
        blocker.rollback()
        blocker.close()
        output = runner.communicate(timeout=120)[0].decode()
    assert seen_pg_dump, "pg_dump was never seen running"
    assert runner.returncode == 0, output
    assert password.decode() not in output
    assert not os.path.exists(seen_pg_dump[1]), "the temporary passfile was left behind"
    for path in ansible.repository.rglob("*"):
        if path.is_file():
            assert password not in path.read_bytes(), f"password written to {path}"


def test_password_is_not_in_results(server, ansible, sample_db):
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    assert server.password not in json.dumps(result)
    restored = ansible.module("restore", db=sample_db, repository=str(ansible.repository), mode="replace")
    assert server.password not in json.dumps(restored)
