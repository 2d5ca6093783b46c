# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring into a database that lives in a container (module option `container`, issue 20).

The set stays on this host and is checked here as always (every file against the manifest); the
server's own tools in the container do the rest. The table of contents is read by the container's
pg_restore: a custom archive's through its standard input (no copy), a directory archive's from its
toc.dat copied in. A custom archive, or a directory archive's folder, is copied into a private
folder in the container (put_archive) so pg_restore can seek in it and run in parallel, and removed
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
from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import LineTail
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import last_error_line
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import validate_manifest, verify_files
from ansible_collections.lifeboat.db.plugins.module_utils.storage.verification import archive_path, dump_major

CHUNK = 1024 * 1024


def in_container(ctx):
    return getattr(ctx, 'execer', None) is not None


def check_backup(ctx, backup, warnings=None):
    """verification.check_backup with the container's pg_restore: every file against the manifest
    here, then the archive's table of contents read back in the container (kept as backup.toc).
    Returns the names of the files checked; a scratch folder the container kept is added to
    `warnings` (without them it fails the check)."""
    manifest = backup.manifest
    if not manifest.get('external'):
        validate_manifest(manifest, backup.backup_id, None, os.path.dirname(backup.path))
    checked = [] if manifest.get('external') else verify_files(backup.path, manifest)
    backup.toc = None
    archive_format = manifest.get('format', 'custom')
    if archive_format in ('custom', 'directory'):
        pg_restore = ctx.finder.find('pg_restore', dump_major(manifest), 'backup %s was written by pg_dump %s'
                                     % (backup.backup_id, manifest['pg_dump_version']))
        what = 'reading the table of contents of backup %s' % backup.backup_id
        if archive_format == 'directory':
            backup.toc = container_tools.read_toc_dir(ctx.execer, pg_restore.path, archive_path(backup), what,
                                                      warnings)
        else:
            backup.toc = container_tools.read_toc(ctx.execer, pg_restore.path, archive_path(backup), what)
    return checked


def read_external_toc(ctx, path):
    """The table of contents of an archive lifeboat did not write, read by the container's pg_restore."""
    pg_restore = ctx.finder.find('pg_restore', 0, 'reading %s' % path)
    what = 'reading the table of contents of %s' % path
    if os.path.isdir(path):
        # Nothing has changed yet, and this source has no request to carry a warning: a scratch folder
        # the container kept fails the read.
        return container_tools.read_toc_dir(ctx.execer, pg_restore.path, path, what)
    return container_tools.read_toc(ctx.execer, pg_restore.path, path, what)


class ArchiveInside(object):
    """mode=tables in the container (tables.py): the archive - a custom file or a directory set's
    folder - copied once into a private folder there, where the container's pg_restore picks the
    chosen tables' entries out of it (--use-list, each list copied in beside it) and its SQL goes
    into the container's psql through lifeboat, as `pg_restore --file=- | psql` on a host. The
    folder is removed on leaving, whatever happened (a removal that fails is a warning). The host's
    counterpart is table_plan.HostArchive."""

    def __init__(self, ctx, archive, warnings):
        self.ctx = ctx
        self.execer = ctx.execer
        self.archive = archive
        self.warnings = warnings
        self.scratch = self.path = None
        self.lists = 0

    def __enter__(self):
        self.scratch = container_archive.scratch_dir(self.execer, 'restoring tables from %s' % self.archive)
        try:
            self.uid, self.gid = container_archive.exec_user(self.execer)
            self.path = container_archive.copy_in(self.execer, self.archive, self.scratch,
                                                  os.path.basename(self.archive.rstrip('/')), uid=self.uid,
                                                  gid=self.gid)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        problem = container_archive.remove_in(self.execer, self.scratch)
        if problem:
            self.warnings.append('%s; remove it by hand (docker exec %s rm -rf %s)'
                                 % (problem, self.execer.container.name, self.scratch))

    def _argv(self, argv, listing):
        """argv (pg_restore and its options) with the list copied in and the archive in the container."""
        self.lists += 1
        inside = container_archive.copy_in(self.execer, listing, self.scratch, 'list-%d' % self.lists, uid=self.uid,
                                           gid=self.gid)
        return list(argv) + ['--use-list=%s' % inside, self.path]

    def text(self, argv, listing, what):
        """What pg_restore writes for the listed entries (their SQL), as text."""
        result = self.execer.check(self._argv(argv, listing), what, whole=True)
        return result.stdout.decode('utf-8', 'replace')

    def sql_blocks(self, argv, listing, what):
        """pg_restore's SQL for the listed entries as it is written; raises after the last block
        when pg_restore failed."""
        return container_tools.output_blocks(self.execer, self._argv(argv, listing), what)

    def apply(self, psql_argv, db, script, what):
        """Feed `script` (blocks) to the container's psql connected to database `db`. Failures read
        '<what> failed: <psql's error line>', as on the host."""
        env = container_tools.container_tool_environment(self.ctx.options, db)
        blocks = iter(script)
        try:
            result = self.execer.run(psql_argv, environment=env, stdin=blocks)
        finally:
            close = getattr(blocks, 'close', None)
            if close is not None:
                close()  # the pg_restore feeding it, if psql stopped reading first
        if result.exit_code != 0:
            raise LifeboatError('%s failed: %s' % (what, last_error_line(result.stderr, 'exit code %d in container %r'
                                                                         % (result.exit_code,
                                                                            self.execer.container.name))))


def run_restore(ctx, tool, archive, request, manifest, argv_options, on_line):
    """pg_restore (custom, directory) or psql (plain) in the container into request.target_db. `argv_options`
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
        uid, gid = container_archive.exec_user(execer)
        # A directory archive goes in as its folder (archive.tar_folder_stream), a custom one as its file.
        inside = container_archive.copy_in(execer, archive, scratch, os.path.basename(archive.rstrip('/')),
                                           uid=uid, gid=gid)
        tail = LineTail(on_line)
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
