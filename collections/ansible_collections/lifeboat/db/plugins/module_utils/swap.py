# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swapping a restored staging database in for the live one, in one short step.

The live database stays untouched and serving while its replacement is restored and checked
under a staging name. Then new connections to it are refused, the remaining sessions get
`grace_seconds` and are ended, and in ONE transaction the live database is renamed to a dated
`<db>_prev_<time>` name, staging takes the live name, and what belongs to the database rather
than to its contents (owner, grants, `ALTER DATABASE ... SET` settings, connection limit, comment)
is carried over. RENAME is transactional, so a failure in that step leaves the names as they were.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import os
import time

from ansible_collections.lifeboat.db.plugins.module_utils.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError

STAGING_MARK = '_lbstage_'
PREVIOUS_MARK = '_prev_'
NAMEDATALEN = 63


def _bounded(base, suffix):
    """`base + suffix`, with `base` cut so the name fits PostgreSQL's 63 bytes."""
    room = NAMEDATALEN - len(suffix.encode('utf-8'))
    encoded = base.encode('utf-8')[:room]
    return encoded.decode('utf-8', 'ignore') + suffix


def staging_name(live):
    return _bounded(live, STAGING_MARK + binascii.hexlify(os.urandom(3)).decode())


def previous_name(live, moment):
    return _bounded(live, PREVIOUS_MARK + moment.strftime('%Y%m%d%H%M%S'))


def lock_target(conn, live):
    """One restore per target database at a time (a session advisory lock, released with the
    connection, so a killed run never leaves it held)."""
    got = conn.execute("SELECT pg_try_advisory_lock(hashtext('lifeboat restore ' || %s))", (live,)).fetchone()[0]
    if not got:
        raise LifeboatError('another restore of database %r is running; wait for it to finish' % live)


def remove_stale_staging(conn, live):
    """Staging databases a killed run left behind (safe: the advisory lock says no run is on it)."""
    prefix = _bounded(live, STAGING_MARK)
    names = [row[0] for row in conn.execute(
        "SELECT datname FROM pg_database WHERE left(datname, %s) = %s AND length(datname) = %s",
        (len(prefix), prefix, len(prefix) + 6)).fetchall()]
    for name in names:
        conn.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))
    return names


def previous_databases(conn, live):
    prefix = _bounded(live, PREVIOUS_MARK)
    rows = conn.execute("SELECT datname FROM pg_database WHERE left(datname, %s) = %s ORDER BY datname DESC",
                        (len(prefix), prefix)).fetchall()
    return [row[0] for row in rows]


def drop_previous(conn, live, keep):
    """Drop the oldest `<live>_prev_*` databases beyond `keep`; returns their names."""
    doomed = previous_databases(conn, live)[keep:]
    for name in doomed:
        conn.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))
    return doomed


class DatabaseTraits(object):
    """What belongs to a database rather than to its contents, read from the catalog."""

    def __init__(self, conn, name):
        row = conn.execute(
            "SELECT d.oid, pg_get_userbyid(d.datdba), d.datacl IS NULL, d.datconnlimit, "
            "shobj_description(d.oid, 'pg_database') FROM pg_database d WHERE d.datname = %s", (name,)).fetchone()
        if row is None:
            raise LifeboatError('database %r does not exist' % name)
        oid, self.owner, self.default_acl, self.connlimit, self.comment = row
        self.grants = [] if self.default_acl else conn.execute(
            "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, "
            "a.is_grantable FROM pg_database d, aclexplode(d.datacl) a WHERE d.oid = %s "
            "AND a.grantee <> d.datdba ORDER BY 1, 2", (oid,)).fetchall()
        self.settings = conn.execute(
            "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, "
            "split_part(c, '=', 1), substr(c, strpos(c, '=') + 1) "
            "FROM pg_db_role_setting s, unnest(s.setconfig) c WHERE s.setdatabase = %s ORDER BY 1, 2", (oid,)).fetchall()

    def apply(self, conn, name):
        """Give database `name` these traits (inside the caller's transaction)."""
        target = sql.Identifier(name)
        conn.execute(sql.SQL('ALTER DATABASE {} OWNER TO {}').format(target, sql.Identifier(self.owner)))
        conn.execute(sql.SQL('ALTER DATABASE {} CONNECTION LIMIT {}').format(target, sql.Literal(self.connlimit)))
        if not self.default_acl:
            conn.execute(sql.SQL('REVOKE ALL ON DATABASE {} FROM PUBLIC').format(target))
            for grantee, privilege, grantable in self.grants:
                conn.execute(sql.SQL('GRANT {} ON DATABASE {} TO {}{}').format(
                    sql.SQL(privilege), target, sql.Identifier(grantee) if grantee else sql.SQL('PUBLIC'),
                    sql.SQL(' WITH GRANT OPTION') if grantable else sql.SQL('')))
        for role, setting, value in self.settings:
            if role:
                statement = sql.SQL('ALTER ROLE {} IN DATABASE {} SET {} = {}').format(
                    sql.Identifier(role), target, sql.Identifier(setting), sql.Literal(value))
            else:
                statement = sql.SQL('ALTER DATABASE {} SET {} = {}').format(
                    target, sql.Identifier(setting), sql.Literal(value))
            conn.execute(statement)
        conn.execute(sql.SQL('COMMENT ON DATABASE {} IS {}').format(target, sql.Literal(self.comment)))


def sessions(conn, name):
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                        (name,)).fetchone()[0]


def swap_in(conn, live, staging, previous, grace_seconds):
    """Swap `staging` in for `live`, keeping the old one as `previous`. Returns the facts of the
    step, with `window_seconds`: how long `live` refused connections."""
    traits = DatabaseTraits(conn, live)
    started = time.monotonic()
    conn.execute(sql.SQL('ALTER DATABASE {} WITH ALLOW_CONNECTIONS false').format(sql.Identifier(live)))
    terminated = 0
    try:
        deadline = started + grace_seconds
        while sessions(conn, live) and time.monotonic() < deadline:
            time.sleep(0.05)
        terminated = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = %s AND pid <> pg_backend_pid()", (live,)).fetchone()[0]
        deadline = time.monotonic() + 10
        while sessions(conn, live):
            if time.monotonic() > deadline:
                raise LifeboatError('sessions on database %r did not end within 10 s of being terminated' % live)
            time.sleep(0.02)
        with conn.transaction():
            conn.execute(sql.SQL('ALTER DATABASE {} RENAME TO {}').format(sql.Identifier(live),
                                                                         sql.Identifier(previous)))
            conn.execute(sql.SQL('ALTER DATABASE {} RENAME TO {}').format(sql.Identifier(staging),
                                                                         sql.Identifier(live)))
            traits.apply(conn, live)
    except BaseException:
        # Nothing was renamed (the transaction rolled back): let clients in again as before.
        conn.execute(sql.SQL('ALTER DATABASE {} WITH ALLOW_CONNECTIONS true').format(sql.Identifier(live)))
        raise
    window = time.monotonic() - started
    # The previous database may be opened for inspection; applications connect by name.
    conn.execute(sql.SQL('ALTER DATABASE {} WITH ALLOW_CONNECTIONS true').format(sql.Identifier(previous)))
    return dict(window_seconds=round(window, 3), previous_db=previous, sessions_terminated=terminated,
                grace_seconds=grace_seconds)
