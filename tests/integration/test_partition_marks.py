"""Partition marks (table comments) and partition-archive manifests are read back as untrusted input.

A table's owner can write any comment on it, and a manifest is a file anyone with the repository
can edit: neither may make lifeboat.db.partition run SQL, attach a table that is not the partition
it retired, or archive and drop such a table. Each hostile case is refused in one line and
touches nothing; the legitimate round trips still work.
"""
import json

import pytest

from conftest import PROJECT, assert_one_line, backup_sets, embedded_only, fixture_database

BC004 = PROJECT / "tests" / "fixtures" / "bc004"
TABLE = "public.policy_violations"
MALLORY = "lifeboat_mallory"  # a table owner without any other right
RETAIN = dict(now="2028-02-01", retain=3, interval="yearly", premake=1, name_pattern="{table}_{YYYY}")


@pytest.fixture
def mallory(server):
    server.sql("postgres", f"DROP ROLE IF EXISTS {MALLORY}")
    server.sql("postgres", f"CREATE ROLE {MALLORY} NOSUPERUSER NOCREATEROLE")
    yield MALLORY
    server.sql("postgres", f"DROP ROLE IF EXISTS {MALLORY}")


def bc004_named(server, db):
    fixture_database(server, db, BC004 / "schema.sql", BC004 / "data.sql")
    return db


@pytest.fixture
def hostile_db(server, mallory, request):
    db = bc004_named(server, "m_" + request.node.name.split("[")[0][-40:].lower())
    yield db
    server.drop_db(db)


def is_superuser(server, role):
    return server.sql("postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,))[0][0]


def exists(server, db, name):
    return server.sql(db, "SELECT to_regclass(%s)", (name,))[0][0] is not None


def comment(server, db, name):
    return server.sql(db, "SELECT obj_description(%s::regclass, 'pg_class')", (name,))[0][0]


def partitions(server, db):
    rows = server.sql(db, "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                          "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass", (TABLE,))
    return dict(rows)


def legacy_mark(bound, parent=TABLE):
    """A mark as lifeboat wrote it before marks held typed bounds: the bound as SQL text."""
    return "lifeboat-retired " + json.dumps(dict(parent=parent, bound=bound, retired_at="2028-02-01T00:00:00Z",
                                                 comment=None, backup_id=None), sort_keys=True)


def injection(year, pwned):
    return (f"FOR VALUES FROM ('{year}-01-01 00:00:00+00') TO ('{year + 1}-01-01 00:00:00+00'); "
            f"ALTER ROLE {MALLORY} SUPERUSER; CREATE TABLE public.{pwned} (); SELECT ('x')")


def look_alike(server, db, name, owner=None, text=None):
    """A table shaped like a partition of policy_violations, not one, with a comment its owner wrote."""
    server.sql(db, f"CREATE TABLE public.{name} (LIKE public.policy_violations INCLUDING CONSTRAINTS)")
    if owner:
        server.sql(db, f"ALTER TABLE public.{name} OWNER TO {owner}")
    with server.connect(db) as conn:
        if owner:
            conn.execute(f"SET ROLE {owner}")  # the table's owner may write its comment
        conn.execute(f"COMMENT ON TABLE public.{name} IS {quote(text)}")


def quote(text):
    return "'%s'" % text.replace("'", "''")


def restore_task(db, name, repository=None, **extra):
    args = dict(db=db, table=TABLE, interval="yearly", restore_partition=name, **extra)
    if repository:
        args["repository"] = repository
    return {"name": "restore " + name, "lifeboat.db.partition": args, "ignore_errors": True}


@embedded_only
def test_planted_marks_run_nothing_attach_nothing_and_drop_nothing(server, ansible, hostile_db):
    db, repo = hostile_db, str(ansible.repository)
    # A real retired partition: retention detached 2024 and marked it.
    detached = ansible.module("partition", db=db, table=TABLE, retention_action="detach", **RETAIN)
    assert detached["detached"] == ["public.policy_violations_2024"], detached
    real_mark = comment(server, db, "public.policy_violations_2024")
    # The real one is renamed away and a look-alike takes its name, with a copy of its mark.
    server.sql(db, "ALTER TABLE public.policy_violations_2024 RENAME TO pv_2024_real")
    look_alike(server, db, "policy_violations_2024", text=real_mark)
    # A table owner plants marks whose bounds are SQL.
    look_alike(server, db, "policy_violations_2023", MALLORY, legacy_mark(injection(2023, "pwned_a")))
    look_alike(server, db, "policy_violations_2022", None, legacy_mark(injection(2022, "pwned_b")))
    # A mark that looks right, on a table its owner made.
    look_alike(server, db, "policy_violations_2021", MALLORY,
               legacy_mark("FOR VALUES FROM ('2021-01-01 00:00:00+00') TO ('2022-01-01 00:00:00+00')"))
    # The real mark's shape, with SQL in its typed lower bound (and a harmless bound text).
    typed = json.loads(real_mark[len("lifeboat-retired "):])
    server.sql(db, "CREATE TABLE public.policy_violations_2020 (LIKE public.policy_violations INCLUDING CONSTRAINTS)")
    oid = server.sql(db, "SELECT 'public.policy_violations_2020'::regclass::oid")[0][0]
    typed.update(name="policy_violations_2020", oid=oid, bound="FOR VALUES FROM ('2020-01-01 00:00:00+00') TO "
                 "('2021-01-01 00:00:00+00')", lower="2020-01-01 00:00:00+00'); ALTER ROLE %s SUPERUSER; --" % MALLORY)
    server.sql(db, "COMMENT ON TABLE public.policy_violations_2020 IS " + quote("lifeboat-retired " + json.dumps(typed)))
    names = ["policy_violations_2024", "policy_violations_2023", "policy_violations_2022", "policy_violations_2021",
             "policy_violations_2020", "pv_2024_real"]
    comments = {name: comment(server, db, "public." + name) for name in names}
    before = partitions(server, db)

    result = ansible.play([restore_task(db, name, repo) for name in names[:5]] + [
        {"name": "retention", "lifeboat.db.partition": dict(db=db, table=TABLE, retention_action="archive_and_drop",
                                                            repository=repo, **RETAIN), "ignore_errors": True}])

    assert not is_superuser(server, MALLORY)
    assert not exists(server, db, "public.pwned_a") and not exists(server, db, "public.pwned_b")
    for name in names[:5]:
        assert_one_line(result.result("restore " + name), "public.%s" % name, "nothing was changed")
    assert "owned by %s" % MALLORY in result.result("restore policy_violations_2023")["msg"]
    assert "owned by %s" % MALLORY in result.result("restore policy_violations_2021")["msg"]
    assert "plain" in result.result("restore policy_violations_2022")["msg"]
    assert "is not the table lifeboat marked" in result.result("restore policy_violations_2024")["msg"]
    assert "lower bound" in result.result("restore policy_violations_2020")["msg"]
    # Retention archives and drops none of them, and says why.
    retention = result.result("retention")
    assert not retention["failed"], retention["msg"]
    assert retention["archived"] == [] and retention["dropped"] == [], retention
    warned = " ".join(retention.get("warnings", []))
    for name in names:
        assert "public.%s" % name in warned, warned
    sets = ansible.repository / db
    assert not sets.exists() or not backup_sets(sets)
    assert partitions(server, db) == before
    for name in names:
        assert comment(server, db, "public." + name) == comments[name], name

    # The real detached table with a mark as lifeboat wrote them before bounds were typed: read, attached.
    server.sql(db, "COMMENT ON TABLE public.pv_2024_real IS " + quote(legacy_mark(
        "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')")))
    attached = ansible.module("partition", db=db, table=TABLE, interval="yearly", restore_partition="pv_2024_real")
    assert attached["changed"] and not attached.get("failed"), attached
    assert "2024-01-01" in partitions(server, db)["pv_2024_real"]


@embedded_only
def test_a_partition_whose_mark_would_not_be_trusted_is_not_retired(server, ansible, hostile_db):
    """Retention refuses before it marks or detaches a partition owned by another role: once
    detached, its mark could not be told from one that role planted."""
    server.sql(hostile_db, f"ALTER TABLE public.policy_violations_2024 OWNER TO {MALLORY}")
    result = ansible.module("partition", db=hostile_db, table=TABLE, retention_action="archive_and_drop",
                            repository=str(ansible.repository), **RETAIN)
    assert_one_line(result, "cannot retire partition public.policy_violations_2024", "owned by %s" % MALLORY,
                    "OWNER TO")
    assert "policy_violations_2024" in partitions(server, hostile_db)
    assert comment(server, hostile_db, "public.policy_violations_2024") is None


@pytest.fixture
def equals_db(server, mallory):
    """A database whose name libpq would read as a connection string, and the one it names."""
    decoy = "m_decoy_equals"
    server.drop_db(decoy)
    server.sql("postgres", f'CREATE DATABASE "{decoy}"')
    db = bc004_named(server, f"dbname={decoy}")
    yield db, decoy
    server.drop_db(db)
    server.drop_db(decoy)


@embedded_only
def test_a_hostile_archive_manifest_restores_nothing_and_a_plain_one_still_does(server, ansible, equals_db):
    db, decoy = equals_db
    repo = str(ansible.repository)
    rows_2024 = server.count(db, "policy_violations_2024")
    dropped = ansible.module("partition", db=db, table=TABLE, retention_action="archive_and_drop", repository=repo,
                             **RETAIN)
    assert not dropped.get("failed"), dropped.get("msg")
    backup_id = dropped["dropped"][0]["backup_id"]
    path = ansible.repository / db / backup_id / "manifest.json"
    original = json.loads(path.read_text())
    plain_bound = "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')"
    legacy = {key: original["partition"][key] for key in ("parent", "schema", "name", "column", "key_type",
                                                          "retired_at")}

    def manifest(**partition):
        return dict(original, partition=partition)
    cases = [
        ("legacy bound with SQL", manifest(**legacy, bound=injection(2024, "pwned_m")), "plain"),
        ("typed lower with SQL", manifest(**dict(original["partition"], bound=plain_bound,
                                                 lower="2024-01-01'); ALTER ROLE %s SUPERUSER; --" % MALLORY)),
         "lower bound"),
        ("typed upper not a time", manifest(**dict(original["partition"], bound=plain_bound, upper="next year")),
         "upper bound"),
        ("another key type", manifest(**dict(legacy, key_type="bigint", bound="FOR VALUES FROM (0) TO (10)")),
         "bigint"),
        ("bounds of another year", manifest(**dict(original["partition"], bound=plain_bound,
                                                   lower="2023-01-01 00:00:00+00", upper="2024-01-01 00:00:00+00")),
         "2023"),
        ("partition not an object", manifest(**{}) | {"partition": "public.policy_violations"}, "no partition archive"),
    ]
    tasks = []
    for name, content, dummy in cases:
        tasks.append({"name": "write " + name, "ansible.builtin.copy": dict(dest=str(path), content=json.dumps(content),
                                                                            mode="0600")})
        tasks.append(dict(restore_task(db, "policy_violations_2024", repo), name="restore " + name))
    # A manifest as lifeboat wrote them before bounds were typed: read, never run.
    tasks.append({"name": "write legacy", "ansible.builtin.copy": dict(
        dest=str(path), content=json.dumps(manifest(**legacy, bound=plain_bound)), mode="0600")})
    tasks.append(dict(restore_task(db, "policy_violations_2024", repo), name="restore legacy"))
    result = ansible.play(tasks)

    assert not is_superuser(server, MALLORY)
    assert not exists(server, db, "public.pwned_m")
    for name, dummy, fragment in cases:
        assert_one_line(result.result("restore " + name), fragment)
    restored = result.result("restore legacy")
    assert not restored["failed"], restored["msg"]
    assert restored["rows"] == rows_2024 and restored["backup_id"] == backup_id
    assert "policy_violations_2024" in partitions(server, db)
    assert server.count(db, "policy_violations_2024") == rows_2024
    # pg_restore went to this database, not to the one its name spells as a connection string.
    assert server.sql(decoy, "SELECT count(*) FROM pg_class WHERE relname = 'policy_violations_2024'") == [(0,)]
