# -*- coding: utf-8 -*-
"""Connection options: what reaches the client tools, the passfile, and error messages."""
import os
import stat

import psycopg
import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import (
    ConnectionOptions, PassFile, connection_argument_spec, first_line, scrub)

PASSWORD = 's3cr:et\\pa ss'


def options(**overrides):
    params = dict((name, spec.get('default')) for name, spec in connection_argument_spec().items())
    params.update(login_host='db1.example.com', login_password=PASSWORD)
    params.update(overrides)
    return ConnectionOptions(params)


def test_tool_environment_carries_options_but_never_the_password(tmp_path):
    opts = options(ssl_mode='verify-full', ca_cert='/etc/ca.pem', connect_timeout=7)
    env = opts.tool_environment('app', str(tmp_path / 'passfile'))
    assert env['PGHOST'] == 'db1.example.com'
    assert env['PGPORT'] == '5432'
    assert env['PGUSER'] == 'postgres'
    assert env['PGDATABASE'] == 'app'
    assert env['PGSSLMODE'] == 'verify-full'
    assert env['PGSSLROOTCERT'] == '/etc/ca.pem'
    assert env['PGCONNECT_TIMEOUT'] == '7'
    assert env['PGPASSFILE'] == str(tmp_path / 'passfile')
    assert env['PGPASSWORD'] == ''
    assert all(isinstance(value, str) for value in env.values())
    for name, value in env.items():
        assert PASSWORD not in value and 's3cr' not in value, name


def test_tool_environment_without_passfile_points_at_devnull():
    env = options(login_password=None).tool_environment('app', None)
    assert env['PGPASSFILE'] == os.devnull
    assert env['PGPASSWORD'] == ''
    assert 'PGSSLCERT' not in env  # unset options are left to libpq's defaults


def test_unix_socket_takes_precedence_over_host():
    env = options(login_unix_socket='/run/postgresql').tool_environment('app', None)
    assert env['PGHOST'] == '/run/postgresql'


def test_passfile_is_private_escaped_and_removed(tmp_path):
    with PassFile(options(), str(tmp_path)) as path:
        assert os.path.dirname(path) == str(tmp_path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as handle:
            content = handle.read()
    # libpq: ':' and '\' inside a field are escaped with '\'.
    assert content == '*:*:*:*:s3cr\\:et\\\\pa ss\n'
    assert not os.path.exists(path)
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('password, line', [
    ('plain', '*:*:*:*:plain\n'),
    (':', '*:*:*:*:\\:\n'),
    ('\\:', '*:*:*:*:\\\\\\:\n'),
    ('a\\\\b', '*:*:*:*:a\\\\\\\\b\n'),
])
def test_passfile_escaping(tmp_path, password, line):
    with PassFile(options(login_password=password), str(tmp_path)) as path:
        with open(path) as handle:
            assert handle.read() == line


def test_passfile_removed_when_the_tool_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with PassFile(options(), str(tmp_path)) as path:
            assert os.path.exists(path)
            raise RuntimeError('pg_dump failed')
    assert os.listdir(str(tmp_path)) == []


def test_no_password_no_passfile(tmp_path):
    with PassFile(options(login_password=None), str(tmp_path)) as path:
        assert path is None
    assert os.listdir(str(tmp_path)) == []


def test_explain_failure_scrubs_password_and_hints_at_credentials():
    opts = options(login_password='hunter2')
    exc = psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user '
                                   '"postgres" (tried hunter2)\nsecond line hunter2')
    message = opts.explain_failure(exc, 'app')
    assert 'hunter2' not in message
    assert '********' in message
    assert 'check login_user and login_password' in message
    assert "database 'app' on db1.example.com:5432 as 'postgres'" in message
    assert '\n' not in message


@pytest.mark.parametrize('error, hint', [
    ('fe_sendauth: no password supplied', 'check login_user and login_password'),
    ('FATAL:  database "app" does not exist', 'check the db option or create the database first'),
    ('timeout expired', 'raise connect_timeout'),
    ('Connection refused\n\tIs the server running on that host?', 'check login_host, port and that the server'),
])
def test_explain_failure_hints(error, hint):
    message = options().explain_failure(psycopg.OperationalError(error), 'app')
    assert message.endswith(hint) or hint in message
    assert '\n' not in message


def test_first_line_and_scrub():
    assert first_line(ValueError('\n  first  \nsecond')) == 'first'
    assert first_line(ValueError('')) == 'ValueError'
    assert scrub('a secret here', 'secret') == 'a ******** here'
    assert scrub('nothing', None) == 'nothing'
    assert scrub('nothing', '') == 'nothing'


def test_connection_argument_spec():
    spec = connection_argument_spec()
    assert spec['login_password']['no_log'] is True
    assert 'default' not in spec['login_password']
    assert spec['ssl_key']['no_log'] is False  # a path, not a secret; set explicitly for validate-modules
    assert spec['port'] == dict(type='int', default=5432, aliases=['login_port'])
    assert 'verify-full' in spec['ssl_mode']['choices'] and spec['ssl_mode']['default'] == 'prefer'
    # A fresh dict each call: modules update it without affecting each other.
    spec['db']['required'] = True
    assert 'required' not in connection_argument_spec()['db']


@pytest.mark.parametrize('name', ["x host=10.1.1.1 port=1", "dbname=postgres", "it's \\ \"q\"; x", "postgresql://h/x",
                                  "naïve ünïcödé", "x' host='10.1.1.1"])
def test_a_database_name_reaches_libpq_as_a_name_only(name):
    """pg_restore's --dbname and psycopg's keywords: libpq parses either once, into exactly this
    name and no other option (no host, no port from inside the name)."""
    from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import dbname_argument
    argument = dbname_argument(name)
    assert argument.startswith('--dbname=')
    assert psycopg.conninfo.conninfo_to_dict(argument[len('--dbname='):]) == {'dbname': name}
    # What ConnectionOptions.connect hands libpq (psycopg quotes keyword values the same way).
    conninfo = psycopg.conninfo.make_conninfo('', dbname=name, host='db1.example.com', port=5432)
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {'dbname': name, 'host': 'db1.example.com', 'port': '5432'}
