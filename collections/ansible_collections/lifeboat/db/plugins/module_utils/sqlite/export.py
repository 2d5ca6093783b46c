# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""action=export: a query's rows to a CSV file (seed 004's plan_series snapshot, without `.output`).

A header of the column names, then the rows, UTF-8; written under a new temporary name beside
`dest` (0600), hashed as it is written, fsynced and renamed over it, so a reader never sees half
a file and a failed export leaves the previous CSV as it was. When dest already holds the same
bytes the temporary file is removed instead and nothing changed. The query runs read-only
(mode=ro, query_only) in one read transaction. Check mode runs the query and hashes the CSV it
would write, to say whether dest would change, but writes nothing.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import csv
import hashlib
import os
import sqlite3

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import CHUNK, fsync_dir
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.database import hot_journal, is_busy, open_live
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.holders import locked_message


def cell(value):
    """A value as CSV text: NULL as an empty field, a BLOB as hex."""
    if value is None:
        return ''
    if isinstance(value, bytes):
        return binascii.hexlify(value).decode()
    return value


def target(dest):
    dest = os.path.abspath(dest)
    folder = os.path.dirname(dest)
    if os.path.isdir(dest):
        raise LifeboatError('dest %s is a directory; name the CSV file to write' % dest)
    if not os.path.isdir(folder):
        raise LifeboatError('the folder of dest (%s) does not exist; create it first' % folder)
    return dest, folder


class HashedCsv(object):
    """Where csv.writer writes: each piece encoded as UTF-8, hashed and counted, and written to
    `out` (a binary file) unless there is none (check mode, which only needs the hash)."""

    def __init__(self, out=None):
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, text):
        data = text.encode('utf-8')
        self.digest.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)


def write_rows(sink, columns, cursor):
    """The header and every row into `sink`; returns the number of rows."""
    writer = csv.writer(sink)
    writer.writerow(columns)
    count = 0
    for row in cursor:
        writer.writerow([cell(v) for v in row])
        count += 1
    return count


def holds(dest, size, sha256):
    """Whether the file `dest` already holds exactly these bytes (by size first, then sha256)."""
    try:
        if os.path.getsize(dest) != size:
            return False
        digest = hashlib.sha256()
        with open(dest, 'rb') as handle:
            for block in iter(lambda: handle.read(CHUNK), b''):
                digest.update(block)
    except (IOError, OSError):
        return False  # missing or unreadable: written anew (or failing there with its own line)
    return digest.hexdigest() == sha256


def export(ctx, path):
    p = ctx.params
    if not p['query'] or not p['dest']:
        raise LifeboatError('action=export needs query (the SELECT whose rows to write) and dest (the CSV file)')
    dest, folder = target(p['dest'])
    conn = open_live(path, p['busy_timeout'])
    temporary = None
    try:
        conn.execute('PRAGMA query_only = ON')
        cursor = conn.execute(p['query'], p['params'] or ())
        if cursor.description is None:
            raise LifeboatError('query returns no columns; export needs a SELECT')
        columns = [c[0] for c in cursor.description]
        if ctx.check_mode:
            sink = HashedCsv()
            count = write_rows(sink, columns, cursor)
            same = holds(dest, sink.size, sink.digest.hexdigest())
            return dict(changed=not same, rows=count, columns=columns, dest=dest, actions=[
                '%s already holds these %d rows of %d columns' % (dest, count, len(columns)) if same else
                'Would write %d rows of %d columns to %s' % (count, len(columns), dest)])
        temporary = '%s.lifeboat-%s.tmp' % (dest, binascii.hexlify(os.urandom(4)).decode())
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            temporary = None
            raise LifeboatError('cannot write the CSV into %s: %s; choose a folder the module user (uid %d) can write '
                                'to' % (folder, exc.strerror or exc, os.geteuid()))
        with os.fdopen(fd, 'wb') as raw:
            sink = HashedCsv(raw)
            count = write_rows(sink, columns, cursor)
            raw.flush()
            os.fsync(raw.fileno())
        sha256 = sink.digest.hexdigest()
        # The same bytes as dest: dest stays as it is (its inode, mode, owner and mtime), so a
        # rerun is no change and a reader of dest sees nothing happen.
        same = holds(dest, sink.size, sha256)
        if not same:
            os.rename(temporary, dest)
            temporary = None
            fsync_dir(folder)
    except sqlite3.Error as exc:
        if is_busy(exc):
            raise LifeboatError(locked_message(path, exc, p['busy_timeout'], 'export from %s' % path))
        if hot_journal(path, exc):
            raise LifeboatError('export from %s: %s' % (path, hot_journal(path, exc)))
        raise LifeboatError('export from %s: the query failed: %s; nothing was written' % (path, exc))
    finally:
        conn.close()
        if temporary and os.path.lexists(temporary):
            os.unlink(temporary)
    return dict(changed=not same, rows=count, columns=columns, dest=dest, sha256=sha256, size=sink.size, actions=[
        'Left %s as it was: it already holds these %d rows of %d columns' % (dest, count, len(columns)) if same else
        'Wrote %d rows of %d columns to %s' % (count, len(columns), dest)])
