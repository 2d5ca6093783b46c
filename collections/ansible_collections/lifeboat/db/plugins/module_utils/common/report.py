# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run's reports for people (the action plugin lifeboat.db.report): <dir>/<run_id>/report.html
and, for a drill, a restore or a DR, <dir>/<run_id>/recovery-report.md, written like the rest of
the evidence (module_utils/common/evidence.py: 0700/0600, whole, never through a link).

report_model.py reads the figures, targets and timeline from the summary, report_history.py the
earlier runs of the folder, report_html.py and report_recovery.py write the two files, in the
language of report_texts.py's table."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.evidence import evidence_parts, write_evidence
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_history import read_history
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_html import render_html
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_model import (
    RECOVERY_KINDS, WrongShape, figures, items, resolve_targets, same_series, timeline)
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_physical import physical_views, view_rows
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_recovery import render_recovery_report

HTML_NAME = 'report.html'
RECOVERY_NAME = 'recovery-report.md'


def history_of(kind, folder, run_id, summary, limit):
    """([(run name, figures)] of the earlier runs of the same series, oldest first, skipped count)."""
    in_series = same_series(kind, summary)

    def belongs(earlier):
        if not in_series(earlier):
            return False
        figures(kind, earlier)  # WrongShape (a ValueError): the run is skipped
        return True
    runs, skipped = read_history(folder, run_id, limit, belongs)
    return [(name, figures(kind, earlier)) for name, earlier in runs], skipped


def physical_rows(kind, summary, physical):
    """The pgBackRest stanzas the reports show: `physical` (pgbackrest_info results), and for the
    fleet the views its summary keeps per host."""
    rows = []
    if physical is not None:
        try:
            rows += view_rows(physical_views(physical))
        except WrongShape as exc:
            raise LifeboatError('physical: %s; pass lifeboat.db.pgbackrest_info results (a registered result, '
                                'or a loop\'s .results)' % exc)
    if kind == 'fleet':
        try:
            for host in items(summary.get('hosts'), 'hosts'):
                rows += view_rows(host.get('physical'), 'hosts[].physical')
        except WrongShape as exc:
            raise LifeboatError('summary: %s; pass the summary the role writes as summary.json' % exc)
    return rows


def build_reports(kind, folder, run_id, summary, targets, lang, history_limit, now=None, physical=None):
    """({name relative to `folder`: text} of the run's reports, {history_runs, history_skipped}).
    `physical`: lifeboat.db.pgbackrest_info results, shown beside the logical backups."""
    if history_limit < 0:
        raise LifeboatError('history is %d; give the number of earlier runs to chart, 0 or more' % history_limit)
    if len(evidence_parts(run_id)) != 1:
        raise LifeboatError('run_id %r must be one folder name (no "/"): the run\'s folder below dir' % run_id)
    try:
        fig = figures(kind, summary)
        bars, marks, spans = timeline(kind, summary, fig)
    except WrongShape as exc:
        raise LifeboatError('summary: %s; pass the summary the role writes as summary.json' % exc)
    chosen = resolve_targets(targets)
    stanzas = physical_rows(kind, summary, physical)
    history, skipped = history_of(kind, folder, run_id, summary, history_limit)
    written_at = (now or datetime.datetime.now(datetime.timezone.utc)).strftime('%Y-%m-%d %H:%M:%S UTC')
    files = {run_id + '/' + HTML_NAME: render_html(kind, lang, summary, fig, chosen, history, skipped,
                                                   (bars, marks, spans), written_at, stanzas)}
    if kind in RECOVERY_KINDS:
        files[run_id + '/' + RECOVERY_NAME] = render_recovery_report(kind, lang, summary, fig, chosen, history, bars,
                                                                         stanzas)
    return files, dict(history_runs=len(history), history_skipped=skipped)


def write_reports(kind, folder, run_id, summary, targets, lang, history_limit, to_text, check_mode=False,
                  physical=None):
    """Write the run's reports into `folder`; returns {html, recovery} (their paths; recovery None
    for integrity and the fleet), history_runs and history_skipped (earlier runs shown, skipped)."""
    files, facts = build_reports(kind, folder, run_id, summary, targets, lang, history_limit, physical=physical)
    paths = dict(zip(files, write_evidence(folder, files, to_text, check_mode=check_mode)))
    return dict(facts, html=paths[run_id + '/' + HTML_NAME], recovery=paths.get(run_id + '/' + RECOVERY_NAME))
