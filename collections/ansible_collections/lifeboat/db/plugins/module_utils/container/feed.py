# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tool in the container reading a file of this host on its standard input (issue 20).

For the archive of one partition (lifeboat.db.partition): the container's pg_restore counts its rows
and restores it with the file streamed in through the exec's stdin, so no copy is left in the
container and nothing waits for one to be made. A single-table archive is read in order, which
pg_restore does from a pipe; a parallel restore of a whole database copies the archive in instead
(restore/container.py). tools.read_toc reads a custom archive's table of contents the same way.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

CHUNK = 1024 * 1024
# The container's shell reads on what the tool leaves unread (pg_restore ends after its last
# entry): an exec that stops reading its input may lose the end of its output
# (exec.ContainerExec._attached). Every PostgreSQL image has a POSIX shell.
DRAINED = ['sh', '-c', '"$0" "$@"; status=$?; cat >/dev/null; exit $status']


def file_blocks(path, what):
    """The blocks of `path`; a read error ends the tool's input early and fails with `what`."""
    try:
        with open(path, 'rb') as source:
            for block in iter(lambda: source.read(CHUNK), b''):
                yield block
    except (IOError, OSError) as exc:
        raise LifeboatError('%s: cannot read %s: %s' % (what, path, exc.strerror or exc))


def run_on_file(execer, argv, path, what, environment=None, on_stdout=None):
    """Run argv in the container with the file `path` (on this host) on its standard input; its
    stdout goes to on_stdout(block) as it arrives. A failure is one line naming argv[0]: its own
    error line and exit code (a file that could not be read ends its input early, so it fails too,
    and that error is raised)."""
    result = execer.run(DRAINED + list(argv), environment=environment, on_stdout=on_stdout,
                        stdin=file_blocks(path, what))
    if result.exit_code != 0:
        raise LifeboatError(execer.failure(argv[0], what, result))
    return result
