"""playbooks/baseline.yml (role lifeboat_baseline), seed 000's baseline gate, against two containers (issue 20).

Legacy and Modernized each live in a PostgreSQL container (postgres:18) on one Docker host - this
machine, through the tests' podman engine serving the Docker API - on one network, as seed 000's
runbook runs them; the play reaches them with `container` in each side's settings, exactly as it
reaches two ports otherwise. One run of the gate on fresh databases, made once by a module fixture.
A second run is not made here: that it changes nothing is a property of the gate, proven on two
ports by test_baseline_gate.py, and nothing in it is different in containers (the second export of
a schema through the container's pg_dump, unchanged, is test_container_modules.py's).
"""
import json
import os
import stat
import sys

import pytest

from conftest import PROJECT, PlayResult, ansible_playbook

sys.path.insert(0, str(PROJECT / "tests" / "tools"))
import dockerengine  # noqa: E402
import pgcontainers  # noqa: E402

MISSING = dockerengine.problem()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "")

BASELINE = PROJECT / "playbooks" / "baseline.yml"
FIXTURE = PROJECT / "tests" / "fixtures" / "opendolphin"
MIGRATIONS = FIXTURE / "migrations"
LATEST = sorted(p.name for p in MIGRATIONS.glob("V*__*.sql"))[-1][1:5]
HOST = "dockerhost"
# The same evidence as the gate on two ports (test_baseline_gate.py), seed 000 §6.3.
EVIDENCE = {"README.md", "legacy_schema_dump.sql", "legacy_schema_apply.log", "modern_schema_apply.log",
            "psql_legacy_dt.log", "psql_modern_dt.log", "legacy_seed.log", "modern_seed.log",
            "psql_legacy_d_users_count.log", "psql_modern_d_users_count.log", "flyway_migrate_legacy.log",
            "flyway_info_legacy.log", "flyway_migrate_modern.log", "flyway_info_modern.log", "sequences.log",
            "audit_smoke.log", "modern_required_objects.log"}
GATES = [str(n) for n in range(8)]
STATS = "lifeboat_baseline : Hand the gate's outcome to AWX"
PARITY = "lifeboat_baseline : List Modernized's tables and compare its schema with Legacy's"


@pytest.fixture(scope="module")
def site():
    with pgcontainers.container_site("gate") as site:
        site.legacy, site.modern = site.postgres_pair(("legacy", "modern"), network="net")
        yield site


def side(site, db):
    """A side's settings: its container and login, no host or port (found from the container)."""
    return {"db": "app", "container": db.name, "docker_host": site.engine.base_url, "login_user": db.user,
            "login_password": db.password}


def run_gate(site, workdir, label):
    folder = workdir / label
    folder.mkdir()
    inventory = folder / "inventory.json"
    fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"all": {"children": {"databases": {"hosts": {HOST: {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "lifeboat_baseline_legacy": side(site, site.legacy), "lifeboat_baseline_modern": side(site, site.modern),
            "lifeboat_baseline_schema_file": str(FIXTURE / "legacy_schema.sql"),
            "lifeboat_baseline_seed_files": [str(FIXTURE / "local_synthetic_seed.sql")],
            "lifeboat_baseline_migrations": str(MIGRATIONS),
            "lifeboat_baseline_evidence_dir": str(workdir / "evidence"),
            "lifeboat_baseline_work_dir": str(workdir / "work")}}}}}}, out)
    record = folder / "results.jsonl"
    proc = ansible_playbook(["-i", inventory, BASELINE], record)
    return PlayResult(proc, HOST, record)


@pytest.fixture(scope="module")
def gates(site, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("container-gate")
    return dict(first=run_gate(site, workdir, "first"), evidence=workdir / "evidence")


def stats(play):
    return play.result(STATS)["ansible_stats"]["data"]["lifeboat_baseline"]


def test_the_gate_passes_on_two_containers_with_its_evidence(site, gates):
    play = gates["first"]
    assert play.rc == 0, play.stdout[-3000:]
    assert stats(play)["gates"] == dict.fromkeys(GATES, "passed"), stats(play)
    # Each side's container and image, for AWX and in the evidence.
    containers = stats(play)["containers"]
    for key, db in (("legacy", site.legacy), ("modern", site.modern)):
        assert containers[key]["name"] == db.name and containers[key]["id"] == db.id, containers
        assert containers[key]["image"].endswith("postgres:18")
    # Legacy at the latest version, Modernized at 0222, in their containers.
    for db, last in ((site.legacy, LATEST), (site.modern, "0222")):
        assert db.sql("app", "SELECT version FROM flyway_schema_history WHERE success AND version IS NOT NULL "
                             "ORDER BY installed_rank DESC LIMIT 1") == [(last,)]
        assert db.sql("app", "SELECT last_value, is_called FROM facility_num") == [(103, True)]
        assert db.sql("app", "SELECT count(*) FROM d_audit_event") == [(0,)]

    run_dir = gates["evidence"] / stats(play)["run_id"]
    assert {p.name for p in run_dir.iterdir()} == EVIDENCE
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in run_dir.iterdir()} == {0o600}
    readme = (run_dir / "README.md").read_text()
    assert readme.startswith("# DB baseline gate (seed 000 §6.2): PASSED\n")
    for key, db, target in (("legacy", site.legacy, "latest (now v%s)" % LATEST), ("modern", site.modern,
                                                                                   "0222 (now v0222)")):
        facts = containers[key]
        assert "`app` in container `%s` (image `%s` %s, container id %s) on %s, migrated to %s" % (
            db.name, facts["image"], facts["image_id"][:12], db.id[:12], site.engine.base_url, target) in readme
    # The runbook's logs say where each database was; the schema dump is the container's pg_dump's.
    assert "database app in container %s" % site.legacy.name in (run_dir / "psql_legacy_dt.log").read_text()
    assert "database app in container %s" % site.modern.name in (run_dir / "psql_modern_d_users_count.log").read_text()
    assert "PASSED  schema_parity: same schema" in (run_dir / "psql_modern_dt.log").read_text()
    # Gate 2 ran in Modernized's container and asked for Legacy's through parity_with.container (that it
    # then reaches that container's server, not its own, is test_container_modules.py's: a same-named
    # database with a table of its own, named in the diff).
    asked = play.result(PARITY)["invocation"]["module_args"]
    assert (asked["container"], asked["parity_with"]["container"]) == (site.modern.name, site.legacy.name), asked
    assert asked["parity_with"]["host"] is None and asked["parity_with"]["port"] is None, asked
    dump = (run_dir / "legacy_schema_dump.sql").read_text()
    assert "Dumped by pg_dump version 18." in dump and "CREATE TABLE public.d_users" in dump
    assert "flyway_schema_history" not in dump
    everything = play.stdout + play.stderr + "".join(p.read_text() for p in run_dir.iterdir())
    assert site.legacy.password not in everything and site.modern.password not in everything
