# -*- coding: utf-8 -*-
"""Plain SQL scripts split into statements (parse), classified, and read from files (read_script)."""
from pathlib import Path

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sql_script import Statement, parse, read_script

PAGILA = Path(__file__).resolve().parents[2] / 'fixtures' / 'pagila'


def split(text):
    """(line, text) of each statement, the shape most tests compare."""
    return [(s.line, s.text) for s in parse(text, 'test.sql')]


def one(text):
    statements = parse(text, 'test.sql')
    assert len(statements) == 1, statements
    return statements[0]


def parse_error(text):
    with pytest.raises(LifeboatError) as info:
        parse(text, 'test.sql')
    assert '\n' not in info.value.msg
    return info.value.msg


# --- splitting ---------------------------------------------------------------------------------

def test_plain_statements_with_line_numbers():
    text = 'SELECT 1;\nSELECT 2; SELECT 3;\n\n\nCREATE TABLE t (\n  id int\n);\n'
    assert split(text) == [(1, 'SELECT 1'), (2, 'SELECT 2'), (2, 'SELECT 3'),
                           (5, 'CREATE TABLE t (\n  id int\n)')]


def test_comments_before_a_statement_are_not_part_of_it_and_comments_inside_are_kept():
    text = ('-- header; not a statement\n'
            '/* block; /* nested; */ still comment; */\n'
            'SELECT 1 -- inside; kept\n'
            '  /* also; /* nested */ kept */ + 2;\n'
            'SELECT 3;\n')
    assert split(text) == [(3, 'SELECT 1 -- inside; kept\n  /* also; /* nested */ kept */ + 2'),
                           (5, 'SELECT 3')]


def test_strings_with_doubled_and_backslash_escaped_quotes_hide_semicolons():
    text = ("INSERT INTO t VALUES ('it''s; fine');\n"
            "INSERT INTO t VALUES (E'it\\'s; fine', e'\\\\');\n"
            "SELECT U&'d\\0061t; a';\n"
            "SELECT 'a\\';\n")  # a plain string: the backslash escapes nothing
    assert split(text) == [(1, "INSERT INTO t VALUES ('it''s; fine')"),
                           (2, "INSERT INTO t VALUES (E'it\\'s; fine', e'\\\\')"),
                           (3, "SELECT U&'d\\0061t; a'"),
                           (4, "SELECT 'a\\'")]


def test_quoted_identifiers_hide_semicolons():
    assert split('CREATE TABLE "we;ird ""name""" (id int);\nSELECT 1;') == [
        (1, 'CREATE TABLE "we;ird ""name""" (id int)'), (2, 'SELECT 1')]


def test_dollar_quoted_bodies_with_semicolons_and_nested_tags():
    text = ('CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT 2; $$;\n'
            'CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $fn$\n'
            'BEGIN\n'
            "  EXECUTE $x$ SELECT ';'; $x$;\n"
            '  PERFORM $$ nested; $$;\n'
            'END;\n'
            '$fn$;\n'
            'SELECT 3;\n')
    statements = split(text)
    assert [line for line, _ in statements] == [1, 2, 8]
    assert statements[1][1].endswith('END;\n$fn$')


def test_parameters_and_dollars_inside_identifiers_do_not_start_quotes():
    text = ('PREPARE q(int, int) AS SELECT $1 + $2;\n'
            'SELECT a$b$ FROM t;\n'
            'SELECT 4;\n')
    assert split(text) == [(1, 'PREPARE q(int, int) AS SELECT $1 + $2'), (2, 'SELECT a$b$ FROM t'),
                           (3, 'SELECT 4')]


def test_do_block():
    text = ("DO $$\nBEGIN\n  RAISE NOTICE 'x;';\nEND\n$$;\nSELECT 1;\n")
    assert split(text) == [(1, "DO $$\nBEGIN\n  RAISE NOTICE 'x;';\nEND\n$$"), (6, 'SELECT 1')]


def test_begin_atomic_body_with_case_keeps_its_semicolons():
    body = ('CREATE OR REPLACE FUNCTION grade(n int) RETURNS text LANGUAGE sql\n'
            'BEGIN ATOMIC\n'
            '  INSERT INTO calls VALUES (n);\n'
            '  SELECT CASE WHEN n > 5 THEN \'high\' ELSE \'low\' END;\n'
            'END')
    procedure = 'CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; SELECT 2; END'
    statements = parse(body + ';\n' + procedure + ';\nSELECT 9;\n', 'test.sql')
    assert [(s.line, s.text) for s in statements] == [(1, body), (6, procedure), (7, 'SELECT 9')]
    assert [s.control for s in statements] == [None, None, None]


def test_copy_from_stdin_data_and_the_lines_after_it():
    text = ('SET x = 1;\n'
            'COPY public.t (id, note) FROM stdin;\n'
            '1\thas; semicolon\n'
            '2\t\\N\n'
            '\\.\n'
            'copy t2 from STDIN with (format csv);\n'
            'a,b\n'
            '\\. \r\n'
            '\n'
            'SELECT 1;\n')
    statements = parse(text, 'test.sql')
    assert [(s.line, s.text) for s in statements] == [
        (1, 'SET x = 1'), (2, 'COPY public.t (id, note) FROM stdin'),
        (6, 'copy t2 from STDIN with (format csv)'), (10, 'SELECT 1')]
    assert statements[1].copy_data == '1\thas; semicolon\n2\t\\N\n'
    assert statements[2].copy_data == 'a,b\n'
    assert statements[0].copy_data is None and statements[3].copy_data is None


def test_copy_with_no_rows_and_copy_to_stdout():
    statements = parse('COPY t FROM stdin;\n\\.\nCOPY t TO stdout;\n', 'test.sql')
    assert [s.copy_data for s in statements] == ['', None]


def test_restrict_and_unrestrict_lines_are_skipped():
    text = '\\restrict abc123\nSELECT 1;\n  \\unrestrict abc123\n'
    assert split(text) == [(2, 'SELECT 1')]


def test_other_meta_commands_are_refused_naming_the_line():
    msg = parse_error('SELECT 1;\n\n\\connect other\nSELECT 2;\n')
    assert msg == ('test.sql line 3: psql meta-command \\connect is not SQL and lifeboat does not run psql; '
                   'remove the line (or apply the file with psql)')


def test_a_backslash_inside_a_statement_is_left_to_the_server():
    assert split("SELECT 1\n\\gset\n") == [(1, 'SELECT 1\n\\gset')]


@pytest.mark.parametrize('text, line, words', [
    ("SELECT 1;\nSELECT 'abc;\n", 2, "unterminated quoted string '"),
    ("SELECT 1;\nSELECT E'ab\\';\n", 2, "unterminated quoted string '"),
    ('SELECT 1;\nSELECT "abc;\n', 2, 'unterminated quoted identifier "'),
    ('SELECT 1;\nDO $body$ BEGIN NULL; END $$;\n', 2,
     'unterminated dollar-quoted string $body$ that starts here; close it with $body$'),
    ('SELECT 1;\n\n/* a /* b */ c;\n', 3, 'unterminated block comment /*'),
    ('SELECT 1 /* a;\nSELECT 2;\n', 1, 'unterminated block comment /*'),
])
def test_unterminated_quotes_and_comments(text, line, words):
    msg = parse_error(text)
    assert msg.startswith('test.sql line %d: ' % line)
    assert words in msg


def test_copy_without_terminator():
    msg = parse_error('SELECT 1;\nCOPY t FROM stdin;\n1\tx\n')
    assert msg.startswith('test.sql line 2: ') and 'no terminating \\. line' in msg
    assert 'no terminating' in parse_error('COPY t FROM stdin;')


def test_final_statement_without_semicolon_and_empty_statements():
    assert split(';;\nSELECT 1;;\n;\nSELECT 2\n  \n') == [(2, 'SELECT 1'), (4, 'SELECT 2')]
    assert split('-- only a comment\n;\n') == []


# --- classification ----------------------------------------------------------------------------

@pytest.mark.parametrize('text, control', [
    ('BEGIN', 'begin'),
    ('begin work', 'begin'),
    ('BEGIN ISOLATION LEVEL SERIALIZABLE', 'begin'),
    ('BEGIN TRANSACTION READ ONLY', 'begin'),
    ('START TRANSACTION', 'begin'),
    ('start transaction isolation level repeatable read', 'begin'),
    ('COMMIT', 'commit'),
    ('END', 'commit'),
    ('commit  -- done\n work', 'commit'),
    ('COMMIT AND CHAIN', 'commit'),
    ('ROLLBACK', 'rollback'),
    ('ABORT', 'rollback'),
    ('ROLLBACK TRANSACTION', 'rollback'),
    ('SAVEPOINT s', None),
    ('RELEASE SAVEPOINT s', None),
    ('ROLLBACK TO SAVEPOINT s', None),
    ('ROLLBACK TO s', None),
    ("PREPARE TRANSACTION 'x'", None),
    ("COMMIT PREPARED 'x'", None),
    ('SELECT 1', None),
])
def test_transaction_control(text, control):
    assert one(text + ';').control == control


@pytest.mark.parametrize('text', [
    'CREATE DATABASE x',
    'drop database if exists x',
    "CREATE TABLESPACE ts LOCATION '/x'",
    'DROP TABLESPACE ts',
    "CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p",
    'DROP SUBSCRIPTION s',
    "ALTER SYSTEM SET work_mem = '64MB'",
    'CREATE INDEX CONCURRENTLY i ON t (a)',
    'create unique index\n  concurrently i on t (a)',
    'DROP INDEX CONCURRENTLY i',
    'DROP INDEX CONCURRENTLY IF EXISTS i',
    'REINDEX INDEX CONCURRENTLY i',
    'REINDEX (VERBOSE) TABLE CONCURRENTLY t',
    'REINDEX SCHEMA public',
    'REINDEX (VERBOSE) DATABASE x',
    'REINDEX VERBOSE SYSTEM x',
    'VACUUM',
    'VACUUM (ANALYZE) t',
    'DISCARD ALL',
    'ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY',
    'CLUSTER',
    '/* leading; */ -- comment\n VACUUM',
])
def test_statements_refused_in_a_transaction_block(text):
    assert one(text + ';').transactional is False


@pytest.mark.parametrize('text', [
    'CREATE INDEX i ON t (a)',
    'CREATE INDEX concurrently_named ON t (a)',
    'DROP INDEX i',
    "ALTER TYPE mood ADD VALUE 'meh'",
    'REINDEX TABLE t',
    'CLUSTER t USING i',
    'ALTER TABLE p DETACH PARTITION p1',
    'DISCARD PLANS',
    'SELECT 1 -- VACUUM',
    'CREATE TABLE database (id int)',
])
def test_statements_allowed_in_a_transaction_block(text):
    assert one(text + ';').transactional is True


def test_realistic_pg_dump_18_schema_only_output():
    statements = parse(PG_DUMP_18, 'dump.sql')
    assert [' '.join(s.text.split()[:2]) for s in statements] == [
        'SET statement_timeout', 'SET lock_timeout', 'SET idle_in_transaction_session_timeout',
        'SET transaction_timeout', 'SET client_encoding', 'SET standard_conforming_strings',
        "SELECT pg_catalog.set_config('search_path',", 'SET check_function_bodies', 'SET xmloption',
        'SET client_min_messages', 'SET row_security',
        'CREATE FUNCTION', 'SET default_tablespace', 'SET default_table_access_method',
        'CREATE TABLE', 'COMMENT ON', 'CREATE SEQUENCE', 'ALTER SEQUENCE', 'CREATE VIEW',
        'ALTER TABLE', 'ALTER TABLE', 'CREATE TRIGGER']
    function = statements[11]
    assert function.line == 26 and function.text.endswith('END;\n$$')
    assert all(s.transactional and s.control is None and s.copy_data is None for s in statements)


@pytest.mark.skipif(not (PAGILA / 'pagila-schema.sql').exists(), reason='pagila fixture not present')
def test_pagila_schema_and_data_parse():
    schema = parse(read_script(str(PAGILA / 'pagila-schema.sql')), 'pagila-schema.sql')
    assert len(schema) > 100
    assert sum(s.text.startswith('CREATE FUNCTION') for s in schema) >= 5
    data = parse(read_script(str(PAGILA / 'data.sql')), 'data.sql')
    assert len(data) > 10
    assert all(s.text.split()[0] in ('SET', 'INSERT', 'SELECT', 'REFRESH', 'UPDATE', 'ANALYZE') for s in data)


# --- read_script and summary -------------------------------------------------------------------

def test_read_script_strips_bom_and_normalises_line_ends(tmp_path):
    path = tmp_path / 'x.sql'
    path.write_bytes(b'\xef\xbb\xbfSELECT 1;\r\nSELECT \'\xc3\xa9\';\rSELECT 3;\n')
    text = read_script(str(path))
    assert text == u"SELECT 1;\nSELECT '\u00e9';\nSELECT 3;\n"
    assert split(text)[2] == (3, 'SELECT 3')


def test_read_script_missing_file(tmp_path):
    path = str(tmp_path / 'missing.sql')
    with pytest.raises(LifeboatError) as info:
        read_script(path)
    assert path in info.value.msg and 'No such file' in info.value.msg and '\n' not in info.value.msg


def test_read_script_invalid_utf8(tmp_path):
    path = tmp_path / 'latin1.sql'
    path.write_bytes(b"SELECT 1;\nSELECT 'caf\xe9';\n")
    with pytest.raises(LifeboatError) as info:
        read_script(str(path))
    assert str(path) in info.value.msg and 'line 2' in info.value.msg and 'UTF-8' in info.value.msg


def test_summary_collapses_whitespace_keeps_comments_and_cuts():
    statement = Statement('SELECT 1,\n\t  2 /* two */\n  FROM t', 1)
    assert statement.summary() == 'SELECT 1, 2 /* two */ FROM t'
    assert statement.summary(9) == 'SELECT 1,...'
    assert statement.summary(28) == 'SELECT 1, 2 /* two */ FROM t'


PG_DUMP_18 = r"""--
-- PostgreSQL database dump
--

\restrict kZ1zEiBxQyq9aXbq8FgmuvtqpQq0NeTDKf4V0ndp0PnZJbWcFNMBvGj9yJrTgW3

-- Dumped from database version 18.0
-- Dumped by pg_dump version 18.0

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: touch_updated(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.touch_updated() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated := now();
    RETURN NEW;
END;
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: customer; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.customer (
    id integer NOT NULL,
    name text NOT NULL,
    updated timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: TABLE customer; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.customer IS 'People who buy; or rent.';


--
-- Name: customer_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.customer_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: customer_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.customer_id_seq OWNED BY public.customer.id;


--
-- Name: customer_names; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.customer_names AS
 SELECT id,
    name
   FROM public.customer;


--
-- Name: customer id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.customer ALTER COLUMN id SET DEFAULT nextval('public.customer_id_seq'::regclass);


--
-- Name: customer customer_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.customer
    ADD CONSTRAINT customer_pkey PRIMARY KEY (id);


--
-- Name: customer customer_touch; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER customer_touch BEFORE UPDATE ON public.customer FOR EACH ROW EXECUTE FUNCTION public.touch_updated();


--
-- PostgreSQL database dump complete
--

\unrestrict kZ1zEiBxQyq9aXbq8FgmuvtqpQq0NeTDKf4V0ndp0PnZJbWcFNMBvGj9yJrTgW3

"""
