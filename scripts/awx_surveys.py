#!/usr/bin/env python3
"""Writes awx/job_templates.yml and awx/workflows.yml: lifeboat's AWX job templates and workflow, in the
variable format of the infra.aap_configuration collection, each survey generated from the roles'
meta/argument_specs.yml.

Declared here, per playbook: which command-line variable feeds which role option, and where a
question departs from that option's spec, why. Everything else a question says (its type, choices,
default, required, description) is read from the argument spec, so a change there reaches the
surveys on the next run; tests/unit/test_awx.py regenerates both files and fails when they differ.

    .venv/bin/python scripts/awx_surveys.py          # rewrite the two files
    .venv/bin/python scripts/awx_surveys.py --check  # exit 1, saying which file differs, when stale
"""
import argparse
import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
JOB_TEMPLATES = ROOT / "awx" / "job_templates.yml"
WORKFLOWS = ROOT / "awx" / "workflows.yml"

# Names of the objects the templates point at, defined in awx/*.yml (the test checks they exist).
PROJECT = "lifeboat"
INVENTORY = "lifeboat"
ORGANIZATION = "lifeboat"
EXECUTION_ENVIRONMENT = "lifeboat"
SSH = "lifeboat hosts (SSH)"
POSTGRES = "lifeboat PostgreSQL login"
AWS = "lifeboat S3 (AWS)"

# An optional text answer left blank is not sent at all when its minimum length is above 0 (AWX's
# rule for optional text questions): the inventory's value, else the role's default, then applies.
TEXT_MAX = 1024


@dataclass
class Question:
    """One survey question: `variable` (what the playbook reads) feeds `option` of `role`."""
    variable: str
    role: str
    option: str
    question_name: str
    # Why an empty answer must leave the inventory's value alone (no survey default is sent).
    keep_inventory: str = ""
    # (required, why) when the survey's answer is required though the option is not.
    required: tuple = ()
    # {choice: why} for a spec choice the playbook's command line cannot use.
    left_out_choices: dict = field(default_factory=dict)


@dataclass
class Template:
    name: str
    playbook: str
    description: str
    questions: list
    credentials: tuple = (SSH, POSTGRES)
    # The playbook's hosts: variable (lifeboat_<x>_hosts) is answered by the template's limit.
    allow_simultaneous: bool = True


RESTORE_QUESTIONS = [
    Question("restore_db", "lifeboat_restore", "lifeboat_restore_db", "Database to restore into"),
    Question("restore_backup", "lifeboat_restore", "lifeboat_restore_backup", "Backup to restore"),
    Question("restore_backup_db", "lifeboat_restore", "lifeboat_restore_backup_db",
             "Database whose backups to use"),
    Question("restore_mode", "lifeboat_restore", "lifeboat_restore_mode", "How to treat the target database",
             left_out_choices={"tables": "needs lifeboat_restore_tables, a list the command line does not take: "
                                         "restore tables with the role (docs/restore-tables.md)"}),
    Question("restore_confirm", "lifeboat_restore", "lifeboat_restore_confirm",
             "Type the database name again to confirm",
             required=(True, "a restore replaces data: the operator repeats the name on every launch, which "
                             "production hosts require and no host refuses (any other value is refused)")),
    Question("restore_repository", "lifeboat_restore", "lifeboat_restore_repository",
             "Repository (path on the host, or s3://bucket/prefix)",
             keep_inventory="the inventory names the repository (lifeboat_restore_repository; an s3:// URL "
                            "for dr.yml): a default sent here would replace it"),
    Question("restore_evidence_dir", "lifeboat_restore", "lifeboat_restore_evidence_dir",
             "Evidence folder on the controller",
             keep_inventory="the inventory points the evidence at storage that outlives the job"),
]

TEMPLATES = [
    Template("lifeboat backup", "playbooks/backup.yml",
             "Back up the databases of the limited hosts, one kind per run, with that kind's retention and "
             "offsite copy (seed 002); set_stats lifeboat_backup.",
             [Question("lifeboat_backup_kind", "lifeboat_backup", "lifeboat_backup_kind", "Kind of backup")],
             credentials=(SSH, POSTGRES, AWS)),
    Template("lifeboat restore", "playbooks/restore.yml",
             "Restore one database from the repository (or S3), beside the live one and swapped in once "
             "checked; set_stats lifeboat_restore.",
             RESTORE_QUESTIONS, credentials=(SSH, POSTGRES, AWS), allow_simultaneous=False),
    Template("lifeboat dr", "playbooks/dr.yml",
             "Seed 002's disaster recovery from the offsite copies in S3: download (checked), restore, "
             "integrity check, evidence; set_stats lifeboat_dr.",
             RESTORE_QUESTIONS, credentials=(SSH, POSTGRES, AWS), allow_simultaneous=False),
    Template("lifeboat drill", "playbooks/drill.yml",
             "Seed 001's recovery drill on a scratch host, or the proof there of other hosts' backups "
             "(lifeboat_drill_prove_on, lifeboat_drill_source); set_stats lifeboat_drill (RTO, RPO).",
             [Question("lifeboat_drill_source", "lifeboat_drill", "lifeboat_drill_source",
                       "Hosts whose backups to prove (comma separated); blank drills here")],
             credentials=(SSH, POSTGRES, AWS), allow_simultaneous=False),
    Template("lifeboat integrity", "playbooks/integrity.yml",
             "Check that a database is whole, one line per check, evidence on the controller; "
             "set_stats lifeboat_integrity.",
             [Question("integrity_db", "lifeboat_integrity", "lifeboat_integrity_db", "Database to check"),
              Question("integrity_action", "lifeboat_integrity", "lifeboat_integrity_action", "Action"),
              Question("integrity_baseline", "lifeboat_integrity", "lifeboat_integrity_baseline",
                       "Baseline file on the host (or latest)",
                       keep_inventory="the inventory may name the baseline the checks compare with"),
              Question("integrity_repository", "lifeboat_integrity", "lifeboat_integrity_repository",
                       "Backup repository to compare with",
                       keep_inventory="the inventory may name the repository the row counts compare with"),
              Question("integrity_backup", "lifeboat_integrity", "lifeboat_integrity_backup",
                       "Backup whose manifest to compare with"),
              Question("integrity_backup_db", "lifeboat_integrity", "lifeboat_integrity_backup_db",
                       "Database whose backups or baselines to use"),
              Question("integrity_count", "lifeboat_integrity", "lifeboat_integrity_count", "How to count rows"),
              Question("integrity_tolerance", "lifeboat_integrity", "lifeboat_integrity_tolerance",
                       "Tolerated difference in row counts (5% or a number of rows)"),
              Question("integrity_fail_on", "lifeboat_integrity", "lifeboat_integrity_fail_on",
                       "When the job fails"),
              Question("integrity_evidence_dir", "lifeboat_integrity", "lifeboat_integrity_evidence_dir",
                       "Evidence folder on the controller",
                       keep_inventory="the inventory points the evidence at storage that outlives the job; "
                                      "the role's default, empty, would write none")]),
    Template("lifeboat maintenance", "playbooks/maintenance.yml",
             "Seed 002's upkeep: partitions ahead and archived, materialized views refreshed, old rows "
             "purged; set_stats lifeboat_partition.",
             [Question("maintenance_task", "lifeboat_partition", "lifeboat_partition_task", "Part to run")],
             credentials=(SSH, POSTGRES, AWS)),
    Template("lifeboat baseline", "playbooks/baseline.yml",
             "Seed 000's baseline gate on Legacy and Modernized, gate by gate, with evidence.",
             [Question("lifeboat_baseline_reset", "lifeboat_baseline", "lifeboat_baseline_reset",
                       "Drop and recreate both public schemas first"),
              Question("lifeboat_baseline_confirm", "lifeboat_baseline", "lifeboat_baseline_confirm",
                       "Type public to confirm the reset")],
             allow_simultaneous=False),
    Template("lifeboat prepare", "playbooks/prepare.yml",
             "Prepare the database hosts as root: acl, psycopg 3, boto3, client tools, folders; checked as "
             "the database OS user.", []),
    Template("lifeboat fleet", "playbooks/fleet.yml",
             "Every host backed up and its backups proven, then one summary of the fleet.",
             [Question("lifeboat_backup_kind", "lifeboat_backup", "lifeboat_backup_kind", "Kind of backup")],
             credentials=(SSH, POSTGRES, AWS), allow_simultaneous=False),
]

# Playbooks without a job template, and why (the test checks every playbook is in one list or the other).
LEFT_OUT = {
    "playbooks/schedule.yml": "installs cron entries or systemd timers on the database hosts that run "
                              "ansible-playbook from a checkout there; under AWX the clock is AWX's own "
                              "schedules on these job templates (docs/awx.md)",
}

WORKFLOW = {
    "name": "lifeboat back up, prove on a scratch host, report",
    "description": "Back up the production hosts, prove the new backups on a scratch host (restore, verify, "
                   "RTO and RPO), then check the proven copy and report. Each node receives the set_stats of "
                   "the nodes before it (lifeboat_backup, then lifeboat_drill) as extra variables.",
    "questions": [Question("lifeboat_backup_kind", "lifeboat_backup", "lifeboat_backup_kind", "Kind of backup")],
    # Jinja here is rendered once, by awx/configure.yml, from awx/settings.yml.
    "nodes": [
        {"identifier": "backup", "unified_job_template": "lifeboat backup",
         "limit": "{{ lifeboat_awx_backup_limit }}", "success_nodes": ["prove"]},
        {"identifier": "prove", "unified_job_template": "lifeboat drill",
         "limit": "{{ lifeboat_awx_scratch_limit }}", "success_nodes": ["report"]},
        {"identifier": "report", "unified_job_template": "lifeboat integrity",
         "limit": "{{ lifeboat_awx_scratch_limit }}",
         "extra_data": {"integrity_db": "{{ lifeboat_awx_scratch_db }}", "integrity_fail_on": "warning"}},
    ],
}


class SurveyError(Exception):
    """A declared question that the argument spec cannot back."""


def argument_spec(role, option, _cache={}):
    """The spec of `option` in roles/<role>/meta/argument_specs.yml (entry point main)."""
    if role not in _cache:
        path = ROOT / "roles" / role / "meta" / "argument_specs.yml"
        _cache[role] = yaml.safe_load(path.read_text())["argument_specs"]["main"]["options"]
    try:
        return _cache[role][option]
    except KeyError:
        raise SurveyError(f"roles/{role}/meta/argument_specs.yml has no option {option}: fix the question's "
                          f"option in scripts/awx_surveys.py") from None


def _describe(spec):
    text = spec.get("description", "")
    return " ".join(text) if isinstance(text, list) else str(text)


def is_secret(question, spec):
    return bool(spec.get("no_log")) or any(word in question.variable for word in ("password", "secret", "token"))


def survey_question(question):
    """The survey question of `question`, its type, choices, default and required from the spec."""
    spec = argument_spec(question.role, question.option)
    kind = spec.get("type", "str")
    choices = [c for c in spec.get("choices", []) if c not in question.left_out_choices]
    unknown = set(question.left_out_choices) - set(spec.get("choices", []))
    if unknown:
        raise SurveyError(f"{question.variable}: left out choices {sorted(unknown)} are not choices of {question.option}")
    required = question.required[0] if question.required else bool(spec.get("required", False))
    default = spec.get("default")
    # A default Ansible would template (playbook_dir...) means nothing to AWX: left blank, not sent.
    # An answer required where the option is not (a confirmation) is typed each time: no default.
    # An empty default is not offered either: AWX (24.6 and before) would send it as !unsafe '', which
    # ansible-core 2.19 reads as null, not as the role's empty string; left blank, the role's "" applies.
    if question.keep_inventory or question.required or default == "" or (isinstance(default, str) and "{{" in default):
        default = None
    description = _describe(spec)
    item = {"question_name": question.question_name, "question_description": description,
            "variable": question.variable, "required": required, "new_question": True}
    if default is not None and choices and kind != "list" and default not in choices:
        raise SurveyError(f"{question.variable}: the default of {question.option}, {default}, is a left out choice")
    if kind == "bool":
        item.update(type="multiplechoice", choices=["true", "false"])
        if default is not None:
            item["default"] = "true" if default else "false"
    elif kind == "int":
        item.update(type="integer")
        if default is not None:
            item["default"] = int(default)
    elif kind == "float":
        item.update(type="float")
        if default is not None:
            item["default"] = float(default)
    elif kind in ("str", "path", "raw") and choices:
        item.update(type="multiplechoice", choices=[str(c) for c in choices])
        if default is not None:
            item["default"] = str(default)
    elif kind == "list" and choices:
        item.update(type="multiselect", choices=[str(c) for c in choices])
        if default is not None:
            item["default"] = "\n".join(str(c) for c in default)
    elif kind in ("str", "path", "raw"):
        item.update(type="password" if is_secret(question, spec) else "text", max=TEXT_MAX)
        # An optional question without a default is sent only when answered (min 1, see TEXT_MAX).
        item["min"] = 1 if required or default is None else 0
        if default is not None:
            item["default"] = str(default)
    else:
        raise SurveyError(f"{question.variable}: {question.option} is a {kind} without choices, which a survey "
                          f"cannot ask; leave it to the inventory")
    if question.keep_inventory:
        item["question_description"] += " Blank keeps the inventory's value (else the role's default)."
    elif "default" not in item and not required:
        item["question_description"] += " Blank leaves the role's default."
    return item


def survey(name, questions):
    return {"name": name, "description": "Generated from the roles' argument specs by scripts/awx_surveys.py",
            "spec": [survey_question(q) for q in questions]}


def job_templates():
    templates = []
    for template in TEMPLATES:
        item = {"name": template.name, "description": template.description, "organization": ORGANIZATION,
                "job_type": "run", "inventory": INVENTORY, "project": PROJECT, "playbook": template.playbook,
                "execution_environment": EXECUTION_ENVIRONMENT, "credentials": list(template.credentials),
                # The playbook's hosts variable (lifeboat_<x>_hosts) on the command line is the limit here.
                "ask_limit_on_launch": True, "allow_simultaneous": template.allow_simultaneous,
                "survey_enabled": bool(template.questions)}
        if template.questions:
            item["survey_spec"] = survey(template.name, template.questions)
        templates.append(item)
    return {"controller_templates": templates}


def workflows():
    nodes = []
    for node in WORKFLOW["nodes"]:
        nodes.append({"identifier": node["identifier"], "unified_job_template": node["unified_job_template"],
                      "lookup_organization": ORGANIZATION, "limit": node["limit"],
                      **({"extra_data": node["extra_data"]} if "extra_data" in node else {}),
                      "success_nodes": node.get("success_nodes", []), "failure_nodes": node.get("failure_nodes", []),
                      "always_nodes": node.get("always_nodes", [])})
    return {"controller_workflows": [{
        "name": WORKFLOW["name"], "description": WORKFLOW["description"], "organization": ORGANIZATION,
        "inventory": INVENTORY, "allow_simultaneous": False, "survey_enabled": True,
        "survey_spec": survey(WORKFLOW["name"], WORKFLOW["questions"]),
        "simplified_workflow_nodes": nodes}]}


HEADER = """---
# GENERATED by scripts/awx_surveys.py from the roles' meta/argument_specs.yml and the table in that
# script: do not edit here; change the script (or the argument spec) and run it again.
# infra.aap_configuration's {var}, applied by awx/configure.yml; docs/awx.md explains each {what}.
"""


class _Dumper(yaml.SafeDumper):
    """Lists indented under their key (yamllint's style, as ansible-lint checks it), no anchors."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data):
        return True


def render(data, what):
    var = next(iter(data))
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110, allow_unicode=True)
    return HEADER.format(var=var, what=what) + body


def outputs():
    return {JOB_TEMPLATES: render(job_templates(), "template"),
            WORKFLOWS: render(workflows(), "node")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the files are up to date")
    args = parser.parse_args(argv)
    try:
        files = outputs()
    except SurveyError as exc:
        print(f"awx_surveys: {exc}", file=sys.stderr)
        return 2
    stale = []
    for path, text in files.items():
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        if args.check:
            stale.append(path)
            sys.stderr.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       str(path.relative_to(ROOT)), "generated"))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("awx_surveys: " + ", ".join(str(p.relative_to(ROOT)) for p in stale)
              + " differ from the argument specs: run .venv/bin/python scripts/awx_surveys.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
