"""Playbooks run as AWX runs a job: ansible_runner.run() on a private data dir laid out the way
AWX's job runner lays it out, so a test sees what a job template, a workflow's next node and
AWX's job output would see (the runner's status, rc, stats, events and stdout).

What AWX does and how it is rebuilt here (no AWX needed):
- project/ is a copy of the project (AWX copies the synced checkout); ansible-playbook runs in it,
  so the project's ansible.cfg applies and `{{ playbook_dir }}/..` is the copy, not the checkout;
- inventory/hosts is an executable script printing the inventory as JSON (all's variables, each
  group's hosts, children and variables, _meta.hostvars), Jinja left in place for Ansible;
- env/extravars holds the job's extra vars (a survey's answers, a workflow's artifacts, AWX's own
  awx_*/tower_* variables), every string marked !unsafe: nothing a survey sends is templated;
- a custom credential's injectors are Jinja rendered in a sandbox over the credential's inputs;
  its env goes into the job's environment, its extra_vars into a file of their own under env/
  (0400, !unsafe as well) given as `-e @file` in env/cmdline;
- env/envvars holds what AWX's build_env sets (job and inventory ids, ANSIBLE_* settings, the
  collections and roles paths read from the project's ansible.cfg); env/settings the runner's.

Where this differs from AWX, on purpose: no container (this venv is the execution environment,
its bin/ first on PATH, host paths instead of /runner); artifacts/<job id>/stdout is kept
(AWX suppresses the file, as it streams the events into its database; the tests read it); one
private data dir serves several jobs (AWX makes one per job and removes it at the end).
"""
import json
import os
import shlex
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from contextlib import contextmanager

import ansible_runner
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

# What a job's environment starts from: an execution environment has no test harness variables.
KEPT_ENVIRONMENT = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


@contextmanager
def _execution_environment():
    """The runner starts a job's environment from this process's (without a container): keep only
    what an execution environment would have while it starts, so nothing of the test harness leaks in."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({key: saved[key] for key in KEPT_ENVIRONMENT if key in saved})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class _UnsafeDumper(yaml.SafeDumper):
    """Every string written as `!unsafe '...'`: Ansible takes the value as it is, never as a template."""

    def represent_str(self, value):
        return self.represent_scalar("!unsafe", value)


_UnsafeDumper.add_representer(str, _UnsafeDumper.represent_str)


def unsafe_yaml(variables, trusted=None):
    """Extra vars as AWX writes them (ALLOW_JINJA_IN_EXTRA_VARS=template): every string `!unsafe`,
    but for the top-level variables whose value is the job template's own (`trusted`): those only
    a template's editor can set, so Jinja in them is allowed."""
    trusted = trusted or {}
    return "".join(yaml.dump({key: value}, Dumper=yaml.SafeDumper if key in trusted and trusted[key] == value
                             else _UnsafeDumper, default_flow_style=False) for key, value in variables.items())


def controller_object(path, key, name):
    """The object `name` of list `key` (controller_templates, controller_credential_types, ...) of an
    infra.aap_configuration file, as AWX holds it once the configuration is applied: the file read
    and templated by Ansible as the configure playbook does (so a `!unsafe` or escaped `{{ }}` stays
    for AWX to render), or None when the file is missing."""
    if not Path(path).exists():
        return None
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    loader = DataLoader()
    data = loader.load_from_file(str(path), trusted_as_template=True)
    objects = {item["name"]: item for item in data.get(key, [])}
    assert name in objects, f"{path} has no {key} item named {name!r}, only {sorted(objects)}"
    # Through JSON: plain dicts and strings, as AWX's API would hand them back.
    return json.loads(json.dumps(Templar(loader=loader, variables={}).template(objects[name])))


def _survey_errors(question, answers):
    """What AWX's survey validation says of `answers` for one question (the checks a launch runs)."""
    variable, kind = question["variable"], question["type"]
    if variable not in answers:
        return [f"'{variable}' value missing"] if question.get("required") else []
    value = answers[variable]
    shown = "$encrypted$" if kind == "password" else repr(value)  # a password answer is never shown
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"Value {shown} for '{variable}' expected to be a string."]
        if question.get("min") not in ("", None) and len(value) < int(question["min"]):
            return [f"'{variable}' value {shown} is too small (length is {len(value)} must be at least "
                    f"{question['min']})."]
        if question.get("max") not in ("", None) and len(value) > int(question["max"]):
            return [f"'{variable}' value {shown} is too large (must be no more than {question['max']})."]
    elif kind in ("integer", "float"):
        numbers = (int,) if kind == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, numbers):
            return [f"Value {value!r} for '{variable}' expected to be {kind}."]
        if (question.get("min") not in ("", None) and value < question["min"]) or \
                (question.get("max") not in ("", None) and value > question["max"]):
            return [f"'{variable}' value {value!r} is out of range ({question.get('min')} to {question.get('max')})."]
    elif kind in ("multiplechoice", "multiselect"):
        choices = question.get("choices") or []
        choices = choices.split("\n") if isinstance(choices, str) else choices
        picked = value if kind == "multiselect" else [value]
        if not isinstance(picked, list) or any(item not in choices for item in picked):
            return [f"Value {value!r} for '{variable}' expected to be one of {choices}."]
    return []


def launch_extra_vars(template, answers):
    """A job's extra vars as AWX 24.6 builds them when `template` is launched with its survey
    answered by `answers`: the template's extra_vars, then each survey default that passes its
    question's checks (an empty default included, which ansible-core 2.19 reads as null: `!unsafe
    ''`; AWX since early 2026 leaves an optional question's empty default out), then the answers,
    which must pass every question's checks."""
    extra_vars = dict(template.get("extra_vars") or {})
    questions = (template.get("survey_spec") or {}).get("spec", []) if template.get("survey_enabled") else []
    for question in questions:
        default, variable = question.get("default"), question["variable"]
        if default is not None and not _survey_errors(question, {variable: default}):
            extra_vars[variable] = default
    errors = [error for question in questions for error in _survey_errors(question, answers)]
    assert not errors, f"{template['name']}'s survey refuses the launch: {errors}"
    extra_vars.update(answers)
    return extra_vars


def inject(cred_type, inputs):
    """A credential's injected env and extra vars: each injector template rendered in an immutable
    sandbox over the inputs (AWX's CredentialType.inject_credential)."""
    sandbox = ImmutableSandboxedEnvironment()
    namespace = {key: value for key, value in inputs.items() if value not in ("", None)}

    def render(node):
        if isinstance(node, dict):
            return {render(key): render(value) for key, value in node.items()}
        if isinstance(node, list):
            return [render(item) for item in node]
        return sandbox.from_string(node).render(**namespace)

    injectors = cred_type.get("injectors") or {}
    return render(injectors.get("env", {})), render(injectors.get("extra_vars", {}))


class Job:
    """One finished run: the runner and what its artifacts hold."""

    def __init__(self, runner, artifact_dir):
        self.runner = runner
        self.status, self.rc, self.stats = runner.status, runner.rc, runner.stats
        self.artifact_dir = Path(artifact_dir)
        # Event files are named <counter>-<uuid>.json: in the order the job emitted them.
        files = sorted((self.artifact_dir / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-")[0]))
        self.events = [json.loads(path.read_text()) for path in files]
        self.stdout = (self.artifact_dir / "stdout").read_text()

    @property
    def artifact_data(self):
        """The set_stats data of the run's playbook_on_stats event: what a workflow's next node gets."""
        stats = [e for e in self.events if e["event"] == "playbook_on_stats"]
        assert len(stats) == 1, f"{len(stats)} playbook_on_stats events\n{self.stdout[-3000:]}"
        return stats[0]["event_data"].get("artifact_data", {})

    def failures(self):
        """(task, msg) of each runner_on_failed event."""
        return [(e["event_data"]["task"], e["event_data"]["res"].get("msg")) for e in self.events
                if e["event"] == "runner_on_failed"]

    def explain(self):
        return f"status {self.status}, rc {self.rc}\n{self.stdout[-4000:]}"


class PrivateDataDir:
    """A private data dir holding a copy of `project` (its ansible.cfg, playbooks/, and roles/ and
    collections/ linked: read only) and an inventory; `run()` runs one job in it."""

    def __init__(self, root, project, inventory, python=sys.executable):
        self.root, self.source = Path(root), Path(project)
        self.project = self.root / "project"
        self.python_bin = Path(python).parent
        self.job_id = 0
        for folder in ("inventory", "env"):
            (self.root / folder).mkdir(parents=True, mode=0o700, exist_ok=True)
        self.root.chmod(0o700)
        self.project.mkdir(exist_ok=True)
        shutil.copy2(self.source / "ansible.cfg", self.project)
        # Copied, not linked: `{{ playbook_dir }}/../evidence` must resolve inside the copy.
        shutil.copytree(self.source / "playbooks", self.project / "playbooks")
        for shared in ("roles", "collections"):
            (self.project / shared).symlink_to(self.source / shared)
        self.write("inventory/hosts", "#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n"
                   % json.dumps(inventory), mode=0o700)

    def write(self, relative, text, mode=0o600):
        path = self.root / relative
        path.touch(mode=mode, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    def environment(self):
        """AWX's build_env for a job, without a container."""
        env = {"JOB_ID": str(self.job_id), "INVENTORY_ID": "1", "PROJECT_REVISION": "test",
               "ANSIBLE_RETRY_FILES_ENABLED": "False", "MAX_EVENT_RES": "700000",
               "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
               "ANSIBLE_FORCE_COLOR": "True", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
               "AWX_PRIVATE_DATA_DIR": str(self.root),
               "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.root / "cp"),
               "PATH": f"{self.python_bin}{os.pathsep}/usr/local/bin:/usr/bin:/bin"}
        # The paths AWX puts in front of the project's own (ansible.cfg's collections_path, roles_path,
        # left relative: they resolve against the project folder, the job's cwd).
        from configparser import ConfigParser
        config = ConfigParser()
        config.read(self.project / "ansible.cfg")
        for env_key, setting, folder, default in (
                ("ANSIBLE_COLLECTIONS_PATH", "collections_path", "requirements_collections",
                 "~/.ansible/collections:/usr/share/ansible/collections"),
                ("ANSIBLE_ROLES_PATH", "roles_path", "requirements_roles",
                 "~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles")):
            paths = default.split(":")
            if config.has_option("defaults", setting):
                paths = [config.get("defaults", setting)] + paths
            env[env_key] = os.pathsep.join([str(self.root / folder)] + paths)
        return env

    def run(self, template, answers, limit=None, credentials=(), inherited=None, timeout=300):
        """A job of job template `template` (a controller_templates item) launched with the survey
        answered by `answers`, the inventory limited to `limit` (asked on launch), each
        (credential type, inputs) of `credentials` injected; `inherited` are the set_stats artifacts
        a workflow hands this node from the nodes before it."""
        self.job_id += 1
        playbook = template["playbook"]
        # The artifacts come with the launch's own variables, over the survey's defaults (AWX's order).
        extra_vars = launch_extra_vars(template, {**(inherited or {}), **answers})
        env = self.environment()
        (self.root / "cp").mkdir(mode=0o700, exist_ok=True)
        # AWX's build_args for a job template without a machine credential (that user is root).
        args = ["--check"] if template.get("job_type") == "check" else []
        args += ["-u", "root"]
        args += ["--become"] if template.get("become_enabled") else []
        args += ["--diff"] if template.get("diff_mode") else []
        args += [f"--forks={template['forks']}"] if template.get("forks") else []
        args += ["-l", limit] if limit else []
        args += ["-" + "v" * min(5, template["verbosity"])] if template.get("verbosity") else []
        args += ["-t", template["job_tags"]] if template.get("job_tags") else []
        args += [f"--skip-tags={template['skip_tags']}"] if template.get("skip_tags") else []
        for cred_type, inputs in credentials:
            injected_env, injected_vars = inject(cred_type, inputs)
            env.update(injected_env)
            if injected_vars:
                handle, path = tempfile.mkstemp(dir=self.root / "env")
                with os.fdopen(handle, "w") as out:
                    out.write(unsafe_yaml(injected_vars))
                os.chmod(path, stat.S_IRUSR)
                args += ["-e", f"@{path}"]
        meta = {f"{prefix}_{key}": value for prefix in ("awx", "tower") for key, value in
                {"job_id": self.job_id, "job_launch_type": "workflow" if inherited else "manual",
                 "job_template_name": template["name"],
                 "user_name": "admin", "project_revision": "test"}.items()}
        self.write("env/extravars", unsafe_yaml({**extra_vars, **meta}, trusted=template.get("extra_vars")))
        self.write("env/envvars", yaml.safe_dump(env))
        self.write("env/cmdline", shlex.join(args))
        # AWX's runner settings, but the stdout file kept (see the module's docstring).
        self.write("env/settings", json.dumps({"job_timeout": timeout, "suppress_ansible_output": True,
                                               "suppress_output_file": False}))
        with _execution_environment():
            runner = ansible_runner.run(private_data_dir=str(self.root), ident=str(self.job_id), playbook=playbook,
                                        inventory=str(self.root / "inventory" / "hosts"), quiet=True)
        return Job(runner, self.root / "artifacts" / str(self.job_id))
