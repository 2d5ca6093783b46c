# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed module's export_schema action: pg_dump --schema-only of the database, without the
history tables, written atomically and only when it changed.

With `container` (issue 20), the container's own pg_dump runs there, through the Docker API, and its
output is streamed out into the staging file here; dest stays on this host (the Docker host)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import tempfile

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import PassFile, server_major
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container import tools as container_tools
from ansible_collections.lifeboat.db.plugins.module_utils.migrate import seed
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import run_tool


def export_schema(ctx, conn, schema, result):
    """pg_dump --schema-only of the database, without the history tables, written atomically."""
    params = ctx.params
    dest = params['dest']
    execer = getattr(ctx, 'execer', None)
    folder = os.path.dirname(dest) or '.'
    if not os.path.isdir(folder):
        raise LifeboatError('the folder of dest %s does not exist on the target host; create it first' % dest)
    pg_dump = ctx.finder.find('pg_dump', server_major(conn), 'dumping the schema of a PostgreSQL %d server'
                              % server_major(conn))
    excluded = ['%s.%s' % (schema, params['table']), '%s.%s' % (schema, seed.SEED_TABLE)] + \
        (params['exclude_tables'] or [])
    result['dest'] = dest
    if ctx.check_mode:
        result['actions'].append('would write the schema of %s to %s' % (params['db'], dest))
        result['changed'] = True
        return
    fd, staging = tempfile.mkstemp(prefix='.%s.' % os.path.basename(dest), dir=folder)
    os.close(fd)
    os.chmod(staging, 0o600)
    try:
        argv = [pg_dump.path, '--schema-only', '--no-owner', '--no-privileges']
        argv += ['--exclude-table=%s' % pattern for pattern in excluded]
        what = 'pg_dump --schema-only of database %r' % params['db']
        if execer is not None:
            # container_tools.stream_to_file makes the file itself (O_EXCL): the name mkstemp
            # reserved is handed over empty, and one that reappears meanwhile is refused, not overwritten.
            os.unlink(staging)
            container_tools.stream_to_file(execer, argv, container_tools.container_tool_environment(
                ctx.options, params['db']), staging, what)
        else:
            with PassFile(ctx.options, ctx.tmpdir) as passfile:
                run_tool(ctx.run_command, argv + ['--file', staging],
                         ctx.options.tool_environment(params['db'], passfile), what)
        result['changed'] = not _same_dump(staging, dest)
        if result['changed']:
            os.rename(staging, dest)
            staging = None
    finally:
        if staging and os.path.exists(staging):
            os.unlink(staging)
    result['actions'].append('%s the schema of %s to %s%s' % (
        'wrote' if result['changed'] else 'unchanged:', params['db'], dest,
        ' (pg_dump in container %s)' % execer.container.name if execer is not None else ''))


def _same_dump(new, old):
    """pg_dump 17.6+ puts a random \\restrict key in every dump; compare without those lines."""
    if not os.path.exists(old):
        return False

    def lines(path):
        with open(path, encoding='utf-8', errors='replace') as handle:
            return [line for line in handle if not line.startswith(seed.RESTRICT_LINES)]
    return lines(new) == lines(old)
