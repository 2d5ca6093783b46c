# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pgbackrest_info module's task: what main() runs once AnsibleModule has checked the options."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.archiver import read_archiver
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.command import PgBackRest
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.info import (
    STANZA_MISSING, parse_info, parse_verify)


def pgbackrest(ctx):
    p = ctx.params
    command = PgBackRest(ctx.run_command, p['stanza'], config=p['config'], repo=p['repo'], binary=p['pgbackrest_bin'])
    command.check_inputs()
    return command


def read_info(command):
    facts = parse_info(command.run('info', '--output=json'), command.stanza)
    status = facts['stanza']['status']
    if status['code'] in STANZA_MISSING:
        raise LifeboatError('stanza %r is not in the pgBackRest repository (%s, status code %d); check stanza and '
                            'config, or run `pgbackrest --stanza=%s stanza-create` first'
                            % (command.stanza, status['message'], status['code'], command.stanza))
    return facts


def run(ctx):
    command = pgbackrest(ctx)
    facts = read_info(command)
    backups = facts['backups']
    result = dict(changed=False, stanza=facts['stanza'], status=facts['stanza']['status'], backups=backups,
                  count=len(backups), archives=facts['archives'],
                  latest=backups[-1]['label'] if backups else None,
                  actions=['Read %d backup(s) and %d WAL archive range(s) of stanza %s from pgBackRest'
                           % (len(backups), len(facts['archives']), command.stanza)])
    warnings = []
    if facts['stanza']['status']['code'] != 0:
        # Status 99 ('other') says nothing by itself: the repository's own status says why (unreachable, 403, ...).
        reasons = ['repo%d: %s' % (repo['key'], ' '.join(repo['status']['message'].split())[:300])
                   for repo in facts['stanza']['repos'] if repo['status']['code'] != 0]
        warnings.append('pgBackRest reports stanza %s as %r (status code %d)%s'
                        % (command.stanza, facts['stanza']['status']['message'], facts['stanza']['status']['code'],
                           ''.join('; ' + reason for reason in reasons)))
    warnings.extend('backup %s has page checksum errors (pgBackRest error flag)' % b['label']
                    for b in backups if b['error'])
    dbname = ctx.params['db'] or 'postgres'
    with ctx.options.connect(dbname) as conn:
        archiver = read_archiver(conn)
    result['archiver'] = archiver
    result['exposure_seconds'] = archiver['exposure_seconds']
    result['actions'].append('Read the archiver statistics of %s' % ctx.options.describe(dbname))
    if archiver['failing']:
        warnings.append('WAL archiving is failing: %d failure(s), the last on %s at %s; what was written since %s is '
                        'not in the archive yet' % (archiver['failed_count'], archiver['last_failed_wal'],
                                                    archiver['last_failed_time'],
                                                    archiver['last_archived_time'] or 'the server started'))
    if ctx.params['verify']:
        verified = parse_verify(command.run('verify', '--output=text', '--verbose'), command.stanza)
        result['verify'] = verified
        result['actions'].append('Verified the repository of stanza %s: %s, %d problem(s)'
                                 % (command.stanza, verified['status'], verified['problems']))
        if not verified['ok']:
            warnings.append('pgbackrest verify found %d problem(s) in stanza %s' % (verified['problems'],
                                                                                   command.stanza))
    if warnings:
        result['warnings'] = warnings
    return result
