# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A recovery target, checked against what the stanza holds before anything is written: its syntax, the
backup it is restored from, and that the archive can reach it (not before the oldest backup, not in the
future). Pure functions on `parse_info` facts; no I/O."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

TARGET_TYPES = ('time', 'lsn', 'name', 'immediate', 'latest')
# pgBackRest's --type for each: `latest` is its `default` (replay all WAL in the archive).
PGBACKREST_TYPE = dict(time='time', lsn='lsn', name='name', immediate='immediate', latest='default')
NEEDS_VALUE = ('time', 'lsn', 'name')
EXCLUSIVE_APPLIES = ('time', 'lsn')
TIME = re.compile(r'^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?\s*'
                  r'(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?)$')
LSN = re.compile(r'^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$')
WAL_NAME = re.compile(r'^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$')
# PostgreSQL keeps a restore point's name in 64 bytes with its terminating zero.
MAX_NAME_BYTES = 63
XLOG_ID = 0x100000000


class Target(object):
    """A checked target: `kind` (a TARGET_TYPES), `value` as pgBackRest gets it (a time in UTC, an LSN in
    upper case, a name; None for immediate/latest), `exclusive`, and for time/lsn a number to compare:
    `epoch` (float seconds) or `lsn` (int)."""

    def __init__(self, kind, value=None, exclusive=False, epoch=None, lsn=None):
        self.kind = kind
        self.value = value
        self.exclusive = exclusive
        self.epoch = epoch
        self.lsn = lsn

    def facts(self):
        return dict(type=self.kind, value=self.value, exclusive=self.exclusive)

    def describe(self):
        if self.kind == 'latest':
            return 'the end of the WAL archive (latest)'
        if self.kind == 'immediate':
            return 'the end of the backup (immediate)'
        return '%s %s%s' % (self.kind, self.value, ' (exclusive)' if self.exclusive else '')

    def pgbackrest_options(self):
        """restore's options for this target: promote at the target, never pause (nobody would resume it)."""
        options = ['--type=%s' % PGBACKREST_TYPE[self.kind]]
        if self.value is not None:
            options.append('--target=%s' % self.value)
        if self.exclusive:
            options.append('--target-exclusive')
        if self.kind != 'latest':
            # pgBackRest refuses target-action with its `default` type: the end of the archive always promotes.
            options.append('--target-action=promote')
        return options


def parse_time(text):
    """(UTC text 'YYYY-MM-DD HH:MM:SS.ffffff+00', epoch float) of a time with a required UTC offset."""
    match = TIME.match(text.strip())
    if not match:
        raise LifeboatError('target %r is not a time: write it as YYYY-MM-DD HH:MM:SS[.ffffff] with its UTC offset, '
                            'e.g. "2026-12-05 10:02:00+00" or "2026-12-05 11:02:00+01:00" (Z means UTC)' % text)
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = match.groups()
    offset = datetime.timedelta(0)
    if not zulu:
        offset = datetime.timedelta(hours=int(off_hours), minutes=int(off_minutes or 0))
        if offset > datetime.timedelta(hours=15):
            raise LifeboatError('target %r has a UTC offset beyond 15 hours; check the offset' % text)
        offset = -offset if sign == '-' else offset
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                                   int((fraction or '0').ljust(6, '0')), datetime.timezone(offset))
    except ValueError as exc:
        raise LifeboatError('target %r is not a valid time (%s); check the date and time' % (text, exc))
    utc = moment.astimezone(datetime.timezone.utc)
    return utc.strftime('%Y-%m-%d %H:%M:%S.%f+00'), utc.timestamp()


def parse_lsn(text, what='target'):
    match = LSN.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise LifeboatError('%s %r is not a WAL location: write it as PostgreSQL prints one, two hexadecimal '
                            'numbers with a slash, e.g. 16/B374D848 (pg_current_wal_lsn())' % (what, text))
    return int(match.group(1), 16) * XLOG_ID + int(match.group(2), 16)


def format_lsn(value):
    return '%X/%X' % (value // XLOG_ID, value % XLOG_ID)


def check_name(text):
    encoded = text.encode('utf-8')
    if not encoded or len(encoded) > MAX_NAME_BYTES:
        raise LifeboatError('target %r is not a restore point name: it must be 1 to %d bytes, the name given to '
                            'pg_create_restore_point()' % (text, MAX_NAME_BYTES))
    # The name goes into postgresql.auto.conf between single quotes, written by pgBackRest.
    if any(ch in text for ch in "'\\") or any(ord(ch) < 32 for ch in text):
        raise LifeboatError('target %r holds a quote, backslash or control character, which lifeboat does not pass '
                            'to recovery_target_name; create the restore point under a plain name' % text)
    return text


def parse_target(kind, value, exclusive):
    """The target the options ask for, or one line saying what to fix."""
    if kind not in TARGET_TYPES:
        raise LifeboatError('target_type must be one of %s, not %r' % (', '.join(TARGET_TYPES), kind))
    if kind in NEEDS_VALUE and (value is None or not str(value).strip()):
        raise LifeboatError('target_type %s needs target: %s' % (kind, dict(
            time='the time to recover to, e.g. "2026-12-05 10:01:59+00"',
            lsn='the WAL location to recover to, e.g. 16/B374D848',
            name='the name given to pg_create_restore_point()')[kind]))
    if kind not in NEEDS_VALUE and value is not None:
        raise LifeboatError('target_type %s takes no target (%r given); remove target, or set target_type to time, '
                            'lsn or name' % (kind, value))
    if exclusive and kind not in EXCLUSIVE_APPLIES:
        raise LifeboatError('target_exclusive applies to time and lsn targets only; remove it for target_type %s'
                            % kind)
    if kind == 'time':
        text, epoch = parse_time(str(value))
        return Target(kind, text, exclusive, epoch=epoch)
    if kind == 'lsn':
        lsn = parse_lsn(str(value))
        return Target(kind, format_lsn(lsn), exclusive, lsn=lsn)
    if kind == 'name':
        return Target(kind, check_name(str(value)), exclusive)
    return Target(kind)


def segment_size(backups):
    """The cluster's WAL segment size, from where each backup's LSNs fall in its WAL file names (16 MiB unless
    the backups show another): needed to compare an LSN with the archive's segment names."""
    points = []
    for backup in backups:
        for lsn, wal in ((backup.get('lsn_start'), backup.get('wal_start')),
                         (backup.get('lsn_stop'), backup.get('wal_stop'))):
            if lsn and wal and WAL_NAME.match(wal) and LSN.match(lsn):
                points.append((parse_lsn(lsn), wal))
    sizes = [1 << bits for bits in range(20, 31)]
    fitting = [size for size in sizes if all(segment_of(wal, size)[0] <= lsn < segment_of(wal, size)[1]
                                              for lsn, wal in points)]
    default = 16 * 1024 * 1024
    return default if default in fitting or not fitting else fitting[0]


def segment_of(wal, size):
    """[start, end) LSN of WAL segment file `wal` for a segment size."""
    _, log, seg = (int(part, 16) for part in WAL_NAME.match(wal).groups())
    start = log * XLOG_ID + seg * size
    return start, start + size


def choose_backup(target, backups, backup_set=None):
    """The backup to restore from, checked against the target. pgBackRest's own choice for time and lsn is
    the newest backup that ended before the target; lifeboat makes it and passes --set, so what it
    reports is what pgBackRest restores."""
    if not backups:
        raise LifeboatError('the stanza has no backup to restore; take one first (pgbackrest backup --type=full, or '
                            'playbooks/pitr_setup.yml)')
    oldest = backups[0]
    if target.kind == 'time' and target.epoch < oldest['stopped_epoch']:
        raise LifeboatError('target %s is before the end of the oldest backup (%s stopped at %s): the archive cannot '
                            'reach it; choose a time after %s' % (target.value, oldest['label'], oldest['stopped_at'],
                                                                    oldest['stopped_at']))
    if target.kind == 'lsn' and oldest.get('lsn_stop') and target.lsn < parse_lsn(oldest['lsn_stop'], 'lsn_stop'):
        raise LifeboatError('target %s is before the end of the oldest backup (%s stopped at LSN %s): the archive '
                            'cannot reach it; choose an LSN after %s' % (target.value, oldest['label'],
                                                                         oldest['lsn_stop'], oldest['lsn_stop']))
    if backup_set is not None:
        chosen = [b for b in backups if b['label'] == backup_set]
        if not chosen:
            raise LifeboatError('backup_set %r is not a backup of the stanza; choose one of %s, or leave backup_set '
                                'unset' % (backup_set, ', '.join(b['label'] for b in backups)))
        backup = chosen[0]
        if target.kind == 'time' and target.epoch < backup['stopped_epoch']:
            raise LifeboatError('backup_set %s stopped at %s, after target %s; choose an earlier backup or leave '
                                'backup_set unset' % (backup['label'], backup['stopped_at'], target.value))
        if target.kind == 'lsn' and backup.get('lsn_stop') and target.lsn < parse_lsn(backup['lsn_stop'], 'lsn_stop'):
            raise LifeboatError('backup_set %s stopped at LSN %s, after target %s; choose an earlier backup or leave '
                                'backup_set unset' % (backup['label'], backup['lsn_stop'], target.value))
        return backup
    if target.kind == 'time':
        return [b for b in backups if b['stopped_epoch'] <= target.epoch][-1]
    if target.kind == 'lsn':
        before = [b for b in backups if b.get('lsn_stop') and parse_lsn(b['lsn_stop'], 'lsn_stop') <= target.lsn]
        return before[-1] if before else backups[-1]
    return backups[-1]


def check_not_in_future(target, now_epoch, archives, backups):
    """A time after now, or an LSN past the last WAL segment in the archive, cannot be reached."""
    if target.kind == 'time' and target.epoch > now_epoch:
        raise LifeboatError('target %s is in the future (now is %s UTC on this host); choose a time in the past'
                            % (target.value, datetime.datetime.fromtimestamp(now_epoch, datetime.timezone.utc)
                               .strftime('%Y-%m-%d %H:%M:%S')))
    if target.kind == 'lsn':
        last = last_archived(archives)
        if last is None:
            raise LifeboatError('the stanza\'s WAL archive is empty, so LSN %s cannot be reached; check that the '
                                'cluster archives (pgbackrest check)' % target.value)
        end = segment_of(last, segment_size(backups))[1]
        if target.lsn >= end:
            raise LifeboatError('target %s is past the end of the WAL archive (its last segment %s ends at %s): it is '
                                'in the future or not archived yet; run pg_switch_wal() on the cluster and wait for '
                                'archiving, or choose an earlier LSN' % (target.value, last, format_lsn(end)))


def last_archived(archives):
    names = [a['max_wal'] for a in archives if a.get('max_wal') and WAL_NAME.match(a['max_wal'])]
    # Segment names compare as (timeline, log, segment); the highest log/segment is the end of the archive.
    return max(names, key=lambda name: (name[8:], name[:8])) if names else None


def lsn_end_of_archive(archives, backups):
    """LSN where the archive's last segment begins (None without one): recovery to `latest` that ends
    before it stopped at WAL it could not read."""
    last = last_archived(archives)
    return segment_of(last, segment_size(backups))[0] if last else None
