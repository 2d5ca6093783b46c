# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Baselines: what a database looked like at one moment (row counts, sequence values, schema),
kept so a later run can tell what a restore or a release changed.

A baseline is a JSON file written atomically, mode 0600, either where the operator says or in
the repository under `<repository>/<db>/.baselines/<UTC stamp>.json` (hidden, so it is never
mistaken for a backup set). A backup's manifest serves as a reference too: it holds row counts.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import PASSED, FAILED
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import read_manifest, write_json_atomic
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import next_value
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import utc_now

BASELINES_DIR = '.baselines'


def repository_baselines(repository, database):
    """Baseline files of `database` in the repository, newest first."""
    directory = os.path.join(repository.database_dir(database), BASELINES_DIR)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, n) for n in sorted(names, reverse=True) if n.endswith('.json')]


def capture_path(params, repository):
    """Where a capture writes: `baseline`, or a new stamped file in the repository."""
    if params['baseline'] and params['baseline'] != 'latest':
        return params['baseline']
    if repository is None:
        raise LifeboatError('action=capture needs baseline (the path of the file to write) or repository')
    name = utc_now().strftime('%Y%m%dT%H%M%S%fZ') + '.json'
    return os.path.join(repository.database_dir(params['db']), BASELINES_DIR, name)


def previous_baseline(params, repository):
    """The baseline a new capture would replace or follow, if any (to report no change)."""
    if params['baseline'] and params['baseline'] != 'latest':
        path = params['baseline']
        return read_manifest(path) if os.path.exists(path) else None
    found = repository_baselines(repository, params['db']) if repository else []
    return read_manifest(found[0]) if found else None


def write_baseline(path, data):
    directory = os.path.dirname(path)
    try:
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        write_json_atomic(path, data)
    except OSError as exc:
        raise LifeboatError('cannot write baseline %s: %s; choose a writable path' % (path, exc.strerror or exc))


def load_reference(params, repository):
    """(reference dict, description of its source) for the row-count comparison, or (None, None)
    when no baseline, repository or backup was given."""
    baseline = params['baseline']
    if params.get('expected_row_counts') is not None:
        return _given_counts(params), 'the expected row counts given'
    if baseline == 'latest':
        if repository is None:
            raise LifeboatError('baseline: latest needs repository, where action=capture keeps baselines')
        found = repository_baselines(repository, params['backup_db'] or params['db'])
        if not found:
            raise LifeboatError('no baseline of %r in repository %s; capture one first (action: capture)'
                                % (params['backup_db'] or params['db'], repository.root))
        baseline = found[0]
    if baseline:
        return read_manifest(baseline), baseline
    if repository is not None:
        backup = repository.resolve(params['backup_db'] or params['db'], params['backup'])
        if backup.manifest.get('format') == 'delta':
            raise LifeboatError('backup %s is a delta export and holds no row counts of the database; compare '
                                'with its base backup instead' % backup.backup_id)
        return backup.manifest, 'backup %s' % backup.backup_id
    return None, None


def _given_counts(params):
    """expected_row_counts as a reference, every entry checked: a table name and a count of rows."""
    counts = params['expected_row_counts']
    bad = [name for name, rows in counts.items()
           if not isinstance(name, str) or not name or isinstance(rows, bool) or not isinstance(rows, int) or rows < 0]
    if bad:
        raise LifeboatError('expected_row_counts must map table names to numbers of rows (0 or more); %r is not'
                            % (sorted(bad, key=str)[0],))
    return dict(row_counts=counts)


def check_database(reference, source, params):
    """A reference describing another database cannot judge this one."""
    described = reference.get('database')
    if described not in (None, params['db'], params['backup_db']):
        raise LifeboatError('%s describes database %r, not %r; pass the matching baseline or set backup_db'
                            % (source, described, params['db']))


def baseline_sequences(states):
    """What a baseline keeps of `sequence_states`: each sequence's value (its increment belongs to its
    definition, which the baseline's schema describes)."""
    return dict((name, dict(last_value=s['last_value'], is_called=s['is_called'])) for name, s in states.items())


def compare_sequences(expected, actual, limit):
    """Sequences must not have gone back since the baseline, in their direction: an ascending one
    whose next value is now lower, or a descending one whose next value is now higher, hands out
    ids again. `actual` is `sequence_states` of the database; both next values are reckoned with
    the sequence's increment now."""
    problems = []
    for name, state in sorted(expected.items()):
        now = actual.get(name)
        if now is None:
            problems.append(dict(sequence=name, baseline=state['last_value'], actual=None, problem='missing'))
            continue
        was, upcoming = _next(state, now['increment']), _next(now, now['increment'])
        if (upcoming < was) if now['increment'] > 0 else (upcoming > was):
            problems.append(dict(sequence=name, baseline=was, actual=upcoming, problem='went back'))
    summary = 'all %d sequence(s) at or past the baseline' % len(expected) if not problems else \
        '%d sequence(s) behind the baseline: %s' % (len(problems), ', '.join(
            '%s (%s)' % (p['sequence'], 'missing' if p['actual'] is None else 'next %s, baseline next %s'
                         % (p['actual'], p['baseline'])) for p in problems[:5]))
    return dict(status=FAILED if problems else PASSED, summary=summary, sample=problems[:limit],
                behind=len(problems))


def _next(state, increment):
    return next_value(state['last_value'], state['is_called'], increment)
