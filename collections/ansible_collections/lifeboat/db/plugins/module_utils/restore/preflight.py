# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks a restore makes before it changes anything: are the extensions the backup needs
installable on the target server, and is there room for what the restore writes.

A restore that stops half-way on a missing extension or a full disk has already spent its time
and, in `replace`, dropped the database; these checks turn both into a one-line refusal up front.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import os
import re

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.toc import extensions
PLAIN_EXTENSION = re.compile(r'^CREATE EXTENSION (?:IF NOT EXISTS )?"?([^"\s;]+)"?', re.M)
# pg_dump writes extensions before any table; this much of a plain dump holds them all.
PLAIN_HEAD_BYTES = 1024 * 1024
# Without a recorded database size, a compressed archive is assumed to grow this much when
# restored (tables plus indexes against gzip'd COPY data); the estimate is reported as such.
GROWTH_ESTIMATE = 4
GIB = 1024.0 ** 3


def needed_extensions(backup, archive):
    """Extensions the backup creates, from its table of contents (or a plain dump's head)."""
    if backup.toc is not None:
        return extensions(backup.toc)
    opener = gzip.open if backup.manifest['compression']['method'] == 'gzip' else open
    try:
        with opener(archive, 'rb') as handle:
            head = handle.read(PLAIN_HEAD_BYTES).decode('utf-8', 'replace')
    except EOFError as exc:
        # A gzip file cut short (one lifeboat did not write: no checksum caught it) - one line, not a traceback.
        raise LifeboatError('cannot read %s: %s; nothing was changed' % (archive, exc))
    return sorted(set(PLAIN_EXTENSION.findall(head)))


def check_extensions(conn, backup, archive, server_label):
    """Raise, naming them, when the target server cannot create an extension the backup needs."""
    needed = needed_extensions(backup, archive)
    if not needed:
        return []
    available = set(row[0] for row in conn.execute(
        'SELECT name FROM pg_available_extensions WHERE name = ANY(%s)', (needed,)).fetchall())
    missing = [name for name in needed if name not in available]
    if missing:
        raise LifeboatError('backup %s needs extension%s %s, which %s does not have (not in pg_available_extensions); '
                            'install %s on the server (e.g. the distribution package postgresql-<major>-%s) and run '
                            'again; nothing was changed'
                            % (backup.backup_id, 's' if len(missing) > 1 else '', ', '.join(missing), server_label,
                               'them' if len(missing) > 1 else 'it', 'pgvector' if missing[0] == 'vector' else missing[0]))
    return needed


def free_bytes(path):
    facts = os.statvfs(path)
    return facts.f_bavail * facts.f_frsize


def local_data_directory(conn):
    """The server's data directory when it is on this host (the module may run elsewhere, or
    without the right to see it): (path, None), or (None, why not)."""
    try:
        path = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
    except psycopg.Error as exc:  # only superusers and members of pg_read_all_settings may read it
        return None, 'the login role may not read data_directory (%s)' % first_line(exc)
    port = conn.execute("SELECT current_setting('port')").fetchone()[0]
    try:
        with open(os.path.join(path, 'postmaster.pid')) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return None, 'data directory %s is not on this host or not readable by the module user' % path
    # postmaster.pid: pid, data directory, start time, port, ... ; the same port proves it is this server.
    if len(lines) < 4 or lines[3].strip() != str(port):
        return None, 'data directory %s on this host belongs to another server' % path
    return path, None


def restore_size(manifest, archive_bytes):
    """(bytes the restored database needs, how that was found)."""
    if manifest.get('database_size'):
        return manifest['database_size'], 'the database size recorded in the manifest'
    return archive_bytes * GROWTH_ESTIMATE, '%d x the archive size (no database size recorded)' % GROWTH_ESTIMATE


def check_space(path, need, what):
    """Raise when `path`'s filesystem has less than `need` bytes free; returns the free bytes."""
    have = free_bytes(path)
    if have < need:
        raise LifeboatError('not enough free disk space for %s: it needs about %.2f GiB in %s, which has %.2f GiB '
                            'free; free some space (or choose another place) and run again; nothing was changed'
                            % (what, need / GIB, path, have / GIB))
    return have
