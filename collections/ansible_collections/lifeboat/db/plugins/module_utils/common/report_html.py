# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""report.html: one self-contained page (inline CSS and SVG; no script, and nothing fetched from
anywhere: no font, image or link to load), readable on screen and printed.

Every value from a summary is escaped (esc) where it is written: table names, failures and run
ids are data, and may hold markup. Pass and miss are told by colour and by text. Each key figure
carries a stable id and its raw value in a data- attribute, for people's tools and the browser test."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import html
import math

from ansible_collections.lifeboat.db.plugins.module_utils.common import report_format as fmt
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_model import (
    CHARTS, RECOVERY_KINDS, fleet_rows, items, run_verdict, verdict)
from ansible_collections.lifeboat.db.plugins.module_utils.common.report_texts import text

CSS = """
:root { --ok: #1a7f37; --bad: #c62828; --muted: #5f6368; --line: #d0d7de; --ink: #1f2328; --bar: #4a6fa5; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Noto Sans CJK JP", "Yu Gothic", sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1000px; padding: 24px; line-height: 1.45; }
header { border-left: 8px solid var(--muted); padding: 8px 16px; margin-bottom: 16px; }
header.passed { border-color: var(--ok); } header.failed { border-color: var(--bad); }
h1 { margin: 0 0 4px; font-size: 1.6em; } h2 { font-size: 1.2em; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.status { display: inline-block; font-weight: bold; font-size: 1.2em; padding: 2px 12px; border-radius: 4px; color: #fff;
          background: var(--muted); }
.status.passed { background: var(--ok); } .status.failed { background: var(--bad); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0 0; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 12px; }
.figure { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; break-inside: avoid; }
.figure .label { color: var(--muted); font-size: 0.9em; }
.figure .value { font-size: 1.5em; font-weight: bold; overflow-wrap: anywhere; }
.figure .value.id { font-size: 1em; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.verdict { font-weight: bold; } .met { color: var(--ok); } .missed { color: var(--bad); } .unjudged { color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.state { white-space: nowrap; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
svg { max-width: 100%; height: auto; font-family: inherit; }
svg text { fill: var(--ink); font-size: 12px; }
.note { color: var(--muted); font-size: 0.9em; }
footer { margin-top: 24px; color: var(--muted); font-size: 0.85em; }
section { break-inside: avoid; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section, .figure, svg, tr { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""

COLOURS = dict(ok='#4a6fa5', failed='#c62828', met='#1a7f37', missed='#c62828', unjudged='#8c959f',
               mark='#1f2328', fault='#c62828', backup='#6f42c1', target='#1f2328', current='#1f2328')
CHART_TITLES = {('failed', 'integrity'): 'chart_failed_checks', ('failed', 'fleet'): 'chart_failed_hosts'}
SYMBOL = dict(met='\u2713', missed='\u2717', passed='\u2713', failed='\u2717')


def esc(value):
    """Text and attribute values, escaped (quotes too)."""
    return html.escape('' if value is None else '%s' % value, quote=True)


def _num_attr(value):
    return '' if value is None else repr(round(float(value), 6))


class _Page(object):
    def __init__(self, kind, lang, summary, fig, targets, history, skipped, timeline, physical=()):
        self.kind, self.lang, self.summary, self.fig = kind, lang, summary, fig
        self.targets, self.history, self.skipped = targets, history, skipped
        self.bars, self.marks, self.spans = timeline
        self.physical = list(physical)

    def t(self, key, **values):
        return text(self.lang, key, **values)

    def duration(self, seconds):
        return fmt.duration(self.lang, seconds)

    # The header and the key figures

    def header(self):
        fig, t = self.fig, self.t
        status = fig['status']
        rows = [('label_run', fig['run_id']), ('label_host', fig['host']), ('label_database', fig['database']),
                ('label_started', fmt.moment(self.lang, fig['started_at']) if fig['started_at'] else None),
                ('label_finished', fmt.moment(self.lang, fig['finished_at']) if fig['finished_at'] else None)]
        if self.kind == 'drill':
            rows.append(('label_fault', self.summary.get('fault')))
        if self.kind in ('restore', 'dr'):
            rows.append(('label_source', self.summary.get('source')))
        if status == 'failed' and self.kind in RECOVERY_KINDS:
            rows.append(('label_failed_step', self.summary.get('failed_step') or self.summary.get('failed_task')))
            rows.append(('label_failure', self.summary.get('failure')))
        meta = ''.join('<dt>%s</dt><dd id="meta-%s">%s</dd>' % (esc(t(key)), esc(key[6:].replace('_', '-')), esc(value))
                       for key, value in rows if value is not None)
        return ('<header class="%s"><h1>%s</h1><p><span class="status %s" id="status" data-status="%s">%s %s</span></p>'
                '<dl class="meta">%s</dl></header>'
                % (esc(status), esc(t('title_' + self.kind)), esc(status), esc(status), SYMBOL.get(status, '?'),
                   esc(t('status_' + status)), meta))

    def judged(self, name):
        """(verdict, target text) of the rto or rpo figure."""
        target = self.targets[name]
        if target is None:
            if name == 'rpo' and self.targets['rpo_minimal']:
                return None, self.t('target_minimal')
            return None, self.t('target_none')
        if self.targets['level']:
            words = self.t('target_value_level', value=self.duration(target), level=self.targets['level'])
        else:
            words = self.t('target_value', value=self.duration(target))
        return run_verdict(self.fig, name, self.targets), words

    def verdict_html(self, name):
        judged, target = self.judged(name)
        state = judged or 'unjudged'
        if judged is None:
            if not self.fig['timed'] and self.targets[name] is not None:
                shown = self.t('target_failed_run')
            elif self.fig[name] is None and self.targets[name] is not None:
                shown = self.t('target_not_measured')
            else:
                shown = target
            return '<div class="verdict unjudged" id="%s-verdict" data-verdict="none">%s</div>' % (name, esc(shown))
        return ('<div class="verdict %s" id="%s-verdict" data-verdict="%s">%s %s \u00b7 %s</div>'
                % (state, name, state, SYMBOL[state], esc(self.t('target_' + state)), esc(target)))

    def figure(self, label, ident, shown, attrs='', extra=''):
        return ('<div class="figure"><div class="label">%s</div><div class="value%s"><span id="%s"%s>%s</span></div>%s</div>'
                % (esc(label), ' id' if ident == 'backup-id' else '', ident, attrs, esc(shown), extra))

    def figures(self):
        fig, t, kind = self.fig, self.t, self.kind
        cards = []
        if kind in RECOVERY_KINDS or kind == 'fleet':
            for name in ('rto', 'rpo'):
                cards.append(self.figure(t('figure_' + name), name, self.duration(fig[name]),
                                         ' data-seconds="%s"' % _num_attr(fig[name]), self.verdict_html(name)))
        if kind in RECOVERY_KINDS:
            cards.append(self.figure(t('figure_backup'), 'backup-id', fig['backup_id'] or t('none'),
                                     ' data-backup-id="%s"' % esc(fig['backup_id'] or '')))
            label = 'figure_backup_size' if kind == 'drill' else 'figure_database_size'
            cards.append(self.figure(t(label), 'backup-size', fmt.size(self.lang, fig['size']),
                                     ' data-bytes="%s"' % _num_attr(fig['size'])))
            cards.append(self.figure(t('figure_rows'), 'rows', fmt.count(self.lang, fig['rows']),
                                     ' data-rows="%s"' % _num_attr(fig['rows'])))
        if kind == 'integrity':
            cards.append(self.figure(t('figure_checks'), 'checks',
                                     t('figure_checks_value', passed=fmt.count(self.lang, fig['checks_passed']),
                                       total=fmt.count(self.lang, fig['checks_total'])),
                                     ' data-passed="%s" data-total="%s" data-failed="%s"'
                                     % (_num_attr(fig['checks_passed']), _num_attr(fig['checks_total']),
                                        _num_attr(fig['failed']))))
        if kind == 'fleet':
            cards.append(self.figure(t('figure_hosts'), 'hosts-ok',
                                     t('figure_checks_value', passed=fmt.count(self.lang, fig['hosts_ok']),
                                       total=fmt.count(self.lang, fig['hosts'])),
                                     ' data-ok="%s" data-hosts="%s"' % (_num_attr(fig['hosts_ok']), _num_attr(fig['hosts']))))
            cards.append(self.figure(t('chart_size_fleet'), 'backup-size', fmt.size(self.lang, fig['size']),
                                     ' data-bytes="%s"' % _num_attr(fig['size'])))
        else:
            cards.append(self.figure(t('figure_duration_' + kind), 'duration', self.duration(fig['duration']),
                                     ' data-seconds="%s"' % _num_attr(fig['duration'])))
        return '<section id="figures"><h2>%s</h2><div class="figures">%s</div></section>' % (
            esc(t('heading_figures')), ''.join(cards))

    # Against the targets: one gauge per figure, measured against its target, to scale.

    def targets_section(self):
        if self.kind not in RECOVERY_KINDS:
            return ''
        rows, lines = [], []
        for index, name in enumerate(('rto', 'rpo')):
            value, target = self.fig[name], self.targets[name]
            judged, target_words = self.judged(name)
            state = judged or 'unjudged'
            figure = self.t('chart_' + name)
            lines.append('<li class="%s" data-figure="%s" data-verdict="%s">%s</li>' % (
                state, name, judged or 'none', esc(self.t('target_line', figure=figure, value=self.duration(value),
                                                           target=target_words,
                                                           verdict=self.t('target_' + (judged or 'unjudged'))))))
            y = 10 + index * 46
            scale_max = max([v for v in (value, target) if v is not None] or [1.0]) or 1.0
            width = 560.0
            rows.append('<text x="0" y="%d">%s</text>' % (y + 14, esc(figure)))
            rows.append('<rect x="60" y="%d" width="%.1f" height="20" fill="#eef1f4"/>' % (y, width))
            if value is not None:
                rows.append('<rect x="60" y="%d" width="%.1f" height="20" fill="%s"><title>%s</title></rect>'
                            % (y, max(1.0, width * value / scale_max), COLOURS[state], esc(self.duration(value))))
            if target is not None:
                x = 60 + width * target / scale_max
                rows.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="4 2"/>'
                            % (x, x, y - 4, y + 24, COLOURS['target']))
            rows.append('<text x="630" y="%d">%s %s</text>' % (
                y + 14, SYMBOL.get(state, ''), esc('%s / %s' % (self.duration(value), target_words))))
            rows.append('<text x="630" y="%d" class="note">%s</text>' % (y + 30, esc(self.t('target_' + state))))
        return ('<section id="targets"><h2>%s</h2><svg id="targets-chart" role="img" viewBox="0 0 960 100" '
                'width="960" height="100" aria-label="%s">%s</svg><ul>%s</ul><p class="note">%s</p></section>'
                % (esc(self.t('heading_targets')), esc(self.t('heading_targets')), ''.join(rows), ''.join(lines),
                   esc(self.t('targets_hint'))))

    # The timeline, drawn to scale: a row per step, the marks (fault, recovered, backup) across them.

    def bar_label(self, bar):
        return self.t(bar['label']) if bar['label'] else bar['name']

    def timeline_section(self):
        if self.kind == 'fleet':
            return ''
        t = self.t
        bars, marks, spans = self.bars, self.marks, self.spans
        if not bars and not marks:
            return '<section id="timeline"><h2>%s</h2><p>%s</p></section>' % (esc(t('heading_timeline')),
                                                                             esc(t('timeline_empty')))
        ends = [bar['start'] + bar['seconds'] for bar in bars] + [m['at'] for m in marks] + [0.0]
        hi = max(ends) or 1.0
        # A mark far before the first step (the backup, hours before a restore) would squash the
        # steps into a line: it is drawn at the left edge and says how much earlier it was.
        lo = min([m['at'] for m in marks if m['at'] >= -hi] + [0.0])
        notes, target_lines = [], []
        fault = [m['at'] for m in marks if m['key'] in ('mark_fault', 'mark_recovery_start')]
        if fault:
            for name, direction in (('rto', 1), ('rpo', -1)):
                target = self.targets[name]
                if target is None:
                    continue
                at = fault[0] + direction * target
                if lo - (hi - lo) * 0.5 <= at <= hi + (hi - lo) * 0.5:
                    target_lines.append((name, at))
                    hi, lo = max(hi, at), min(lo, at)
                else:
                    notes.append(t('mark_target_off_scale', figure=t('chart_' + name), value=self.duration(target)))
        left, width, row = 210.0, 720.0, 22
        span_rows = [name for name in ('rto', 'rpo') if name in spans]
        top = 58
        height = top + (len(span_rows) + len(bars)) * row + 40

        def x(at):
            return left + width * (min(max(at, lo), hi) - lo) / ((hi - lo) or 1.0)

        parts = []
        y = top
        for name in span_rows:
            start, end = spans[name]
            judged = self.judged(name)[0] or 'unjudged'
            parts.append('<text x="0" y="%d">%s</text>' % (y + 15, esc(t('chart_' + name))))
            parts.append('<rect class="span" data-span="%s" x="%.1f" y="%d" width="%.1f" height="16" fill="%s" '
                         'fill-opacity="0.35" stroke="%s"><title>%s</title></rect>'
                         % (name, x(start), y + 3, max(1.0, x(end) - x(start)), COLOURS[judged], COLOURS[judged],
                            esc('%s %s' % (t('chart_' + name), self.duration(end - start)))))
            parts.append('<text x="%.1f" y="%d">%s %s</text>' % (
                min(x(end) + 4, left + width - 150), y + 15, SYMBOL.get(judged, ''),
                esc('%s \u00b7 %s' % (self.duration(end - start), t('target_' + judged)))))
            y += row
        for bar in bars:
            label = self.bar_label(bar)
            parts.append('<text x="0" y="%d">%s</text>' % (y + 15, esc(label[:32])))
            colour = COLOURS['failed'] if bar['state'] == 'failed' else COLOURS['ok']
            parts.append('<rect class="step" data-step="%s" data-start="%s" data-seconds="%s" x="%.1f" y="%d" '
                         'width="%.2f" height="16" fill="%s"><title>%s</title></rect>'
                         % (esc(bar['name'] or bar['label']), _num_attr(bar['start']), _num_attr(bar['seconds']),
                            x(bar['start']), y + 3, max(1.0, x(bar['start'] + bar['seconds']) - x(bar['start'])),
                            colour, esc('%s: %s' % (label, self.duration(bar['seconds'])))))
            parts.append('<text x="%.1f" y="%d" class="note">%s</text>' % (
                min(x(bar['start'] + bar['seconds']) + 4, left + width - 60), y + 15, esc(self.duration(bar['seconds']))))
            y += row
        bottom = y
        for index, mark in enumerate(sorted(marks, key=lambda m: m['at'])):
            colour = COLOURS['fault'] if mark['key'] == 'mark_fault' else (
                COLOURS['backup'] if mark['key'] == 'mark_backup' else COLOURS['mark'])
            label = t(mark['key'])
            if mark['at'] < lo:
                label += ' (%s)' % t('mark_earlier', value=self.duration(lo - mark['at']))
            mx = x(mark['at'])
            parts.append('<line class="mark" data-mark="%s" data-at="%s" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" '
                         'stroke-width="2"/>' % (esc(mark['key'][5:]), _num_attr(mark['at']), mx, mx, 12 + (index % 3) * 15,
                                                  bottom, colour))
            parts.append('<text x="%.1f" y="%d" text-anchor="%s">%s</text>' % (
                mx, 10 + (index % 3) * 15, 'end' if mx > left + width * 0.7 else 'start', esc(label)))
        for name, at in target_lines:
            tx = x(at)
            parts.append('<line class="target" data-target="%s" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" '
                         'stroke-dasharray="5 3"/>' % (name, tx, tx, top, bottom, COLOURS['target']))
            parts.append('<text x="%.1f" y="%d" text-anchor="end">%s</text>' % (
                tx - 2, bottom + 14, esc(t('mark_target', figure=t('chart_' + name)))))
        parts.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#8c959f"/>' % (left, left + width, bottom, bottom))
        ticks = _ticks(lo, hi)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else (hi - lo) or 1.0
        for tick in ticks:
            shown = fmt.axis(self.lang, abs(tick), step)
            parts.append('<text x="%.1f" y="%d" text-anchor="middle" class="note">%s</text>' % (
                x(tick), bottom + 30, esc(shown if tick >= 0 else '-' + shown)))
        svg = ('<svg id="timeline-chart" role="img" aria-label="%s" viewBox="0 0 960 %d" width="960" height="%d" '
               'data-from="%s" data-to="%s">%s</svg>'
               % (esc(t('heading_timeline')), height, height, _num_attr(lo), _num_attr(hi), ''.join(parts)))
        note = t('timeline_checks_note') if self.kind == 'integrity' else t('timeline_note')
        return '<section id="timeline"><h2>%s</h2>%s<p class="note">%s</p>%s</section>' % (
            esc(t('heading_timeline')), svg, esc(note), ''.join('<p class="note">%s</p>' % esc(n) for n in notes))

    # What the run looked at: tables, checks, hosts.

    def tables_section(self):
        t = self.t
        if self.kind in RECOVERY_KINDS:
            tables = items(self.summary.get('tables'), 'tables')
            if not tables:
                return ''
            rows = ''.join('<tr class="%s"><td>%s</td><td class="num">%s</td><td class="num">%s</td><td class="state">%s %s</td></tr>'
                           % ('met' if table.get('status') == 'ok' else 'missed', esc(table.get('table')),
                              esc(fmt.count(self.lang, table.get('expected'))), esc(fmt.count(self.lang, table.get('actual'))),
                              SYMBOL['passed'] if table.get('status') == 'ok' else SYMBOL['failed'],
                              esc(self._state(table.get('status'))))
                           for table in tables)
            return ('<section id="tables"><h2>%s</h2><table><thead><tr><th>%s</th><th class="num">%s</th><th class="num">%s'
                    '</th><th>%s</th></tr></thead><tbody>%s</tbody></table></section>'
                    % (esc(t('heading_tables')), esc(t('column_table')), esc(t('column_expected')),
                       esc(t('column_found')), esc(t('column_status')), rows))
        if self.kind == 'integrity':
            checks = items(self.summary.get('checks'), 'checks')
            rows = ''.join('<tr class="%s"><td>%s</td><td class="state">%s %s</td><td class="num">%s</td><td>%s</td></tr>'
                           % ('met' if check.get('status') in ('passed', 'skipped') else 'missed', esc(check.get('name')),
                              SYMBOL['passed'] if check.get('status') in ('passed', 'skipped') else SYMBOL['failed'],
                              esc(self._state(check.get('status'))), esc(self.duration(check.get('seconds'))),
                              esc(check.get('summary')))
                           for check in checks)
            return ('<section id="check-list"><h2>%s</h2><p>%s</p><table><thead><tr><th>%s</th><th>%s</th><th class="num">%s'
                    '</th><th>%s</th></tr></thead><tbody>%s</tbody></table></section>'
                    % (esc(t('heading_checks')), esc(self.summary.get('summary')), esc(t('column_check')),
                       esc(t('column_status')), esc(t('column_seconds')), esc(t('column_result')), rows))
        return self.fleet_section()

    def _state(self, state):
        key = 'state_' + ('error' if state == 'could not run' else '%s' % state)
        return self.t(key) if key in ('state_ok', 'state_failed', 'state_unreachable', 'state_passed',
                                       'state_skipped', 'state_error') else state

    def fleet_section(self):
        t = self.t
        counts = self.summary.get('counts') or {}
        body = []
        for row in fleet_rows(self.summary):
            cells = []
            for name in ('rto', 'rpo'):
                judged = None if row['drill'] == 'failed' else verdict(row[name], self.targets[name])
                cells.append('<td class="num %s" data-%s="%s">%s%s</td>' % (
                    judged or 'unjudged', name, _num_attr(row[name]), esc(self.duration(row[name])),
                    (' %s %s' % (SYMBOL[judged], esc(t('target_' + judged)))) if judged else ''))
            body.append('<tr data-host="%s" data-state="%s" class="%s"><td>%s</td><td>%s</td><td class="state">%s %s</td><td>%s</td>'
                        '<td class="num">%s</td>%s</tr>'
                        % (esc(row['host']), esc(row['state']), 'met' if row['state'] == 'ok' else 'missed',
                           esc(row['host']), esc(row['database']), SYMBOL['passed'] if row['state'] == 'ok' else SYMBOL['failed'],
                           esc(self._state(row['state'])), esc(row['backup_id'] or t('none')),
                           esc(fmt.size(self.lang, row['size'])), ''.join(cells)))
        problems = ''.join('<li>%s: %s</li>' % (esc(host.get('host')), esc(problem))
                           for host in items(self.summary.get('hosts'), 'hosts') for problem in host.get('problems') or [])
        return ('<section id="hosts"><h2>%s</h2><p id="fleet-counts">%s</p><table><thead><tr><th>%s</th><th>%s</th>'
                '<th>%s</th><th>%s</th><th class="num">%s</th><th class="num">%s</th><th class="num">%s</th></tr></thead>'
                '<tbody>%s</tbody></table>%s</section>'
                % (esc(t('heading_hosts')), esc(t('fleet_counts', ok=counts.get('ok', 0), failed=counts.get('failed', 0),
                                                   unreachable=counts.get('unreachable', 0))),
                   esc(t('column_host')), esc(t('column_database')), esc(t('column_status')), esc(t('column_backup')),
                   esc(t('figure_backup_size')), esc(t('chart_rto')), esc(t('chart_rpo')), ''.join(body),
                   ('<h3>%s</h3><ul>%s</ul>' % (esc(t('heading_problems')), problems)) if problems else ''))

    # Physical backups: each pgBackRest stanza beside the logical backups.

    def physical_section(self):
        if not self.physical:
            return ''
        t = self.t
        body, problems = [], []
        for row in self.physical:
            failing = row['archiving_failing']
            bad = failing or bool(row['problems'])
            archive = ('%s \u2013 %s' % (row['min_wal'], row['max_wal'])) if row['max_wal'] else t('none')
            archiving = t('none') if failing is None else '%s %s' % (
                SYMBOL['failed' if failing else 'passed'], t('archiving_failing' if failing else 'archiving_ok'))
            body.append(
                '<tr data-host="%s" data-stanza="%s" data-failing="%s" class="%s"><td>%s</td><td>%s</td><td>%s</td>'
                '<td>%s</td><td>%s</td><td class="num" data-age="%s">%s</td><td>%s</td>'
                '<td class="num" data-exposure="%s">%s</td><td class="state">%s</td></tr>'
                % (esc(row['host'] or ''), esc(row['stanza']), 'true' if failing else 'false', 'missed' if bad else 'met',
                   esc(row['host'] or self.fig['host'] or t('none')), esc(row['stanza'] or t('none')),
                   esc(self._state(row['status']) if row['status'] in ('ok', 'failed') else row['status'] or t('none')),
                   esc(row['label'] or t('none')),
                   esc(t('backup_type_' + row['type']) if row['type'] else t('none')), _num_attr(row['age_seconds']),
                   esc(self.duration(row['age_seconds'])), esc(archive), _num_attr(row['exposure_seconds']),
                   esc(self.duration(row['exposure_seconds'])), esc(archiving)))
            problems += ['<li>%s</li>' % esc(problem) for problem in row['problems']]
        return ('<section id="physical"><h2>%s</h2><p class="note">%s</p><table><thead><tr><th>%s</th><th>%s</th>'
                '<th>%s</th><th>%s</th><th>%s</th><th class="num">%s</th><th>%s</th><th class="num">%s</th><th>%s</th>'
                '</tr></thead><tbody>%s</tbody></table>%s</section>'
                % (esc(t('heading_physical')), esc(t('physical_note')), esc(t('column_host')), esc(t('column_stanza')),
                   esc(t('column_status')), esc(t('column_latest_backup')), esc(t('column_type')), esc(t('column_age')),
                   esc(t('column_archive')), esc(t('column_exposure')), esc(t('column_archiving')), ''.join(body),
                   ('<h3>%s</h3><ul id="physical-problems">%s</ul>' % (esc(t('heading_problems')), ''.join(problems)))
                   if problems else ''))

    # History: small charts of the earlier runs and this one.

    def chart(self, metric, runs):
        t = self.t
        title = t(CHART_TITLES.get((metric, self.kind)) or 'chart_%s_%s' % (metric, self.kind)
                  if metric in ('size', 'duration', 'failed') else 'chart_' + metric)
        show = {'size': lambda v: fmt.size(self.lang, v), 'failed': lambda v: fmt.count(self.lang, v)}.get(metric, self.duration)
        values = [(name, fig[metric], fig) for name, fig in runs]
        measured = [v for _, v, _ in values if v is not None]
        target = self.targets.get(metric) if metric in ('rto', 'rpo') else None
        top = max(measured) if measured else None
        # A target far above every run (4 h against seconds) would flatten the bars: it is named instead.
        if target is not None and top is not None and target > 2 * top:
            parts_note = t('chart_target_above', value=self.duration(target))
            target = None
        else:
            parts_note = None
            top = max([top or 0.0] + ([target] if target is not None else []))
        w, h, left, plot_h = 300, 142, 8, 80
        parts = ['<text x="%d" y="14" font-weight="bold">%s</text>' % (left, esc(title))]
        if not measured:
            parts.append('<text x="%d" y="60" class="note">%s</text>' % (left, esc(t('chart_no_data'))))
        else:
            top = top or 1.0
            parts.append('<text x="%d" y="14" text-anchor="end" class="note">%s</text>' % (
                w - left, esc(t('chart_max', value=show(max(measured))))))
            step = min(40.0, (w - 2 * left) / float(len(values)))
            base = 24 + plot_h
            for index, (name, value, fig) in enumerate(values):
                current = index == len(values) - 1
                if value is None:
                    continue
                judged = run_verdict(fig, metric, self.targets) if target is not None else None
                if judged == 'missed' or (metric == 'failed' and value > 0):
                    colour = COLOURS['missed']
                else:
                    # A failed run's times are not a recovery's: grey, and its tooltip says it failed.
                    colour = COLOURS['ok'] if fig['timed'] else COLOURS['unjudged']
                bar_h = max(1.0, plot_h * value / top)
                parts.append('<rect class="run%s" data-run="%s" data-value="%s" x="%.1f" y="%.1f" width="%.1f" '
                             'height="%.1f" fill="%s"%s><title>%s</title></rect>'
                             % (' current' if current else '', esc(name), _num_attr(value), left + index * step + 1,
                                base - bar_h, max(1.0, step - 2), bar_h, colour,
                                ' stroke="%s" stroke-width="2"' % COLOURS['current'] if current else '',
                                esc('%s: %s%s' % (name, show(value), (' (%s)' % t('target_' + judged)) if judged
                                                  else ('' if fig['timed'] else ' (%s)' % t('status_failed'))))))
            if target is not None:
                ty = base - plot_h * target / top
                parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4 2"/>'
                             '<text x="%d" y="%.1f" class="note">%s</text>'
                             % (left, w - left, ty, ty, COLOURS['target'], left, max(34.0, ty - 3),
                                esc(self.t('target_value', value=self.duration(target)))))
            if parts_note:
                parts.append('<text x="%d" y="%d" class="note">%s</text>' % (left, base + 32, esc(parts_note)))
            parts.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#8c959f"/>' % (left, w - left, base, base))
            parts.append('<text x="%d" y="%d" class="note">%s</text>' % (left, base + 16, esc(runs[0][0][:15])))
            parts.append('<text x="%d" y="%d" text-anchor="end" class="note">%s</text>' % (
                w - left, base + 16, esc(t('chart_this_run'))))
        return ('<svg class="history-chart" id="history-%s" data-metric="%s" data-runs="%d" role="img" aria-label="%s" '
                'viewBox="0 0 %d %d" width="%d" height="%d">%s</svg>'
                % (metric, metric, len(values), esc(title), w, h, w, h, ''.join(parts)))

    def history_section(self):
        t = self.t
        runs = [(name, fig) for name, fig in self.history] + [(self.fig['run_id'] or '', self.fig)]
        if self.kind == 'fleet':
            scope = t('history_scope_all')
        else:
            scope = t('history_scope', host=self.fig['host'] or t('none'), database=self.fig['database'] or t('none'))
        notes = ['<p class="note">%s</p>' % esc(scope)]
        if not self.history:
            notes.append('<p class="note" id="history-none">%s</p>' % esc(t('history_none')))
        if self.skipped:
            notes.append('<p class="note" id="history-skipped" data-skipped="%d">%s</p>'
                         % (self.skipped, esc(t('history_skipped', count=self.skipped))))
        charts = ''.join(self.chart(metric, runs) for metric in CHARTS[self.kind])
        return ('<section id="history" data-runs="%d" data-skipped="%d"><h2>%s</h2>%s<div class="charts">%s</div></section>'
                % (len(runs), self.skipped, esc(t('heading_history', count=len(runs))), ''.join(notes), charts))

    def render(self, written_at):
        t = self.t
        body = ''.join([self.header(), self.figures(), self.targets_section(), self.timeline_section(),
                        self.tables_section(), self.physical_section(), self.history_section(),
                        '<footer>%s</footer>' % esc(t('generated', time=written_at))])
        title = '%s: %s' % (t('title_' + self.kind), self.fig['run_id'] or '')
        return ('<!DOCTYPE html>\n<html lang="%s">\n<head>\n<meta charset="utf-8">\n'
                '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                '<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n%s\n</body>\n</html>\n'
                % (self.lang, esc(title), CSS, body))


def _ticks(lo, hi, count=6):
    """About `count` round tick values between lo and hi."""
    span = (hi - lo) or 1.0
    magnitude = 10 ** math.floor(math.log10(span / count))
    for factor in (1, 2, 5, 10):
        step = factor * magnitude
        if span / step <= count:
            break
    first = int(lo / step) * step
    ticks, value = [], first
    while value <= hi + 1e-9:
        if value >= lo - 1e-9:
            ticks.append(round(value, 6))
        value += step
    return ticks


def render_html(kind, lang, summary, fig, targets, history, skipped, timeline, written_at, physical=()):
    """The page, as text. `history` is [(run name, figures)] of the earlier runs, oldest first; `physical`
    the pgBackRest stanzas to show (report_physical.view_rows)."""
    return _Page(kind, lang, summary, fig, targets, history, skipped, timeline, physical).render(written_at)
