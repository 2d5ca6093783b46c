# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opening a SQLite database file the way each action needs it, and what it says about itself.

The live file is read through a `mode=ro` URI (SQLite itself refuses any write), written only by
execute and restore; a copy lifeboat made is opened `immutable=1`, so reading it never creates a
-wal or -shm beside it nor changes a byte (its sha256 stays what the manifest says).
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sqlite3
import stat

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    from urllib import quote

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

# The files SQLite keeps beside a database: its write-ahead log, the log's shared memory index,
# and the rollback journal. A process holding any of them holds the database.
COMPANIONS = ('-wal', '-shm', '-journal')
# What a SQLite file starts with (the first 16 bytes of its header).
MAGIC = b'SQLite format 3\x00'


def live_file(path, may_be_missing=False):
    """The absolute path of the live database, after refusing what lifeboat must not open: a
    symbolic link (name the real file), a directory or special file, a file that is missing
    (unless `may_be_missing`, for a restore onto a new host)."""
    path = os.path.abspath(path)
    try:
        facts = os.lstat(path)
    except OSError:
        if may_be_missing and os.path.isdir(os.path.dirname(path)):
            return path
        raise LifeboatError('database file %s does not exist; name the live SQLite file (its folder must exist '
                            'for a restore)' % path)
    if stat.S_ISLNK(facts.st_mode):
        raise LifeboatError('%s is a symbolic link; lifeboat never reads or replaces a database through a link: '
                            'name the real file (%s)' % (path, os.path.realpath(path)))
    if stat.S_ISDIR(facts.st_mode):
        raise LifeboatError('%s is a directory; path must name the SQLite database file itself' % path)
    if not stat.S_ISREG(facts.st_mode):
        raise LifeboatError('%s is not a regular file; path must name a SQLite database file' % path)
    return path


def file_uri(path, **flags):
    return 'file:%s?%s' % (quote(path), '&'.join('%s=%s' % item for item in sorted(flags.items())))


def open_live(path, busy_timeout, read_only=True):
    """A connection to the live file: read-only by URI (no write can happen through it), or
    read-write for execute and restore; in autocommit mode, so transactions are explicit."""
    flags = dict(mode='ro') if read_only else dict(mode='rw')
    return _connect(path, file_uri(path, **flags), busy_timeout)


def open_copy(path):
    """A copy lifeboat made (a set's file, a restore's temporary file): nothing else writes it."""
    return _connect(path, file_uri(path, mode='ro', immutable=1), 0)


def _connect(path, uri, busy_timeout):
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise LifeboatError('cannot open %s as a SQLite database: %s' % (path, exc))
    return conn


def quote_name(name):
    return '"%s"' % name.replace('"', '""')


def tables(conn):
    """The user's tables (not SQLite's own, not virtual tables, whose storage is their shadow tables)."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                        "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name").fetchall()
    return [row[0] for row in rows]


def row_counts(conn):
    """{table: rows} of every user table, read in the connection's current transaction."""
    return dict((name, conn.execute('SELECT count(*) FROM %s' % quote_name(name)).fetchone()[0])
                for name in tables(conn))


def facts(conn):
    """What a manifest records of a database besides its rows."""
    def pragma(name):
        return conn.execute('PRAGMA %s' % name).fetchone()[0]
    return dict(page_size=pragma('page_size'), page_count=pragma('page_count'), journal_mode=pragma('journal_mode'),
                user_version=pragma('user_version'), application_id=pragma('application_id'),
                freelist_count=pragma('freelist_count'), encoding=pragma('encoding'),
                sqlite_version=sqlite3.sqlite_version)


def integrity_problems(conn, full=True, limit=20):
    """The problems `PRAGMA integrity_check` (or quick_check) reports, [] for a sound file."""
    pragma = 'integrity_check' if full else 'quick_check'
    rows = [row[0] for row in conn.execute('PRAGMA %s(%d)' % (pragma, limit)).fetchall()]
    return [] if rows == ['ok'] else rows


def looks_like_sqlite(path):
    """Whether the file starts with SQLite's header (an empty file is a new, empty database)."""
    with open(path, 'rb') as handle:
        head = handle.read(len(MAGIC))
    return head == MAGIC or head == b''


def is_busy(exc):
    """Whether a sqlite3 error says another connection held a lock past the busy timeout."""
    text = str(exc).lower()
    return 'locked' in text or 'busy' in text


def hot_journal(path, exc):
    """The one line for a read-only open that met a hot journal, or None: a writer died in the
    middle of a transaction and only a read-write open may roll it back."""
    if 'readonly' not in str(exc).replace(' ', '').lower() or not os.path.exists(path + '-journal'):
        return None
    return ('%s has a hot journal (%s-journal): a writer died in the middle of a transaction and a read-only open '
            'cannot roll it back; let the application open it once (SQLite rolls it back), then run again'
            % (path, path))
