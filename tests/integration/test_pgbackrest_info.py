"""lifeboat.db.pgbackrest_info through ansible-playbook on a real pgBackRest stanza (issue 19 item 2).

Debian's PostgreSQL 15 archives its WAL with Debian's pgBackRest into a path repository; the stanza has a
full and an incremental backup (tests/tools/pgbackrest_stanza.py). Then archive_command is broken for real
and the module must see the failures and the exposure grow.
"""
import json
import os
import time
from pathlib import Path

import pytest

from conftest import PROJECT, Ansible, Server, assert_one_line

import pgbackrest_stanza  # tests/tools, on sys.path through conftest

MISSING = pgbackrest_stanza.missing()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "")


@pytest.fixture(scope="module")
def stanza():
    made = pgbackrest_stanza.Stanza("pgbackrest-%s" % os.environ.get("PYTEST_XDIST_WORKER", "main"))
    try:
        facts = made.start()
        yield made, facts
    finally:
        # The server stops and its data, repository included, goes, whatever the tests did.
        made.stop(destroy=True)


@pytest.fixture
def ansible(stanza, tmp_path):
    return Ansible(Server(stanza[1]), tmp_path)


def info(ansible, made, check=False, **args):
    facts = made[1]
    options = dict(ansible.server.connection_options(), stanza=facts["stanza"], config=facts["config"])
    options.update(args)
    return ansible.module("pgbackrest_info", check=check, **options)


def test_backups_archive_and_exposure_of_a_real_stanza(stanza, ansible):
    result = info(ansible, stanza, verify=True)
    assert not result["failed"], result
    assert result["changed"] is False
    assert result["status"] == {"code": 0, "message": "ok"}
    assert result["count"] == 2
    full, incr = result["backups"]
    assert (full["type"], incr["type"]) == ("full", "incr")
    assert full["prior"] is None and incr["prior"] == full["label"] and incr["reference"] == [full["label"]]
    assert result["latest"] == incr["label"]
    for backup in (full, incr):
        assert backup["database_size"] > 0 and backup["backup_size"] > 0 and backup["repository_size"] > 0
        assert backup["started_epoch"] <= backup["stopped_epoch"] <= time.time()
        assert backup["started_at"].endswith("Z") and backup["error"] is False
        assert backup["wal_start"] <= backup["wal_stop"]
    # The incremental copied the 20000 rows written after the full backup, not the whole cluster again.
    assert incr["backup_size"] < incr["database_size"] and incr["database_size"] > full["database_size"]
    assert incr["started_epoch"] >= full["stopped_epoch"]
    (archive,) = result["archives"]
    assert archive["id"] == "15-1"
    # Every WAL segment both backups need is in the archive range, and the WAL switched after them too.
    assert archive["min_wal"] <= full["wal_start"] and incr["wal_stop"] < archive["max_wal"]
    archiver = result["archiver"]
    assert archiver["archive_mode"] == "on" and archiver["failed_count"] == 0 and not archiver["failing"]
    assert archiver["last_archived_wal"] == archive["max_wal"]
    assert 0 <= result["exposure_seconds"] < 120 and result["exposure_seconds"] == archiver["exposure_seconds"]
    verified = result["verify"]
    assert verified["ok"] and verified["problems"] == 0
    assert [b["label"] for b in verified["backups"]] == [full["label"], incr["label"]]
    assert all(b["status"] == "valid" and b["checked"] == b["valid"] > 0 for b in verified["backups"])
    assert verified["archives"][0]["valid"] == verified["archives"][0]["checked"] > 0
    assert ansible.server.password not in json.dumps(result)


def test_check_mode_reads_the_same(stanza, ansible):
    result = info(ansible, stanza, check=True, repo=1)
    assert not result["failed"], result
    assert [b["type"] for b in result["backups"]] == ["full", "incr"]
    assert result["archiver"]["failed_count"] == 0


def damaged(segment, ansible, stanza):
    """The module's result with `verify` while `segment` of the repository has 7 bytes overwritten."""
    original = segment.read_bytes()
    try:
        segment.write_bytes(original[:100] + b"garbage" + original[107:])
        return info(ansible, stanza, verify=True)
    finally:
        segment.write_bytes(original)


def wal_segments(facts):
    return sorted((Path(facts["repo"]) / "archive" / facts["stanza"]).rglob("0*-*"))


def test_verify_finds_a_damaged_wal_segment_and_archiving_still_works(stanza, ansible):
    made, facts = stanza
    segments = wal_segments(facts)
    assert len(segments) >= 4, segments
    result = damaged(segments[len(segments) // 2], ansible, stanza)
    assert not result["failed"], result["msg"]
    verified = result["verify"]
    assert verified["status"] == "error" and not verified["ok"] and verified["problems"] == 1
    (archive,) = verified["archives"]
    assert archive["valid"] == archive["checked"] - 1
    assert all(backup["status"] == "valid" for backup in verified["backups"])
    assert any("pgbackrest verify found 1 problem(s)" in warning for warning in result["warnings"]), result
    # The module only read: PostgreSQL still archives into the repository it ran pgbackrest on (as root too).
    archived = made.sql("SELECT archived_count FROM pg_stat_archiver")[0][0]
    made.switch_wal_and_wait()
    after = info(ansible, stanza)["archiver"]
    assert after["archived_count"] == archived + 1 and after["failed_count"] == 0, after


def test_verify_that_cannot_read_the_first_wal_segment_is_one_line(stanza, ansible):
    # pgBackRest 2.45's verify reads the oldest segment itself and stops at an undecodable one (error 29).
    assert_one_line(damaged(wal_segments(stanza[1])[0], ansible, stanza),
                    "pgbackrest verify for stanza 'lifeboat' failed (rc 29): [029] lz4 error",
                    "a file in the repository does not read back")


def test_failing_archive_command_is_reported_and_the_exposure_grows(stanza, ansible):
    made, facts = stanza
    before = info(ansible, stanza)
    assert before["archiver"]["failed_count"] == 0, before["archiver"]
    # archive-push into a stanza the repository does not have: every segment is refused from now on.
    made.sql("ALTER SYSTEM SET archive_command = '%s --config=%s --stanza=no-such-stanza archive-push %%p'"
             % (pgbackrest_stanza.PGBACKREST, facts["config"]))
    try:
        made.sql("SELECT pg_reload_conf()")
        time.sleep(0.5)  # the archiver rereads its configuration on the reload signal
        made.sql("INSERT INTO marks (payload) VALUES ('written while archiving fails')")
        made.switch_wal_and_wait()
        after = info(ansible, stanza)
    finally:
        made.sql("ALTER SYSTEM RESET archive_command")
        made.sql("SELECT pg_reload_conf()")
    assert not after["failed"], after
    archiver = after["archiver"]
    assert archiver["failed_count"] > 0 and archiver["failing"]
    assert archiver["last_failed_wal"] > before["archiver"]["last_archived_wal"]
    assert archiver["last_archived_wal"] == before["archiver"]["last_archived_wal"]
    assert after["exposure_seconds"] > before["exposure_seconds"]
    assert any("WAL archiving is failing" in warning for warning in after.get("warnings", [])), after


def test_unknown_stanza_is_one_line(stanza, ansible):
    assert_one_line(info(ansible, stanza, stanza="nope"),
                    "stanza 'nope' is not in the pgBackRest repository (missing stanza path", "stanza-create")


def test_missing_config_is_one_line(stanza, ansible, tmp_path):
    assert_one_line(info(ansible, stanza, config=str(tmp_path / "absent.conf")),
                    "pgBackRest configuration %s does not exist" % (tmp_path / "absent.conf"))


def test_missing_pgbackrest_is_one_line(stanza, ansible, tmp_path):
    assert_one_line(info(ansible, stanza, pgbackrest_bin=str(tmp_path / "pgbackrest")),
                    "cannot run %s: no such executable" % (tmp_path / "pgbackrest"))


def fake_pgbackrest(tmp_path, output, rc=0):
    """A program at pgbackrest_bin that records how it was called and prints `output`."""
    path = tmp_path / "fake-pgbackrest"
    seen = tmp_path / "seen.txt"
    (tmp_path / "output.txt").write_text(output)
    path.write_text('#!/bin/sh\nprintf "%%s\\n" "$@" > %s\nenv >> %s\ncat %s\nexit %d\n'
                    % (seen, seen, tmp_path / "output.txt", rc))
    path.chmod(0o755)
    return path, seen


@pytest.mark.parametrize("output, fragment", [
    ("{{{ certainly not json", "pgbackrest info did not print JSON"),
    ('[{"name": "lifeboat", "status": {"code": 0, "message": "ok"}, "repo": [], "db": [], "archive": [], '
     '"backup": [{"label": "x", "type": "full", "timestamp": {"start": "soon"}}]}]',
     'backup "x".timestamp.start is a string, not an integer'),
])
def test_garbage_from_pgbackrest_is_one_line_and_gets_no_password(stanza, ansible, tmp_path, output, fragment):
    binary, seen = fake_pgbackrest(tmp_path, output)
    result = info(ansible, stanza, pgbackrest_bin=str(binary))
    assert_one_line(result, fragment, "check pgbackrest_bin")
    called = seen.read_text()
    assert "info\n--output=json" in called
    assert ansible.server.password not in called


def test_pgbackrest_failing_is_one_line(stanza, ansible, tmp_path):
    binary, _ = fake_pgbackrest(tmp_path, "ERROR: [104]: unable to find a valid repository\n", rc=104)
    assert_one_line(info(ansible, stanza, pgbackrest_bin=str(binary)),
                    "pgbackrest info for stanza 'lifeboat' failed (rc 104): [104] unable to find a valid repository",
                    "stanza-create")


def test_wrong_password_is_one_line_without_it(stanza, ansible):
    result = info(ansible, stanza, login_password="not-the-password")
    assert_one_line(result, "cannot connect to", "check login_user and login_password")
    assert "not-the-password" not in json.dumps(result)


def test_fixture_is_the_projects(stanza):
    # The stanza's server is one of scripts/pgserver.py's: `make stop` and `make clean` reach it too.
    assert (PROJECT / ".lifeboat" / "servers" / stanza[0].name / "server.json").exists()
