"""Bad input gets a one-line error that says what is wrong, and nothing changes."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import assert_one_line, embedded_only, free_port


@embedded_only
def test_unreachable_server(server, ansible):
    result = ansible.module("dump", db="postgres", repository=str(ansible.repository), login_host="127.0.0.1",
                            port=free_port(), connect_timeout=3)
    assert_one_line(result, "cannot connect to", "check login_host, port and that the server is running")
    assert not ansible.repository.exists()


@embedded_only
def test_wrong_password_is_named_but_never_shown(server, ansible):
    secret = "Wr0ng-Secret-Value-42"
    result = ansible.module("dump", db="postgres", repository=str(ansible.repository), login_password=secret)
    assert_one_line(result, "password authentication failed", "check login_user and login_password")
    assert secret not in result["msg"] and secret not in str(result)
    assert not ansible.repository.exists()


@embedded_only
def test_missing_database(server, ansible):
    result = ansible.module("dump", db="no_such_db", repository=str(ansible.repository))
    assert_one_line(result, "no_such_db", "does not exist", "check the db option")
    assert not ansible.repository.exists()


@embedded_only
def test_unknown_backup_id(server, ansible, sample_db):
    taken = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    result = ansible.module("restore", db=sample_db, repository=str(ansible.repository), backup="20990101T000000Z-ffffff",
                            mode="replace")
    assert_one_line(result, "backup '20990101T000000Z-ffffff'", "not found", taken["backup_id"])
    assert server.count(sample_db, "lifeboat_sample.events") == 1000


@embedded_only
def test_no_backup_at_all(server, ansible, sample_db):
    result = ansible.module("restore", db=sample_db, repository=str(ansible.repository), mode="replace")
    assert_one_line(result, "no whole-database backup of database", "take one with lifeboat.db.dump")


@embedded_only
def test_relative_repository_path(server, ansible, sample_db):
    result = ansible.module("dump", db=sample_db, repository="relative/repo")
    assert_one_line(result, "repository must be an absolute path")


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("unshare"), reason="needs unshare as root")
@embedded_only
def test_repository_that_is_not_writable(server, ansible, sample_db, tmp_path):
    """A read-only filesystem (root ignores permission bits, so a real read-only mount as root)."""
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    if os.geteuid() == 0:
        # Inside a private mount namespace, a read-only tmpfs is mounted over the repository.
        wrapper = tmp_path / "readonly-mount.sh"
        wrapper.write_text(f'mount -t tmpfs -o ro,size=1m tmpfs "{readonly}" && exec "$@"\n')
        result = ansible.module("dump", db=sample_db, repository=str(readonly),
                                wrapper=("unshare", "-m", "sh", str(wrapper)))
    else:
        readonly.chmod(0o500)
        result = ansible.module("dump", db=sample_db, repository=str(readonly))
    assert_one_line(result, "cannot write to repository", "choose a repository path on a writable filesystem")
    assert os.listdir(readonly) == []


def test_pg_bin_dir_older_than_the_server(server, ansible):
    old = "/usr/lib/postgresql/15/bin"
    if server.major <= 15 or not os.path.exists(os.path.join(old, "pg_dump")):
        pytest.skip("needs a server newer than Debian's PostgreSQL 15 client")
    result = ansible.module("dump", db="postgres", repository=str(ansible.repository), pg_bin_dir=old)
    assert_one_line(result, f"pg_dump needs pg_dump {server.major} or newer", f"{old}/pg_dump 15.", "set pg_bin_dir")
    assert not ansible.repository.exists()


@embedded_only
def test_unknown_option_and_bad_choice(server, ansible):
    result = ansible.module("restore", db="x", repository=str(ansible.repository), mode="obliterate")
    assert result["failed"] and "value of mode must be one of: swap, new, replace" in result["msg"]


@embedded_only
def test_db_is_required_for_dump(server, ansible):
    result = ansible.module("dump", repository=str(ansible.repository))
    assert_one_line(result, "db is required")


@embedded_only
def test_missing_psycopg_is_a_clear_error(server, ansible, tmp_path):
    """A target Python without psycopg: the module says which library is missing."""
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    ansible.write_inventory(ansible_python_interpreter=str(bare / "bin" / "python"))
    result = ansible.module("dump", db="postgres", repository=str(ansible.repository))
    assert result["failed"] and "psycopg" in result["msg"]


@embedded_only
def test_long_database_names_and_line_breaks_are_refused_in_one_line(server, ansible, sample_db):
    """A database name over 63 bytes would be cut by the server to another database's name: refused
    before anything runs, by every module (db, backup_db). A name holding a line break is shown
    escaped: the refusal stays one line."""
    long_name = sample_db + "x" * (64 - len(sample_db))
    repo = str(ansible.repository)
    cases = [
        ("dump", dict(db=long_name, repository=repo)),
        ("restore", dict(db=long_name, repository=repo, mode="replace")),
        ("restore", dict(db=sample_db, backup_db=long_name, repository=repo, mode="swap")),
        ("fault", dict(db=long_name, fault="truncate", table="lifeboat_sample.events", confirm=long_name)),
        ("delta", dict(action="export", db=long_name, repository=repo, tables=[{"name": "lifeboat_sample.events", "change_column": "created_at"}])),
        ("integrity", dict(db=long_name)),
        ("fault", dict(db=sample_db, fault="truncate", table='lifeboat_sample."no\nsuch"', confirm=sample_db)),
        ("restore", dict(db=sample_db, repository=repo, mode="swap", role="no\nrole")),
    ]
    before = server.count(sample_db, "lifeboat_sample.events")
    result = ansible.play([{"name": "case %d" % i, "lifeboat.db.%s" % module: args, "ignore_errors": True}
                           for i, (module, args) in enumerate(cases)])
    assert len(result.tasks) == len(cases), result.stdout[-2000:]
    for (module, args), (name, outcome) in zip(cases, result.tasks):
        assert_one_line(outcome)
        if long_name in args.values():
            assert "longer than the 63 bytes" in outcome["msg"], (module, outcome["msg"])
    assert server.count(sample_db, "lifeboat_sample.events") == before
    assert not os.path.exists(os.path.join(repo, long_name))
