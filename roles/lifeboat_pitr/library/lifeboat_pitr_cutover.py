#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: lifeboat_pitr_cutover
short_description: A checked, promoted scratch instance becomes the live cluster, the old data directory kept
version_added: 0.1.0
description:
  - PRIVATE to role lifeboat_pitr (pitr_cutover); not part of the collection's interface.
  - With O(action=cutover) - checks everything first (the live data directory is the stanza's C(pg1-path), both
    directories this user's and on one filesystem, the scratch instance complete and promoted, no tablespaces,
    one PostgreSQL major), then stops the scratch instance and the live cluster (fast), renames the live data
    directory to C(<live>.before-pitr-<UTC>) (never removed by lifeboat), strips the scratch-only settings and files,
    renames the scratch instance into the live path, starts it and checks it answers on the new timeline.
  - Each step goes into a journal C(<live>.lifeboat-cutover.json) first. A new cluster that does not start or
    answer is moved aside to C(<live>.failed-pitr-<UTC>) and the old one renamed back and started.
  - With O(action=recover) - puts right a cutover a killed run left (the journal): the new cluster kept if it runs
    on its timeline, else the old one put back and started. Nothing to do without a journal.
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  action:
    description: C(cutover) or C(recover).
    type: str
    choices: [cutover, recover]
    default: cutover
  stanza:
    description: The pgBackRest stanza; its C(pg1-path) is the live data directory.
    type: str
    required: true
  config:
    description: pgBackRest's configuration file.
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  data_dir:
    description: The scratch instance (lifeboat.db.pgbackrest_restore's, complete and promoted).
    type: path
  cluster:
    description: Debian's C(VERSION/NAME) of the live cluster - stopped and started with C(pg_ctlcluster).
    type: str
    default: ""
  stop_command:
    description: The live cluster's stop command (argv), instead of C(pg_ctlcluster) or C(pg_ctl -D <live> -m fast stop).
    type: list
    elements: str
    default: []
  start_command:
    description: The live cluster's start command (argv), instead of C(pg_ctlcluster) or C(pg_ctl -D <live> -l <live>.lifeboat-cutover.log start).
    type: list
    elements: str
    default: []
  bin_dir:
    description: PostgreSQL's binaries (pg_ctl, pg_controldata); C(/usr/lib/postgresql/<major>/bin) when unset.
    type: path
  timeout:
    description: Seconds the clusters may take to stop and start.
    type: int
    default: 300
attributes:
  check_mode:
    support: partial
    description: action=cutover checks everything and changes nothing; action=recover reports a journal.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Cut over
  lifeboat_pitr_cutover:
    stanza: main
    data_dir: /var/lib/postgresql/lifeboat-pitr-main
    cluster: 15/main
'''

import glob
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.cutover import (
    Cutover, stanza_pg1_path, wait_until_answers)


def commands(params, live):
    timeout = str(params['timeout'])
    major = None
    # While a cutover cut short is put right the old cluster may be in <live>.before-pitr-<UTC>.
    for path in [live] + sorted(glob.glob(glob.escape(live) + '.before-pitr-*'), reverse=True):
        if os.path.isfile(os.path.join(path, 'PG_VERSION')):
            with open(os.path.join(path, 'PG_VERSION'), encoding='utf-8') as handle:
                major = handle.read().strip()
            break
    bin_dir = params['bin_dir'] or '/usr/lib/postgresql/%s/bin' % (major or '15')
    pg_ctl = os.path.join(bin_dir, 'pg_ctl')
    cluster = params['cluster']
    if cluster:
        if cluster.count('/') != 1 or not all(cluster.split('/')):
            raise LifeboatError('cluster %r is not Debian\'s VERSION/NAME (15/main, as pg_lsclusters shows)' % cluster)
        version, name = cluster.split('/')
        stop, start = ['pg_ctlcluster', version, name, 'stop', '-m', 'fast'], ['pg_ctlcluster', version, name, 'start']
    else:
        stop = [pg_ctl, '-D', live, '-m', 'fast', '-w', '-t', timeout, 'stop']
        start = [pg_ctl, '-D', live, '-l', live + '.lifeboat-cutover.log', '-w', '-t', timeout, 'start']
    scratch = params['data_dir'] or ''
    return dict(stop_live=params['stop_command'] or stop, start_live=params['start_command'] or start,
                stop_scratch=[pg_ctl, '-D', scratch, '-m', 'fast', '-w', '-t', timeout, 'stop'],
                pg_controldata=[os.path.join(bin_dir, 'pg_controldata')])


def run(ctx):
    params = ctx.params
    try:
        live = stanza_pg1_path(params['config'], params['stanza'])
    except LifeboatError:
        if params['action'] == 'recover':
            # No live data directory named here (a host that only reads the repository): no cutover to put right.
            return dict(changed=False, actions=[])
        raise
    actions = []
    dbname = params.get('db') or 'postgres'

    def answers(timeline):
        return wait_until_answers(lambda: ctx.options.connect(dbname), timeline, params['timeout'])

    scratch = os.path.realpath(params['data_dir']) if params['data_dir'] else ''
    cutover = Cutover(ctx.run_command, os.path.realpath(live), scratch, commands(params, os.path.realpath(live)),
                      answers, actions.append)
    result = dict(changed=False, live_data_dir=cutover.live, journal=cutover.journal_path, actions=actions)
    if params['action'] == 'recover':
        journal = cutover.read_journal()
        if journal is None:
            return result
        if ctx.check_mode:
            actions.append('Would put right the cutover cut short at step %s (journal %s)'
                           % (journal.get('step'), cutover.journal_path))
            return dict(result, changed=True)
        return dict(result, changed=True, recovered=cutover.recover())
    if not scratch:
        raise LifeboatError('data_dir (the scratch instance) is required with action=cutover')
    if ctx.check_mode:
        cutover.preflight()
        actions.append('Would rename %s to %s.before-pitr-<UTC> and %s to %s' % (live, live, scratch, live))
        return dict(result, changed=True)
    try:
        done = cutover.run()
    except LifeboatError as exc:
        # What was done and put back goes with the failure into the evidence.
        exc.facts = dict(exc.facts, actions=actions, live_data_dir=cutover.live, journal=cutover.journal_path)
        raise
    return dict(result, changed=True, **done)


def main():
    spec = connection_argument_spec()
    spec.update(
        action=dict(type='str', choices=['cutover', 'recover'], default='cutover'),
        stanza=dict(type='str', required=True),
        config=dict(type='path', default='/etc/pgbackrest/pgbackrest.conf'),
        data_dir=dict(type='path'),
        cluster=dict(type='str', default=''),
        stop_command=dict(type='list', elements='str', default=[]),
        start_command=dict(type='list', elements='str', default=[]),
        bin_dir=dict(type='path'),
        timeout=dict(type='int', default=300),
    )
    run_module(AnsibleModule(argument_spec=spec, supports_check_mode=True), run)


if __name__ == '__main__':
    main()
