#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: report
short_description: Write a run's reports for people - an HTML page and seed 003's recovery report
version_added: 0.1.0
description:
  - Writes C(<dir>/<run_id>/report.html) for a drill, a restore, a disaster recovery, an integrity run or the fleet
    summary, and for a drill, a restore or a DR also C(<dir>/<run_id>/recovery-report.md), seed 003's recovery
    report (what failed, when, the recovery time, the data lost, the steps taken, the checks that passed and the
    improvements the run itself shows), from the run's summary, as the roles of lifeboat do after writing their
    evidence (docs/reports.md).
  - The page is one file that needs nothing else - inline CSS and SVG, no script, nothing fetched - and prints.
    It shows pass or fail, the key figures (RTO, RPO, backup, rows) against the targets (by colour and in words),
    the run's steps on a timeline drawn to scale with the fault, the recovery and the backup marked, the tables or
    checks, and the history of the earlier runs of the same host and database in O(dir) as small charts.
  - The earlier runs' C(summary.json) files are read as untrusted, without following links; a file that is not a
    regular file, is larger than 1 MiB or is not a summary as lifeboat writes it is skipped, and the page says how
    many were.
  - Runs on the controller only, as the controller's user; files are written as M(lifeboat.db.evidence) writes
    them (folders C(0700), files C(0600), each whole, never through a link).
options:
  kind:
    description: What the run was; decides the figures, the timeline and whether a recovery report is written.
    type: str
    required: true
    choices: [drill, restore, dr, integrity, fleet]
  dir:
    description: The evidence folder on the controller, where the run's folder is and the earlier runs are.
    type: path
    required: true
  run_id:
    description: The run's folder name in O(dir) (the summary's run id; the fleet's time stamp).
    type: str
    required: true
  summary:
    description:
      - The run's summary, as the role writes it to C(summary.json). Its values (table names, failures) are
        escaped in both files.
    type: dict
    required: true
  targets:
    description:
      - The recovery targets each run is judged against. Seconds given win over the level's.
    type: dict
    default: {}
    suboptions:
      rto_seconds:
        description: The recovery time objective, in seconds (seed 002 - 4 hours, 14400).
        type: float
      rpo_seconds:
        description: The recovery point objective (the backup's age when the recovery starts), in seconds.
        type: float
      level:
        description:
          - Seed 003's recovery level - C(RTO-1) (RTO 1 hour, data loss minimal - no figure, so the RPO is judged
            only with O(targets.rpo_seconds)), C(RTO-4) (4 hours, 1 hour of data) or C(RTO-24) (24 hours, 1 day).
        type: str
        choices: [RTO-1, RTO-4, RTO-24]
  lang:
    description: The language of every heading, label and sentence of both files.
    type: str
    default: en
    choices: [en, ja]
  history:
    description: How many earlier runs the history charts show (0 for none).
    type: int
    default: 10
  physical:
    description:
      - Physical backups to show beside the logical ones - M(lifeboat.db.pgbackrest_info) results, one per pgBackRest
        stanza (a registered result, a list of them, or a loop's registered result). Both files get a section with
        each stanza's newest backup, its type and age, the WAL archive range, the recovery-point exposure, whether
        archiving is failing and what is wrong (a failed read, a failing archiver, verify's problems).
      - The fleet's report shows the stanzas its summary keeps per host (C(hosts[].physical)) without this option.
    type: raw
attributes:
  check_mode:
    support: full
    description: Returns the paths it would write; writes nothing.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Write the drill's HTML and recovery reports beside its evidence
  lifeboat.db.report:
    kind: drill
    dir: "{{ lifeboat_drill_evidence_dir }}"
    run_id: "{{ lifeboat_drill_summary.run_id }}"
    summary: "{{ lifeboat_drill_summary }}"
    targets:
      rto_seconds: 14400
      rpo_seconds: 14400
    lang: ja

- name: Read the stanza the recovery used
  lifeboat.db.pgbackrest_info:
    stanza: main
  register: lifeboat_stanza

- name: A restore's reports with the physical backups beside the logical ones
  lifeboat.db.report:
    kind: restore
    dir: "{{ lifeboat_restore_evidence_dir }}"
    run_id: "{{ lifeboat_restore_summary.run_id }}"
    summary: "{{ lifeboat_restore_summary }}"
    physical: "{{ lifeboat_stanza }}"
'''

RETURN = r'''
dir:
  description: The evidence folder, on the controller.
  returned: always
  type: str
  sample: /srv/ansible/evidence/drill
html:
  description: The HTML report (in check mode, where it would be).
  returned: always
  type: str
  sample: /srv/ansible/evidence/drill/20261205T082828Z-db2/report.html
recovery:
  description: The recovery report (Markdown), for a drill, a restore or a DR; null otherwise.
  returned: always
  type: str
  sample: /srv/ansible/evidence/drill/20261205T082828Z-db2/recovery-report.md
history_runs:
  description: How many earlier runs the history shows.
  returned: always
  type: int
  sample: 9
history_skipped:
  description: How many earlier runs were skipped (their summary.json a link, too large, not a summary).
  returned: always
  type: int
  sample: 0
'''


def argument_spec():
    return dict(
        kind=dict(type='str', required=True, choices=['drill', 'restore', 'dr', 'integrity', 'fleet']),
        dir=dict(type='path', required=True),
        run_id=dict(type='str', required=True),
        summary=dict(type='dict', required=True),
        targets=dict(type='dict', default={}, options=dict(
            rto_seconds=dict(type='float'),
            rpo_seconds=dict(type='float'),
            level=dict(type='str', choices=['RTO-1', 'RTO-4', 'RTO-24']),
        )),
        lang=dict(type='str', default='en', choices=['en', 'ja']),
        history=dict(type='int', default=10),
        physical=dict(type='raw'),
    )


def main():
    # The work is done by the action plugin of the same name, on the controller.
    raise SystemExit('lifeboat.db.report runs on the controller through its action plugin; call it as a task')


if __name__ == '__main__':
    main()
