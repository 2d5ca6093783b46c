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

A staging or previous database is marked with a comment naming its live database (`lifeboat
staging of <db>`, `lifeboat previous of <db>`), and lifeboat drops only databases whose name has
the derived shape AND whose comment is exactly that mark: never a database someone else named
alike, never another target's copy. A long name is cut to fit 63 bytes with a hash of the whole
name, so two names sharing a prefix never derive the same names.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import hashlib
import os
import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import MAX_NAME_BYTES
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

STAGING_MARK = '_lbstage_'
PREVIOUS_MARK = '_prev_'
PROBE_MARK = '_lbprobe_'
NAMEDATALEN = MAX_NAME_BYTES
# What follows a derived name's stem: the mark and 6 random hex digits, or the mark and a UTC time.
STAGING_TAIL = len(STAGING_MARK) + 6
PREVIOUS_TAIL = len(PREVIOUS_MARK) + 14
PROBE_TAIL = len(PROBE_MARK) + 6


def stem(live, tail):
    """The start of a name derived from `live` that is followed by `tail` bytes: `live` itself when
    it fits PostgreSQL's 63 bytes, else its start cut to fit and a hash of the WHOLE name, so two
    long names sharing a prefix never share a stem."""
    encoded = live.encode('utf-8')
    if len(encoded) + tail <= NAMEDATALEN:
        return live
    digest = hashlib.sha256(encoded).hexdigest()[:8]
    return '%s_%s' % (encoded[:NAMEDATALEN - tail - 9].decode('utf-8', 'ignore'), digest)


def _random():
    return binascii.hexlify(os.urandom(3)).decode()


def staging_name(live):
    return stem(live, STAGING_TAIL) + STAGING_MARK + _random()


def probe_name(live):
    return stem(live, PROBE_TAIL) + PROBE_MARK + _random()


def previous_name(live, moment):
    return stem(live, PREVIOUS_TAIL) + PREVIOUS_MARK + moment.strftime('%Y%m%d%H%M%S')


def marker(role, live):
    """The comment lifeboat writes on a database it derives from `live` (its staging or previous
    copy): the proof, compared exactly, that the database is lifeboat's and this target's."""
    return 'lifeboat %s of %s' % (role, live)


def mark(conn, name, role, live):
    conn.execute(sql.SQL('COMMENT ON DATABASE {} IS {}').format(sql.Identifier(name), sql.Literal(marker(role, live))))


def _derived(conn, live, role, mark_, tail_pattern, tail):
    """Databases named as `role` copies of `live` AND carrying its marker; a name alone proves
    nothing (someone else's database, or another target's copy cut to the same bytes)."""
    shape = re.compile(re.escape(stem(live, tail) + mark_) + tail_pattern + r'\Z')
    rows = conn.execute("SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') = %s",
                        (marker(role, live),)).fetchall()
    return [row[0] for row in rows if shape.match(row[0])]


# Restores and backups of one database meet at one session advisory lock per target: a restore
# holds it (lock_target), a backup takes it shared (backup._restore_guard). Advisory locks belong to
# one database, so both always take it in TARGET_LOCK_DB, whatever database they work in.
TARGET_LOCK_DB = 'postgres'


def try_target_lock(conn, live, shared=False):
    """Take the per-target lock of database `live` on `conn` if it is free; True when taken."""
    function = 'pg_try_advisory_lock_shared' if shared else 'pg_try_advisory_lock'
    return conn.execute("SELECT %s(hashtext('lifeboat restore ' || %%s))" % function, (live,)).fetchone()[0]


def lock_target(conn, live):
    """One restore per target database at a time, and no backup of it while it is restored
    (released with the connection, so a killed run never leaves it held)."""
    if not try_target_lock(conn, live):
        raise LifeboatError('a restore or a backup of database %r is running; wait for it to finish and run again; '
                            'nothing was changed' % live)


def remove_stale_staging(conn, live):
    """Staging databases of `live` a killed run left behind (safe: the advisory lock says no run
    is on it)."""
    names = _derived(conn, live, 'staging', STAGING_MARK, '[0-9a-f]{6}', STAGING_TAIL)
    for name in names:
        conn.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))
    return names


def previous_databases(conn, live):
    return sorted(_derived(conn, live, 'previous', PREVIOUS_MARK, '[0-9]{14}', PREVIOUS_TAIL), reverse=True)


def drop_previous(conn, live, keep):
    """Drop the oldest previous databases of `live` beyond `keep`; returns their names."""
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
            mark(conn, previous, 'previous', live)
    except BaseException:
        # Nothing was renamed (the transaction rolled back): let clients in again as before.
        conn.execute(sql.SQL('ALTER DATABASE {} WITH ALLOW_CONNECTIONS true').format(sql.Identifier(live)))
        raise
    window = time.monotonic() - started
    # The previous database may be opened for inspection; applications connect by name.
    conn.execute(sql.SQL('ALTER DATABASE {} WITH ALLOW_CONNECTIONS true').format(sql.Identifier(previous)))
    return dict(window_seconds=round(window, 3), previous_db=previous, sessions_terminated=terminated,
                grace_seconds=grace_seconds)
