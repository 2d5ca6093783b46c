# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring into a database that lives in a container (module option `container`, issue 20).

The set stays on this host and is checked here as always (every file against the manifest); the
server's own tools in the container do the rest. The table of contents is read by the container's
pg_restore through its standard input (no copy). A custom archive is copied into a private folder
in the container (put_archive) so pg_restore can seek in it and run in parallel, and removed
afterwards whatever happened. A plain dump is fed to the container's psql through its standard
input, wrapped in BEGIN ... COMMIT sent by lifeboat: input that ends early (the file could not be
read) never reaches the COMMIT, so psql ends with the transaction open and nothing is kept.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import os

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container import archive as container_archive
from ansible_collections.lifeboat.db.plugins.module_utils.container import tools as container_tools
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import last_error_line
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import validate_manifest, verify_files
from ansible_collections.lifeboat.db.plugins.module_utils.storage.verification import archive_path, dump_major

CHUNK = 1024 * 1024
# What is kept of pg_restore --verbose's stderr for the failure message: the lines around the end.
TAIL_LINES = 50


def in_container(ctx):
    return getattr(ctx, 'execer', None) is not None


def refuse_unsupported(ctx, request, backup):
    """What a restore in a container does not do yet, refused before anything changes."""
    name = ctx.container.name
    if request.mode == 'tables':
        raise LifeboatError('mode=tables is not supported with container %r yet; restore the backup into a new '
                            'database (mode=new) and copy the tables from there; nothing was changed' % name)
    if backup.manifest.get('format') == 'directory':
        raise LifeboatError('backup %s is a directory archive, which lifeboat cannot restore into container %r yet '
                            '(custom and plain backups only); nothing was changed' % (backup.backup_id, name))


def check_backup(ctx, backup):
    """verification.check_backup with the container's pg_restore: every file against the manifest
    here, then the custom archive's table of contents read back in the container (kept as
    backup.toc). Returns the names of the files checked."""
    manifest = backup.manifest
    if not manifest.get('external'):
        validate_manifest(manifest, backup.backup_id, None, os.path.dirname(backup.path))
    checked = [] if manifest.get('external') else verify_files(backup.path, manifest)
    backup.toc = None
    if manifest.get('format', 'custom') == 'custom':
        pg_restore = ctx.finder.find('pg_restore', dump_major(manifest), 'backup %s was written by pg_dump %s'
                                     % (backup.backup_id, manifest['pg_dump_version']))
        backup.toc = container_tools.read_toc(ctx.execer, pg_restore.path, archive_path(backup),
                                              'reading the table of contents of backup %s' % backup.backup_id)
    return checked


def read_external_toc(ctx, path):
    """The table of contents of an archive lifeboat did not write, read by the container's pg_restore."""
    if os.path.isdir(path):
        raise LifeboatError('%s is a directory archive, which lifeboat cannot restore into container %r yet (custom '
                            'and plain archives only)' % (path, ctx.container.name))
    pg_restore = ctx.finder.find('pg_restore', 0, 'reading %s' % path)
    return container_tools.read_toc(ctx.execer, pg_restore.path, path, 'reading the table of contents of %s' % path)


def run_restore(ctx, tool, archive, request, manifest, argv_options, on_line):
    """pg_restore (custom) or psql (plain) in the container into request.target_db. `argv_options`
    are pg_restore's options before the archive (database.py builds them as for the host); on_line
    sees each line pg_restore writes to stderr (its progress)."""
    env = container_tools.container_tool_environment(ctx.options, request.target_db)
    what_db = 'database %r' % request.target_db
    if manifest.get('format') == 'plain':
        _psql(ctx, tool, archive, request, manifest, env, what_db)
        return
    execer = ctx.execer
    scratch = container_archive.scratch_dir(execer, 'restoring into %s' % what_db)
    try:
        uid, gid = _exec_user(execer)
        inside = container_archive.copy_in(execer, archive, scratch, os.path.basename(archive), uid=uid, gid=gid)
        tail = _LineTail(on_line)
        result = execer.run([tool.path] + argv_options + [inside], environment=env, on_stderr=tail.feed)
        tail.close()
        if result.exit_code != 0:
            if result.exit_code in (126, 127):
                raise LifeboatError(execer.failure(tool.path, 'pg_restore into %s' % what_db, result))
            raise LifeboatError('pg_restore into %s failed in container %r (exit code %d): %s'
                                % (what_db, execer.container.name, result.exit_code,
                                   last_error_line('\n'.join(tail.lines), 'no error message')))
    finally:
        problem = container_archive.remove_in(execer, scratch)
        if problem:
            request.warnings.append('%s; remove it by hand (docker exec %s rm -rf %s)'
                                    % (problem, execer.container.name, scratch))


def _psql(ctx, tool, archive, request, manifest, env, what_db):
    argv = [tool.path, '--no-password', '--quiet', '--no-psqlrc', '--set=ON_ERROR_STOP=1']
    if request.role:
        # psql has no --role: the session starts as the role instead (spaces escaped for PGOPTIONS).
        env['PGOPTIONS'] = '-c role=%s' % request.role.replace('\\', '\\\\').replace(' ', '\\ ')
    opener = gzip.open if manifest['compression']['method'] == 'gzip' else open

    def script():
        # Not --single-transaction: psql commits that at the end of its input, wherever the input ended.
        yield b'BEGIN;\n'
        try:
            with opener(archive, 'rb') as source:
                for block in iter(lambda: source.read(CHUNK), b''):
                    yield block
        except (IOError, OSError, EOFError) as exc:
            raise LifeboatError('cannot read %s: %s; nothing of it was kept in %s' % (archive, exc, what_db))
        yield b'\nCOMMIT;\n'
    result = ctx.execer.run(argv, environment=env, stdin=script())
    if result.exit_code != 0:
        raise LifeboatError(ctx.execer.failure(tool.path, 'psql into %s' % what_db, result))


def _exec_user(execer):
    """(uid, gid) the container's commands run as: the archive copied in is theirs, 0600."""
    result = execer.check(['id', '-u'], 'asking the container for its user')
    uid = result.stdout.decode('ascii', 'replace').strip()
    result = execer.check(['id', '-g'], 'asking the container for its group')
    gid = result.stdout.decode('ascii', 'replace').strip()
    if not (uid.isdigit() and gid.isdigit()):
        raise LifeboatError('container %r did not tell its user and group (id answered %r, %r)'
                            % (execer.container.name, uid, gid))
    return int(uid), int(gid)


class _LineTail(object):
    """Splits stderr blocks into lines for `on_line` and keeps the last TAIL_LINES of them."""

    def __init__(self, on_line):
        self.on_line = on_line
        self.pending = b''
        self.lines = []

    def feed(self, block):
        self.pending += block
        complete = self.pending.split(b'\n')
        self.pending = complete.pop()
        for raw in complete:
            self._line(raw)

    def close(self):
        if self.pending:
            self._line(self.pending)
            self.pending = b''

    def _line(self, raw):
        line = raw.decode('utf-8', 'replace').rstrip()
        self.lines = (self.lines + [line])[-TAIL_LINES:]
        if self.on_line is not None:
            self.on_line(line)
