"""What a restore can start from, and what it checks before it changes anything."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DEBIAN_PG15, PROJECT, Server, assert_one_line, pgserver

PAGILA = PROJECT / "tests" / "fixtures" / "pagila" / "pagila-schema.sql"


def tool_env(server):
    return dict(os.environ, PGHOST=server.host, PGPORT=str(server.port), PGUSER=server.user,
                PGPASSWORD=server.password)


def test_latest_means_the_newest_whole_database_backup(server, ansible, sample_db):
    repo = str(ansible.repository)
    full = ansible.module("dump", db=sample_db, repository=repo, kind="daily")
    monthly = ansible.module("dump", db=sample_db, repository=repo, kind="monthly")
    ansible.module("dump", db=sample_db, repository=repo, kind="full", tables=["lifeboat_sample.events"])
    ansible.module("dump", db=sample_db, repository=repo, kind="pre-restore")
    check = ansible.module("restore", db=sample_db, repository=repo, check=True)
    assert check["backup_id"] == monthly["backup_id"], "a table selection or a safety backup is never 'latest'"
    daily = ansible.module("restore", db=sample_db, repository=repo, kind="daily", check=True)
    assert daily["backup_id"] == full["backup_id"]
    # A set whose last verification failed is passed over.
    (ansible.repository / sample_db / monthly["backup_id"] / "verification.json").write_text(
        json.dumps({"status": "failed", "verified_at": "2026-11-23T00:00:00.000000Z", "detail": "damaged"}))
    again = ansible.module("restore", db=sample_db, repository=repo, check=True)
    assert again["backup_id"] == full["backup_id"]
    none = ansible.module("restore", db=sample_db, repository=repo, kind="weekly", check=True)
    assert_one_line(none, "no weekly backup of database")


def test_restore_from_a_set_folder_and_from_hand_made_dumps(server, ansible, sample_db, tmp_path):
    repo = str(ansible.repository)
    backup = ansible.module("dump", db=sample_db, repository=repo)
    copy = f"{sample_db}_copy"
    server.drop_db(copy)
    try:
        result = ansible.module("restore", db=copy, repository=repo, backup=backup["backup_path"], mode="new")
        assert not result["failed"], result.get("msg")
        assert result["backup_id"] == backup["backup_id"] and result["verified_files"]
        assert server.count(copy, "lifeboat_sample.orders") == backup["row_counts"]["lifeboat_sample.orders"]
        # What the runbooks do by hand: pg_dump -Fc > app.dump, and a plain .sql.gz.
        custom = tmp_path / "app.dump"
        subprocess.run([f"{server.bin_dir}/pg_dump", "-Fc", "-f", str(custom), sample_db],
                       env=tool_env(server), check=True)
        plain = tmp_path / "app.sql"
        subprocess.run([f"{server.bin_dir}/pg_dump", "-f", str(plain), sample_db], env=tool_env(server), check=True)
        subprocess.run(["gzip", str(plain)], check=True)
        for path in (custom, Path(f"{plain}.gz")):
            result = ansible.module("restore", db=copy, repository=repo, backup=str(path), mode="swap", keep_previous=0)
            assert not result["failed"], result.get("msg")
            assert result["row_count_check"]["status"] == "skipped" and result["expected_row_counts"] is None
            assert "was not written by lifeboat" in result["actions"][0]
            assert server.count(copy, "lifeboat_sample.orders") == backup["row_counts"]["lifeboat_sample.orders"]
        not_a_dump = tmp_path / "notes.txt"
        not_a_dump.write_text("hello")
        assert_one_line(ansible.module("restore", db=copy, repository=repo, backup=str(not_a_dump)),
                        "is not a pg_dump archive")
        assert_one_line(ansible.module("restore", db=copy, repository=repo, backup=str(tmp_path / "gone.dump")),
                        "does not exist on the target host")
        assert_one_line(ansible.module("restore", db=copy, repository=repo, backup="some/relative"),
                        "neither latest, a backup id")
    finally:
        server.drop_db(copy)


def test_restore_one_set_by_its_s3_url_into_a_local_repository_host(server, ansible, sample_db, moto, tmp_path):
    bucket = "lb-restore-by-url"
    client = moto.client()
    client.create_bucket(Bucket=bucket)
    repo = str(ansible.repository)
    backup = ansible.module("dump", db=sample_db, repository=repo, offsite_url=f"s3://{bucket}/prod",
                            **moto.options())
    assert not backup["failed"], backup.get("msg")
    url = f"s3://{bucket}/prod/{sample_db}/{backup['backup_id']}"
    copy = f"{sample_db}_s3"
    cache = tmp_path / "cache"
    server.drop_db(copy)
    try:
        for reference in (url, f"s3://{bucket}/prod/{sample_db}/latest"):
            result = ansible.module("restore", db=copy, repository=repo, backup=reference, mode="swap",
                                    keep_previous=0, cache_dir=str(cache), **moto.options())
            assert not result["failed"], result.get("msg")
            assert result["backup_id"] == backup["backup_id"] and result["backup_path"] == url
            assert result["actions"][0].startswith("Downloaded backup")
            assert server.count(copy, "lifeboat_sample.orders") == backup["row_counts"]["lifeboat_sample.orders"]
            assert os.listdir(cache / sample_db) == [] or set(os.listdir(cache / sample_db)) <= {".lock"}
        bad = ansible.module("restore", db=copy, repository=repo, backup=f"s3://{bucket}/prod", **moto.options())
        assert_one_line(bad, "does not name a backup set")
    finally:
        server.drop_db(copy)
        for key in moto.keys(bucket):
            client.delete_object(Bucket=bucket, Key=key)
        client.delete_bucket(Bucket=bucket)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="mounting a tmpfs needs root")
def test_download_that_does_not_fit_the_cache_is_refused_before_it_starts(server, ansible, sample_db, moto, tmp_path):
    bucket = "lb-restore-small-cache"
    client = moto.client()
    client.create_bucket(Bucket=bucket)
    try:
        backup = ansible.module("dump", db=sample_db, repository=f"s3://{bucket}", cache_dir=str(tmp_path / "c1"),
                                compress=0, **moto.options())
        assert not backup["failed"], backup.get("msg")
        small = tmp_path / "small"
        small.mkdir(mode=0o700)
        wrapper = tmp_path / "small-disk.sh"
        listing = tmp_path / "listing.txt"
        # A 64 KiB filesystem, private to this run, is the cache; the backup is bigger.
        wrapper.write_text(f'mount -t tmpfs -o size=64k,mode=0700 tmpfs "{small}" || exit 99\n'
                           f'"$@"; rc=$?; ls -RA "{small}" > "{listing}"; exit $rc\n')
        result = ansible.module("restore", db=sample_db, repository=f"s3://{bucket}", cache_dir=str(small),
                                wrapper=("unshare", "-m", "sh", str(wrapper)), **moto.options())
        assert_one_line(result, "not enough free disk space for downloading backup", str(small), "nothing was changed")
        assert ".partial-" not in listing.read_text()
    finally:
        for key in moto.keys(bucket):
            client.delete_object(Bucket=bucket, Key=key)
        client.delete_bucket(Bucket=bucket)


def test_preflight_reports_the_disk_it_checked(server, ansible, sample_db):
    repo = str(ansible.repository)
    backup = ansible.module("dump", db=sample_db, repository=repo)
    result = ansible.module("restore", db=sample_db, repository=repo, check=True)
    preflight = result["preflight"]
    assert preflight["restore_bytes"] == backup["manifest"]["database_size"] > 0
    # The test servers run on this host, so their data directory is found and its filesystem checked.
    assert preflight["disk_checked"] and preflight["free_bytes"] > preflight["restore_bytes"]
    assert os.path.isfile(os.path.join(preflight["data_directory"], "PG_VERSION"))


@pytest.mark.skipif(not (DEBIAN_PG15 / "postgres").exists(), reason="needs Debian's PostgreSQL 15 (it has no pgvector)")
def test_pagila_needs_vector_and_a_server_without_it_is_refused_before_anything(server, ansible, tmp_path):
    """Pagila's schema creates the `vector` extension; the embedded server has it, Debian's
    PostgreSQL 15 does not. The restore into PG 15 must stop before touching anything."""
    if server.major < 16:
        pytest.skip("dumps pagila from the embedded server (which has vector), runs once")
    db = "t_pagila_vector"
    server.drop_db(db)
    server.sql("postgres", f'CREATE DATABASE "{db}"')
    subprocess.run([f"{server.bin_dir}/psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(PAGILA), db],
                   env=tool_env(server), check=True, capture_output=True)
    backup = ansible.module("dump", db=db, repository=str(ansible.repository))
    server.drop_db(db)
    assert not backup["failed"], backup.get("msg")
    name = f"test-novector-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    pgserver("stop", "--name", name, "--destroy")
    pgserver("start", "--name", name, "--bin-dir", str(DEBIAN_PG15))
    try:
        pg15 = Server(json.loads((PROJECT / ".lifeboat" / "servers" / name / "server.json").read_text()))
        pg15.sql("postgres", f'CREATE DATABASE "{db}"')
        pg15.sql(db, "CREATE TABLE still_here (n int); INSERT INTO still_here VALUES (1)")
        target = ansible.__class__(pg15, tmp_path)
        for mode in ("swap", "replace"):
            result = target.module("restore", db=db, repository=str(ansible.repository), mode=mode)
            assert_one_line(result, "needs extension vector", "nothing was changed")
            assert pg15.count(db, "still_here") == 1
            assert pg15.sql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s", (db + "_%",)) == []
            assert not (ansible.repository / db).exists() or all(
                json.loads((p / "manifest.json").read_text())["kind"] != "pre-restore"
                for p in (ansible.repository / db).iterdir() if not p.name.startswith("."))
    finally:
        pgserver("stop", "--name", name, "--destroy")
