# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lifeboat.db.evidence: evidence files written on the controller, in this process.

An action plugin, not a module: it needs no connection, so the database hosts' become (to
postgres) cannot follow it onto the controller, and a run's files cost one task instead of a
file, copy and template task each (module_utils/common/evidence.py does the writing)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible.plugins.filter.core import to_nice_json

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.evidence import write_evidence
from ansible_collections.lifeboat.db.plugins.modules.evidence import argument_spec


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=argument_spec())
        try:
            written = write_evidence(args['dir'], args['files'], to_nice_json, check_mode=self._task.check_mode)
        except LifeboatError as exc:
            return dict(result, failed=True, changed=False, msg=exc.msg)
        result.update(changed=True, dir=args['dir'], written=written)
        return result
