# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The delta module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.delta.apply import ApplyRequest, apply_deltas
from ansible_collections.lifeboat.db.plugins.module_utils.delta.export import ExportRequest, export_delta
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

ACTIONS = ('export', 'apply')


EXPORT_ONLY = ('tables', 'keep_last', 'keep_days')


APPLY_ONLY = ('deltas', 'backup_db')


def run(ctx):
    p = ctx.params
    misplaced = [name for name in (APPLY_ONLY if p['action'] == 'export' else EXPORT_ONLY) if p[name] is not None]
    if misplaced:
        raise LifeboatError('%s cannot be used with action=%s' % (', '.join(misplaced), p['action']))
    if p['action'] == 'export':
        return export_delta(ctx, ExportRequest(
            p['db'], p['tables'], base=p['base'], kind=p['kind'], overlap_seconds=p['overlap_seconds'],
            keep_last=p['keep_last'], keep_days=p['keep_days'], lock_timeout=p['lock_timeout'], compress=p['compress'],
            base_kind=p['base_kind']))
    return apply_deltas(ctx, ApplyRequest(p['db'], p['backup_db'], base=p['base'], deltas=p['deltas'], kind=p['kind'],
                                          lock_timeout=p['lock_timeout'], disable_triggers=p['disable_triggers'],
                                          base_kind=p['base_kind']))
