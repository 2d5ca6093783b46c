# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""action=export: a query's rows to a CSV file (seed 004's plan_series snapshot, without `.output`).

A header of the column names, then the rows, UTF-8; written under a new temporary name beside
`dest` (0600), fsynced and renamed over it, so a reader never sees half a file and a failed
export leaves the previous CSV as it was. The query runs read-only (mode=ro, query_only) in one
read transaction. Check mode runs the query and counts its rows but writes nothing.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import csv
import hashlib
import io
import os
import sqlite3

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import fsync_dir
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
            count = sum(1 for dummy in cursor)
            return dict(changed=True, rows=count, columns=columns, dest=dest,
                        actions=['Would write %d rows of %d columns to %s' % (count, len(columns), dest)])
        temporary = '%s.lifeboat-%s.tmp' % (dest, binascii.hexlify(os.urandom(4)).decode())
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            temporary = None
            raise LifeboatError('cannot write the CSV into %s: %s; choose a folder the module user (uid %d) can write '
                                'to' % (folder, exc.strerror or exc, os.geteuid()))
        digest, count = hashlib.sha256(), 0
        with os.fdopen(fd, 'wb') as raw:
            text = io.TextIOWrapper(raw, encoding='utf-8', newline='')
            writer = csv.writer(text)
            writer.writerow(columns)
            for row in cursor:
                writer.writerow([cell(v) for v in row])
                count += 1
            text.flush()
            raw.flush()
            os.fsync(raw.fileno())
            text.detach()
        with open(temporary, 'rb') as handle:
            digest.update(handle.read())
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
    return dict(changed=True, rows=count, columns=columns, dest=dest, sha256=digest.hexdigest(),
                size=os.path.getsize(dest), actions=['Wrote %d rows of %d columns to %s' % (count, len(columns), dest)])
