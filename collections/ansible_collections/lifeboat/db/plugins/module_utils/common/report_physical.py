# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical backups beside the logical ones: one stanza's state, as lifeboat.db.pgbackrest_info
reads it, made into the short view the fleet summary keeps and the reports show (issue 19).

physical_view() makes the view of one pgbackrest_info result (a task's registered result, or one
item of a loop's); physical_views() of a list of them. view_rows() reads views back from a summary
(untrusted, like every summary a report reads: each value's type is checked, WrongShape otherwise)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.lifeboat.db.plugins.module_utils.common.report_model import (
    WrongShape, items, mapping, number, string)

BACKUP_TYPES = ('full', 'diff', 'incr')


def _stanza_name(result):
    stanza = result.get('stanza')
    if isinstance(stanza, dict) and isinstance(stanza.get('name'), str):
        return stanza['name']
    item = result.get('item')
    if isinstance(item, dict) and isinstance(item.get('name'), str):
        return item['name']
    invocation = (result.get('invocation') or {}).get('module_args') or {}
    return invocation.get('stanza') if isinstance(invocation.get('stanza'), str) else None


def _now(result, now):
    if now is not None:
        return float(now)
    finished = (result.get('timing') or {}).get('finished_epoch')
    return float(finished) if isinstance(finished, (int, float)) and not isinstance(finished, bool) else time.time()


def _one_line(text):
    return ' '.join(('%s' % text).split())


def physical_view(result, host=None, now=None):
    """The view of one stanza: host, stanza, status, backups (count), oldest_at, latest {label, type,
    stopped_at, age_seconds, database_size, repository_size}, archive {min_wal, max_wal}, exposure_seconds,
    archiving_failing, failed_count, last_failed_wal, verify {status, problems} (when verified), problems
    (one line each). A failed task keeps its message as a problem; ages count to `now` (epoch seconds),
    else to when the stanza was read."""
    if not isinstance(result, dict):
        raise WrongShape('a pgbackrest_info result is not a mapping')
    view = dict(host=host, stanza=_stanza_name(result), status=None, backups=0, oldest_at=None, latest=None,
                archive=None, exposure_seconds=None, archiving_failing=None, failed_count=None,
                last_failed_wal=None, verify=None, problems=[])
    if result.get('failed') or (result.get('skipped') and 'backups' not in result):
        view['status'] = 'failed' if result.get('failed') else 'not read'
        view['problems'].append('stanza %s: %s' % (view['stanza'] or '?', _one_line(result.get('msg') or
                                                                                  'pgbackrest_info did not run')))
        return view
    status = mapping(result.get('status'), 'status')
    view['status'] = string(status.get('message'), 'status.message') or 'unknown'
    code = number(status.get('code'), 'status.code')
    if code:
        view['problems'].append('stanza %s: pgBackRest reports %s (status code %d)' % (view['stanza'], view['status'],
                                                                                        code))
    backups = items(result.get('backups'), 'backups')
    view['backups'] = len(backups)
    if backups:
        oldest, latest = backups[0], backups[-1]
        view['oldest_at'] = string(oldest.get('started_at'), 'backups[].started_at')
        stopped = number(latest.get('stopped_epoch'), 'backups[].stopped_epoch')
        kind = string(latest.get('type'), 'backups[].type')
        if kind not in BACKUP_TYPES:
            raise WrongShape('backups[].type is not full, diff or incr')
        view['latest'] = dict(
            label=string(latest.get('label'), 'backups[].label'), type=kind,
            stopped_at=string(latest.get('stopped_at'), 'backups[].stopped_at'),
            age_seconds=round(max(0.0, _now(result, now) - stopped), 3) if stopped is not None else None,
            database_size=number(latest.get('database_size'), 'backups[].database_size'),
            repository_size=number(latest.get('repository_size'), 'backups[].repository_size'))
    elif not code:  # code 2 (no valid backup) has said so already
        view['problems'].append('stanza %s has no backup yet: take a full backup (pgbackrest backup --type=full)'
                                % view['stanza'])
    # The newest database of the stanza (after a pg_upgrade the archive of the older one stays listed).
    ranges = [archive for archive in items(result.get('archives'), 'archives') if archive.get('max_wal')]
    if ranges:
        view['archive'] = dict(min_wal=string(ranges[-1].get('min_wal'), 'archives[].min_wal'),
                               max_wal=string(ranges[-1].get('max_wal'), 'archives[].max_wal'))
    view['exposure_seconds'] = number(result.get('exposure_seconds'), 'exposure_seconds')
    archiver = mapping(result.get('archiver'), 'archiver')
    failing = archiver.get('failing')
    if failing is not None and not isinstance(failing, bool):
        raise WrongShape('archiver.failing is not true or false')
    view['archiving_failing'] = failing
    view['failed_count'] = number(archiver.get('failed_count'), 'archiver.failed_count')
    view['last_failed_wal'] = string(archiver.get('last_failed_wal'), 'archiver.last_failed_wal')
    if failing:
        view['problems'].append('stanza %s: WAL archiving is failing (%d failure(s), the last on %s): what was '
                                'written since the last archived segment is not in the archive'
                                % (view['stanza'], view['failed_count'] or 0, view['last_failed_wal'] or '?'))
    verified = result.get('verify')
    if verified is not None:
        verified = mapping(verified, 'verify')
        view['verify'] = dict(status=string(verified.get('status'), 'verify.status'),
                              problems=number(verified.get('problems'), 'verify.problems'))
        if view['verify']['problems']:
            view['problems'].append('stanza %s: pgbackrest verify found %d problem(s)'
                                    % (view['stanza'], view['verify']['problems']))
    return view


def physical_views(results, host=None, now=None):
    """The views of pgbackrest_info results: a list of them, a loop's registered result ({results: [...]}),
    or one result."""
    if isinstance(results, dict):
        results = results['results'] if isinstance(results.get('results'), list) else [results]
    if not isinstance(results, list):
        raise WrongShape('physical is not a list of pgbackrest_info results')
    return [physical_view(result, host=host, now=now) for result in results]


def view_rows(views, what='physical'):
    """Views as a summary holds them, each value's type checked (a summary is read as untrusted)."""
    rows = []
    for view in items(views, what):
        latest = mapping(view.get('latest'), '%s[].latest' % what)
        archive = mapping(view.get('archive'), '%s[].archive' % what)
        verified = mapping(view.get('verify'), '%s[].verify' % what)
        kind = string(latest.get('type'), '%s[].latest.type' % what)
        if kind is not None and kind not in BACKUP_TYPES:
            raise WrongShape('%s[].latest.type is not full, diff or incr' % what)
        failing = view.get('archiving_failing')
        if failing is not None and not isinstance(failing, bool):
            raise WrongShape('%s[].archiving_failing is not true, false or null' % what)
        problems = view.get('problems') or []
        if not isinstance(problems, list):
            raise WrongShape('%s[].problems is not a list' % what)
        rows.append(dict(
            host=string(view.get('host'), '%s[].host' % what), stanza=string(view.get('stanza'), '%s[].stanza' % what),
            status=string(view.get('status'), '%s[].status' % what),
            backups=number(view.get('backups'), '%s[].backups' % what),
            oldest_at=string(view.get('oldest_at'), '%s[].oldest_at' % what),
            label=string(latest.get('label'), '%s[].latest.label' % what), type=kind,
            stopped_at=string(latest.get('stopped_at'), '%s[].latest.stopped_at' % what),
            age_seconds=number(latest.get('age_seconds'), '%s[].latest.age_seconds' % what),
            repository_size=number(latest.get('repository_size'), '%s[].latest.repository_size' % what),
            min_wal=string(archive.get('min_wal'), '%s[].archive.min_wal' % what),
            max_wal=string(archive.get('max_wal'), '%s[].archive.max_wal' % what),
            exposure_seconds=number(view.get('exposure_seconds'), '%s[].exposure_seconds' % what),
            archiving_failing=failing,
            verify=string(verified.get('status'), '%s[].verify.status' % what),
            problems=[string(problem, '%s[].problems[]' % what) for problem in problems]))
    return rows
