# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What `pgbackrest info --output=json` and `pgbackrest verify --output=text --verbose` say, as facts.

Both are untrusted input: another program may sit at pgbackrest_bin, and a repository may be damaged.
Every field used is checked for its type before it is read; a reply of another shape is refused in one
line naming the first field that is wrong, never a traceback. The shape is pgBackRest 2.45's (backup
info format 5); fields later versions add are ignored, fields older ones lack are optional here.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import re

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

BACKUP_TYPES = ('full', 'diff', 'incr')
# pgBackRest's stanza status codes (doc: "info" command, "Stanza status").
STANZA_MISSING = (1, 3)  # missing stanza path, missing stanza data
TEXT = (str,)
INTEGER = (int,)
MISSING = object()


class ShapeError(LifeboatError):
    pass


def refuse(where, what):
    raise ShapeError('pgbackrest info returned JSON of an unexpected shape: %s %s; this is not the output of '
                     'pgBackRest 2.x - check pgbackrest_bin' % (where, what))


def field(obj, path, kinds, where, optional=False, nullable=False):
    """obj[path[0]][path[1]]... checked to be one of `kinds` (None when optional and absent, or when
    nullable and null); `where` names obj in the message."""
    value = obj
    for key in path:
        if not isinstance(value, dict):
            refuse(where, 'is not an object')
        where = '%s.%s' % (where, key)
        value = value.get(key, MISSING)
        if value is MISSING:
            if optional:
                return None
            refuse(where, 'is missing')
    if value is None and (nullable or optional):
        return None
    # bool is an int in Python: a true/false where a number belongs is still refused.
    if isinstance(value, bool) and bool not in kinds:
        refuse(where, 'is %s, not %s' % (json.dumps(value), kind_name(kinds)))
    if not isinstance(value, kinds):
        refuse(where, 'is %s, not %s' % (type_name(value), kind_name(kinds)))
    return value


def type_name(value):
    if value is None:
        return 'null'
    for kinds, name in ((dict, 'an object'), (list, 'a list'), (bool, 'a boolean'), (INTEGER, 'an integer'),
                        (float, 'a number'), (TEXT, 'a string')):
        if isinstance(value, kinds):
            return name
    return 'a value of another kind'


def kind_name(kinds):
    names = {dict: 'an object', list: 'a list', bool: 'a boolean', int: 'an integer', str: 'a string'}
    return ' or '.join(sorted(set(names.get(kind, 'a string') for kind in kinds)))


def non_negative(value, where):
    if value is not None and value < 0:
        refuse(where, 'is negative (%d)' % value)
    return value


def iso_utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def load(text, stanza):
    """The one stanza object of `pgbackrest --stanza=<stanza> info --output=json`."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ShapeError('pgbackrest info did not print JSON (%s; it began %s); this is not the output of '
                         'pgBackRest - check pgbackrest_bin' % (str(exc).splitlines()[0][:200], json.dumps(text[:60])))
    if not isinstance(data, list):
        refuse('the reply', 'is %s, not a list of stanzas' % type_name(data))
    if len(data) != 1:
        refuse('the reply', 'holds %d stanzas, not the one asked for' % len(data))
    name = field(data[0], ['name'], TEXT, 'stanza')
    if name != stanza:
        refuse('stanza.name', 'is %s, not the stanza asked for (%s)' % (json.dumps(name), json.dumps(stanza)))
    return data[0]


def parse_backup(backup, where):
    label = field(backup, ['label'], TEXT, where)
    where = 'backup %s' % json.dumps(label)
    kind = field(backup, ['type'], TEXT, where)
    if kind not in BACKUP_TYPES:
        refuse(where + '.type', 'is %s, not one of %s' % (json.dumps(kind), ', '.join(BACKUP_TYPES)))
    start = non_negative(field(backup, ['timestamp', 'start'], INTEGER, where), where + '.timestamp.start')
    stop = non_negative(field(backup, ['timestamp', 'stop'], INTEGER, where), where + '.timestamp.stop')
    if stop < start:
        refuse(where + '.timestamp', 'ends (%d) before it starts (%d)' % (stop, start))
    prior = field(backup, ['prior'], TEXT, where, nullable=True)
    if kind == 'full' and prior is not None:
        refuse(where + '.prior', 'is %s, but a full backup has no prior backup' % json.dumps(prior))
    if kind != 'full' and prior is None:
        refuse(where + '.prior', 'is null, but this %s backup must be based on a prior backup' % kind)
    reference = field(backup, ['reference'], (list,), where, optional=True) or []
    for index, item in enumerate(reference):
        if not isinstance(item, TEXT):
            refuse('%s.reference[%d]' % (where, index), 'is %s, not a string' % type_name(item))
    sizes = dict((name, non_negative(field(backup, path, INTEGER, where), where + '.' + '.'.join(path)))
                 for name, path in (('database_size', ['info', 'size']), ('backup_size', ['info', 'delta']),
                                    ('repository_size', ['info', 'repository', 'size']),
                                    ('repository_backup_size', ['info', 'repository', 'delta'])))
    parsed = dict(
        label=label, type=kind, prior=prior, reference=list(reference),
        error=bool(field(backup, ['error'], (bool,), where, optional=True)),
        started_at=iso_utc(start), stopped_at=iso_utc(stop), started_epoch=start, stopped_epoch=stop,
        duration_seconds=stop - start,
        # A backup taken with archive-check off has no WAL range.
        wal_start=field(backup, ['archive', 'start'], TEXT, where, optional=True),
        wal_stop=field(backup, ['archive', 'stop'], TEXT, where, optional=True),
        lsn_start=field(backup, ['lsn', 'start'], TEXT, where, optional=True),
        lsn_stop=field(backup, ['lsn', 'stop'], TEXT, where, optional=True),
        db_id=field(backup, ['database', 'id'], INTEGER, where),
        repo_key=field(backup, ['database', 'repo-key'], INTEGER, where, optional=True),
        pgbackrest_version=field(backup, ['backrest', 'version'], TEXT, where, optional=True),
    )
    parsed.update(sizes)
    return parsed


def parse_archive(archive, where):
    archive_id = field(archive, ['id'], TEXT, where)
    where = 'archive %s' % json.dumps(archive_id)
    return dict(id=archive_id, db_id=field(archive, ['database', 'id'], INTEGER, where),
                repo_key=field(archive, ['database', 'repo-key'], INTEGER, where, optional=True),
                # Both are null while the archive of a database holds no WAL yet.
                min_wal=field(archive, ['min'], TEXT, where, nullable=True),
                max_wal=field(archive, ['max'], TEXT, where, nullable=True))


def status_of(obj, where):
    return dict(code=field(obj, ['status', 'code'], INTEGER, where),
                message=field(obj, ['status', 'message'], TEXT, where))


def items(obj, key, where):
    value = field(obj, [key], (list,), where)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            refuse('%s.%s[%d]' % (where, key, index), 'is %s, not an object' % type_name(item))
    return value


def parse_info(text, stanza):
    """Facts of one stanza: its status, repositories, databases, backups (oldest first, as pgBackRest
    lists them) and WAL archive ranges."""
    data = load(text, stanza)
    where = 'stanza'
    status = status_of(data, where)
    repos = [dict(key=field(repo, ['key'], INTEGER, 'repo[%d]' % index),
                  cipher=field(repo, ['cipher'], TEXT, 'repo[%d]' % index, optional=True),
                  status=status_of(repo, 'repo[%d]' % index))
             for index, repo in enumerate(items(data, 'repo', where))]
    databases = [dict(id=field(db, ['id'], INTEGER, 'db[%d]' % index),
                      repo_key=field(db, ['repo-key'], INTEGER, 'db[%d]' % index, optional=True),
                      system_id=field(db, ['system-id'], INTEGER, 'db[%d]' % index),
                      version=field(db, ['version'], TEXT, 'db[%d]' % index))
                 for index, db in enumerate(items(data, 'db', where))]
    backups = [parse_backup(backup, 'backup[%d]' % index) for index, backup in enumerate(items(data, 'backup', where))]
    labels = set(backup['label'] for backup in backups)
    for backup in backups:
        if backup['prior'] is not None and backup['prior'] not in labels:
            refuse('backup %s.prior' % json.dumps(backup['label']),
                   'names %s, which is not a backup of this stanza' % json.dumps(backup['prior']))
    archives = [parse_archive(archive, 'archive[%d]' % index) for index, archive in enumerate(items(data, 'archive', where))]
    return dict(
        stanza=dict(name=data['name'], status=status, repos=repos, databases=databases,
                    cipher=field(data, ['cipher'], TEXT, where, optional=True),
                    backup_lock_held=bool(field(data, ['status', 'lock', 'backup', 'held'], (bool,), where,
                                                optional=True))),
        backups=backups, archives=archives)


# `pgbackrest verify --output=text --verbose`, e.g.
#   stanza: main
#   status: error
#     archiveId: 15-1, total WAL checked: 6, total valid WAL: 5
#       missing: 0, checksum invalid: 0, size invalid: 0, other: 1
#     backup: 20261205-093344F, status: valid, total files checked: 964, total valid files: 964
#       missing: 0, checksum invalid: 0, size invalid: 0, other: 0
VERIFY_STANZA = re.compile(r'^stanza: (\S+)$')
VERIFY_STATUS = re.compile(r'^status: (\S+)$')
VERIFY_ARCHIVE = re.compile(r'^archiveId: ([^,]+), total WAL checked: (\d+), total valid WAL: (\d+)$')
VERIFY_BACKUP = re.compile(r'^backup: ([^,]+), status: ([^,]+), total files checked: (\d+), total valid files: (\d+)$')
VERIFY_COUNTS = re.compile(r'^(?:(?:missing|checksum invalid|size invalid|other): \d+(?:, |$))+$')


def parse_verify(text, stanza):
    """verify's result: the stanza's status (ok or error), and per WAL archive and backup what was
    checked and what was wrong. Lines it does not know are refused, so a result is never half read."""
    result = dict(status=None, archives=[], backups=[])
    current = None
    seen_stanza = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        match = VERIFY_STANZA.match(line)
        if match:
            if match.group(1) != stanza or seen_stanza:
                refuse_verify(number, raw, 'a result for stanza %s' % json.dumps(match.group(1)))
            seen_stanza = True
            continue
        if not seen_stanza:
            refuse_verify(number, raw, 'text before the stanza line')
        match = VERIFY_STATUS.match(line)
        if match and result['status'] is None:
            result['status'] = match.group(1)
            continue
        match = VERIFY_ARCHIVE.match(line)
        if match:
            current = dict(id=match.group(1), checked=int(match.group(2)), valid=int(match.group(3)))
            result['archives'].append(current)
            continue
        match = VERIFY_BACKUP.match(line)
        if match:
            current = dict(label=match.group(1), status=match.group(2), checked=int(match.group(3)),
                           valid=int(match.group(4)))
            result['backups'].append(current)
            continue
        if VERIFY_COUNTS.match(line) and current is not None:
            for part in line.split(', '):
                name, count = part.rsplit(': ', 1)
                current[name.replace(' ', '_')] = int(count)
            continue
        refuse_verify(number, raw, 'a line pgbackrest verify does not print')
    if not seen_stanza or result['status'] is None:
        raise ShapeError('pgbackrest verify printed no stanza and status lines for stanza %r; this is not the '
                         'output of pgBackRest 2.45 or later - check pgbackrest_bin' % stanza)
    for entry in result['archives'] + result['backups']:
        # Verbose output lists every count; without it only the non-zero ones are printed.
        for name in ('missing', 'checksum_invalid', 'size_invalid', 'other'):
            entry.setdefault(name, 0)
    result['ok'] = result['status'] == 'ok'
    result['problems'] = sum(e['missing'] + e['checksum_invalid'] + e['size_invalid'] + e['other']
                             for e in result['archives'] + result['backups'])
    return result


def refuse_verify(number, raw, what):
    raise ShapeError('pgbackrest verify printed %s on line %d (%s); this is not the output of pgBackRest 2.45 '
                     'or later - check pgbackrest_bin' % (what, number, json.dumps(raw[:80])))
