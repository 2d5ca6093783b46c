"""The restore's safety holes of issue 15, each made real: a locale this server lacks (item 4), a
failed replace without a safety backup (item 4), a second restore and retention while a restore
runs (item 5), database names libpq would read as options (item 7), derived names of long or
planted databases (item 9), and the download cache that cannot be removed after the commit (item 10)."""
import json
import os
import shutil
import subprocess
import time

import psycopg
import pytest
from psycopg import sql

from conftest import BIN, PROJECT, assert_one_line, backup_sets, embedded_only
from test_restore_faults import slow_table

S = "lifeboat_sample"
LATE = f"INSERT INTO {S}.products (sku, name, price) VALUES ('LATE-1', 'late', 3)"


def late_rows(server, db):
    return server.sql(db, f"SELECT count(*) FROM {S}.products WHERE sku = 'LATE-1'")[0][0]


def drop(server, name):
    with server.connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create(server, name, comment=None):
    with server.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if comment is not None:
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))


def database_names(server):
    return sorted(r[0] for r in server.sql("postgres", "SELECT datname FROM pg_database"))


def task(name, **args):
    return {"name": name, "lifeboat.db.restore": args, "ignore_errors": True}


def set_locale(manifest_path, collate):
    manifest = json.loads(manifest_path.read_text())
    manifest["database_settings"].update(lc_collate=collate, lc_ctype=collate)
    manifest_path.write_text(json.dumps(manifest))


@embedded_only
def test_replace_from_a_server_with_another_locale_changes_nothing_unless_fallback_is_allowed(
        server, ansible, sample_db):
    repo = ansible.repository
    backup = ansible.module("dump", db=sample_db, repository=str(repo))
    # The backup comes from a server whose databases use a locale this one has not got.
    set_locale(repo / sample_db / backup["backup_id"] / "manifest.json", "de_DE.UTF-8")
    server.sql(sample_db, LATE)
    base = dict(db=sample_db, repository=str(repo), backup=backup["backup_id"])
    play = ansible.play([task("replace", mode="replace", **base),
                         task("new", mode="new", backup_db=sample_db, **dict(base, db=sample_db + "_de")),
                         task("swap", mode="swap", **base),
                         task("fallback", mode="replace", locale_fallback=True, **base)])
    for mode in ("replace", "new", "swap"):
        assert_one_line(play.result(mode), "de_DE.UTF-8", "locale_fallback", "nothing was changed")
        assert "safety_backup_id" not in play.result(mode) or not play.result(mode)["safety_backup_id"]
    fallback = play.result("fallback")
    assert not fallback["failed"], fallback.get("msg")
    assert any("de_DE.UTF-8" in a and "this server's" in a for a in fallback["actions"]), fallback["actions"]
    assert late_rows(server, sample_db) == 0, "the fallback restored the backup"
    assert not server.exists(sample_db + "_de")
    # One set besides the backup: the fallback's safety backup; the refusals took none.
    assert len(backup_sets(repo / sample_db)) == 2


@embedded_only
def test_failed_replace_without_safety_backup_says_the_old_contents_are_gone(server, ansible, sample_db):
    from test_restore import dump_owned_by_a_vanished_role
    dump_owned_by_a_vanished_role(server, ansible, sample_db, "events", "lifeboat_gone_s")
    result = ansible.module("restore", db=sample_db, repository=str(ansible.repository), mode="replace",
                            no_owner=False, safety_backup=False)
    assert_one_line(result, "lifeboat_gone_s", "safety_backup", "lost")


@embedded_only
def test_a_replace_whose_rollback_fails_too_names_both_causes_and_the_safety_backup(server, ansible, sample_db):
    repo = ansible.repository
    slow_table(server, sample_db, rows=150, seconds_per_row=0.02)  # ~3 s of pg_restore
    ansible.module("dump", db=sample_db, repository=str(repo))
    # A table made after the backup, owned by a role that owns nothing else: once the replace has
    # dropped the database, someone drops the role, and the safety backup can no longer be put back.
    server.sql("postgres", "DROP ROLE IF EXISTS lb_owner_gone")
    server.sql("postgres", "CREATE ROLE lb_owner_gone")
    server.sql(sample_db, "CREATE TABLE public.late (n int); ALTER TABLE public.late OWNER TO lb_owner_gone")
    proc = start_restore(ansible, db=sample_db, mode="replace", repository=str(repo),
                         checks=[{"name": "never", "sql": "SELECT 1 WHERE false", "rows": 1}])
    try:
        wait_for_phase(repo / sample_db / ".restore-progress.json", "restoring", proc)
        server.sql("postgres", "DROP ROLE lb_owner_gone")
    finally:
        output = proc.communicate(timeout=300)[0]
    msg = next(line for line in output.splitlines() if '"msg"' in line)
    safety = [name for name in backup_sets(repo / sample_db)
              if json.loads((repo / sample_db / name / "manifest.json").read_text())["kind"] == "pre-restore"]
    assert len(safety) == 1, backup_sets(repo / sample_db)
    for fragment in ("check(s) failed on the restored copy: never", "putting back the previous contents also failed",
                     "lb_owner_gone", f"restore safety backup {safety[0]} by hand"):
        assert fragment in msg, msg
    assert "Traceback" not in output


@embedded_only
def test_every_mode_waits_for_no_one_while_the_database_is_locked(server, ansible, sample_db):
    repo = ansible.repository
    ansible.module("dump", db=sample_db, repository=str(repo))
    server.sql(sample_db, LATE)
    before = database_names(server)
    base = dict(db=sample_db, repository=str(repo))
    with server.connect() as other:
        # What a restore (or, shared, a backup) of this database holds while it runs.
        other.execute("SELECT pg_advisory_lock(hashtext('lifeboat restore ' || %s))", (sample_db,))
        play = ansible.play([task("swap", **base), task("replace", mode="replace", **base),
                             task("tables", mode="tables", tables=[f"{S}.products"], **base),
                             # Advisory locks belong to one database: the lock is in postgres whatever this is.
                             task("template1", mode="replace", maintenance_db="template1", **base)])
        other.execute("SELECT pg_advisory_lock(hashtext('lifeboat restore ' || %s))", (sample_db + "_n",))
        new = ansible.play([task("new", mode="new", backup_db=sample_db, **dict(base, db=sample_db + "_n"))])
    for name, result in [(n, play.result(n)) for n in ("swap", "replace", "tables", "template1")] + [("new", new.result("new"))]:
        assert_one_line(result, "a restore or a backup of database", "is running")
    assert database_names(server) == before
    assert late_rows(server, sample_db) == 1
    assert len(backup_sets(repo / sample_db)) == 1, "no safety backup either"


def start_restore(ansible, **args):
    play = ansible.workdir / "background-restore.json"
    play.write_text(json.dumps([{"hosts": "databases", "gather_facts": False, "tasks": [{
        "name": "restore", "lifeboat.db.restore": {**ansible.server.connection_options(), **args}}]}]))
    return subprocess.Popen([str(BIN / "ansible-playbook"), "-i", str(ansible.inventory), str(play)], cwd=PROJECT,
                            env=dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_phase(progress, phase, proc):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = json.loads(progress.read_text()) if progress.exists() else {}
        if state.get("phase") == phase:
            return state
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"the restore never reached its {phase} phase")


@embedded_only
def test_a_running_restore_keeps_a_second_restore_and_retention_away(server, ansible, sample_db):
    repo = ansible.repository
    slow_table(server, sample_db, rows=500, seconds_per_row=0.02)  # ~10 s of pg_restore
    first = ansible.module("dump", db=sample_db, repository=str(repo))
    copy = sample_db + "_copy"
    drop(server, copy)
    proc = start_restore(ansible, db=copy, backup_db=sample_db, mode="new", repository=str(repo))
    try:
        wait_for_phase(repo / sample_db / ".restore-progress.json", "restoring", proc)
        during = ansible.play([
            task("second restore", db=copy, backup_db=sample_db, mode="replace", repository=str(repo)),
            {"name": "retention", "lifeboat.db.dump": {"db": sample_db, "repository": str(repo), "keep_last": 1}}])
        still_running = proc.poll() is None
    finally:
        output = proc.communicate(timeout=300)[0]
    assert still_running, "the first restore ended before the second one started: make its table slower"
    assert_one_line(during.result("second restore"), f"a restore or a backup of database '{copy}' is running")
    assert not during.result("retention")["failed"], during.result("retention").get("msg")
    assert first["backup_id"] in backup_sets(repo / sample_db), "retention deleted the set being restored"
    assert proc.returncode == 0, output[-3000:]
    assert server.count(copy, f"{S}.slow") == 500
    # Once the restore is over, the next retention deletes it.
    again = ansible.module("dump", db=sample_db, repository=str(repo), keep_last=1)
    assert first["backup_id"] not in backup_sets(repo / sample_db), again
    drop(server, copy)


@embedded_only
def test_a_dump_started_during_a_replace_never_captures_the_half_restored_database(server, ansible, sample_db):
    """Issue 15 item 5 made real: a dump of the database a running replace is rebuilding fails in one
    line within its lock_timeout and takes no set; one that may wait long enough backs up the
    finished restore, never the half-restored database."""
    repo = ansible.repository
    slow_table(server, sample_db, rows=600, seconds_per_row=0.02)  # ~12 s of pg_restore
    first = ansible.module("dump", db=sample_db, repository=str(repo))
    assert not first["failed"], first.get("msg")
    proc = start_restore(ansible, db=sample_db, mode="replace", repository=str(repo), backup=first["backup_id"])
    try:
        wait_for_phase(repo / sample_db / ".restore-progress.json", "restoring", proc)
        during = ansible.play([{"name": "dump", "ignore_errors": True,
                                "lifeboat.db.dump": {"db": sample_db, "repository": str(repo), "lock_timeout": 1}}])
        still_running = proc.poll() is None
        waited = ansible.module("dump", db=sample_db, repository=str(repo), lock_timeout=300)
    finally:
        output = proc.communicate(timeout=300)[0]
    assert still_running, "the replace ended before the first dump tried: make its table slower"
    assert_one_line(during.result("dump"), f"database '{sample_db}' is being restored by another run", "lock_timeout")
    assert proc.returncode == 0, output[-3000:]
    assert not waited["failed"], waited.get("msg")
    assert waited["restore_waited_seconds"] > 0, waited
    assert waited["row_counts"] == first["row_counts"], "the dump captured a half-restored database"
    kinds = sorted(json.loads((repo / sample_db / name / "manifest.json").read_text())["kind"]
                   for name in backup_sets(repo / sample_db))
    assert kinds == ["full", "full", "pre-restore"], kinds


# Names a libpq connection string would read as options, or that quote, space, dot or leave ASCII.
HOSTILE_NAMES = ["x host=127.0.0.2 port=1", "dbname=postgres", "it's \"quoted\"; x", "Dot.Upper Case",
                 "naïve ünïcödé", "postgresql://127.0.0.2:1/x"]


@embedded_only
def test_hostile_target_names_restore_into_exactly_that_database(server, ansible, sample_db):
    repo = str(ansible.repository)
    ansible.module("dump", db=sample_db, repository=repo)
    for name in HOSTILE_NAMES:
        drop(server, name)
    before = database_names(server)
    counts = server.sql(sample_db, f"SELECT (SELECT count(*) FROM {S}.orders), (SELECT count(*) FROM {S}.events)")
    # Every name through mode=new; two connection strings through swap, replace and tables as well.
    cases = [("new", i) for i in range(len(HOSTILE_NAMES))]
    cases += [(mode, i) for mode in ("swap", "replace", "tables") for i in (0, 1)]
    tasks = [task(f"{mode} {i}", mode=mode, db=HOSTILE_NAMES[i], backup_db=sample_db, repository=repo, keep_previous=0,
                  **({"tables": [f"{S}.orders"]} if mode == "tables" else {})) for mode, i in cases]
    play = ansible.play(tasks)
    try:
        for mode, i in cases:
            result = play.result(f"{mode} {i}")
            assert not result["failed"], (HOSTILE_NAMES[i], mode, result.get("msg"))
            assert result["target_db"] == HOSTILE_NAMES[i]
        for name in HOSTILE_NAMES:
            got = server.sql(name, f"SELECT (SELECT count(*) FROM {S}.orders), (SELECT count(*) FROM {S}.events)")
            assert got == counts, name
        assert database_names(server) == sorted(before + HOSTILE_NAMES)
        assert server.sql("postgres", "SELECT to_regnamespace(%s)", (S,)) == [(None,)], "restored into postgres"
    finally:
        for name in HOSTILE_NAMES:
            drop(server, name)


def long_name(tail):
    return ("lifeboat_long_tenant_database_name_sharing_a_prefix_" + "0" * 55)[:55] + tail


@embedded_only
def test_derived_names_never_reach_another_database(server, ansible, sample_db):
    repo = str(ansible.repository)
    ansible.module("dump", db=sample_db, repository=repo)
    a, b = long_name("_aaaaaaa"), long_name("_bbbbbbb")
    assert len(a.encode()) == len(b.encode()) == 63
    short = "lbq_" + sample_db[-20:]
    # Databases someone else made, named as lifeboat's staging and previous copies of `short` were.
    planted = [short + "_lbstage_abcdef", short + "_prev_20000101000000"]
    for name in [a, b, short] + planted:
        drop(server, name)
    for name in planted:
        create(server, name, comment="someone else's")
    tasks = [task(f"create {n}", db=n, backup_db=sample_db, repository=repo, mode="new") for n in (a, b, short)]
    tasks += [task("b keeps one", db=b, backup_db=sample_db, repository=repo, keep_previous=1),
              task("a keeps none", db=a, backup_db=sample_db, repository=repo, keep_previous=0),
              task("short keeps none", db=short, backup_db=sample_db, repository=repo, keep_previous=0),
              ]
    play = ansible.play(tasks)
    try:
        for name, result in play.tasks:
            assert not result["failed"], (name, result.get("msg"))
        b_previous = play.result("b keeps one")["swap"]["previous_db"]
        a_first = play.result("a keeps none")["swap"]["previous_db"]
        short_first = play.result("short keeps none")["swap"]["previous_db"]
        names = database_names(server)
        assert b_previous in names, "a's restore dropped b's previous database"
        assert a_first not in names, "keep_previous: 0 kept a's previous database"
        assert play.result("a keeps none")["previous_dropped"] == [a_first]
        assert play.result("short keeps none")["previous_dropped"] == [short_first]
        assert short_first not in names
        for name in planted:
            assert name in names, f"{name} was not lifeboat's and was dropped"
        for name in (a_first, b_previous, short_first):
            assert len(name.encode()) <= 63
    finally:
        for name in [a, b, short] + planted + [n for n in database_names(server) if n.startswith(a[:40])]:
            drop(server, name)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="mounting a tmpfs needs root")
@embedded_only
def test_a_download_that_cannot_be_removed_after_the_commit_is_a_warning(server, ansible, sample_db, moto, tmp_path):
    bucket = moto.bucket("lb-restore-busy-cache")
    cache = tmp_path / "cache"
    slow_table(server, sample_db, rows=100, seconds_per_row=0.02)
    backup = ansible.module("dump", db=sample_db, repository=f"s3://{bucket}", cache_dir=str(tmp_path / "c1"),
                            **moto.options())
    assert not backup["failed"], backup.get("msg")
    copy = sample_db + "_s3"
    drop(server, copy)
    progress = cache / sample_db / ".restore-progress.json"
    busy = cache / sample_db / backup["backup_id"] / "busy"
    wrapper = tmp_path / "busy.sh"
    # Once the restore runs, a mount point appears inside the downloaded set: removing it fails (EBUSY).
    wrapper.write_text(f'( while ! grep -q \'"phase": "restoring"\' "{progress}" 2>/dev/null; do sleep 0.05; done; '
                       f'mkdir "{busy}" && mount -t tmpfs tmpfs "{busy}" ) &\n"$@"\n')
    result = ansible.module("restore", db=copy, backup_db=sample_db, mode="new", repository=f"s3://{bucket}",
                            cache_dir=str(cache), wrapper=("unshare", "-m", "sh", str(wrapper)), **moto.options())
    try:
        assert not result["failed"], result.get("msg")
        assert any("could not remove" in w for w in result.get("warnings", [])), result
        assert server.count(copy, f"{S}.slow") == 100
    finally:
        drop(server, copy)


def test_an_icu_database_is_recreated_with_its_icu_locale_or_refused_where_icu_is_missing(server, ansible, sample_db):
    """The manifest records the locale provider and its ICU locale; a replace re-creates the database
    with them (Debian's PostgreSQL 15 has ICU), and a server built without ICU (the embedded one)
    refuses before anything changes unless locale_fallback allows its own settings."""
    repo = ansible.repository
    icu_db = sample_db + "_icu"
    server.drop_db(icu_db)
    try:
        server.sql("postgres", f'CREATE DATABASE "{icu_db}" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE \'de-DE\'')
        has_icu = True
    except psycopg.errors.FeatureNotSupported:
        has_icu = False
    if has_icu:
        server.sql(icu_db, "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 7)")
        try:
            backup = ansible.module("dump", db=icu_db, repository=str(repo))
            assert backup["manifest"]["database_settings"]["locale_provider"] == "icu", backup["manifest"]
            result = ansible.module("restore", db=icu_db, repository=str(repo), mode="replace")
            assert not result["failed"], result.get("msg")
            row = server.sql("postgres", "SELECT datlocprovider, daticulocale FROM pg_database WHERE datname = %s",
                             (icu_db,))
            assert row == [("i", "de-DE")], row
            assert server.count(icu_db, "t") == 7
        finally:
            server.drop_db(icu_db)
        return
    backup = ansible.module("dump", db=sample_db, repository=str(repo))
    manifest_path = repo / sample_db / backup["backup_id"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["database_settings"].update(locale_provider="icu", locale="de-DE")
    manifest_path.write_text(json.dumps(manifest))
    server.sql(sample_db, LATE)
    base = dict(db=sample_db, repository=str(repo), backup=backup["backup_id"])
    play = ansible.play([task("replace", mode="replace", **base),
                         task("fallback", mode="replace", locale_fallback=True, **base)])
    assert_one_line(play.result("replace"), "icu", "de-DE", "locale_fallback", "nothing was changed")
    # The refusal took no safety backup: the one set besides the backup is the fallback's.
    assert len(backup_sets(repo / sample_db)) == 2
    fallback = play.result("fallback")
    assert not fallback["failed"], fallback.get("msg")
    assert late_rows(server, sample_db) == 0
