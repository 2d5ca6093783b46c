#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_info
short_description: Physical backups, WAL archive and recovery-point exposure of a pgBackRest stanza
version_added: 0.1.0
description:
  - Reads C(pgbackrest info --output=json) for one stanza and returns its status, its backups (type,
    start and stop in UTC, sizes, WAL range, the backup each one is based on) and the WAL archive range of
    each database, so physical backups can be listed and reported beside lifeboat's logical ones.
  - Reads C(pg_stat_archiver) on the server of the connection options and returns the recovery-point
    exposure now - the seconds since the last WAL segment reached the archive - and the failed archive
    attempts. A failure after the last success is a warning.
  - With O(verify=true), also runs C(pgbackrest verify) (which checks every WAL segment and backup file in
    the repository against its checksum) and returns its result; problems are a warning, not a failure.
  - Only reads; changes nothing. pgbackrest runs with an argument list and gets no password - C(info) and
    C(verify) read the repository only. It runs as the task's user, which must be able to read the
    repository (usually C(become_user) V(postgres)).
  - Everything pgbackrest prints is checked before it is used; a reply of another shape, an unknown stanza,
    a missing configuration or a pgbackrest error ends the task with one line.
  - The first part of issue 19 (point-in-time recovery through pgBackRest); see docs/pgbackrest.md.
extends_documentation_fragment:
  - lifeboat.db.connection
  - lifeboat.db.pgbackrest
options:
  verify:
    description: Also run C(pgbackrest verify) and return its result under RV(verify).
    type: bool
    default: false
  db:
    description: Database to connect to for reading C(pg_stat_archiver) (any database will do).
    type: str
    default: postgres
    aliases: [login_db, database]
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs in check mode exactly as without it.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: What physical backups do we have, and how much would we lose right now?
  lifeboat.db.pgbackrest_info:
    stanza: main
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
  register: physical

- name: Complain when WAL has not reached the archive for five minutes
  ansible.builtin.assert:
    that: physical.exposure_seconds is not none and physical.exposure_seconds < 300
    fail_msg: "WAL archiving is {{ physical.exposure_seconds }} s behind (stanza main)"

- name: Weekly proof that the repository still reads back
  lifeboat.db.pgbackrest_info:
    stanza: main
    config: /etc/pgbackrest/pgbackrest.conf
    repo: 1
    verify: true
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
'''

RETURN = r'''
status:
  description: The stanza's status as pgBackRest reports it (C(code) 0 is C(ok); 2 no valid backups, 4 different
    cipher, 5 database mismatch, 6 backup or expire running, 99 other).
  returned: always
  type: dict
  sample: {code: 0, message: ok}
stanza:
  description: The stanza - C(name), C(status), C(repos) (key, cipher, status), C(databases) (id, repo_key,
    system_id, version), C(cipher), C(backup_lock_held).
  returned: always
  type: dict
backups:
  description:
    - The stanza's backups, oldest first as pgBackRest lists them.
    - C(type) is C(full), C(diff) or C(incr); C(prior) is the backup a diff or incr is based on and C(reference)
      every backup it needs files from.
    - C(database_size) is the size of the cluster, C(backup_size) what this backup copied, C(repository_size) the
      compressed size in the repository of the whole backup and C(repository_backup_size) of what it copied (bytes).
    - C(wal_start)/C(wal_stop) the WAL segments needed to make it consistent, C(lsn_start)/C(lsn_stop).
    - C(error) is true when pgBackRest found page checksum errors while copying.
  returned: always
  type: list
  elements: dict
  sample:
    - label: 20261205-093344F_20261205-093348I
      type: incr
      prior: 20261205-093344F
      reference: [20261205-093344F]
      error: false
      started_at: "2026-12-05T09:33:48Z"
      stopped_at: "2026-12-05T09:33:49Z"
      started_epoch: 1796463228
      stopped_epoch: 1796463229
      duration_seconds: 1
      database_size: 28022524
      backup_size: 6553866
      repository_size: 4635945
      repository_backup_size: 393260
      wal_start: "000000010000000000000005"
      wal_stop: "000000010000000000000005"
      lsn_start: 0/5000028
      lsn_stop: 0/5000100
      db_id: 1
      repo_key: 1
      pgbackrest_version: "2.45"
count:
  description: Number of backups.
  returned: always
  type: int
latest:
  description: Label of the newest backup, or null when there is none.
  returned: always
  type: str
archives:
  description: The WAL archive of each database of the stanza - C(id) (e.g. C(15-1)), C(db_id), C(repo_key),
    C(min_wal), C(max_wal) (null while it holds no WAL).
  returned: always
  type: list
  elements: dict
exposure_seconds:
  description: Seconds since the last WAL segment reached the archive, by the server's clock - what a loss
    of the server now would lose at most, once the next segment is closed. Null when none was archived since
    the statistics were reset.
  returned: always
  type: float
archiver:
  description:
    - The server's C(pg_stat_archiver) - C(archived_count), C(last_archived_wal), C(last_archived_time),
      C(exposure_seconds), C(failed_count), C(last_failed_wal), C(last_failed_time), C(stats_reset) (times in UTC)
      - with C(archive_mode), C(current_wal) (the segment being written; null on a standby) and C(failing)
      (a failure came after the last success).
  returned: always
  type: dict
verify:
  description:
    - The result of C(pgbackrest verify) - C(status) (C(ok) or C(error)), C(ok), C(problems) (their number), and per
      WAL archive (C(archives)) and backup (C(backups)) the files C(checked) and C(valid), and C(missing),
      C(checksum_invalid), C(size_invalid), C(other).
  returned: when verify is true
  type: dict
actions:
  description: What the task did, in plain sentences.
  returned: always
  type: list
  elements: str
timing:
  description: Start and end of the task (ISO 8601 and epoch seconds) and its duration in seconds.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.command import pgbackrest_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.run import run


def argument_spec():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', default='postgres', aliases=['login_db', 'database'])
    spec.update(pgbackrest_argument_spec())
    spec['verify'] = dict(type='bool', default=False)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
