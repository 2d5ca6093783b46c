# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""recovery-report.md: seed 003's recovery report (復旧レポート: 障害概要, 復旧手順, 改善点) filled
from a drill's, restore's or DR's evidence, as Markdown ready to paste into a ticket or a wiki.

The improvements are the points the run itself shows (a failure, a missed target, no target, a
restore slower or a backup bigger than the earlier runs'), never generic advice. Values from the
summary are escaped so that a table name cannot add markup or break a line."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.lifeboat.db.plugins.module_utils.common import report_format as fmt
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_model import (
    items, run_verdict, trend)
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_texts import text

# What can start markup in a line of CommonMark (an underscore only at a word's edge: inside a
# word, as in table names, it is plain text and left readable).
_SPECIAL = re.compile(r'([\\`*\[\]<>#|~&]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))')


def md(value):
    """One line of Markdown text showing `value` as it is: markup characters escaped, line breaks as spaces."""
    return _SPECIAL.sub(r'\\\1', ' '.join(('%s' % value).split()))


class _Report(object):
    def __init__(self, kind, lang, summary, fig, targets, history, bars, physical=()):
        self.kind, self.lang, self.summary, self.fig = kind, lang, summary, fig
        self.targets, self.history, self.bars = targets, history, bars
        self.physical = list(physical)

    def t(self, key, **values):
        return text(self.lang, key, **values)

    def judged(self, name, shown):
        target = self.targets[name]
        judged = run_verdict(self.fig, name, self.targets)
        if judged is None:
            return shown
        return self.t('rr_with_target', value=shown, target=self.t('target_value', value=fmt.duration(self.lang, target)),
                      verdict=self.t('target_' + judged))

    def what_failed(self):
        s, t = self.summary, self.t
        if self.kind == 'drill':
            if s.get('took_on') and s.get('took_on') != s.get('proved_on'):
                return t('rr_what_prove', took_on=md(s.get('took_on')), database=md(s.get('database')),
                         proved_on=md(s.get('proved_on')))
            what = t('rr_what_drill', database=md(s.get('database')), host=md(s.get('host')), fault=md(s.get('fault')))
            if s.get('rows_destroyed') is not None:
                what += t('rr_rows_destroyed', count=fmt.count(self.lang, s['rows_destroyed']))
            return what
        if self.kind == 'dr':
            return t('rr_what_dr', database=md(s.get('database')), host=md(s.get('host')),
                     source=md(s.get('source') or s.get('repository')))
        return t('rr_what_restore', database=md(s.get('database')), host=md(s.get('host')),
                 backup=md(s.get('backup_id') or t('none')))

    def incident(self):
        fig, t, lang, s = self.fig, self.t, self.lang, self.summary
        # A drill's RTO runs from the fault (or the set leaving its source); a restore's from its start.
        began = s.get('recovery_started_at') if self.kind == 'drill' else fig['started_at']
        occurred_key = 'rr_occurred' if self.kind == 'drill' and s.get('took_on') == s.get('proved_on') \
            else 'rr_recovery_started'
        recovered = (fmt.moment(lang, began, fig['rto'])
                     if fig['rto'] is not None and fig['status'] == 'passed' else t('rr_not_recovered'))
        began = fmt.moment(lang, began)
        lines = [(t('rr_what'), self.what_failed()), (t(occurred_key), began), (t('rr_recovered'), recovered),
                 (t('rr_recovery_time'), self.judged('rto', fmt.duration(lang, fig['rto']))),
                 (t('rr_data_loss'), self.judged('rpo', t('rr_data_loss_value', value=fmt.duration(lang, fig['rpo'])))
                  if fig['rpo'] is not None else t('none')),
                 (t('rr_result'), t('status_' + fig['status']))]
        return ['- **%s**: %s' % (label, value) for label, value in lines]

    def steps(self):
        t, lang, s = self.t, self.lang, self.summary
        lines = []
        for bar in self.bars:
            label = t(bar['label']) if bar['label'] else md(bar['name'])
            lines.append(t('rr_step', step=label, value=fmt.duration(lang, bar['seconds'])))
        if self.fig['status'] == 'failed' and s.get('failure'):
            lines.append(t('rr_step_failed', step=md(s.get('failed_task') or s.get('failed_step') or '?'),
                           failure=md(s['failure'])))
        out = ['%d. %s' % (index + 1, line) for index, line in enumerate(lines)]
        actions = [a for a in s.get('actions') or [] if isinstance(a, str)]
        if actions:
            out += ['', t('rr_actions')] + ['- %s' % md(action) for action in actions]
        return out

    def checks(self):
        t, s = self.t, self.summary
        lines = []
        tables = items(s.get('tables'), 'tables')
        ok = [table for table in tables if table.get('status') == 'ok']
        if ok:
            lines.append(t('rr_check_tables', ok=len(ok), total=len(tables)))
        for key, name in (('verification', 'rr_check_verification'), ('row_count_check', 'rr_check_verification'),
                          ('restore_row_count_check', 'rr_check_verification')):
            if s.get(key) and self.fig['status'] == 'passed':
                lines.append(t(name, text=md(s[key])))
        if s.get('integrity_passed') is True:
            lines.append(t('rr_check_integrity', text=md(s.get('integrity'))))
        files = s.get('verified_files') if self.kind != 'drill' else s.get('backup_files')
        if isinstance(files, int) and not isinstance(files, bool) and files > 0:
            lines.append(t('rr_check_files', count=files))
        for name, backup in sorted((s.get('files_restored') or {}).items()):
            lines.append(t('rr_check_folders', name=md(name), backup=md(backup or t('none'))))
        return ['- %s' % line for line in lines] or ['- %s' % t('rr_no_checks')]

    def physical_lines(self):
        """One line per pgBackRest stanza (and one per problem it has): the physical backups beside the logical."""
        t, lang, lines = self.t, self.lang, []
        for row in self.physical:
            failing = row['archiving_failing']
            archive = '%s - %s' % (row['min_wal'], row['max_wal']) if row['max_wal'] else t('none')
            lines.append('- %s' % t(
                'rr_physical_line', stanza=md(row['stanza'] or t('none')),
                host=md(row['host'] or self.fig['host'] or t('none')), label=md(row['label'] or t('none')),
                type=t('backup_type_' + row['type']) if row['type'] else t('none'),
                age=fmt.duration(lang, row['age_seconds']), archive=md(archive),
                exposure=fmt.duration(lang, row['exposure_seconds']),
                archiving=t('none') if failing is None else t('archiving_failing' if failing else 'archiving_ok')))
            lines += ['  - %s' % t('rr_physical_problem', problem=md(problem)) for problem in row['problems']]
        return lines

    def improvements(self):
        t, lang, fig, s = self.t, self.lang, self.fig, self.summary
        points = []
        if fig['status'] == 'failed':
            points.append(t('imp_failed', step=md(s.get('failed_step') or s.get('failed_task') or '?'),
                            failure=md(s.get('failure') or '?')))
        for name, key in (('rto', 'imp_rto_missed'), ('rpo', 'imp_rpo_missed')):
            if run_verdict(fig, name, self.targets) == 'missed':
                points.append(t(key, value=fmt.duration(lang, fig[name]),
                                target=fmt.duration(lang, self.targets[name])))
        if self.targets['rto'] is None and self.targets['rpo'] is None:
            points.append(t('imp_no_target'))
        bad = [table for table in items(s.get('tables'), 'tables') if table.get('status') != 'ok']
        if bad:
            points.append(t('imp_tables', count=len(bad), tables=', '.join(md(table.get('table')) for table in bad)))
        slower = trend(fig['duration'], [f['duration'] for _, f in self.history])
        if slower:
            points.append(t('imp_slower', value=fmt.duration(lang, fig['duration']), ratio=slower[0],
                            median=fmt.duration(lang, slower[1])))
        bigger = trend(fig['size'], [f['size'] for _, f in self.history])
        if bigger:
            points.append(t('imp_bigger', value=fmt.size(lang, fig['size']), ratio=bigger[0],
                            median=fmt.size(lang, bigger[1])))
        for row in self.physical:
            points += [t('imp_physical', problem=md(problem)) for problem in row['problems']]
        return ['- %s' % point for point in points or [t('imp_none')]]

    def render(self):
        t = self.t
        lines = ['## %s' % t('rr_title', run_id=md(self.fig['run_id'] or '')), '', '### %s' % t('rr_summary')]
        lines += self.incident()
        lines += ['', '### %s' % t('rr_steps')] + self.steps()
        lines += ['', '### %s' % t('rr_checks')] + self.checks()
        if self.physical:
            lines += ['', '### %s' % t('heading_physical')] + self.physical_lines()
        lines += ['', '### %s' % t('rr_improvements')] + self.improvements()
        return '\n'.join(lines) + '\n'


def render_recovery_report(kind, lang, summary, fig, targets, history, bars, physical=()):
    """The Markdown text; `history` is [(run name, figures)] of the earlier runs, `bars` the timeline's,
    `physical` the pgBackRest stanzas to show (report_physical.view_rows)."""
    return _Report(kind, lang, summary, fig, targets, history, bars, physical).render()
