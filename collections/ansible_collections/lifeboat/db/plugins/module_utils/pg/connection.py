# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module: one argument spec, one way to connect, one way
to hand the same options to the PostgreSQL client tools without putting the password in argv."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys
import tempfile

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

try:
    import psycopg
    from psycopg import sql
    PSYCOPG_IMPORT_ERROR = None
except ImportError as exc:  # reported by require_psycopg(), naming prepare.yml
    psycopg = None
    sql = None
    PSYCOPG_IMPORT_ERROR = exc


def connection_argument_spec():
    """Options documented by the lifeboat.db.connection doc fragment."""
    return dict(
        login_host=dict(type='str', aliases=['host']),
        port=dict(type='int', default=5432, aliases=['login_port']),
        login_user=dict(type='str', default='postgres', aliases=['login']),
        login_password=dict(type='str', no_log=True),
        login_unix_socket=dict(type='path'),
        db=dict(type='str', aliases=['login_db', 'database']),
        ssl_mode=dict(type='str', default='prefer',
                      choices=['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']),
        ca_cert=dict(type='path', aliases=['ssl_rootcert']),
        ssl_cert=dict(type='path'),
        ssl_key=dict(type='path', no_log=False),
        connect_timeout=dict(type='int', default=10),
        pg_bin_dir=dict(type='path'),
    )


def require_psycopg(module):
    if psycopg is None:
        module.fail_json(msg='psycopg 3 cannot be imported by %s on this host (%s); run playbooks/prepare.yml, which '
                             'installs it (python3-psycopg on Debian), or set ansible_python_interpreter to a Python '
                             'that has it' % (sys.executable, first_line(PSYCOPG_IMPORT_ERROR)))


class ConnectionOptions(object):
    """The connection options of one task, usable for psycopg and for client tools alike."""

    def __init__(self, params):
        self.host = params.get('login_unix_socket') or params.get('login_host')
        self.port = params.get('port')
        self.user = params.get('login_user')
        self.password = params.get('login_password')
        self.ssl_mode = params.get('ssl_mode')
        self.ca_cert = params.get('ca_cert')
        self.ssl_cert = params.get('ssl_cert')
        self.ssl_key = params.get('ssl_key')
        self.connect_timeout = params.get('connect_timeout')

    def describe(self, dbname=None):
        where = self.host or 'the local socket'
        return 'database %r on %s:%s as %r' % (dbname, where, self.port, self.user) if dbname else \
            '%s:%s as %r' % (where, self.port, self.user)

    def _libpq_settings(self):
        settings = dict(host=self.host, port=self.port, user=self.user, sslmode=self.ssl_mode,
                        sslrootcert=self.ca_cert, sslcert=self.ssl_cert, sslkey=self.ssl_key,
                        connect_timeout=self.connect_timeout)
        return dict((k, v) for k, v in settings.items() if v is not None)

    def connect(self, dbname, autocommit=True):
        """Open a psycopg connection; failures become one-line LifeboatErrors."""
        kwargs = self._libpq_settings()
        if self.password is not None:
            kwargs['password'] = self.password
        try:
            # psycopg quotes each keyword into one connection string that libpq parses once: a
            # name like 'x host=10.1.1.1' stays a name (never expanded as a connection string).
            return psycopg.connect(dbname=dbname, autocommit=autocommit, application_name='lifeboat', **kwargs)
        except psycopg.OperationalError as exc:
            raise LifeboatError(self.explain_failure(exc, dbname))

    def explain_failure(self, exc, dbname):
        detail = scrub(first_line(exc), self.password)
        hint = 'check login_host, port and that the server is running'
        lowered = detail.lower()
        if 'password authentication failed' in lowered or 'no password supplied' in lowered:
            hint = 'check login_user and login_password'
        elif 'role' in lowered and 'does not exist' in lowered:
            hint = 'check login_user'
        elif 'does not exist' in lowered and 'database' in lowered:
            hint = 'check the db option or create the database first'
        elif 'timeout' in lowered:
            hint = 'check the network path to the server or raise connect_timeout'
        return 'cannot connect to %s: %s; %s' % (self.describe(dbname), detail, hint)

    def tool_environment(self, dbname, passfile):
        """PG* variables for a client tool. The password travels in `passfile`, not in the env."""
        names = dict(host='PGHOST', port='PGPORT', user='PGUSER', sslmode='PGSSLMODE',
                     sslrootcert='PGSSLROOTCERT', sslcert='PGSSLCERT', sslkey='PGSSLKEY',
                     connect_timeout='PGCONNECT_TIMEOUT')
        env = dict((names[k], str(v)) for k, v in self._libpq_settings().items())
        env['PGDATABASE'] = dbname
        env['PGAPPNAME'] = 'lifeboat'
        # Blank out any PGPASSWORD inherited from the module's environment: only the passfile counts.
        env['PGPASSWORD'] = ''
        env['PGPASSFILE'] = passfile or os.devnull
        return env


class PassFile(object):
    """A temporary libpq passfile (0600) holding the task's password, removed on exit."""

    def __init__(self, options, directory=None):
        self.options = options
        self.directory = directory
        self.path = None

    def __enter__(self):
        if self.options.password is None:
            return None
        fd, self.path = tempfile.mkstemp(prefix='lifeboat-pass-', dir=self.directory)
        escaped = self.options.password.replace('\\', '\\\\').replace(':', '\\:')
        with os.fdopen(fd, 'w') as handle:
            handle.write('*:*:*:*:%s\n' % escaped)
        os.chmod(self.path, 0o600)
        return self.path

    def __exit__(self, *exc):
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)


def dbname_argument(dbname):
    """`--dbname=` for a client tool that needs one (pg_restore): the tools read a --dbname holding
    `=` or a URI as a connection string, so the name goes inside one, quoted, and stays a name."""
    return "--dbname=dbname='%s'" % dbname.replace('\\', '\\\\').replace("'", "\\'")


def first_line(exc):
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


def scrub(text, secret):
    if secret:
        text = text.replace(secret, '********')
    return text


def server_major(conn):
    return conn.info.server_version // 10000


def server_version_string(conn):
    number = conn.info.server_version
    return '%d.%d' % (number // 10000, number % 10000)


def database_exists(conn, dbname):
    return conn.execute('SELECT 1 FROM pg_database WHERE datname = %s', (dbname,)).fetchone() is not None
