"""Hostile names everywhere (issue 15): every module that takes a database, schema, table, column,
role or sequence name, called through ansible-playbook with names holding quotes, spaces, dots,
upper case, `=`, `;`, backslashes, Japanese, conninfo look-alikes and 63-byte names that share a
prefix. Each call either works on exactly the object it names or is refused in one line, and
nothing else on the server changes: a snapshot of every database, schema, relation (with its row
count or sequence state) and role is taken before the play and compared, after it, with the
before-snapshot plus the effects of the calls that worked.

The cases run as one play (ignore_errors on each task) for the test budget; each case carries the
check of what it must have done when it worked, and the effect it has on the snapshot.
"""
import re
from pathlib import Path

import pytest
from psycopg import sql

from conftest import embedded_only

# -- the names --------------------------------------------------------------------------------

SCHEMA = 'Hostile "S".x'              # double quote, dot, upper case, space
TABLE = "Tab 'q'; =\\ 表"              # single quote, ;, =, backslash, Japanese, space
CHILD = "Child.T"                       # a dot inside a table name
KEY = "Id 'k'"
REF = 'Ref "k"'
COLUMN = 'Col "c".=;'
CHANGED = "Changed At"
SEQ = "Seq \"s\" 'q'.n"
MATVIEW = 'MV "m".v'
PREFIX = "Lo" + "n" * 53 + "g Tab"    # 60 bytes
LONG_A, LONG_B = PREFIX + "_A1", PREFIX + "_B2"   # 63 bytes each, the first 60 shared
ROLE = "Role \"r\" 'q'; =x"
assert len(LONG_A.encode()) == 63

DB_PREFIX = "Lo" + "n" * 54 + "g DB "  # 61 bytes
DATABASES = {
    "dquote": 'Hostile "DQ" db',
    "squote": "it's a db",
    "punct": "a.b;c=d\\e",
    "japanese": "日本語のデータベース",
    "ja63": "データ" * 7,                   # 21 characters, 63 bytes
    "host": "x host=127.0.0.2",
    "dbname": "x dbname=postgres",
    "conninfo": "dbname=lb_decoy",       # as a connection string it names another database
    "newline": "two\nlines",
    "shell": "$(touch pwned) `id` |&",
    "option": "--file=escape.sql",       # an argument that a tool would read as an option
    "long_a": DB_PREFIX + "_a",
    "long_b": DB_PREFIX + "_b",
}
assert all(len(name.encode()) <= 63 for name in DATABASES.values())
assert len(DATABASES["long_a"].encode()) == 63 and len(DATABASES["ja63"].encode()) == 63
# Names that are paths: the repository keeps a folder per database.
PATH_NAMES = {"climbing": "../escape", "slash": "a/b", "hidden": ".hidden"}
DECOY = "lb_decoy"                       # what "dbname=lb_decoy" means to libpq
NEW_DB = "New \"db\" ';=.日本"              # created by restore mode=new
SAMPLE_DB = "Sample \"DB\" 'x'=;"         # created by sample_data
SAMPLE_SCHEMA = 'Shop "S".Ü'
SEED_SCHEMA = 'Seed "s".x'
PERCENT_SCHEMA = "it's 100%;\nx"         # a quote that would end a literal, a placeholder, a new line
PART = 'Part "p".t'
DAY = "Day 'd'"
DOTS = "dots"                            # schema a with table b.c, schema a.b with table c


def q(*parts):
    """A name quoted as SQL reads it: "schema"."table"."""
    return ".".join('"%s"' % part.replace('"', '""') for part in parts)


def no_stray_files(result, server):
    """No file a name made a tool or a shell write (run from the project and from the module's folder)."""
    project = Path(__file__).resolve().parents[2]
    for stray in (project / "escape.sql", project / "pwned", Path.home() / "escape.sql", Path.home() / "pwned"):
        assert not stray.exists(), "%s written" % stray


def content_sql(db):
    """The objects of every hostile database (row counts differ so a mix-up shows)."""
    s, t, c = (sql.Identifier(SCHEMA), sql.Identifier(SCHEMA, TABLE), sql.Identifier(SCHEMA, CHILD))
    seq = sql.Identifier(SCHEMA, SEQ)
    statements = [
        sql.SQL("CREATE SCHEMA {}").format(s),
        sql.SQL("CREATE SEQUENCE {}").format(seq),
        sql.SQL("CREATE TABLE {t} ({key} bigint PRIMARY KEY DEFAULT nextval({seq}), {col} text NOT NULL, "
                "{chg} timestamptz NOT NULL DEFAULT '2026-01-01 00:00+00')").format(
            t=t, key=sql.Identifier(KEY), seq=sql.Literal(q(SCHEMA, SEQ)), col=sql.Identifier(COLUMN),
            chg=sql.Identifier(CHANGED)),
        sql.SQL("ALTER SEQUENCE {} OWNED BY {}.{}").format(seq, t, sql.Identifier(KEY)),
        sql.SQL("INSERT INTO {} ({}) SELECT 'row ' || i FROM generate_series(1, 7) i").format(
            t, sql.Identifier(COLUMN)),
        sql.SQL("CREATE TABLE {c} ({ref} bigint REFERENCES {t}, note text)").format(
            c=c, ref=sql.Identifier(REF), t=t),
        sql.SQL("INSERT INTO {} SELECT i, 'child' FROM generate_series(1, 3) i").format(c),
        sql.SQL("CREATE MATERIALIZED VIEW {} AS SELECT {} FROM {}").format(
            sql.Identifier(SCHEMA, MATVIEW), sql.Identifier(KEY), t),
        # The same table name in public, and names that differ in case only: a name that lost its
        # schema or its quotes lands on one of these.
        sql.SQL("CREATE TABLE {} (i int)").format(sql.Identifier("public", TABLE)),
        sql.SQL("INSERT INTO {} VALUES (1), (2)").format(sql.Identifier("public", TABLE)),
        sql.SQL('CREATE TABLE public."Upper" (i int); INSERT INTO public."Upper" VALUES (1)'),
        sql.SQL("CREATE TABLE {} ({} date NOT NULL, v int) PARTITION BY RANGE ({})").format(
            sql.Identifier(SCHEMA, PART), sql.Identifier(DAY), sql.Identifier(DAY)),
        sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')").format(
            sql.Identifier(SCHEMA, PART + "_p202601"), sql.Identifier(SCHEMA, PART)),
        sql.SQL("INSERT INTO {} VALUES ('2026-01-02', 1), ('2026-01-03', 2)").format(sql.Identifier(SCHEMA, PART)),
        sql.SQL("CREATE TABLE public.upper (i int); INSERT INTO public.upper VALUES (1), (2), (3), (4)"),
    ]
    for name, rows in ((LONG_A, 5), (LONG_B, 6)):
        statements.append(sql.SQL("CREATE TABLE {} (i int)").format(sql.Identifier(SCHEMA, name)))
        statements.append(sql.SQL("INSERT INTO {} SELECT generate_series(1, %d)" % rows).format(
            sql.Identifier(SCHEMA, name)))
    return statements


ROLE_ATTRIBUTES = ("rolsuper", "rolinherit", "rolcreaterole", "rolcreatedb", "rolcanlogin", "rolreplication",
                   "rolbypassrls", "rolconnlimit", "rolvaliduntil")


def snapshot(server):
    """{key: value} of every database, schema, relation (rows or sequence state) and role."""
    snap = {}
    for name, *attrs in server.sql("postgres", "SELECT rolname, %s FROM pg_roles" % ", ".join(ROLE_ATTRIBUTES)):
        snap[("role", name)] = tuple(str(a) for a in attrs)
    for db, owner, allow, limit in server.sql(
            "postgres", "SELECT datname, pg_get_userbyid(datdba), datallowconn, datconnlimit FROM pg_database "
                        "WHERE NOT datistemplate"):
        snap[("database", db)] = (owner, allow, limit)
        with server.connect(db) as conn:
            for (schema,) in conn.execute(
                    "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') "
                    "AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%'"):
                snap[("schema", db, schema)] = None
            relations = conn.execute(
                "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'm', 'S', 'v') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_toast%'").fetchall()
            for schema, rel, kind in relations:
                ident = sql.Identifier(schema, rel)
                if kind in ("r", "m"):
                    value = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()[0]
                elif kind == "S":
                    state = sql.SQL("SELECT last_value, is_called FROM {}").format(ident)
                    value = tuple(conn.execute(state).fetchone())
                else:
                    value = None
                snap[("relation", db, schema, rel, kind)] = value
    return snap


def in_db(snap, db):
    return {key: value for key, value in snap.items() if key[0] != "role" and key[1] == db}


# -- effects of calls that worked ---------------------------------------------------------------

class Expected:
    """The before-snapshot, changed by each call that worked; `free` marks (db,) or (db, schema)
    whose content a call may create or change freely (checked by the case itself)."""

    def __init__(self, before):
        self.before = before
        self.snap = dict(before)
        self.free = set()
        self.new_ok = []

    def set_rows(self, db, schema, table, rows, kind="r"):
        self.snap[("relation", db, schema, table, kind)] = rows

    def reset_db(self, db):
        """The database is back as it was before the play (a restore of the dump taken first)."""
        for key in [k for k in self.snap if k[0] != "role" and k[1] == db]:
            del self.snap[key]
        self.snap.update(in_db(self.before, db))

    def copy_db(self, source, target):
        """target holds what source held before the play (its own database entry stays if it had one)."""
        for key in [k for k in self.snap if k[0] in ("schema", "relation") and k[1] == target]:
            del self.snap[key]
        for key, value in in_db(self.before, source).items():
            if key[0] != "database" or ("database", target) not in self.snap:
                self.snap[(key[0], target) + key[2:]] = value

    def drop(self, *prefix):
        for key in [k for k in self.snap if k[:len(prefix)] == prefix]:
            del self.snap[key]

    def is_free(self, key):
        return key[0] != "role" and ((key[1],) in self.free or (len(key) > 2 and (key[1], key[2]) in self.free))

    def differences(self, after):
        wrong = []
        for key in sorted(set(self.snap) | set(after), key=repr):
            if self.is_free(key) or (key not in self.snap and any(ok(key) for ok in self.new_ok)):
                continue
            if self.snap.get(key, "<absent>") != after.get(key, "<absent>"):
                wrong.append("%r: expected %r, found %r" % (key, self.snap.get(key, "<absent>"),
                                                           after.get(key, "<absent>")))
        return wrong


class Case:
    """One call: what it must have done when it worked (check), what that changed (effect), and,
    when it was refused, what the refusal must not say (refusal: msg -> problem or None)."""

    def __init__(self, label, module, args, effect=None, check=None, refusal=None):
        self.label, self.module, self.args = label, module, args
        self.effect = effect or (lambda expected: None)
        self.check = check or (lambda result, server: None)
        self.refusal = refusal or (lambda msg: None)


def names_not(cut):
    """A refusal that names `cut` (the object a too-long name is cut to) was about that object."""
    return lambda msg: "the refusal is about %r, the name cut to 63 bytes" % cut if re.search(
        re.escape(cut) + "(?!Z)", msg) else None


def data_counts(before, db):
    """{'schema.table': rows} of the data tables of db (what a manifest records)."""
    return {"%s.%s" % (k[2], k[3]): v for k, v in in_db(before, db).items() if k[0] == "relation" and k[4] == "r"}


def must_refuse(why):
    def check(result, server):
        pytest.fail(why)
    return check


def counts_are(wanted):
    def check(result, server):
        assert result["row_counts"] == wanted, result["row_counts"]
    return check


def rows_now(db, schema, table, wanted):
    def check(result, server):
        found = server.sql(db, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))[0][0]
        assert found == wanted, "%s.%s has %s rows, not %s" % (schema, table, found, wanted)
    return check


def build_cases(before, repo, seed_file):
    cases = []
    T, C, SQ = q(SCHEMA, TABLE), q(SCHEMA, CHILD), q(SCHEMA, SEQ)

    # Every database name, through every module that takes one.
    for label, db in DATABASES.items():
        def dump_check(result, server, db=db):
            assert result["manifest"]["database"] == db, result["manifest"]["database"]
            assert result["row_counts"] == data_counts(before, db), result["row_counts"]

        def dump_check_files(result, server, db=db):
            dump_check(result, server, db)
            no_stray_files(result, server)
        cases.append(Case("dump db %s" % label, "dump", dict(db=db, repository=repo), check=dump_check_files))

        if label in ("dquote", "conninfo", "ja63"):
            def info_check(result, server, db=db):
                assert result["count"] == 1 and {b["database"] for b in result["backups"]} == {db}, result["backups"]
                assert [b["verification"] for b in result["backups"]] == ["passed"], result["backups"]
            cases.append(Case("backup_info db %s" % label, "backup_info", dict(db=db, repository=repo, verify=True),
                              check=info_check))
            cases.append(Case("integrity compare db %s with its backup" % label, "integrity", dict(
                db=db, action="compare", repository=repo, backup="latest"),
                check=lambda result, server: result["passed"] or pytest.fail(result["summary"])))

        def integrity_check(result, server):
            assert result["passed"], result["summary"]
            names = {c["name"] for c in result["checks"]}
            assert "min_rows %s" % T in names and "sequence %s" % SQ in names, names
        if label in ("dquote", "punct", "ja63", "conninfo"):
            cases.append(Case("integrity db %s (every kind of table, column and sequence name)" % label, "integrity",
                              dict(db=db, required_tables=[T, C, q(SCHEMA, LONG_A), q(SCHEMA, LONG_B)],
                                   required_columns={T: [KEY, COLUMN, CHANGED], C: [REF]},
                                   min_rows={T: 7, C: 3, q(SCHEMA, LONG_A): 5, q(SCHEMA, LONG_B): 6,
                                             'public."Upper"': 1, "public.Upper": 4},
                                   sequences=[{"name": SQ, "next_at_least": 8}],
                                   relationships=[{"table": C, "columns": REF, "references": T,
                                                   "referenced_columns": KEY}]),
                              check=integrity_check))

        # A restore must bring back what a fault took (where a name would send a tool elsewhere).
        if label in ("punct", "host", "dbname", "conninfo", "option", "long_a", "long_b"):
            def truncated(expected, db=db):
                expected.set_rows(db, SCHEMA, CHILD, 0)
            cases.append(Case("fault truncate %s in db %s" % (C, label), "fault", dict(
                db=db, fault="truncate", table=C, confirm=db), effect=truncated))
        mode = "swap" if label.startswith("long") else "replace"
        cases.append(Case("restore %s db %s" % (mode, label), "restore", dict(
            db=db, repository=repo, mode=mode, keep_previous=0, confirm=db),
            effect=lambda expected, db=db: expected.reset_db(db), check=no_stray_files))

    # Names one byte over PostgreSQL's 63: the server cuts them to long_a's or long_b's name.
    over_a, over_b = DATABASES["long_a"] + "Z", DATABASES["long_b"] + "Z"
    cut = must_refuse("a 64-byte name is cut by the server to another database's name")
    cases += [
        Case("integrity db of 64 bytes", "integrity", dict(db=over_a, required_tables=[T]), check=cut),
        Case("maintenance db of 64 bytes", "maintenance", dict(db=over_a, analyze=[T]), check=cut),
        Case("sample_data db of 64 bytes (long_b plus one)", "sample_data", dict(db=over_b, scale=5), check=cut,
             effect=lambda expected: expected.free.add((DATABASES["long_b"], "lifeboat_sample"))),
        Case("sample_data schema of 64 bytes", "sample_data", dict(
            db=DATABASES["long_b"], schema=LONG_A + "Z", scale=5),
             check=cut, effect=lambda expected: expected.free.add((DATABASES["long_b"], LONG_A))),
    ]

    # Database names that are paths: never a folder outside the repository, or a hidden one in it.
    outside = Path(repo).parent
    for label, db in PATH_NAMES.items():
        def nothing_outside(result, server, db=db):
            assert sorted(p.name for p in outside.iterdir()) == ["001_made.sql", "inventory.yml", "play.yml", "repo",
                                                                 "results.jsonl"], list(outside.iterdir())
            assert not Path(repo, db).exists() and not Path(repo, db).is_symlink(), "%s written" % Path(repo, db)
        cases += [
            Case("dump db %s" % label, "dump", dict(db=db, repository=repo), check=nothing_outside),
            Case("integrity capture into the repository, db %s" % label, "integrity", dict(
                db=db, action="capture", repository=repo), check=nothing_outside),
            Case("restore replace db %s from another database's backup" % label, "restore", dict(
                db=db, backup_db=DATABASES["dquote"], repository=repo, mode="replace", confirm=db),
                check=nothing_outside, effect=lambda expected, db=db: expected.copy_db(DATABASES["dquote"], db)),
        ]

    # Schema, table, column, sequence and role names, in one database.
    db = DATABASES["dquote"]
    # A table name one byte over 63: PostgreSQL would cut it to the 63-byte table A.
    over_table = q(SCHEMA, LONG_A + "Z")
    too_long = must_refuse("a 64-byte table name is cut by the server to another table's name")
    cases += [
        Case("integrity min_rows, required_columns of a 64-byte table name", "integrity", dict(
            db=db, min_rows={over_table: 1}, required_columns={over_table: ["i"]}), check=too_long,
            refusal=names_not(LONG_A)),
        Case("maintenance analyze a 64-byte table name", "maintenance", dict(db=db, analyze=[over_table]),
             check=too_long, refusal=names_not(LONG_A)),
        Case("fault truncate a 64-byte table name", "fault", dict(
            db=db, fault="truncate", table=over_table, confirm=db),
             check=too_long, effect=lambda expected: expected.set_rows(db, SCHEMA, LONG_A, 0),
             refusal=names_not(LONG_A)),
        Case("dump tables [a 64-byte table name]", "dump", dict(db=db, repository=repo, kind="tables",
                                                                tables=[over_table]), check=too_long,
             refusal=names_not(LONG_A)),
    ]
    cases += [
        Case("dump tables [quoted schema.table pattern]", "dump", dict(
            db=db, repository=repo, kind="tables", tables=[T]),
            check=counts_are({"%s.%s" % (SCHEMA, TABLE): 7})),
        Case("dump tables [public.Upper] (unquoted: folds to upper)", "dump", dict(
            db=db, repository=repo, kind="tables", tables=["public.Upper"]),
            check=counts_are({"public.upper": 4})),
        Case("dump schemas [quoted schema], exclude_tables [63-byte A]", "dump", dict(
            db=db, repository=repo, kind="schema", schemas=[q(SCHEMA)], exclude_tables=[q(SCHEMA, LONG_A)]),
            check=counts_are({"%s.%s" % (SCHEMA, t): n for t, n in (
                (TABLE, 7), (CHILD, 3), (LONG_B, 6), (PART + "_p202601", 2))})),
        Case("integrity capture a baseline (schema, sequences, counts) of hostile names", "integrity", dict(
            db=db, action="capture", repository=repo),
            check=lambda result, server: result["row_counts"] == data_counts(before, db)
            or pytest.fail(str(result["row_counts"]))),
        Case("integrity compare with that baseline", "integrity", dict(
            db=db, action="compare", repository=repo, baseline="latest"),
            check=lambda result, server: (result["passed"] and {"schema fingerprint", "baseline sequences"} <= {
                c["name"] for c in result["checks"]}) or pytest.fail(result["summary"])),
        Case("integrity compare tables [schema.table as the manifest keys it]", "integrity", dict(
            db=db, action="compare", repository=repo, backup="latest", tables=["%s.%s" % (SCHEMA, TABLE)]),
            check=lambda result, server: result["passed"] or pytest.fail(result["summary"])),
        Case("integrity parity_with another hostile database", "integrity", dict(
            db=db, parity_with=dict(db=DATABASES["squote"], host="{{ lifeboat_connection.login_host }}",
                                    port="{{ lifeboat_connection.port }}", user="{{ lifeboat_connection.login_user }}",
                                    password="{{ lifeboat_connection.login_password }}")),
            check=lambda result, server: result["passed"] or pytest.fail(result["summary"])),
        Case("delta export [quoted table, change column and key]", "delta", dict(
            action="export", db=db, repository=repo, base="latest",
            tables=[dict(name=T, change_column=CHANGED, key=[KEY], since="2025-01-01")]),
            check=lambda result, server: result["rows"] == 7 or pytest.fail(str(result["tables"]))),
        Case("delta apply to the same database", "delta", dict(action="apply", db=db, repository=repo, base="latest")),
        Case("fault truncate public.<table of ; = \\ Japanese>", "fault", dict(
            db=db, fault="truncate", table=q("public", TABLE), confirm=db),
            effect=lambda expected: expected.set_rows(db, "public", TABLE, 0)),
        Case("restore tables [public.\"<table of ; = \\ Japanese>\"]", "restore", dict(
            db=db, repository=repo, mode="tables", tables=[q("public", TABLE)], confirm=db),
            effect=lambda expected: expected.set_rows(db, "public", TABLE, 2), check=rows_now(db, "public", TABLE, 2)),
        Case("fault truncate child (schema with a dot and quotes)", "fault", dict(
            db=db, fault="truncate", table=C, confirm=db),
            effect=lambda expected: expected.set_rows(db, SCHEMA, CHILD, 0)),
        Case("restore tables [<schema with a dot and space>.<table with a dot>]", "restore", dict(
            db=db, repository=repo, mode="tables", tables=["%s.%s" % (SCHEMA, CHILD)], confirm=db),
            effect=lambda expected: expected.set_rows(db, SCHEMA, CHILD, 3), check=rows_now(db, SCHEMA, CHILD, 3)),
        Case("restore new into a hostile new name, role hostile", "restore", dict(
            db=NEW_DB, backup_db=db, repository=repo, mode="new", role=ROLE, confirm=NEW_DB,
            grants=[dict(to=ROLE, objects="tables", schema=SCHEMA, privileges="SELECT")]),
            effect=lambda expected: expected.copy_db(db, NEW_DB)),
        Case("maintenance refresh, vacuum, analyze hostile names", "maintenance", dict(
            db=db, refresh=[q(SCHEMA, MATVIEW)], refresh_all=True, vacuum=[T], analyze=[T, C, q(SCHEMA, LONG_A)]),
            check=lambda result, server: len(result["refreshed"]) >= 1 or pytest.fail(str(result["refreshed"]))),
        Case("dump exclude_schemas [quoted schema]", "dump", dict(
            db=db, repository=repo, kind="schema", exclude_schemas=[q(SCHEMA)]),
            check=counts_are({"public.%s" % TABLE: 2, "public.Upper": 1, "public.upper": 4})),
        Case("sample_data into a hostile schema of a hostile database", "sample_data", dict(
            db=db, schema=SAMPLE_SCHEMA, scale=5),
            effect=lambda expected: expected.free.add((db, SAMPLE_SCHEMA)),
            check=lambda result, server: {k.rsplit(".", 1)[0] for k in result["row_counts"]} == {SAMPLE_SCHEMA}
            or pytest.fail(str(result["row_counts"]))),
        Case("partition restore_partition of a table that is no retired partition", "partition", dict(
            db=db, table=q(SCHEMA, PART), interval="monthly", premake=0, now="2026-01-15",
            restore_partition=q(SCHEMA, TABLE)),
            check=must_refuse("a table that is not a retired partition of this table must be refused")),
        Case("maintenance purge hostile table, batch 1", "maintenance", dict(
            db=db, purge=[dict(table=T, where='%s > 5' % q(KEY), batch_size=1)]),
            effect=lambda expected: expected.set_rows(db, SCHEMA, TABLE, 5), check=rows_now(db, SCHEMA, TABLE, 5)),
        Case("partition premake on a hostile partitioned table and key", "partition", dict(
            db=db, table=q(SCHEMA, PART), interval="monthly", premake=2, now="2026-01-15"),
            effect=lambda expected: expected.new_ok.append(
                lambda key: key[:3] == ("relation", db, SCHEMA) and key[4] == "r")),
        Case("seed apply with a hostile schema and a hostile sequence", "seed", dict(
            db=db, action="apply", schema=SEED_SCHEMA, schema_files=[seed_file],
            sequences=[dict(name=SQ, value=100)]),
            effect=lambda expected: (expected.free.add((db, SEED_SCHEMA)),
                                     expected.set_rows(db, SCHEMA, SEQ, (100, True), kind="S")),
            check=rows_now(db, SEED_SCHEMA, "made", 1)),
        Case("seed reset_schema hostile", "seed", dict(
            db=db, action="apply", schema=SEED_SCHEMA, reset_schema=SEED_SCHEMA, confirm_reset=SEED_SCHEMA,
            schema_files=[seed_file]),
            effect=lambda expected: expected.free.add((db, SEED_SCHEMA))),
        Case("sample_data into a hostile new database and schema", "sample_data", dict(
            db=SAMPLE_DB, schema=SAMPLE_SCHEMA, scale=5),
            effect=lambda expected: expected.free.add((SAMPLE_DB,)),
            check=lambda result, server: {k.rsplit(".", 1)[0] for k in result["row_counts"]} == {SAMPLE_SCHEMA}
            or pytest.fail(str(result["row_counts"]))),
        Case("sample_data schema with ', %, ; and a new line", "sample_data", dict(
            db=SAMPLE_DB, schema=PERCENT_SCHEMA, scale=5),
            effect=lambda expected: expected.free.add((SAMPLE_DB,)),
            check=rows_now(SAMPLE_DB, PERCENT_SCHEMA, "customers", 5)),
        Case("fault drop_table the 63-byte table B", "fault", dict(
            db=db, fault="drop_table", table=q(SCHEMA, LONG_B), confirm=db),
            effect=lambda expected: expected.drop("relation", db, SCHEMA, LONG_B)),
        Case("fault drop_database the hostile new name", "fault", dict(
            db=NEW_DB, fault="drop_database", confirm=NEW_DB),
            effect=lambda expected: (expected.drop("database", NEW_DB), expected.drop("schema", NEW_DB),
                                     expected.drop("relation", NEW_DB))),
    ]

    # Dots that make two tables one name when joined: schema a, table b.c and schema a.b, table c.
    dots = DOTS
    cases += [
        Case("dump db whose a.b.c is two tables", "dump", dict(db=dots, repository=repo),
             check=counts_are({'"a"."b.c"': 2, '"a.b"."c"': 5})),
        Case("integrity compare tables [\"a.b\".\"c\"] of the db whose a.b.c is two tables", "integrity", dict(
            db=dots, action="compare", repository=repo, backup="latest", tables=['"a.b"."c"']),
            check=lambda result, server: (result["passed"] and result["row_counts"] == {'"a.b"."c"': 5})
            or pytest.fail(str(result["row_counts"]))),
        Case("integrity compare db whose a.b.c is two tables", "integrity", dict(
            db=dots, action="compare", repository=repo, backup="latest"),
            check=lambda result, server: result["passed"] or pytest.fail(result["summary"])),
        Case("fault truncate a.b.c unquoted (three parts)", "fault", dict(
            db=dots, fault="truncate", table="a.b.c", confirm=dots), check=must_refuse("a.b.c names no one table")),
        Case("maintenance vacuum a.b.c unquoted (three parts)", "maintenance", dict(db=dots, vacuum=["a.b.c"]),
             check=must_refuse("a.b.c names no one table")),
        Case("integrity min_rows and required_tables a.b.c unquoted (three parts)", "integrity", dict(
            db=dots, required_tables=["a.b.c"], min_rows={"a.b.c": 1}),
            check=must_refuse("a.b.c names no one table")),
        Case("fault truncate a.b.c quoted as \"a\".\"b.c\"", "fault", dict(
            db=dots, fault="truncate", table='"a"."b.c"', confirm=dots),
            effect=lambda expected: expected.set_rows(dots, "a", "b.c", 0)),
        Case("restore replace db whose a.b.c is two tables", "restore", dict(
            db=dots, repository=repo, mode="replace", confirm=dots),
            effect=lambda expected: expected.reset_db(dots), check=rows_now(dots, "a", "b.c", 2)),
    ]
    return cases


# -- the test -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(server):
    """The hostile databases, role and decoy, made once."""
    every = list(DATABASES.values()) + list(PATH_NAMES.values()) + [DECOY, NEW_DB, SAMPLE_DB, DOTS]
    for db in every:
        server.drop_db(db.replace('"', '""'))
    with server.connect() as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(ROLE)))
        for db in DATABASES.values():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(ROLE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DECOY)))
        for db in PATH_NAMES.values():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DOTS)))
    for db in DATABASES.values():
        with server.connect(db) as conn:
            for statement in content_sql(db):
                conn.execute(statement)
    server.sql(DOTS, 'CREATE SCHEMA a; CREATE SCHEMA "a.b"; '
               'CREATE TABLE a."b.c" (i int); CREATE TABLE "a.b".c (i int); '
               'INSERT INTO a."b.c" VALUES (1), (2); INSERT INTO "a.b".c SELECT generate_series(1, 5)')
    for db in PATH_NAMES.values():
        server.sql(db, "CREATE TABLE kept (i int); INSERT INTO kept VALUES (1)")
    server.sql(DECOY, "CREATE TABLE decoy_only (i int); INSERT INTO decoy_only SELECT generate_series(1, 11)")
    yield
    for db in every:
        server.drop_db(db.replace('"', '""'))
    server.sql("postgres", sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


def one_line(result):
    msg = str(result.get("msg", ""))
    # ansible records exception '(traceback unavailable)' for every fail_json; an exception that escaped
    # a module is "Module failed: ..." (ansible-core 2.19) or a traceback.
    return (msg and "\n" not in msg and "Traceback" not in msg and "Module failed" not in msg
            and "Traceback" not in str(result.get("exception", "")))


@embedded_only
def test_hostile_names_everywhere(server, ansible, hostile, tmp_path):
    repo = str(ansible.repository)
    before = snapshot(server)
    seed_file = tmp_path / "001_made.sql"
    made = q(SEED_SCHEMA, "made")
    seed_file.write_text("CREATE SCHEMA IF NOT EXISTS %s;\nCREATE TABLE %s (i int);\nINSERT INTO %s VALUES (1);\n"
                         % (q(SEED_SCHEMA), made, made))
    cases = build_cases(before, repo, str(seed_file))
    tasks = [{"name": "%03d %s" % (i, case.label), "lifeboat.db.%s" % case.module: case.args, "ignore_errors": True}
             for i, case in enumerate(cases)]
    play = ansible.play(tasks)
    results = dict(play.tasks)
    after = snapshot(server)

    expected = Expected(before)
    table, problems = [], []
    for i, case in enumerate(cases):
        name = "%03d %s" % (i, case.label)
        result = results.get(name)
        if result is None:
            problems.append("%s: did not run (rc=%s) %s" % (name, play.rc, play.stdout[-2000:]))
            continue
        if result["failed"]:
            outcome = "refused: %s" % result.get("msg")
            if not one_line(result):
                problems.append("%s: not a one-line refusal: %s" % (name, str(result)[:1500]))
            elif case.refusal(result["msg"]):
                outcome = "refused about something else: %s (%s)" % (case.refusal(result["msg"]), result["msg"])
                problems.append("%s: %s" % (name, outcome))
        else:
            outcome = "works"
            case.effect(expected)
            try:
                case.check(result, server)
            except (AssertionError, KeyError, TypeError, pytest.fail.Exception) as exc:
                outcome = "works on something else: %s" % str(exc).splitlines()[0][:300]
                problems.append("%s: %s" % (name, outcome))
        table.append((case.module, case.label, outcome))

    report = tmp_path / "hostile-names.md"
    report.write_text("| module | case | returned |\n|---|---|---|\n" +
                      "".join("| %s | %s | %s |\n" % row for row in table))
    print("\n%d hostile cases\n%s" % (len(cases), report.read_text()))
    problems.extend(expected.differences(after))
    assert not problems, "\n".join(problems)
