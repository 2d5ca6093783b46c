# -*- coding: utf-8 -*-
"""pgbackrest_restore's targets: their syntax, the backup chosen for them and the checks against the stanza
(the backups and archive of a real pgBackRest 2.45 stanza, fixtures/info-2.45.json), before anything is written."""
from pathlib import Path

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.info import parse_info
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.target import (
    check_not_in_future, choose_backup, format_lsn, lsn_end_of_archive, parse_lsn, parse_target, segment_size)

FACTS = parse_info((Path(__file__).parent / 'fixtures' / 'info-2.45.json').read_text(), 'lifeboat')
BACKUPS, ARCHIVES = FACTS['backups'], FACTS['archives']
FULL, INCR = '20261205-093344F', '20261205-093344F_20261205-093348I'
# The full backup stopped at 09:33:47 UTC, the incremental at 09:33:49; the archive ends with segment 6.
NOW = 1796463229 + 3600


def refused(*fragments, **call):
    function = call.pop('function', parse_target)
    with pytest.raises(LifeboatError) as caught:
        function(*call.pop('args'))
    msg = caught.value.msg
    assert '\n' not in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


@pytest.mark.parametrize('text, utc', [
    ('2026-12-05 10:02:00+00', '2026-12-05 10:02:00.000000+00'),
    ('2026-12-05 10:02:00Z', '2026-12-05 10:02:00.000000+00'),
    ('2026-12-05T11:02:00.5+01:00', '2026-12-05 10:02:00.500000+00'),
    ('2026-12-05 05:32:00.123456-0430', '2026-12-05 10:02:00.123456+00'),
    ('2026-12-06 00:02:00+14', '2026-12-05 10:02:00.000000+00'),
])
def test_time_targets_are_normalised_to_utc(text, utc):
    target = parse_target('time', text, False)
    assert target.value == utc and target.kind == 'time'
    assert target.pgbackrest_options() == ['--type=time', '--target=%s' % utc, '--target-action=promote']


@pytest.mark.parametrize('text, fragment', [
    ('2026-12-05 10:02:00', 'UTC offset'),          # no offset: it would depend on a server's time zone
    ('2026-12-05', 'is not a time'),
    ('yesterday', 'is not a time'),
    ('2026-02-30 10:00:00+00', 'is not a valid time'),
    ('2026-12-05 10:00:00+16', 'beyond 15 hours'),
])
def test_bad_times_are_refused_in_one_line(text, fragment):
    refused(fragment, args=('time', text, False))


def test_lsn_targets():
    target = parse_target('lsn', '16/b374d848', True)
    assert target.value == '16/B374D848' and target.lsn == 0x16B374D848
    assert target.pgbackrest_options() == ['--type=lsn', '--target=16/B374D848', '--target-exclusive',
                                           '--target-action=promote']
    assert format_lsn(parse_lsn('0/5000100')) == '0/5000100'
    for bad in ('16', '16/', 'G/1', '1/2/3', '123456789/0'):
        refused('is not a WAL location', args=('lsn', bad, False))


def test_names_immediate_and_latest():
    assert parse_target('name', 'before-migration', False).pgbackrest_options() == [
        '--type=name', '--target=before-migration', '--target-action=promote']
    assert parse_target('immediate', None, False).pgbackrest_options() == ['--type=immediate',
                                                                           '--target-action=promote']
    # pgBackRest refuses target-action with its `default` type, which is `latest` here.
    assert parse_target('latest', None, False).pgbackrest_options() == ['--type=default']
    refused('1 to 63 bytes', args=('name', 'x' * 64, False))
    refused('quote, backslash or control character', args=('name', "it's", False))
    refused('quote, backslash or control character', args=('name', 'a\nb', False))


def test_what_each_target_type_needs():
    refused('target_type time needs target', args=('time', None, False))
    refused('target_type name needs target', args=('name', '  ', False))
    refused('target_type latest takes no target', args=('latest', 'x', False))
    refused('target_type immediate takes no target', args=('immediate', '0/1', False))
    refused('target_exclusive applies to time and lsn targets only', args=('name', 'x', True))
    refused('target_type must be one of', args=('xid', '42', False))


def target(kind, value=None, exclusive=False):
    return parse_target(kind, value, exclusive)


def test_backup_chosen_for_a_time_is_the_newest_that_ended_before_it():
    assert choose_backup(target('time', '2026-12-05 09:33:48+00'), BACKUPS)['label'] == FULL
    assert choose_backup(target('time', '2026-12-05 09:33:49+00'), BACKUPS)['label'] == INCR
    assert choose_backup(target('time', '2026-12-05 09:33:47+00'), BACKUPS)['label'] == FULL


def test_backup_chosen_for_an_lsn_name_immediate_and_latest():
    assert choose_backup(target('lsn', '0/4000000'), BACKUPS)['label'] == FULL
    assert choose_backup(target('lsn', '0/5000100'), BACKUPS)['label'] == INCR
    for kind, value in (('name', 'x'), ('immediate', None), ('latest', None)):
        assert choose_backup(target(kind, value), BACKUPS)['label'] == INCR
    assert choose_backup(target('immediate'), BACKUPS, backup_set=FULL)['label'] == FULL


def test_targets_before_the_oldest_backup_are_refused():
    refused('is before the end of the oldest backup', FULL, 'choose a time after 2026-12-05T09:33:47Z',
            function=choose_backup, args=(target('time', '2026-12-05 09:33:46.999+00'), BACKUPS))
    refused('is before the end of the oldest backup', 'LSN 0/3000050',
            function=choose_backup, args=(target('lsn', '0/300004F'), BACKUPS))


def test_backup_set_must_exist_and_end_before_the_target():
    refused("backup_set 'nope' is not a backup of the stanza", FULL, INCR,
            function=choose_backup, args=(target('latest'), BACKUPS, 'nope'))
    refused('backup_set %s stopped at 2026-12-05T09:33:49Z, after target' % INCR, 'choose an earlier backup',
            function=choose_backup, args=(target('time', '2026-12-05 09:33:48+00'), BACKUPS, INCR))
    refused('backup_set %s stopped at LSN 0/5000100, after target 0/4000000' % INCR,
            function=choose_backup, args=(target('lsn', '0/4000000'), BACKUPS, INCR))
    refused('has no backup to restore', function=choose_backup, args=(target('latest'), []))


def test_future_times_and_lsns_past_the_archive_are_refused():
    check_not_in_future(target('time', '2026-12-05 10:33:49+00'), NOW, ARCHIVES, BACKUPS)
    refused('is in the future (now is 2026-12-05 10:33:49 UTC', function=check_not_in_future,
            args=(target('time', '2026-12-05 10:33:50+00'), NOW, ARCHIVES, BACKUPS))
    # Segment 6 ends at 0/7000000: an LSN in it can be reached, the next one not yet.
    check_not_in_future(target('lsn', '0/6FFFFFF'), NOW, ARCHIVES, BACKUPS)
    refused('is past the end of the WAL archive (its last segment 000000010000000000000006 ends at 0/7000000)',
            'pg_switch_wal()', function=check_not_in_future, args=(target('lsn', '0/7000000'), NOW, ARCHIVES, BACKUPS))
    refused('WAL archive is empty', function=check_not_in_future,
            args=(target('lsn', '0/7000000'), NOW, [dict(ARCHIVES[0], max_wal=None)], BACKUPS))


def test_segment_size_comes_from_where_the_backups_lsns_fall():
    assert segment_size(BACKUPS) == 16 * 1024 * 1024
    # A cluster made with --wal-segsize=64: LSN 0/C000028 lies in segment 3 only with 64 MiB segments.
    big = [dict(BACKUPS[0], lsn_start='0/C000028', wal_start='000000010000000000000003',
                lsn_stop='0/C000100', wal_stop='000000010000000000000003')]
    assert segment_size(big) == 64 * 1024 * 1024
    assert lsn_end_of_archive(ARCHIVES, BACKUPS) == 0x6000000
    assert lsn_end_of_archive([dict(ARCHIVES[0], max_wal=None)], BACKUPS) is None
