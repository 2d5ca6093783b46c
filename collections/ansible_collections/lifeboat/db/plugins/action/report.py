# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lifeboat.db.report: a run's reports for people (report.html, recovery-report.md), written on
the controller, in this process, beside the run's evidence.

An action plugin, like lifeboat.db.evidence: it needs no connection, so the database hosts' become
cannot follow it onto the controller (module_utils/common/report.py does the work)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible.plugins.filter.core import to_nice_json

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.report import write_reports
from ansible_collections.lifeboat.db.plugins.modules.report import argument_spec


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=argument_spec())
        try:
            written = write_reports(args['kind'], args['dir'], args['run_id'], args['summary'], args['targets'],
                                    args['lang'], args['history'], to_nice_json, check_mode=self._task.check_mode,
                                    physical=args['physical'])
        except LifeboatError as exc:
            return dict(result, failed=True, changed=False, msg=exc.msg)
        result.update(changed=True, dir=args['dir'], **written)
        return result
