# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sqlite module's task: what main() runs once AnsibleModule has checked the options.

Its own runner, not common.runner.run_module: that one needs psycopg on the target, and a host
with only a SQLite application has no reason to have it. The error path is the same - one
LifeboatError, sqlite3 or system error becomes one fail_json line, with the task's timing.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sqlite3

from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import task_timer
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import one_line, os_error_line
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import Repository
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.backup import take_backup
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.checks import run_checks
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.database import live_file
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.execute import execute
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.export import export
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.restore import restore

# Which actions need the repository: the set lives there (check needs it only to compare counts).
NEEDS_REPOSITORY = ('backup', 'restore')


class SqliteTask(object):
    def __init__(self, module):
        self.params = module.params
        self.check_mode = module.check_mode
        repository = module.params.get('repository')
        self.repository = Repository(repository) if repository else None


def set_name(params, path):
    """The set's name in the repository: `name`, else the file's stem (scpln.db -> scpln)."""
    return params['name'] or os.path.splitext(os.path.basename(path))[0]


def run(ctx):
    p = ctx.params
    action = p['action']
    if p['busy_timeout'] < 0:
        raise LifeboatError('busy_timeout must be 0 or more seconds, got %s' % p['busy_timeout'])
    if p['step_pages'] == 0 or p['step_pages'] < -1:
        raise LifeboatError('step_pages must be a number of pages (or -1 for all in one step), got %d' % p['step_pages'])
    if p['params'] is not None and not isinstance(p['params'], (list, dict)):
        raise LifeboatError('params must be a list (for ? placeholders) or a dict (for :name placeholders), got %s'
                            % type(p['params']).__name__)
    needs_repository = action in NEEDS_REPOSITORY or (action == 'check' and p['compare_counts'] and not p['baseline'])
    if needs_repository and ctx.repository is None:
        raise LifeboatError('action=%s needs repository: the absolute path of the backup repository on the target host'
                            % action)
    path = live_file(p['path'], may_be_missing=action == 'restore')
    name = set_name(p, path)
    if ctx.repository is not None:
        ctx.repository.database_dir(name)  # a name that cannot be a folder is refused before anything runs
    work = dict(backup=take_backup, check=run_checks, restore=restore)
    if action in work:
        return work[action](ctx, path, name)
    return dict(export=export, execute=execute)[action](ctx, path)


def failure_line(exc):
    if isinstance(exc, LifeboatError):
        return exc.msg
    if isinstance(exc, sqlite3.Error):
        return 'SQLite error: %s' % exc
    return os_error_line(exc)


def run_module(module):
    timing = task_timer()
    try:
        result = run(SqliteTask(module))
    except (LifeboatError, sqlite3.Error, IOError, OSError) as exc:
        facts = exc.facts if isinstance(exc, LifeboatError) else {}
        module.fail_json(msg=one_line(failure_line(exc), None), timing=timing(), **facts)
    result['timing'] = timing()
    if result.pop('failed', False):
        module.fail_json(timing=result.pop('timing'), **result)
    module.exit_json(**result)
