# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of lifeboat.db.restore: the production guard rail.

A module cannot see inventory variables, so the check that a host marked `lifeboat_production`
gets `confirm: <db>` happens here, before the module is sent. Everything else (check mode,
async/poll, module_defaults, temporary paths) is ansible-core's own `normal` action, inherited.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action.normal import ActionModule as NormalAction

DB_OPTIONS = ('db', 'login_db', 'database')


class ActionModule(NormalAction):

    def run(self, tmp=None, task_vars=None):
        refusal = self._refusal(task_vars or {})
        if refusal:
            return dict(failed=True, changed=False, msg=refusal)
        return super(ActionModule, self).run(tmp, task_vars)

    def _refusal(self, task_vars):
        """One line saying why the task may not run, or None."""
        args = self._task.args
        target = next((args[name] for name in DB_OPTIONS if args.get(name)), None)
        confirm = args.get('confirm')
        how = 'set confirm: %s on the task (playbooks/restore.yml: -e restore_confirm=%s)' % (target, target)
        if confirm is not None and confirm != target:
            return ('confirm %r does not name the target database %r; %s. Nothing was changed'
                    % (confirm, target, how))
        if confirm is None and not self._task.check_mode and self._is_production(task_vars):
            return ('%s is marked lifeboat_production: restoring into database %r needs confirm; %s. Nothing was changed'
                    % (task_vars.get('inventory_hostname', 'this host'), target, how))
        return None

    def _is_production(self, task_vars):
        mark = self._templar.template(task_vars.get('lifeboat_production'))
        if mark is None:
            return False
        try:
            return boolean(mark, strict=True)
        except TypeError:
            return True  # fail closed: a mark that reads as neither true nor false counts as production
