"""lifeboat's playbooks run as AWX runs a job (issue 18, item 3): ansible_runner.run() on a private
data dir laid out as AWX lays it (tests/tools/awxjob.py), the PostgreSQL password given only by
the "lifeboat PostgreSQL login" credential of awx/credential_types.yml, and the job's artifacts
checked: status, rc, per-host stats, the set_stats data a workflow's next node receives, and
the secret nowhere in them.

One private data dir and four jobs, each a job template of awx/job_templates.yml launched with its
survey answered (the extra vars AWX builds from the survey's defaults and the answers): drill.yml
on the staging host, backup.yml then restore.yml (swap, confirmed) on the production host, the
backup job's artifacts handed over as a workflow hands them to its next node, and restore.yml with
a wrong confirmation, which must fail.
"""
import json
import secrets
import sys

import pytest
import yaml
from psycopg import sql

from conftest import PROJECT, embedded_only
from awxjob import PrivateDataDir, controller_object

pytestmark = embedded_only

AWX = PROJECT / "awx"
CREDENTIAL_TYPE = "lifeboat PostgreSQL login"
LOGIN = "lifeboat_awx"
# Distinctive, so a grep finds any copy; `{{ }}` in it, so it only works when AWX's !unsafe marking
# keeps Ansible from templating it.
TOKEN = secrets.token_hex(8)
PASSWORD = f"Lb-{TOKEN}-{{{{ not_a_variable }}}}"
STAGING, PRODUCTION = "db1.staging.example.com", "db1.prod.example.com"


def example_group_vars(group):
    return yaml.safe_load((PROJECT / "inventories" / "example" / "group_vars" / f"{group}.yml").read_text())


def awx_inventory(server, workdir):
    """inventories/example as an AWX inventory synced from the project gives it (its group_vars as
    the groups' variables, Jinja kept), with two hosts that are this machine: the host variables
    are what an AWX admin would set on a host pointing at the test's server."""
    connection = dict(example_group_vars("all")["lifeboat_connection"])
    # The password comes from the credential (vault_lifeboat_password), exactly as the example reads it.
    assert "vault_lifeboat_password" in connection["login_password"], connection
    connection.pop("login_unix_socket")
    # The login is the credential's too: its username comes injected as lifeboat_awx_login_user.
    connection.update(login_host=server.host, port=server.port, login_user="{{ lifeboat_awx_login_user }}")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
             "lifeboat_connection": connection}
    hostvars = {STAGING: {**local, "lifeboat_backup_repository": str(workdir / "repo-staging"),
                          # The example's staging drill loads 360 000 rows and stops its writer services.
                          "lifeboat_drill_sample_scale": 150, "lifeboat_drill_writer_services": []},
                PRODUCTION: {**local, "lifeboat_backup_repository": str(workdir / "repo-production")}}
    return {"all": {"vars": example_group_vars("all"), "hosts": [], "children": ["databases", "production", "staging"]},
            "databases": {"children": ["production", "staging"]},
            "production": {"hosts": [PRODUCTION], "vars": example_group_vars("production")},
            "staging": {"hosts": [STAGING], "vars": example_group_vars("staging")},
            "_meta": {"hostvars": hostvars}}


@pytest.fixture(scope="module")
def login(server):
    """A login role with the password (superuser: the drill and the swap create, rename and drop
    databases and end sessions); dropped afterwards with every database it owns."""
    server.sql("postgres", sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
        sql.Identifier(LOGIN), sql.Literal(PASSWORD)))
    yield LOGIN
    for (db,) in server.sql("postgres", "SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
                                        "WHERE r.rolname = %s", (LOGIN,)):
        server.drop_db(db)
    server.sql("postgres", sql.SQL("DROP ROLE {}").format(sql.Identifier(LOGIN)))


def awx_object(file, key, name):
    """An object of awx/ (item 2 of issue 18), or a one-line skip while its file is missing."""
    found = controller_object(AWX / file, key, name)
    if found is None:
        pytest.skip(f"awx/{file} is missing: the AWX configuration (issue 18, item 2) is not there yet")
    return found


@pytest.fixture(scope="session")
def credential():
    return awx_object("credential_types.yml", "controller_credential_types", CREDENTIAL_TYPE), \
        {"username": LOGIN, "password": PASSWORD}


@pytest.fixture(scope="session")
def templates():
    return {name: awx_object("job_templates.yml", "controller_templates", f"lifeboat {name}")
            for name in ("drill", "backup", "restore")}


@pytest.fixture(scope="module")
def jobs(credential, templates, server, login, tmp_path_factory):
    """The four jobs, run once for the module's tests."""
    workdir = tmp_path_factory.mktemp("awx")
    # production.yml's database, owned by the login as the application's would be.
    server.drop_db("app")
    server.sql("postgres", sql.SQL("CREATE DATABASE app OWNER {}").format(sql.Identifier(login)))
    server.sql("app", "CREATE TABLE orders AS SELECT g AS id, g * 1.5 AS total FROM generate_series(1, 500) g")
    pdd = PrivateDataDir(workdir / "awx_1_job", PROJECT, awx_inventory(server, workdir))
    run = {}
    # Each survey left at its defaults but for the answers given here, as an operator launches it on
    # AWX 24.6 (which sends empty defaults too: ansible-core 2.19 makes them null, docs/awx-runner.md).
    run["drill"] = pdd.run(templates["drill"], {}, limit="staging", credentials=[credential])
    run["backup"] = pdd.run(templates["backup"], {"lifeboat_backup_kind": "daily"}, limit="production",
                            credentials=[credential])
    assert run["backup"].status == "successful", run["backup"].explain()
    backup = run["backup"].artifact_data
    # The restore as a workflow's next node: the backup job's artifacts come with its own survey's answers.
    answers = {"restore_db": "app", "restore_backup": backup["lifeboat_backup"]["taken"][0], "restore_mode": "swap"}
    run["restore"] = pdd.run(templates["restore"], {**answers, "restore_confirm": "app"}, limit="production",
                             credentials=[credential], inherited=backup)
    run["refused"] = pdd.run(templates["restore"], {**answers, "restore_confirm": "App"}, limit="production",
                             credentials=[credential])
    yield pdd, run
    server.drop_db("app")


def test_drill_hands_its_rto_and_rpo_to_the_workflow(jobs, server):
    pdd, run = jobs
    drill = run["drill"]
    assert (drill.status, drill.rc) == ("successful", 0), drill.explain()
    assert drill.stats["failures"] == {} and drill.stats["dark"] == {}
    assert drill.stats["ok"][STAGING] > 0 and drill.stats["changed"][STAGING] > 0
    assert PRODUCTION not in drill.stats["ok"]
    summary = drill.artifact_data["lifeboat_drill"]
    assert summary["status"] == "passed", summary
    for figure in ("rto_seconds", "rpo_seconds"):
        assert isinstance(summary[figure], (int, float)) and summary[figure] > 0, summary
    # The credential's login reached PostgreSQL: the drill's database was made by it.
    owner = server.sql("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                       (summary["database"],))
    assert owner == [(LOGIN,)], owner


def test_backup_hands_its_ids_to_the_workflow(jobs):
    pdd, run = jobs
    backup = run["backup"]
    assert (backup.status, backup.rc) == ("successful", 0), backup.explain()
    assert backup.stats["failures"] == {} and backup.stats["changed"][PRODUCTION] > 0
    assert STAGING not in backup.stats["ok"]
    handed = backup.artifact_data["lifeboat_backup"]
    assert handed["kind"] == "daily" and len(handed["taken"]) == 1, handed
    assert (pdd.root.parent / "repo-production" / "app" / handed["taken"][0]).is_dir(), handed


def test_restore_swaps_in_the_backup_it_was_handed(jobs, server):
    pdd, run = jobs
    restore = run["restore"]
    assert (restore.status, restore.rc) == ("successful", 0), restore.explain()
    assert restore.stats["failures"] == {} and restore.stats["changed"][PRODUCTION] > 0
    handed = restore.artifact_data["lifeboat_restore"]
    assert handed["backup_id"] == run["backup"].artifact_data["lifeboat_backup"]["taken"][0], handed
    assert handed["target_db"] == "app" and handed["mode"] == "swap" and handed["host"] == PRODUCTION, handed
    swap = handed["swap"]
    assert isinstance(swap["window_seconds"], (int, float)) and swap["window_seconds"] >= 0, swap
    assert server.exists(swap["previous_db"]) and server.count("app", "orders") == 500


def test_a_wrong_confirmation_fails_the_job_with_its_one_line_reason(jobs):
    pdd, run = jobs
    refused = run["refused"]
    assert refused.status == "failed" and refused.rc != 0, refused.explain()
    assert refused.stats["failures"] == {PRODUCTION: 1}, refused.stats
    # The restore's own task fails, the role's rescue keeps the evidence, then its last task fails the
    # job with the same line: what AWX shows as the job's error.
    failures = refused.failures()
    task, msg = failures[-1]
    assert task == "Fail as the restore failed" and {m for _, m in failures} == {msg}, failures
    assert "\n" not in msg and "confirm 'App' does not name the target database 'app'" in msg, msg
    assert "Nothing was changed" in msg
    assert "lifeboat_restore" not in refused.artifact_data


def test_the_password_is_in_no_artifact(jobs):
    """Not in stdout, not in any job event, not in any file of the artifacts folder; nor in the
    evidence the jobs wrote."""
    pdd, run = jobs
    for job in run.values():
        assert TOKEN not in job.stdout
        assert not [e["uuid"] for e in job.events if TOKEN in json.dumps(e)]
    holding = {path.relative_to(pdd.root) for path in pdd.root.rglob("*")
               if path.is_file() and not path.is_symlink() and TOKEN.encode() in path.read_bytes()}
    # Only where AWX puts it: each job's file of the credential's extra vars, under env/, read only
    # (not the survey's extravars, the inventory, the artifacts nor the evidence in project/).
    assert len(holding) == len(run), sorted(holding)
    for relative in holding:
        assert relative.parent.name == "env" and relative.name.startswith("tmp"), relative
        assert (pdd.root / relative).stat().st_mode & 0o777 == 0o400, relative


def test_the_evidence_lands_in_the_job_s_project_folder(jobs):
    """The example inventory keeps evidence at {{ playbook_dir }}/../evidence: in AWX that is the job's
    copy of the project, removed with the private data dir at the job's end."""
    pdd, run = jobs
    drill = run["drill"].artifact_data["lifeboat_drill"]
    assert (pdd.project / "evidence" / "drill" / drill["run_id"] / "summary.json").is_file()
    restored = json.loads((pdd.project / "evidence" / "restore" / "latest-summary.json").read_text())
    assert restored["backup_id"] == run["restore"].artifact_data["lifeboat_restore"]["backup_id"]
    assert not (PROJECT / "evidence" / "drill" / drill["run_id"]).exists()
