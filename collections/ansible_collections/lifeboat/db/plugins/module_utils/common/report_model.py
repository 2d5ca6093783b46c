# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a report shows, from a run's summary (as the roles write summary.json): its key figures,
the targets they are judged against, the timeline of its steps and the metrics of its history.

Every value read from a summary is checked for its type (WrongShape when it is not as lifeboat
writes it): a report reads earlier runs' summaries from the evidence folder, which are untrusted."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math

KINDS = ('drill', 'restore', 'dr', 'integrity', 'fleet')
# The kinds with a recovery, hence RTO and RPO and a recovery report.
RECOVERY_KINDS = ('drill', 'restore', 'dr')
# Seed 003's recovery levels: (RTO, RPO) in seconds. RTO-1 tolerates "minimal" data loss, which
# names no figure: its RPO is judged only against an explicit lifeboat_rpo_target_seconds.
LEVELS = {'RTO-1': (3600.0, None), 'RTO-4': (4 * 3600.0, 3600.0), 'RTO-24': (86400.0, 86400.0)}
# The charts of each kind's history, by metric.
CHARTS = {
    'drill': ('rto', 'rpo', 'size', 'duration'),
    'restore': ('rto', 'rpo', 'size', 'duration'),
    'dr': ('rto', 'rpo', 'size', 'duration'),
    'integrity': ('duration', 'failed'),
    'fleet': ('rto', 'rpo', 'size', 'failed'),
}
# A restore's phases, by their key in the restore module's timings. download_seconds and
# verify_seconds count from the restore's start; the others are each phase's own length.
_FROM_START = ('download_seconds', 'verify_seconds')
_OWN_LENGTH = (('safety_backup_seconds', 'phase_safety_backup'), ('restore_seconds', 'phase_restore'),
               ('analyze_seconds', 'phase_analyze'))


class WrongShape(ValueError):
    """A summary value of the wrong type; the message names the field, never its value."""


def number(value, what):
    """A count or a length: a finite number >= 0, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise WrongShape('%s is not a number of 0 or more' % what)
    return float(value)


def string(value, what):
    if value is None:
        return None
    if not isinstance(value, str):
        raise WrongShape('%s is not a text' % what)
    return value


def mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WrongShape('%s is not a mapping' % what)
    return value


def items(value, what):
    """A list of mappings (steps, tables, checks, hosts)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise WrongShape('%s is not a list of mappings' % what)
    return value


def resolve_targets(targets):
    """{rto, rpo, level, rpo_minimal} from the options: seconds given win over the level's."""
    targets = targets or {}
    level = targets.get('level') or None
    rto, rpo = LEVELS.get(level, (None, None))
    if targets.get('rto_seconds') is not None:
        rto = float(targets['rto_seconds'])
    if targets.get('rpo_seconds') is not None:
        rpo = float(targets['rpo_seconds'])
    return dict(rto=rto, rpo=rpo, level=level, rpo_minimal=level == 'RTO-1' and rpo is None)


def verdict(value, target):
    """met, missed, or None (no target, or nothing measured)."""
    if value is None or target is None:
        return None
    return 'met' if value <= target else 'missed'


def run_verdict(fig, name, targets):
    """The verdict of a run's rto or rpo: None for a failed run too, whose times are not a recovery's."""
    return verdict(fig[name], targets[name]) if fig['timed'] else None


def _status(value, what):
    value = string(value, what)
    return value if value in ('passed', 'failed') else 'unknown'


def _tables(summary):
    tables = items(summary.get('tables'), 'tables')
    for table in tables:
        string(table.get('table'), 'tables[].table')
        number(table.get('expected'), 'tables[].expected')
        number(table.get('actual'), 'tables[].actual')
        string(table.get('status'), 'tables[].status')
    return tables


def _steps(summary):
    steps = []
    for step in items(summary.get('steps'), 'steps'):
        steps.append((string(step.get('name'), 'steps[].name') or '?', number(step.get('seconds'), 'steps[].seconds')))
    return steps


def _recovery_figures(kind, summary):
    tables = _tables(summary)
    actual = [table.get('actual') for table in tables if table.get('actual') is not None]
    if kind == 'drill':
        steps = dict(_steps(summary))
        rows = number(summary.get('restored_total_rows'), 'restored_total_rows')
        return dict(rto=number(summary.get('rto_seconds'), 'rto_seconds'),
                    rpo=number(summary.get('rpo_seconds'), 'rpo_seconds'),
                    size=number(summary.get('backup_size'), 'backup_size'),
                    duration=steps.get('restore'), rows=rows)
    timings = mapping(summary.get('timings'), 'timings')
    return dict(rto=number(summary.get('recovery_seconds'), 'recovery_seconds'),
                rpo=number(summary.get('recovery_point_age_seconds'), 'recovery_point_age_seconds'),
                size=number(summary.get('restore_bytes'), 'restore_bytes'),
                duration=number(timings.get('total_seconds'), 'timings.total_seconds'),
                rows=float(sum(actual)) if actual else None)


def _integrity_figures(summary):
    counts = mapping(summary.get('counts'), 'counts')
    passed = summary.get('passed')
    if passed is not None and not isinstance(passed, bool):
        raise WrongShape('passed is not true, false or null')
    numbers = dict((name, number(counts.get(name), 'counts.%s' % name) or 0.0)
                   for name in ('passed', 'failed', 'error', 'skipped'))
    for check in items(summary.get('checks'), 'checks'):
        string(check.get('name'), 'checks[].name')
        string(check.get('status'), 'checks[].status')
        number(check.get('seconds'), 'checks[].seconds')
    return dict(status={True: 'passed', False: 'failed'}.get(passed, 'unknown'),
                duration=number(summary.get('seconds'), 'seconds'), failed=numbers['failed'] + numbers['error'],
                checks_passed=numbers['passed'], checks_total=sum(numbers.values()) - numbers['skipped'])


def fleet_rows(summary):
    """One row per host and database: {host, state, database, backup_id, size, drill status, rto, rpo}."""
    rows = []
    for host in items(summary.get('hosts'), 'hosts'):
        name = string(host.get('host'), 'hosts[].host') or '?'
        state = string(host.get('state'), 'hosts[].state') or 'unknown'
        databases = items(host.get('databases'), 'hosts[].databases') or [{}]
        for database in databases:
            drill = mapping(database.get('drill'), 'hosts[].databases[].drill')
            rows.append(dict(host=name, state=state,
                             database=string(database.get('database'), 'hosts[].databases[].database'),
                             backup_id=string(database.get('last_backup_id'), 'hosts[].databases[].last_backup_id'),
                             size=number(database.get('size'), 'hosts[].databases[].size'),
                             drill=string(drill.get('status'), 'drill.status'),
                             rto=number(drill.get('rto_seconds'), 'drill.rto_seconds'),
                             rpo=number(drill.get('rpo_seconds'), 'drill.rpo_seconds')))
        for problem in host.get('problems') or []:
            string(problem, 'hosts[].problems[]')
    return rows


def _fleet_figures(summary):
    rows = fleet_rows(summary)
    counts = mapping(summary.get('counts'), 'counts')
    hosts = len(set(row['host'] for row in rows))
    ok = number(counts.get('ok'), 'counts.ok')

    def most(key):
        values = [row[key] for row in rows if row[key] is not None and row['drill'] == 'passed']
        return max(values) if values else None
    sizes = [row['size'] for row in rows if row['size'] is not None]
    return dict(status='passed' if ok is not None and ok >= hosts else 'failed', rto=most('rto'), rpo=most('rpo'),
                size=sum(sizes) if sizes else None, duration=most('rto'), hosts_ok=ok, hosts=hosts,
                failed=float(hosts - (ok or 0)))


def figures(kind, summary):
    """The key figures of one run: status, rto, rpo, size, duration, rows, ... (None when not measured)."""
    if not isinstance(summary, dict):
        raise WrongShape('the summary is not a mapping')
    base = dict(run_id=string(summary.get('run_id'), 'run_id'), host=string(summary.get('host'), 'host'),
                database=string(summary.get('database'), 'database'),
                started_at=string(summary.get('started_at'), 'started_at'),
                finished_at=string(summary.get('finished_at') or summary.get('generated_at'), 'finished_at'),
                backup_id=string(summary.get('backup_id'), 'backup_id'),
                status=_status(summary.get('status'), 'status'), rto=None, rpo=None, size=None, duration=None,
                rows=None, failed=None)
    # Whether the run's RTO and RPO are a recovery's, to be judged: not a failed run's; the fleet's
    # are its passed drills'.
    base['timed'] = kind == 'fleet' or base['status'] != 'failed'
    if kind in RECOVERY_KINDS:
        base.update(_recovery_figures(kind, summary))
    elif kind == 'integrity':
        base.update(_integrity_figures(summary))
    else:
        base.update(_fleet_figures(summary))
    return base


def same_series(kind, current):
    """The test an earlier run passes to be in this run's history: the same host and database (and,
    for a drill, the same host whose backup was proved); any run for the fleet."""
    def belongs(summary):
        if kind == 'fleet':
            return True
        keys = ('host', 'database', 'took_on') if kind == 'drill' else ('host', 'database')
        return all(summary.get(key) == current.get(key) for key in keys)
    return belongs


# The timeline: bars {label (a text key) or name (as the summary says), start, seconds, state} and
# marks {key, at}, in seconds from the first bar; spans {rto: (start, end), rpo: (start, end)}.

def _bar(start, seconds, label=None, name=None, state='ok'):
    return dict(start=start, seconds=seconds, label=label, name=name, state=state)


def _spread(bars, first, total):
    """Move bars[first:] so that they end `total` seconds after bars[first] starts, with the
    time not spent in them spread evenly between them (Ansible's time between tasks)."""
    span = bars[first:]
    slack = total - sum(bar['seconds'] for bar in span)
    if slack <= 0 or len(span) < 2:
        return
    gap = slack / (len(span) - 1)
    at = span[0]['start']
    for bar in span:
        bar['start'] = at
        at += bar['seconds'] + gap


def _end_mark(fig):
    return 'mark_recovered' if fig['status'] == 'passed' else 'mark_ended'


DRILL_STEPS = ('load_sample_data', 'capture_baseline', 'backup', 'inject_fault', 'restore', 'verify',
               'pick_backup', 'carry')


def _drill_timeline(summary, fig):
    steps = [(name, seconds) for name, seconds in _steps(summary) if seconds is not None]
    names = [name for name, _ in steps]
    bars, at = [], 0.0
    # The recovery starts with the fault (a drill on its host), or when the set leaves the source.
    start_name = 'inject_fault' if 'inject_fault' in names else ('carry' if 'carry' in names else None)
    for name, seconds in steps:
        if name == start_name and 'backup' in names and fig['rpo'] is not None:
            backup = bars[names.index('backup')]
            at = max(at, backup['start'] + fig['rpo'])
        bars.append(_bar(at, seconds, label='step_' + name if name in DRILL_STEPS else None, name=name))
        at += seconds
    if start_name is None:
        return bars, [], {}
    first = names.index(start_name)
    if fig['rto'] is not None:
        _spread(bars, first, fig['rto'])
    fault_at = bars[first]['start']
    marks = [dict(key='mark_fault' if start_name == 'inject_fault' else 'mark_recovery_start', at=fault_at)]
    spans = {}
    if fig['rto'] is not None:
        marks.append(dict(key=_end_mark(fig), at=fault_at + fig['rto']))
        spans['rto'] = (fault_at, fault_at + fig['rto'])
    if fig['rpo'] is not None:
        marks.append(dict(key='mark_backup', at=fault_at - fig['rpo']))
        spans['rpo'] = (fault_at - fig['rpo'], fault_at)
    return bars, marks, spans


def _restore_timeline(summary, fig):
    timings = mapping(summary.get('timings'), 'timings')
    values = dict((key, number(timings.get(key), 'timings.%s' % key)) for key in timings)
    bars, at = [], 0.0
    for key, label in zip(_FROM_START, ('phase_download', 'phase_check_files')):
        if values.get(key) is not None and values[key] > at:
            bars.append(_bar(at, values[key] - at, label=label))
            at = values[key]
    for key, label in _OWN_LENGTH:
        if values.get(key) is not None:
            bars.append(_bar(at, values[key], label=label))
            at += values[key]
    total = values.get('total_seconds')
    if total is not None and total > at:
        bars.append(_bar(at, total - at, label='phase_finish'))
        at = total
    restored = len(bars)
    for key, label in (('integrity_seconds', 'phase_integrity'), ('files_seconds', 'phase_files')):
        seconds = number(summary.get(key), key)
        if seconds is not None:
            bars.append(_bar(at, seconds, label=label))
            at += seconds
    if fig['rto'] is not None and restored and len(bars) > restored:
        # The time between the restore and the later steps, spread between them.
        _spread(bars, restored - 1, fig['rto'] - bars[restored - 1]['start'])
    marks = [dict(key='mark_recovery_start', at=0.0)]
    spans = {}
    if fig['rto'] is not None:
        marks.append(dict(key=_end_mark(fig), at=fig['rto']))
        spans['rto'] = (0.0, fig['rto'])
    if fig['rpo'] is not None:
        marks.append(dict(key='mark_backup', at=-fig['rpo']))
        spans['rpo'] = (-fig['rpo'], 0.0)
    return bars, marks, spans


def _integrity_timeline(summary):
    bars, at = [], 0.0
    for check in items(summary.get('checks'), 'checks'):
        seconds = number(check.get('seconds'), 'checks[].seconds')
        if seconds is None:
            continue
        status = string(check.get('status'), 'checks[].status')
        bars.append(_bar(at, seconds, name=string(check.get('name'), 'checks[].name') or '?',
                         state='ok' if status in ('passed', 'skipped') else 'failed'))
        at += seconds
    return bars, [], {}


def timeline(kind, summary, fig):
    """(bars, marks, spans) of the run, in seconds; marks and spans may reach before 0 (the backup)."""
    if kind == 'drill':
        return _drill_timeline(summary, fig)
    if kind in ('restore', 'dr'):
        return _restore_timeline(summary, fig)
    if kind == 'integrity':
        return _integrity_timeline(summary)
    return [], [], {}


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def trend(current, earlier, at_least=3, ratio=1.5):
    """(ratio, median) when `current` is `ratio` times the median of at least `at_least` earlier
    values or more (a slowing restore, a growing backup), else None."""
    values = [value for value in earlier if value]
    if current is None or len(values) < at_least:
        return None
    middle = median(values)
    if current >= ratio * middle:
        return round(current / middle, 1), middle
    return None
