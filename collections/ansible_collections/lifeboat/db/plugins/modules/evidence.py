#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: evidence
short_description: Write a run's evidence files on the controller, private and whole
version_added: 0.1.0
description:
  - Writes the files of one piece of evidence (a summary, a full result, a report) into a folder on the
    Ansible controller, in one task, as the roles of lifeboat do after a drill, a restore or an integrity run.
  - Runs on the controller only, as the controller's user - whatever the task's host, C(become) or
    C(delegate_to) - so the become of the database hosts (to C(postgres)) never follows it there.
  - Folders it creates are C(0700) and files C(0600) (evidence holds table names, row counts and the
    database's messages). Each file is written under a new temporary name, synced and renamed into place,
    so a reader sees the previous file or the new one, never half of one.
  - It never writes through a link below O(dir) - a link or a file where a folder should be is refused - and
    refuses names that would leave O(dir).
  - One line says what is wrong (a bad name, a folder it cannot create, a full disk); the files written
    before the failure are whole.
options:
  dir:
    description:
      - Folder on the controller to write into; made (with its missing parents, C(0700)) when it does not exist.
    type: path
    required: true
  files:
    description:
      - Each file to write, by its name relative to O(dir) (C(run-1/summary.json); missing folders below O(dir)
        are made), with its content.
      - A string is written as it is (a newline added when it has none at its end); anything else (a dict, a
        list, a number) as JSON, as C(to_nice_json) writes it.
      - Names are relative, without C(.) or C(..) parts, and not empty. Ansible does not template the keys of a
        task's dict, so names made of variables are built in one expression (see EXAMPLES); a name still
        holding C({{) is refused.
    type: dict
    required: true
attributes:
  check_mode:
    support: full
    description: Lists the files it would write; writes nothing.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
# Ansible templates the values of a task's dict, not its keys: names made of variables are built
# in one expression.
- name: Keep a restore's evidence on the controller
  lifeboat.db.evidence:
    dir: "{{ playbook_dir }}/../evidence/restore"
    files: >-
      {{ {run_id ~ '/summary.json': summary,
          run_id ~ '/report.md': lookup('ansible.builtin.template', 'report.md.j2'),
          'latest-summary.json': summary} }}
'''

RETURN = r'''
dir:
  description: The folder written into, on the controller.
  returned: always
  type: str
  sample: /srv/ansible/evidence/restore
written:
  description: The files written (in check mode, that would be written), in the order of O(files).
  returned: always
  type: list
  elements: str
  sample: [/srv/ansible/evidence/restore/20261205T061500Z-db2-app/summary.json]
'''


def argument_spec():
    return dict(
        dir=dict(type='path', required=True),
        files=dict(type='dict', required=True),
    )


def main():
    # The work is done by the action plugin of the same name, on the controller.
    raise SystemExit('lifeboat.db.evidence runs on the controller through its action plugin; call it as a task')


if __name__ == '__main__':
    main()
