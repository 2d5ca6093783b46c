# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running pgbackrest: argument lists through module.run_command, never a shell string, and its
failures as one line. The commands lifeboat runs here read the repository only and connect to no
database, so no password is ever handed to pgbackrest."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

DEFAULT_BINARY = 'pgbackrest'
# pgbackrest reports a failure as `ERROR: [055]: unable to open missing file '...' for read`.
ERROR_LINE = re.compile(r'^(?:.*?\s)?(?:ERROR|ASSERT): \[(\d+)\]: (.*)$')
# Beyond this a reply is not pgbackrest's: a repository of a few thousand backups stays well under.
MAX_OUTPUT = 64 * 1024 * 1024


def pgbackrest_argument_spec():
    """Options documented by the lifeboat.db.pgbackrest doc fragment."""
    return dict(stanza=dict(type='str', required=True), config=dict(type='path'), repo=dict(type='int'),
                pgbackrest_bin=dict(type='path'))


class PgBackRest(object):
    """One stanza of one pgbackrest configuration, as the task's options name it."""

    def __init__(self, run_command, stanza, config=None, repo=None, binary=None):
        self.run_command = run_command
        self.stanza = stanza
        # pgbackrest reads a relative --config from its own working directory, not the task's.
        self.config = os.path.abspath(config) if config else None
        self.repo = repo
        self.binary = binary or DEFAULT_BINARY

    def argv(self, command, *options, **kwargs):
        argv = [self.binary]
        if self.config:
            argv.append('--config=%s' % self.config)
        argv.append('--stanza=%s' % self.stanza)
        if self.repo is not None:
            argv.append('--repo=%d' % self.repo)
        # Console output is what we parse: no log lines mixed into it. No log file either: a task that only
        # reads leaves nothing behind, and one run as root would leave a root-owned file in pgBackRest's log path.
        # A command that writes (restore) keeps pgBackRest's log file, the record an operator looks for.
        argv.extend(['--log-level-console=off', '--log-level-stderr=error'])
        if not kwargs.get('log_file'):
            argv.append('--log-level-file=off')
        argv.append(command)
        argv.extend(options)
        return argv

    def check_inputs(self):
        found = executable(self.binary)
        if not found:
            raise LifeboatError('cannot run %s: no such executable%s; install pgBackRest or set pgbackrest_bin to '
                                'its path' % (self.binary, '' if os.sep in self.binary else ' in PATH'))
        self.binary = found
        if self.config and not os.path.isfile(self.config):
            raise LifeboatError('pgBackRest configuration %s does not exist or is not a file; set config to the '
                                'pgbackrest.conf of stanza %r (default /etc/pgbackrest/pgbackrest.conf)'
                                % (self.config, self.stanza))
        if self.repo is not None and not 1 <= self.repo <= 256:
            raise LifeboatError('repo must be a pgBackRest repository index from 1 to 256, not %d' % self.repo)

    def run(self, command, *options, **kwargs):
        """stdout of `pgbackrest <command>`; a failure raises one line with pgbackrest's own error.
        log_file=True keeps the log file pgBackRest's configuration asks for."""
        argv = self.argv(command, *options, log_file=kwargs.get('log_file', False))
        try:
            rc, out, err = self.run_command(argv, environ_update={'LC_ALL': 'C'})
        except (OSError, IOError) as exc:
            raise LifeboatError('cannot run %s: %s; install pgBackRest or set pgbackrest_bin to its path'
                                % (self.binary, exc.strerror or exc))
        if rc != 0:
            raise LifeboatError('pgbackrest %s for stanza %r failed (rc %d): %s; %s'
                                % (command, self.stanza, rc, error_detail(err, out), hint(rc)))
        if len(out) > MAX_OUTPUT:
            raise LifeboatError('pgbackrest %s for stanza %r printed over %d MiB; this is not pgBackRest output - '
                                'check pgbackrest_bin' % (command, self.stanza, MAX_OUTPUT // (1024 * 1024)))
        return out


def executable(name):
    """The path of program `name` (a path, or a name looked up in PATH and /usr/bin), or None."""
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    folders = os.environ.get('PATH', '').split(os.pathsep) + ['/usr/bin', '/usr/local/bin']
    for folder in folders:
        path = os.path.join(folder, name)
        if folder and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def error_detail(err, out):
    """pgbackrest's ERROR line (its code and text), else the last line it printed, on one line."""
    lines = [line.strip() for line in ((err or '') + '\n' + (out or '')).splitlines() if line.strip()]
    for line in lines:
        match = ERROR_LINE.match(line)
        if match:
            return '[%s] %s' % (match.group(1), match.group(2)[:500])
    return lines[-1][:500] if lines else 'no message'


def hint(rc):
    """What to do about pgbackrest's most common exit codes (its error codes)."""
    return {
        29: 'a file in the repository does not read back (damaged, or not written by pgBackRest) - run the same '
            'pgbackrest command with --log-level-console=detail to see which, and take a new full backup',
        55: 'check config (the pgbackrest.conf path) and the repository path in it',
        56: 'check config: an option in it is not valid for this pgBackRest',
        31: 'check the options given to the module',
        37: 'check config (an option pgBackRest does not know)',
        38: 'check the repository path and that this user may read it',
        103: 'check the repository path and that this user may read it',
        104: 'the stanza is missing in the repository: run stanza-create, or check stanza',
    }.get(rc, 'check the stanza, config and repository, and run the same pgbackrest command by hand for details')
