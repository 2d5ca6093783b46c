# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of lifeboat.db.fault: a host marked `lifeboat_production` gets no fault at all.

A module cannot see inventory variables, so the refusal happens here, before the module is sent,
whoever calls it (the drill role checks too, but a play of one's own calling the module does not).
Check mode is refused as well: a fault has no business on production even as a preview. The
production test (a mark that is neither true nor false counts as production) and everything else
(module_defaults, async, temporary paths) are the restore action's, inherited.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.action.restore import ActionModule as GuardedAction

DB_OPTIONS = ('db', 'login_db', 'database')


class ActionModule(GuardedAction):

    def _refusal(self, task_vars):
        """One line saying why the task may not run, or None."""
        if not self._is_production(task_vars):
            return None
        args = self._task.args
        target = next((args[name] for name in DB_OPTIONS if args.get(name)), None)
        return ('%s is marked lifeboat_production: lifeboat.db.fault destroys data on purpose (fault %s on '
                'database %r); inject faults only on a staging copy. Nothing was changed'
                % (task_vars.get('inventory_hostname', 'this host'), args.get('fault', 'truncate'), target))
