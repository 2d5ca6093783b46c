"""Formats, compression, selection and globals of lifeboat.db.dump, each restored for real."""
import json
import os
import stat
import subprocess

import pytest

from conftest import DEBIAN_PG15, backup_sets, leftovers

TABLES = ("customers", "products", "orders", "order_items", "events")


def counts(server, db):
    return {f"lifeboat_sample.{t}": server.count(db, f"lifeboat_sample.{t}") for t in TABLES}


@pytest.mark.parametrize("fmt,extra", [
    ("directory", {"jobs": 2}),
    ("plain", {"compress": 5}),
    ("plain", {"compress_method": "none"}),
    ("custom", {"compress_method": "zstd", "compress": 3}),
    ("custom", {"compress_method": "lz4", "compress": 1}),
])
def test_each_format_round_trips(server, ansible, sample_db, fmt, extra):
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), format=fmt, **extra)
    if "this build does not support compression with" in result.get("msg", ""):
        # The embedded wheel's pg_dump is built without zstd/lz4; the message is pg_dump's own.
        assert backup_sets(ansible.repository / sample_db) == [] and leftovers(ansible.repository / sample_db) == []
        pytest.skip(result["msg"])
    assert result["changed"] and not result["failed"], result
    manifest = result["manifest"]
    assert manifest["format"] == fmt
    for entry in manifest["files"]:
        path = ansible.repository / sample_db / result["backup_id"] / entry["name"]
        assert path.stat().st_size == entry["size"] and stat.S_IMODE(path.stat().st_mode) == 0o600
    if fmt == "directory":
        assert len(manifest["files"]) > 5 and all(f["name"].startswith(f"{sample_db}.dir/") for f in manifest["files"])
    assert manifest["checksums"] == ("streamed" if fmt == "plain" else "after-write")
    copy = sample_db + "_fmt"
    try:
        restored = ansible.module("restore", db=copy, backup_db=sample_db, repository=str(ansible.repository), jobs=2)
        assert restored["changed"] and not restored["failed"], restored
        assert counts(server, copy) == manifest["row_counts"] == counts(server, sample_db)
    finally:
        server.drop_db(copy)


def test_lz4_and_zstd_need_pg_dump_16(server, ansible, sample_db):
    if not (DEBIAN_PG15 / "pg_dump").exists() or server.major > 15:
        pytest.skip("needs Debian's PostgreSQL 15 server and client")
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), compress_method="zstd",
                            pg_bin_dir=str(DEBIAN_PG15))
    assert result["failed"] and "compress_method zstd needs pg_dump 16 or newer" in result["msg"]
    assert "pg_dump 15." in result["msg"] and "\n" not in result["msg"]
    assert not (ansible.repository / sample_db).exists()


def test_table_list_dumps_only_those_tables(server, ansible, sample_db):
    """Seed 002 backs up an explicit table list; counts in the manifest cover exactly those."""
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository),
                            tables=["lifeboat_sample.customers", "lifeboat_sample.ord*"],
                            exclude_tables=["lifeboat_sample.order_items"])
    assert sorted(result["row_counts"]) == ["lifeboat_sample.customers", "lifeboat_sample.orders"]
    archive = ansible.repository / sample_db / result["backup_id"] / f"{sample_db}.dump"
    toc = subprocess.run([os.path.join(server.bin_dir, "pg_restore"), "--list", str(archive)],
                         check=True, capture_output=True, text=True).stdout
    data = sorted(line.split()[6] for line in toc.splitlines() if " TABLE DATA " in line)
    assert data == ["customers", "orders"]


def test_schema_exclusion(server, ansible, sample_db):
    server.sql(sample_db, "CREATE TABLE public.scratch (id int); INSERT INTO public.scratch VALUES (1), (2)")
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), exclude_schemas=["lifeboat_sample"])
    assert result["row_counts"] == {"public.scratch": 2}


def test_unknown_table_is_a_clear_error_and_leaves_nothing(ansible, sample_db):
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), tables=["public.no_such_table"])
    assert result["failed"] and "no matching tables were found" in result["msg"] and "\n" not in result["msg"]
    assert backup_sets(ansible.repository / sample_db) == [] and leftovers(ansible.repository / sample_db) == []


@pytest.mark.parametrize("args,message", [
    ({"jobs": 3}, "jobs > 1 needs format: directory"),
    ({"compress": 12}, "compress level 12 is out of range for gzip (0 to 9)"),
    ({"keep_days": 0}, "keep_days must be more than 0"),
    ({"keep_last": -2}, "keep_last must be at least 1"),
])
def test_nonsensical_options_are_refused_before_anything_runs(ansible, sample_db, args, message):
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), **args)
    assert result["failed"] and message in result["msg"], result
    assert not (ansible.repository / sample_db).exists()


def test_globals_are_kept_private_and_marked_secret(server, ansible, sample_db):
    server.sql("postgres", "DROP ROLE IF EXISTS lifeboat_app")
    server.sql("postgres", "CREATE ROLE lifeboat_app LOGIN PASSWORD 'app-secret'")
    try:
        result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), **{"globals": True})
        globals_file = ansible.repository / sample_db / result["backup_id"] / "globals.sql"
        assert "CREATE ROLE lifeboat_app" in globals_file.read_text()
        assert stat.S_IMODE(globals_file.stat().st_mode) == 0o600
        manifest = json.loads((globals_file.parent / "manifest.json").read_text())
        assert manifest["contains_secrets"] is True
        assert manifest["checksums"] == "after-write"  # the custom archive itself was not streamed
        assert [f["name"] for f in manifest["files"] if f.get("secret")] == ["globals.sql"]
    finally:
        server.sql("postgres", "DROP ROLE IF EXISTS lifeboat_app")
