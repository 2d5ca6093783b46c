"""What the benchmarks share: a throw-away embedded server, an inventory for it, and a way to
run one lifeboat task through ansible-playbook and read its result back."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def pgserver(*args):
    subprocess.run([sys.executable, str(PROJECT / "scripts" / "pgserver.py"), *args], check=True,
                   capture_output=True)


class Bench:
    """Starts server `name`; `env` carries its PG* settings (for the raw tools) and the settings
    that make ansible-playbook record each task's result in `work`."""

    def __init__(self, name):
        self.name = name
        pgserver("start", "--name", name)
        self.facts = json.loads((PROJECT / ".lifeboat/servers" / name / "server.json").read_text())
        self.work = Path(tempfile.mkdtemp(prefix="lifeboat-perf-"))
        self.record = self.work / "results.jsonl"
        facts = self.facts
        self.env = dict(os.environ, PGHOST=facts["host"], PGPORT=str(facts["port"]), PGUSER=facts["user"],
                        PGPASSWORD=facts["password"], ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
                        PATH=f"{BIN}:{os.environ['PATH']}",
                        ANSIBLE_CALLBACK_PLUGINS=str(PROJECT / "tests" / "integration" / "callback_plugins"),
                        ANSIBLE_CALLBACKS_ENABLED="record_results", LIFEBOAT_TEST_RECORD=str(self.record))
        self.inventory = self.work / "inventory.json"
        fd = os.open(self.inventory, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"all": {"hosts": {"perf": {
                "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "lifeboat_connection": {"login_host": facts["host"], "port": facts["port"],
                                        "login_user": facts["user"], "login_password": facts["password"]}}}}}, out)

    def tool(self, name):
        return f"{self.facts['bin_dir']}/{name}"

    def play(self, task):
        """Run one task as a play; returns (its result, seconds of the whole ansible-playbook run)."""
        path = self.work / "play.json"
        path.write_text(json.dumps([{"hosts": "all", "gather_facts": False,
                                     "module_defaults": {"group/lifeboat.db.all": "{{ lifeboat_connection }}"},
                                     "tasks": [task]}]))
        if self.record.exists():
            self.record.unlink()
        start = time.monotonic()
        subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(path)], check=True,
                       capture_output=True, env=self.env, cwd=PROJECT)
        seconds = time.monotonic() - start
        return json.loads(self.record.read_text().splitlines()[-1])["result"], seconds

    def stop(self, destroy=False):
        pgserver("stop", "--name", self.name, *(["--destroy"] if destroy else []))
