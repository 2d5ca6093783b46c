# -*- coding: utf-8 -*-
"""Repository layout, listing, resolution and retention, on a real directory tree (tmp_path)."""
import datetime
import json
import os
import stat

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import describe_files
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import Repository, new_backup_id
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, parse_iso

T0 = datetime.datetime(2026, 11, 20, 3, 0, 0, tzinfo=datetime.timezone.utc)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def take(repo, database='app', minutes=0, kind='full', backup_id=None):
    """A complete backup set made the way backup.take_backup makes one: begin, write, commit."""
    started = T0 + datetime.timedelta(minutes=minutes)
    backup_id = backup_id or new_backup_id(started)
    staging = repo.begin(database, backup_id)
    dump = os.path.join(staging, '%s.dump' % database)
    with open(dump, 'wb') as handle:
        handle.write(b'PGDMP fake archive ' + backup_id.encode())
    os.chmod(dump, 0o644)  # commit must tighten this
    manifest = dict(format_version=1, backup_id=backup_id, kind=kind, database=database, started_at=iso(started),
                    finished_at=iso(started), files=describe_files(staging, sorted(os.listdir(staging))),
                    row_counts={'public.t': minutes})
    return repo.commit(database, staging, manifest)


@pytest.fixture
def repo(tmp_path):
    return Repository(str(tmp_path / 'repo'))


def test_begin_commit_layout_and_modes(repo, tmp_path):
    staging = repo.begin('app', '20261120T030000Z-abcdef')
    assert os.path.basename(staging) == '.partial-20261120T030000Z-abcdef'
    assert mode_of(staging) == 0o700
    final = take(repo, backup_id='20261120T030000Z-000001')
    assert final == str(tmp_path / 'repo' / 'app' / '20261120T030000Z-000001')
    assert sorted(os.listdir(final)) == ['app.dump', 'manifest.json']
    assert mode_of(final) == 0o700
    for name in os.listdir(final):
        assert mode_of(os.path.join(final, name)) == 0o600, name
    with open(os.path.join(final, 'manifest.json')) as handle:
        assert json.load(handle)['backup_id'] == '20261120T030000Z-000001'
    # The staging folder of that set was renamed away; the unrelated one begun above remains hidden.
    assert not os.path.exists(os.path.join(repo.database_dir('app'), '.partial-20261120T030000Z-000001'))
    assert [b.backup_id for b in repo.backups('app')] == ['20261120T030000Z-000001']


def test_partial_and_manifestless_folders_are_not_backups(repo):
    good = take(repo, minutes=0)
    staging = repo.begin('app', '20261120T040000Z-aaaaaa')
    with open(os.path.join(staging, 'manifest.json'), 'w') as handle:
        json.dump(dict(backup_id='20261120T040000Z-aaaaaa', row_counts={}, files=[]), handle)
    os.makedirs(os.path.join(repo.database_dir('app'), '20261120T050000Z-bbbbbb'))  # crashed, no manifest
    assert [b.path for b in repo.backups('app')] == [good]


def test_abort_removes_staging(repo):
    staging = repo.begin('app', '20261120T030000Z-abcdef')
    repo.abort(staging)
    assert not os.path.exists(staging)


def test_backups_sorted_newest_first_and_filtered_by_kind(repo):
    ids = [os.path.basename(take(repo, minutes=m, kind=k)) for m, k in ((5, 'full'), (1, 'full'), (9, 'pre-restore'),
                                                                       (3, 'full'))]
    assert [b.backup_id for b in repo.backups('app')] == [ids[2], ids[0], ids[3], ids[1]]
    assert [b.backup_id for b in repo.backups('app', kind='full')] == [ids[0], ids[3], ids[1]]
    assert repo.backups('never_backed_up') == []


def test_resolve_latest_and_by_id(repo):
    older = os.path.basename(take(repo, minutes=1))
    newer = os.path.basename(take(repo, minutes=2))
    safety = os.path.basename(take(repo, minutes=3, kind='pre-restore'))
    assert repo.resolve('app', 'latest').backup_id == newer  # latest means latest *full*
    assert repo.resolve('app', 'latest', kind='pre-restore').backup_id == safety
    assert repo.resolve('app', older).backup_id == older
    assert repo.resolve('app', safety).backup_id == safety  # an id works whatever its kind
    assert repo.resolve('app', older).path == os.path.join(repo.database_dir('app'), older)


def test_resolve_unknown_id_names_it(repo):
    take(repo)
    with pytest.raises(LifeboatError) as info:
        repo.resolve('app', '19990101T000000Z-nothere')
    assert '19990101T000000Z-nothere' in info.value.msg
    with pytest.raises(LifeboatError, match='no whole-database backup'):
        repo.resolve('other', 'latest')


def test_retention_plan(repo):
    ids = [os.path.basename(take(repo, minutes=m)) for m in range(4)]  # ids[3] is the newest
    take(repo, minutes=10, kind='pre-restore')
    assert repo.retention_plan('app', 'full', None) == []
    assert [b.backup_id for b in repo.retention_plan('app', 'full', 2)] == [ids[1], ids[0]]
    assert [b.backup_id for b in repo.retention_plan('app', 'full', 1)] == [ids[2], ids[1], ids[0]]
    assert repo.retention_plan('app', 'full', 10) == []
    for keep_last in range(1, 6):
        assert ids[3] not in [b.backup_id for b in repo.retention_plan('app', 'full', keep_last)]
    # Check mode: one set is about to be added, so one more existing set falls out of the window.
    assert [b.backup_id for b in repo.retention_plan('app', 'full', 2, incoming=1)] == [ids[2], ids[1], ids[0]]
    assert [b.backup_id for b in repo.retention_plan('app', 'full', 4, incoming=1)] == [ids[0]]
    assert repo.retention_plan('app', 'full', 5, incoming=1) == []
    # keep_last=1 with an incoming set: every existing one goes, the incoming set is the one kept.
    assert len(repo.retention_plan('app', 'full', 1, incoming=1)) == 4
    for bad in (0, -1):
        with pytest.raises(LifeboatError, match='keep_last'):
            repo.retention_plan('app', 'full', bad)


def test_check_mode_plan_matches_what_a_real_run_deletes(repo):
    for m in range(3):
        take(repo, minutes=m)
    predicted = [b.backup_id for b in repo.retention_plan('app', 'full', 2, incoming=1)]
    take(repo, minutes=99)
    assert [b.backup_id for b in repo.retention_plan('app', 'full', 2)] == predicted


def test_delete_removes_the_set(repo):
    keep = take(repo, minutes=2)
    doomed = take(repo, minutes=1)
    repo.delete(repo.resolve('app', os.path.basename(doomed)))
    assert not os.path.exists(doomed)
    assert os.listdir(repo.database_dir('app')) == [os.path.basename(keep)]
    assert [b.path for b in repo.backups('app')] == [keep]


@pytest.mark.parametrize('database', ['a/b', '../etc', '.partial-x', '.hidden', '', None, 'nul\0byte'])
def test_unsafe_database_names_are_refused(repo, database):
    with pytest.raises(LifeboatError, match='cannot be used as a repository folder name'):
        repo.database_dir(database)
    with pytest.raises(LifeboatError):
        repo.begin(database, '20261120T030000Z-abcdef')


@pytest.mark.parametrize('root', ['relative/repo', './repo', '', None])
def test_repository_must_be_absolute(root):
    with pytest.raises(LifeboatError, match='absolute path'):
        Repository(root)


def test_begin_on_unwritable_path_is_a_lifeboat_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    with pytest.raises(LifeboatError, match='cannot write to repository'):
        Repository(str(blocker)).begin('app', '20261120T030000Z-abcdef')


def test_backup_ids_sort_by_time_and_iso_round_trips():
    earlier, later = new_backup_id(T0), new_backup_id(T0 + datetime.timedelta(seconds=1))
    assert earlier < later
    assert earlier.startswith('20261120T030000Z-') and len(earlier) == len('20261120T030000Z-') + 6
    assert new_backup_id(T0) != new_backup_id(T0)
    moment = T0 + datetime.timedelta(microseconds=123456)
    assert parse_iso(iso(moment)) == moment


def test_a_manifest_lifeboat_did_not_write_is_refused_and_not_a_backup(repo):
    good = take(repo)
    odd = os.path.join(repo.database_dir('app'), '20261120T090000Z-cccccc')
    os.makedirs(odd)
    with open(os.path.join(odd, 'manifest.json'), 'w') as handle:
        json.dump(dict(kind='baseline', row_counts={'public.t': 1}), handle)
    # Newer, but not a backup: latest is the good set, and the odd one is refused by id.
    assert repo.resolve('app', 'latest').path == good
    with pytest.raises(LifeboatError, match=r'backup set 20261120T090000Z-cccccc in .* is refused: its manifest says '
                                            r'backup_id None'):
        repo.resolve('app', '20261120T090000Z-cccccc')
    assert [exc.backup_id for exc in repo.refused['app']] == ['20261120T090000Z-cccccc']


def ahead_set(repo, minutes, **changes):
    path = take(repo, minutes=minutes)
    mark_verified(path)
    if changes:
        manifest_path = os.path.join(path, 'manifest.json')
        with open(manifest_path) as handle:
            manifest = json.load(handle)
        manifest.update(changes)
        with open(manifest_path, 'w') as handle:
            json.dump(manifest, handle)
    return os.path.basename(path)


def test_a_set_dated_in_the_future_is_never_the_newest_and_the_new_set_is_protected(repo):
    now = T0 + datetime.timedelta(minutes=60)
    future = ahead_set(repo, 0, started_at=iso(now + datetime.timedelta(days=30)))
    old = ahead_set(repo, 10)
    new = ahead_set(repo, 59)
    plan = [b.backup_id for b in repo.retention_plan('app', 'full', keep_last=1, now=now, protect=(new,))]
    # keep_last 1 keeps the newest real set; the future one is kept (and reported), never "newest".
    assert plan == [old]
    assert [b.backup_id for b in repo.retention_plan('app', 'full', keep_last=1, now=now, protect=(old,))] == []
    from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import dated_ahead
    assert [b.backup_id for b in dated_ahead(repo.backups('app'), now)] == [future]


def test_selection_dumps_never_push_out_whole_database_backups(repo):
    now = T0 + datetime.timedelta(minutes=60)
    whole = ahead_set(repo, 0, selection=dict(tables=None, schemas=None))
    tables = [ahead_set(repo, m, selection=dict(tables=['public.t'], schemas=None)) for m in (10, 20)]
    other = ahead_set(repo, 30, selection=dict(tables=None, schemas=['audit']))
    plan = [b.backup_id for b in repo.retention_plan('app', 'full', keep_last=1, now=now)]
    assert plan == [tables[0]], (whole, other)
    # In check mode the incoming set counts against its own group only.
    plan = repo.retention_plan('app', 'full', keep_last=1, now=now, incoming=1,
                               incoming_group='{"tables": ["public.t"]}')
    assert sorted(b.backup_id for b in plan) == sorted(tables)


def mark_verified(path, status=None):
    """Sets made by take() carry no verified_at; give them one, or a verification record."""
    manifest_path = os.path.join(path, 'manifest.json')
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest['verified_at'] = manifest['finished_at']
    with open(manifest_path, 'w') as handle:
        json.dump(manifest, handle)
    if status:
        with open(os.path.join(path, 'verification.json'), 'w') as handle:
            json.dump(dict(status=status), handle)


def test_keep_days_keeps_recent_sets_and_either_rule_keeps(repo):
    paths = [take(repo, minutes=m) for m in (0, 60, 120)]
    for path in paths:
        mark_verified(path)
    now = T0 + datetime.timedelta(minutes=150)
    ids = [os.path.basename(p) for p in paths]
    # 1 hour = 1/24 day: only the 120-minute set is younger.
    assert [b.backup_id for b in repo.retention_plan('app', 'full', keep_days=1 / 24.0, now=now)] == [ids[1], ids[0]]
    # keep_last=2 keeps the 60-minute one as well: a set is kept when either rule keeps it.
    assert [b.backup_id for b in repo.retention_plan('app', 'full', keep_last=2, keep_days=1 / 24.0, now=now)] == [ids[0]]


def test_the_newest_verified_set_is_kept_whatever_the_rules(repo):
    good = take(repo, minutes=0)
    mark_verified(good)
    damaged = take(repo, minutes=60)
    mark_verified(damaged, status='failed')
    now = T0 + datetime.timedelta(days=10)
    plan = [b.backup_id for b in repo.retention_plan('app', 'full', keep_days=1, now=now)]
    assert plan == [os.path.basename(damaged)]  # the damaged newest goes, the good one stays


def test_nonsensical_retention_is_refused(repo):
    with pytest.raises(LifeboatError, match='keep_days must be more than 0'):
        repo.retention_plan('app', 'full', keep_days=-1)
