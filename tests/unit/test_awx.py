"""awx/: lifeboat's AWX configuration as code (infra.aap_configuration's variable format).

Checked without AWX: the generated files are current (scripts/awx_surveys.py), every question agrees
with the role option it feeds, every survey asks exactly its playbook's command-line variables (found
in the playbook, not taken from the generator), the objects refer to each other by names that exist,
the PostgreSQL credential's injector feeds the inventory's login password, and the S3 login AWX puts in
a job's environment reaches lifeboat's modules as no_log options (a real ansible-playbook run).
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import jinja2.meta
import pytest
import yaml

# fleet.yml's regex_replace('[-:]|\\.\\d+') is Ansible's to read; plain Jinja warns about its escapes.
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
AWX = ROOT / "awx"
PLAYBOOKS = ROOT / "playbooks"

spec = importlib.util.spec_from_file_location("awx_surveys", ROOT / "scripts" / "awx_surveys.py")
awx_surveys = importlib.util.module_from_spec(spec)
spec.loader.exec_module(awx_surveys)

# infra.aap_configuration 3.x: the variable each of its controller roles reads (its dispatch role's table).
DISPATCH_VARS = {"aap_organizations", "controller_execution_environments", "controller_credential_types",
                 "controller_credentials", "controller_projects", "controller_inventories",
                 "controller_inventory_sources", "controller_templates", "controller_workflows",
                 "controller_schedules"}
# AWX's own credential types that awx/credentials.yml uses, with their input fields.
BUILTIN_CREDENTIAL_TYPES = {
    "Machine": {"username", "password", "ssh_key_data", "ssh_key_unlock", "become_method", "become_username",
                "become_password"},
    "Amazon Web Services": {"username", "password", "security_token"},
}
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
# Variables Ansible or a play provides, never the command line's.
ANSIBLE_NAMES = {"playbook_dir", "inventory_hostname", "groups", "hostvars", "omit", "item", "query", "q",
                 "lookup", "now", "range", "dict", "zip", "lipsum", "undef", "true", "false", "none"}
RAW_CONDITIONS = ("when", "that", "failed_when", "changed_when", "until")


class _Anything(dict):
    """Every filter and test Ansible brings: only the names read matter here, not what they do."""

    def __contains__(self, name):
        return True

    def __getitem__(self, name):
        return lambda *args, **kwargs: None

    def get(self, name, default=None):
        return self[name]


JINJA = jinja2.Environment()
JINJA.filters, JINJA.tests = _Anything(), _Anything()


def load_awx(name):
    """An awx/ file as awx/configure.yml reads it (Ansible's loader: `!unsafe` values stay as written)."""
    from ansible.parsing.dataloader import DataLoader
    return DataLoader().load_from_file(str(AWX / name), trusted_as_template=True)


def awx_files():
    return sorted(p.name for p in AWX.glob("*.yml") if p.name not in ("configure.yml", "requirements.yml"))


def objects(var):
    for name in awx_files():
        data = load_awx(name) or {}
        if var in data:
            return list(data[var])
    return []


def names(var):
    return {item["name"] for item in objects(var)}


def survey_items():
    """(owner, survey question) of every job template and workflow."""
    for owner in objects("controller_templates") + objects("controller_workflows"):
        for question in (owner.get("survey_spec") or {}).get("spec", []):
            yield owner, question


def declared_questions():
    """{(owner name, variable): Question} of the generator's table."""
    table = {(t.name, q.variable): q for t in awx_surveys.TEMPLATES for q in t.questions}
    table.update({(awx_surveys.WORKFLOW["name"], q.variable): q for q in awx_surveys.WORKFLOW["questions"]})
    return table


def argument_spec(role, option, entry="main"):
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"][entry]["options"][option]


# --- what a playbook reads, found in the playbook itself -------------------------------------------

def template_variables(text):
    """The variables a Jinja template reads (names it does not set itself)."""
    return jinja2.meta.find_undeclared_variables(JINJA.parse(text))


def _walk(node, key=None):
    """Every (key, string) below node."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)
    elif isinstance(node, str):
        yield key, node


def _defined_names(node):
    """Names a play or task list sets itself: register, set_fact, vars, loop_var."""
    found = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "register" and isinstance(v, str):
                found.add(v)
            elif k in ("vars", "ansible.builtin.set_fact", "set_fact") and isinstance(v, dict):
                found |= set(v)
            elif k == "loop_var":
                found.add(v)
            found |= _defined_names(v)
    elif isinstance(node, list):
        for v in node:
            found |= _defined_names(v)
    return found


def playbook_sources(playbook):
    """The playbook and the task files it imports from playbooks/tasks/, parsed, with their text."""
    sources = [(playbook, yaml.safe_load(playbook.read_text()))]
    for _, value in _walk(sources[0][1]):
        if value.startswith("tasks/") and value.endswith(".yml"):
            path = playbook.parent / value
            sources.append((path, yaml.safe_load(path.read_text())))
    return sources


def plays_roles(plays):
    return {r["role"] if isinstance(r, dict) else r for play in plays for r in play.get("roles", [])}


def hosts_variables(plays):
    """The variables of the plays' hosts: patterns (lifeboat_<x>_hosts): a job template's limit."""
    return set().union(*(template_variables(play["hosts"]) for play in plays))


def command_line_variables(playbook):
    """What `-e` gives a playbook: the short names it reads (not lifeboat_*, which are the inventory's
    and the roles'), and every `-e NAME=` that the playbook, its task files or the argument specs of
    the roles it runs tell an operator to pass; less its hosts variable."""
    sources = playbook_sources(playbook)
    plays = sources[0][1]
    read, defined = set(), set()
    for _, data in sources:
        defined |= _defined_names(data)
        for key, value in _walk(data):
            if key in RAW_CONDITIONS:
                read |= template_variables("{{ %s }}" % value)
            elif "{{" in value or "{%" in value:
                read |= template_variables(value)
    short = {name for name in read - defined
             if not name.startswith(("lifeboat_", "ansible_")) and name not in ANSIBLE_NAMES}
    texts = [path.read_text() for path, _ in sources]
    texts += [(ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text() for role in plays_roles(plays)]
    told = {name for text in texts for name in re.findall(r"-e ([a-z][a-z0-9_]*)=", text)}
    return (short | told) - hosts_variables(plays)


def fed_option(playbook, variable):
    """The role option a command-line variable reaches: itself, or the fact a set_fact makes of it."""
    fed = set()
    for _, data in playbook_sources(playbook):
        for task in data if isinstance(data, list) else []:
            for block in [task] + task.get("pre_tasks", []) + task.get("tasks", []):
                facts = block.get("ansible.builtin.set_fact") or {}
                fed |= {option for option, value in facts.items()
                        if isinstance(value, str) and variable in template_variables(value)}
    return fed or {variable}


# --- the tests ---------------------------------------------------------------------------------------

def test_generated_files_are_current():
    for path, text in awx_surveys.outputs().items():
        assert path.read_text() == text, (
            f"{path.relative_to(ROOT)} differs from what scripts/awx_surveys.py makes of the argument specs: "
            f"run .venv/bin/python scripts/awx_surveys.py")


def test_every_playbook_has_a_job_template_or_a_reason():
    templated = {t["playbook"] for t in objects("controller_templates")}
    for playbook in sorted(PLAYBOOKS.glob("*.yml")):
        relative = str(playbook.relative_to(ROOT))
        assert relative in templated or awx_surveys.LEFT_OUT.get(relative), (
            f"{relative} has no job template in awx/job_templates.yml: add it to TEMPLATES in "
            f"scripts/awx_surveys.py (or to LEFT_OUT, saying why)")
    for playbook in templated:
        assert (ROOT / playbook).is_file(), f"awx/job_templates.yml names {playbook}, which does not exist"


@pytest.mark.parametrize("playbook", sorted(awx_surveys.TEMPLATES, key=lambda t: t.name), ids=lambda t: t.playbook)
def test_survey_asks_exactly_the_command_line(playbook):
    template = next(t for t in objects("controller_templates") if t["name"] == playbook.name)
    asked = {q["variable"] for q in (template.get("survey_spec") or {}).get("spec", [])}
    wanted = command_line_variables(ROOT / template["playbook"])
    assert set(playbook.not_asked) <= wanted and all(playbook.not_asked.values()), (
        f"{template['name']}: not_asked names a variable {template['playbook']} does not take, or gives no reason")
    wanted -= set(playbook.not_asked)
    assert asked == wanted, (
        f"{template['name']}: the survey asks {sorted(asked - wanted)} that {template['playbook']} does not take "
        f"and misses {sorted(wanted - asked)} that it does: fix TEMPLATES in scripts/awx_surveys.py")
    assert template["survey_enabled"] is bool(asked)
    # The hosts variable of the command line is the limit in AWX.
    assert template["ask_limit_on_launch"] is True


def test_every_question_agrees_with_the_option_it_feeds():
    declared = declared_questions()
    templates = {t.name: t for t in awx_surveys.TEMPLATES}
    seen = 0
    for owner, question in survey_items():
        where = f"{owner['name']}: {question['variable']}"
        decl = declared.get((owner["name"], question["variable"]))
        assert decl, f"{where} is not in the table of scripts/awx_surveys.py"
        option = argument_spec(decl.role, decl.option, decl.entry)
        if owner["name"] in templates:
            playbook = ROOT / templates[owner["name"]].playbook
            assert decl.option in fed_option(playbook, question["variable"]), (
                f"{where}: {playbook.name} does not hand it to {decl.option}")
        kind, choices = option.get("type", "str"), option.get("choices")
        left_out = set(decl.left_out_choices)
        assert all(reason for reason in decl.left_out_choices.values())
        if kind == "bool":
            assert question["type"] == "multiplechoice" and sorted(question["choices"]) == ["false", "true"], where
        elif kind == "int":
            assert question["type"] == "integer", where
        elif kind == "float":
            assert question["type"] == "float", where
        elif choices:
            assert question["type"] == ("multiselect" if kind == "list" else "multiplechoice"), where
            assert set(question["choices"]) == {str(c) for c in choices} - left_out, (
                f"{where}: choices {question['choices']}, the spec's {choices} less {sorted(left_out)}")
        else:
            assert kind in ("str", "path", "raw"), f"{where}: a {kind} option cannot be a text answer"
            secret = option.get("no_log") or re.search("password|secret|token", question["variable"])
            assert question["type"] == ("password" if secret else "text"), where
        required = decl.required[0] if decl.required else bool(option.get("required", False))
        if decl.required:
            assert decl.required[1], f"{where}: a required answer the spec does not require needs a reason"
        assert question["required"] is required, f"{where}: required {question['required']}, expected {required}"
        default = option.get("default")
        if decl.keep_inventory or decl.required or default == "" or (isinstance(default, str) and "{{" in default):
            # Nothing sent when left blank (no default, a text answer of at least one character), or, for a
            # confirmation, nothing offered: the operator types it. An empty default is never sent either:
            # AWX's !unsafe '' reaches ansible-core 2.19 as null, not as the role's "".
            assert "default" not in question, f"{where}: a default would be sent unasked"
        elif default is not None:
            expected = str(default).lower() if kind == "bool" else default
            assert question.get("default") == expected, (
                f"{where}: default {question.get('default')!r}, the spec's is {expected!r}")
        else:
            assert "default" not in question, where
        if question["type"] in ("text", "password"):
            sends_blank = not question["required"] and question["min"] == 0
            assert sends_blank == ("default" in question), (
                f"{where}: min {question['min']}: a blank answer must be sent only when it is the default")
        seen += 1
    assert seen >= 20


def test_objects_refer_to_names_that_exist():
    for name in awx_files():
        data = load_awx(name) or {}
        if name == "settings.yml":
            assert all(key.startswith("lifeboat_awx_") for key in data), f"awx/settings.yml: {sorted(data)}"
            continue
        assert set(data) <= DISPATCH_VARS, f"awx/{name}: {sorted(set(data) - DISPATCH_VARS)} are not dispatch variables"
    configure = yaml.safe_load((AWX / "configure.yml").read_text())[0]
    assert sorted(configure["vars_files"]) == awx_files(), "awx/configure.yml must read every awx/ variables file"
    assert configure["roles"][0]["role"] == "infra.aap_configuration.dispatch"
    required = {c["name"] for c in yaml.safe_load((AWX / "requirements.yml").read_text())["collections"]}
    assert {"infra.aap_configuration", "awx.awx"} <= required

    organizations = names("aap_organizations")
    credential_types = {t["name"]: t for t in objects("controller_credential_types")}
    inputs_of = dict(BUILTIN_CREDENTIAL_TYPES, **{name: {f["id"] for f in t["inputs"]["fields"]}
                                                  for name, t in credential_types.items()})
    for cred in objects("controller_credentials"):
        assert cred["organization"] in organizations, cred["name"]
        assert cred["credential_type"] in inputs_of, f"credential {cred['name']}: no type {cred['credential_type']}"
        assert set(cred["inputs"]) <= inputs_of[cred["credential_type"]], cred["name"]
    credentials, projects, inventories = names("controller_credentials"), names("controller_projects"), names(
        "controller_inventories")
    environments = names("controller_execution_environments")
    for project in objects("controller_projects"):
        assert project["organization"] in organizations and project["scm_type"] == "git" and project["scm_url"]
        assert project["default_environment"] in environments
    for inventory in objects("controller_inventories"):
        assert inventory["organization"] in organizations
    for source in objects("controller_inventory_sources"):
        assert source["inventory"] in inventories and source["source"] == "scm"
        assert source["source_project"] in projects and source["source_path"]

    templates = {}
    for template in objects("controller_templates"):
        where = f"job template {template['name']}"
        assert template["name"] not in templates, f"{where} is defined twice"
        templates[template["name"]] = template
        assert template["project"] in projects and template["inventory"] in inventories, where
        assert template["organization"] in organizations and template["execution_environment"] in environments
        assert set(template["credentials"]) <= credentials, f"{where}: {set(template['credentials']) - credentials}"
        check_survey(where, template)

    for workflow in objects("controller_workflows"):
        where = f"workflow {workflow['name']}"
        assert workflow["organization"] in organizations and workflow["inventory"] in inventories, where
        check_survey(where, workflow)
        nodes = {node["identifier"]: node for node in workflow["simplified_workflow_nodes"]}
        assert len(nodes) == len(workflow["simplified_workflow_nodes"]), f"{where}: identifiers repeat"
        for node in nodes.values():
            target = templates.get(node["unified_job_template"])
            assert target, f"{where}: node {node['identifier']} runs {node['unified_job_template']}, no such template"
            for link in ("success_nodes", "failure_nodes", "always_nodes"):
                assert set(node.get(link, [])) <= set(nodes), f"{where}: {node['identifier']} {link}"
            if node.get("limit"):
                assert target["ask_limit_on_launch"], f"{where}: {node['identifier']}'s limit would be refused"
            check_answers(f"{where}: node {node['identifier']}", target, node.get("extra_data"))
        # One start, and every node reached from it, without a cycle.
        children = {i: [c for link in ("success_nodes", "failure_nodes", "always_nodes") for c in n.get(link, [])]
                    for i, n in nodes.items()}
        roots = set(nodes) - {c for cs in children.values() for c in cs}
        assert len(roots) == 1, f"{where}: starts at {sorted(roots)}"
        order, todo = [], list(roots)
        while todo:
            node = todo.pop()
            assert node not in order, f"{where}: {node} is reached twice (a cycle or a join)"
            order.append(node)
            todo += children[node]
        assert set(order) == set(nodes)


def check_answers(where, template, answers):
    """AWX takes a node's or a schedule's variables only as valid answers to its template's survey."""
    questions = {q["variable"]: q for q in (template.get("survey_spec") or {}).get("spec", [])}
    for variable, value in (answers or {}).items():
        assert variable in questions, f"{where} sends {variable}, not a question of {template['name']}'s survey"
        if questions[variable]["type"] == "multiplechoice":
            assert value in questions[variable]["choices"], f"{where}: {variable}={value}"
    missing = {v for v, q in questions.items() if q["required"]} - set(answers or {})
    assert not missing, f"{where} leaves {template['name']}'s required {sorted(missing)} unanswered"


def cron_matches(expression, when):
    def field(spec, value):
        if spec == "*":
            return True
        if spec.startswith("*/"):
            return value % int(spec[2:]) == 0
        for part in spec.split(","):
            first, _, last = part.partition("-")
            if int(first) <= value <= int(last or first):
                return True
        return False
    minute, hour, dom, month, dow = expression.split()
    return (field(minute, when.minute) and field(hour, when.hour) and field(dom, when.day)
            and field(month, when.month) and field(dow, (when.weekday() + 1) % 7))


def test_awx_schedules_run_when_seed_002s_cron_jobs_do():
    jobs = yaml.safe_load((ROOT / "roles" / "lifeboat_schedule" / "defaults" / "main.yml").read_text())[
        "lifeboat_schedule_jobs"]
    schedules = {s["name"]: s for s in objects("controller_schedules")}
    templates = {t["name"]: t for t in objects("controller_templates")}
    assert set(schedules) - PGBACKREST_SCHEDULES == {f"lifeboat {job['name']}" for job in jobs}
    for job in jobs:
        schedule = schedules[f"lifeboat {job['name']}"]
        where = f"schedule {schedule['name']}"
        template = templates[schedule["unified_job_template"]]
        assert template["playbook"] in job["command"], where
        assert schedule["organization"] in names("aap_organizations") and template["ask_limit_on_launch"], where
        check_answers(where, template, schedule["extra_data"])
        for variable, value in schedule["extra_data"].items():
            assert f"'-e', '{variable}={value}'" in job["command"], where
        enabled = job.get("enabled", True)
        assert schedule["enabled"] is (enabled if isinstance(enabled, bool) else False), where
        assert_runs_as_cron(schedule, job["schedule"])


def assert_runs_as_cron(schedule, expression):
    """The AWX schedule's rule runs exactly when the cron expression does, over two years."""
    import datetime
    from dateutil import rrule
    where = f"schedule {schedule['name']}"
    start, end = datetime.datetime(2026, 1, 1), datetime.datetime(2028, 1, 1)
    # AWX reads the rule with dateutil; a time zone of its own does not change which hours match.
    rule = schedule["rrule"].replace("{{ lifeboat_awx_timezone }}", "UTC")
    assert re.fullmatch(r"DTSTART;TZID=UTC:\d{8}T\d{6}Z? RRULE:\S+", rule), where
    runs = [r.replace(tzinfo=None) for r in rrule.rrulestr(rule.replace(" ", "\n")).between(
        start.replace(tzinfo=datetime.timezone.utc), end.replace(tzinfo=datetime.timezone.utc), inc=True)
        if r.replace(tzinfo=None) < end]
    hours = (start + datetime.timedelta(hours=h) for h in range(int((end - start).total_seconds() // 3600)))
    cron = [h.replace(minute=int(expression.split()[0])) for h in hours]
    cron = [when for when in cron if cron_matches(expression, when)]
    assert runs == cron, f"{where}: {rule} runs {runs[:3]}..., cron {expression} {cron[:3]}..."


PGBACKREST_SCHEDULES = {f"lifeboat pgbackrest-{kind}" for kind in ("full", "diff", "incr", "verify")}


def test_awx_schedules_run_pgbackrests_jobs_when_the_hosts_clock_would():
    """One AWX schedule per kind of lifeboat_schedule's pgBackRest jobs, at the same times, running the pitr
    backup template with that kind as its answer; off until turned on, as the role's are."""
    times = yaml.safe_load((ROOT / "roles" / "lifeboat_schedule" / "defaults" / "main.yml").read_text())[
        "lifeboat_schedule_pgbackrest_times"]
    schedules = {s["name"]: s for s in objects("controller_schedules") if s["name"] in PGBACKREST_SCHEDULES}
    templates = {t["name"]: t for t in objects("controller_templates")}
    assert set(schedules) == {f"lifeboat pgbackrest-{kind}" for kind in times} == PGBACKREST_SCHEDULES
    for kind, expression in times.items():
        schedule = schedules[f"lifeboat pgbackrest-{kind}"]
        template = templates[schedule["unified_job_template"]]
        assert template["playbook"] == "playbooks/pitr_backup.yml" and template["allow_simultaneous"] is False
        assert schedule["extra_data"] == {"lifeboat_pgbackrest_backup_type": kind}
        check_answers(f"schedule {schedule['name']}", template, schedule["extra_data"])
        assert schedule["enabled"] is False
        assert_runs_as_cron(schedule, expression)


def check_survey(where, owner):
    survey = owner.get("survey_spec") or {}
    assert owner["survey_enabled"] is bool(survey.get("spec")), where
    if not survey:
        return
    assert survey["name"] and "description" in survey, where
    variables = [q["variable"] for q in survey["spec"]]
    assert len(variables) == len(set(variables)), f"{where}: a variable is asked twice"
    for question in survey["spec"]:
        assert {"question_name", "variable", "type", "required"} <= set(question), f"{where}: {question}"
        assert question["type"] in SURVEY_TYPES, f"{where}: {question['variable']}: {question['type']}"
        if question["type"] in ("multiplechoice", "multiselect"):
            assert question["choices"] and all(isinstance(c, str) for c in question["choices"])
            defaults = question.get("default", "").split("\n") if question.get("default") else []
            assert set(defaults) <= set(question["choices"]), f"{where}: {question['variable']} default"


def test_configure_renders_every_file_from_the_settings_and_the_vault():
    """What awx/configure.yml hands the roles: every template of awx/ resolved by settings.yml and the
    vault variables its header names, nothing else; the `!unsafe` ones (AWX's and the jobs') left as written."""
    from ansible.errors import AnsibleUndefinedVariable
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    header = (AWX / "configure.yml").read_text().split("\n- name:")[0]
    vault = set(re.findall(r"\bvault_lifeboat_awx_[a-z_]+", header))
    assert vault, "awx/configure.yml's header names no vault variable"
    variables = dict(load_awx("settings.yml"), **{name: f"<{name}>" for name in vault})
    templar = Templar(loader=DataLoader(), variables=variables)
    for name in awx_files():
        rendered = templar.template(load_awx(name))
        assert "{{" not in str({k: v for k, v in rendered.items() if k not in (
            "controller_credential_types", "controller_inventories")}), f"awx/{name} left a template unrendered"
    for name in vault:
        used = [f for f in awx_files() if name in (AWX / f).read_text()]
        assert used, f"awx/configure.yml names {name}, which no file of awx/ uses"
    # A variable neither in settings.yml nor in the vault would stop configure.yml: undefined.
    with pytest.raises(AnsibleUndefinedVariable):
        Templar(loader=DataLoader(), variables=load_awx("settings.yml")).template(load_awx("credentials.yml"))
    injector = templar.template(load_awx("credential_types.yml"))["controller_credential_types"][0]["injectors"]
    assert injector["extra_vars"]["vault_lifeboat_password"] == "{{ password }}"
    login = templar.template(load_awx("inventories.yml"))["controller_inventories"][0]["variables"]
    assert "lookup('ansible.builtin.env', 'AWS_SECRET_ACCESS_KEY'" in login["lifeboat_awx_s3_login"]


def test_the_restore_confirmation_is_a_required_text_answer():
    for template in ("lifeboat restore", "lifeboat dr"):
        owner = next(t for t in objects("controller_templates") if t["name"] == template)
        confirm = next(q for q in owner["survey_spec"]["spec"] if q["variable"] == "restore_confirm")
        assert confirm["type"] == "text" and confirm["required"] is True and confirm["min"] >= 1
        assert "default" not in confirm


def test_the_postgresql_credential_feeds_the_inventorys_login_password():
    from ansible.template import Templar
    from ansible.parsing.dataloader import DataLoader
    cred_type = next(t for t in objects("controller_credential_types") if t["name"] == "lifeboat PostgreSQL login")
    fields = {f["id"]: f for f in cred_type["inputs"]["fields"]}
    assert fields["password"].get("secret") is True and set(cred_type["inputs"]["required"]) == {"username", "password"}
    # What configure.yml sends AWX: the injector templates left for AWX (the !unsafe kept them).
    injectors = Templar(loader=DataLoader(), variables={}).template(cred_type["injectors"])
    sandbox = jinja2.sandbox.ImmutableSandboxedEnvironment()
    rendered = {k: sandbox.from_string(v).render(username="app_owner", password="s3cr3t-Pw")
                for k, v in injectors["extra_vars"].items()}
    assert rendered == {"vault_lifeboat_password": "s3cr3t-Pw", "lifeboat_awx_login_user": "app_owner"}
    assert not injectors.get("env"), "a secret in the controller's environment would not reach the hosts' modules"
    inventory = yaml.safe_load((ROOT / "inventories" / "example" / "group_vars" / "all.yml").read_text())
    assert "vault_lifeboat_password" in template_variables(inventory["lifeboat_connection"]["login_password"])
    sys.path.insert(0, str(ROOT / "collections"))
    from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
    assert connection_argument_spec()["login_password"]["no_log"] is True


S3_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
    lifeboat_restore_s3: "{{{{ {{'s3_endpoint_url': 'http://127.0.0.1:9', 's3_region': 'eu-central-1'}}
                               | combine(lifeboat_awx_s3_login | default({{}})) }}}}"
  module_defaults:
    lifeboat.db.backup_info: "{{{{ lifeboat_restore_s3 }}}}"
  tasks:
    - name: Keys of the S3 login
      ansible.builtin.debug:
        msg: "keys [{{{{ lifeboat_awx_s3_login.keys() | sort | join(',') }}}}]"
    - name: List the S3 copies
      lifeboat.db.backup_info:
        repository: s3://lifeboat-awx-test/prod
        db: app
      ignore_errors: true
"""


def test_the_s3_login_from_awx_reaches_the_modules_as_no_log_options(tmp_path):
    login = load_awx("inventories.yml")["controller_inventories"][0]["variables"]["lifeboat_awx_s3_login"]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(
        {"all": {"hosts": {"localhost": None}, "vars": {"lifeboat_awx_s3_login": str(login)}}}))
    (tmp_path / "play.yml").write_text(S3_PLAY.format(python=sys.executable))
    secret, token = "wJalrXUtnFEMI-awx-secret-key", "FwoGZXIvYXdzEAwx-session-token"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json")

    def run(extra):
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i",
                               str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")],
                              cwd=ROOT, env=dict(env, **extra), capture_output=True, text=True, timeout=180)
        return proc.stdout + proc.stderr

    # As AWX's "Amazon Web Services" credential sets the job's environment.
    output = run({"AWS_ACCESS_KEY_ID": "AKIAAWXTESTKEY", "AWS_SECRET_ACCESS_KEY": secret,
                  "AWS_SECURITY_TOKEN": token})
    assert "keys [aws_access_key,aws_secret_key,aws_session_token]" in output, output[-3000:]
    assert '"aws_access_key": "AKIAAWXTESTKEY"' in output, output[-3000:]  # the key id reached the module
    assert output.count('"aws_secret_key": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"') >= 1, output[-3000:]
    assert secret not in output and token not in output
    # Without the credential, no option at all: boto3's own chain on the host applies.
    assert "keys []" in run({})
