#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: async_watch
short_description: Wait on the host for an async job to finish, and read its progress
version_added: 0.1.0
description:
  - Follows a task started with C(async) and C(poll) 0 (a dump or a restore of lifeboat.db) from the host it runs
    on - role C(lifeboat_common)'s C(async_progress) calls it in a loop - returning as soon as the job has
    finished, or after O(wait) seconds while it still runs, with what its progress file says then.
  - The job's status file is looked at four times a second in this one process, so a job's end is noticed
    within a quarter of a second whatever O(wait) is, and each call costs the host one module run for O(wait)
    seconds of following instead of a run for every file read.
  - Reads only; the job's status and result are still collected with C(ansible.builtin.async_status).
  - The status file is matched as text and the progress file must be a JSON object; neither is followed
    through a link. A status file that is gone counts as a finished job (C(async_status) then says what became of it).
options:
  job_file:
    description: The job's status file - C(results_file) of the task that started it.
    type: path
    required: true
  progress_file:
    description: The progress file the job writes (C(.progress.json) of lifeboat.db.dump, C(.restore-progress.json) of lifeboat.db.restore).
    type: path
  wait:
    description: Seconds to wait at most for the job to finish before returning.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    description: Reads only, in check mode as otherwise.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Start the dump
  lifeboat.db.dump:
    db: app
    repository: /var/backups/lifeboat
  async: 3600
  poll: 0
  register: dump_job

- name: Follow it, printing its progress every 10 seconds
  lifeboat.db.async_watch:
    job_file: "{{ dump_job.results_file }}"
    progress_file: /var/backups/lifeboat/app/.progress.json
    wait: 10
  loop: "{{ range(361) | list }}"
  loop_control:
    break_when: watched.finished
    label: "{{ watched.progress.phase | default('starting') }}"
  register: watched
'''

RETURN = r'''
finished:
  description: Whether the job has finished (its status file no longer says it is running, or is gone).
  returned: always
  type: bool
  sample: true
progress:
  description: The progress file's content when it was last read, or null when there is none (see RV(progress_note)).
  returned: always
  type: dict
  sample: {phase: restoring, tables_done: 3, tables_total: 5, backup_id: 20261205T061635Z-a2f348}
progress_note:
  description: Why there is no progress (not written yet, not a progress report), else null.
  returned: always
  type: str
waited:
  description: Seconds this call waited.
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.common.job_watch import watch


def argument_spec():
    return dict(
        job_file=dict(type='path', required=True),
        progress_file=dict(type='path'),
        wait=dict(type='int', default=10),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params['wait'] < 0:
        module.fail_json(msg='wait must be 0 or more seconds, got %d' % module.params['wait'])
    module.exit_json(**watch(module.params['job_file'], module.params['progress_file'], module.params['wait']))


if __name__ == '__main__':
    main()
