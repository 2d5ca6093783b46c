#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_restore
short_description: Restore a pgBackRest stanza to a point in time into a new scratch instance and prove the target
version_added: 0.1.0
description:
  - Restores a pgBackRest stanza to a target (a time, an LSN, a restore point, the end of a backup, or the end of
    the WAL archive) into a B(new) data directory and port - a scratch instance - starts it, waits until recovery
    reaches the target and promotes, and returns what it reached (timeline, LSN, last transaction replayed, WAL
    replayed, seconds per phase). It never writes into a running cluster's data directory.
  - Everything is checked before the first write, each failure one line saying what to fix - the target's syntax,
    that the stanza has a backup ending before the target, that a time is not in the future and an LSN is archived,
    that O(bin_dir) runs the backup's major version, that O(data_dir) is allowed, that O(port) is free.
  - O(data_dir) must not exist, or be an empty directory of the task's user, or hold a scratch instance lifeboat made
    earlier (its marker file C(lifeboat-scratch.json)). The marker is written before pgBackRest restores and marked
    complete last, so a run killed half-way leaves a directory the next run removes and restores afresh. A directory
    without the marker is never removed, and no symbolic link is followed when removing.
  - pgbackrest runs as the task's user with an argument list - C(restore --pg1-path --set --type --target
    --target-action=promote --archive-mode=off) - and needs no password. Run the task as the database's OS user
    (C(become_user) V(postgres)); PostgreSQL does not start as root.
  - The scratch instance gets, after pgBackRest's recovery settings in C(postgresql.auto.conf) so they win over a
    restored C(postgresql.conf) - O(port), C(listen_addresses='') (Unix socket only), C(unix_socket_directories) =
    O(data_dir) (or a short private folder when the socket path would pass 107 bytes), C(archive_mode=off) (it must
    never push into the live stanza's archive), its own C(hba_file) (C(local all all trust) - only the OS user can reach
    the socket in its 0700 folder), a log in English with a known prefix in RV(log_file), and O(settings).
    A minimal C(postgresql.conf) and C(pg_ident.conf) are written when the backup has none (Debian keeps them in /etc).
  - Part of issue 19 (point-in-time recovery through pgBackRest); see docs/pgbackrest.md.
extends_documentation_fragment:
  - lifeboat.db.pgbackrest
options:
  target_type:
    description:
      - V(time) - a time; V(lsn) - a WAL location; V(name) - a restore point made by C(pg_create_restore_point());
        V(immediate) - the end of the backup (its consistent point); V(latest) - all WAL in the archive.
      - For V(time) and V(lsn), the backup restored is the newest that ended before the target (unless O(backup_set));
        for V(name), V(immediate) and V(latest) the newest backup - set O(backup_set) to an older one for a restore
        point made before it.
    type: str
    choices: [time, lsn, name, immediate, latest]
    default: latest
  target:
    description:
      - The time (C(YYYY-MM-DD HH:MM:SS[.ffffff]) with its UTC offset - C(+00), C(+01:00) or C(Z) - required, so that
        a target never depends on a server's time zone), the LSN (C(16/B374D848)) or the restore point name.
      - Required for O(target_type) V(time), V(lsn) and V(name); refused for the others.
    type: str
  target_exclusive:
    description: Stop just before the target instead of just after it (time and lsn targets only).
    type: bool
    default: false
  backup_set:
    description: Label of the backup to restore from (see M(lifeboat.db.pgbackrest_info)). Default is chosen as
      described under O(target_type).
    type: str
  data_dir:
    description: The scratch instance's data directory (absolute). Refused when it is the stanza's C(pg1-path) or
      inside it, or holds files without lifeboat's marker.
    type: path
    required: true
  port:
    description: The scratch instance's port; it must be free on the host (no TCP listener, no PostgreSQL socket in
      C(/var/run/postgresql) or C(/tmp)). Unlike other lifeboat.db modules, this is not the port of a server to connect
      to.
    type: int
    required: true
  bin_dir:
    description: PostgreSQL server binaries of the backup's major version. Default is
      C(/usr/lib/postgresql/<major>/bin).
    type: path
  state:
    description:
      - V(started) - leave the scratch instance running; V(stopped) - stop it once it has promoted; V(absent) - stop it
        and remove O(data_dir), only when it holds lifeboat's marker (no other option is checked then).
      - A second run with the same options finds the instance and reports it unchanged (starting or stopping it as
        asked); a different target in a running instance's O(data_dir) is refused.
    type: str
    choices: [started, stopped, absent]
    default: started
  timeout:
    description: Seconds for recovery to reach the target and promote; past it the instance is stopped and the task
      fails.
    type: int
    default: 600
  settings:
    description: Extra PostgreSQL settings for the scratch instance, e.g. C(shared_buffers) V(256MB). A
      C(listen_addresses) also lets loopback TCP in with a password. Those lifeboat sets (port, archiving, the socket
      folder, the log) are refused, and so is a name this PostgreSQL does not know (before anything is written).
    type: dict
    default: {}
  login_user:
    description: Role the module reads the scratch instance with (through its socket, no password). It must exist in
      the restored cluster.
    type: str
    default: postgres
    aliases: [login]
  db:
    description: Database the module connects to in the scratch instance.
    type: str
    aliases: [login_db, database]
  login_host:
    description: Not used; accepted so that C(module_defaults) for C(group/lifeboat.db.all) apply. The module
      connects to the scratch instance only.
    type: str
    aliases: [host]
  login_password:
    description: Not used (see O(login_host)); never passed to pgbackrest or the scratch instance.
    type: str
  login_unix_socket:
    description: Not used (see O(login_host)); the scratch instance's socket folder is RV(socket_dir).
    type: path
  ssl_mode:
    description: Not used (see O(login_host)).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: Not used (see O(login_host)).
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description: Not used (see O(login_host)).
    type: path
  ssl_key:
    description: Not used (see O(login_host)).
    type: path
  connect_timeout:
    description: Not used (see O(login_host)).
    type: int
    default: 10
  pg_bin_dir:
    description: Not used (see O(login_host)); the server binaries are O(bin_dir).
    type: path
attributes:
  check_mode:
    support: full
    description: Every check runs (pgBackRest's backups, the target, bin_dir, data_dir, the port); nothing is written
      and the result says what would be done.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Someone ran DELETE without WHERE at 10:02 - restore to one second before, beside the live cluster
  lifeboat.db.pgbackrest_restore:
    stanza: main
    target_type: time
    target: "2026-12-05 10:01:59+00"
    data_dir: /var/lib/postgresql/15/pitr
    port: 5499
  become: true
  become_user: postgres
  register: pitr

- name: Read the scratch instance
  lifeboat.db.integrity:
    db: shop
    login_unix_socket: "{{ pitr.socket_dir }}"
    port: "{{ pitr.port }}"
    login_user: postgres
  become: true
  become_user: postgres

- name: To a restore point, from an older backup, stopped afterwards
  lifeboat.db.pgbackrest_restore:
    stanza: main
    config: /etc/pgbackrest/pgbackrest.conf
    target_type: name
    target: before-migration-42
    backup_set: 20261201-010000F
    data_dir: /srv/pitr/main
    port: 5498
    state: stopped
    settings:
      shared_buffers: 256MB
  become: true
  become_user: postgres

- name: Done with it
  lifeboat.db.pgbackrest_restore:
    stanza: main
    data_dir: /var/lib/postgresql/15/pitr
    port: 5499
    state: absent
  become: true
  become_user: postgres
'''

RETURN = r'''
data_dir:
  description: The scratch instance's data directory.
  returned: always
  type: str
port:
  description: Its port.
  returned: unless state is absent
  type: int
socket_dir:
  description: Folder of its Unix socket (C(login_unix_socket) for the next tasks).
  returned: unless state is absent
  type: str
log_file:
  description: Its server log (in O(data_dir)).
  returned: unless state is absent
  type: str
bin_dir:
  description: The PostgreSQL binaries it runs with.
  returned: unless state is absent
  type: str
os_user:
  description: The OS user that runs it (the task's user); only this user can reach the socket.
  returned: unless state is absent
  type: str
state:
  description: V(started), V(stopped) or V(absent), as asked.
  returned: always
  type: str
stanza:
  description: The stanza restored.
  returned: unless state is absent
  type: str
backup:
  description: The backup restored - C(label), C(type), C(stopped_at) (ISO 8601 UTC), C(lsn_stop).
  returned: unless state is absent
  type: dict
target:
  description: The target asked - C(type), C(value) (a time in UTC as C(YYYY-MM-DD HH:MM:SS.ffffff+00), an LSN, a
    name, or null), C(exclusive).
  returned: unless state is absent
  type: dict
reached:
  description:
    - Where recovery ended - C(timeline) (the new one, int), C(lsn) (the end of recovery, where the timeline branched),
      C(last_replayed_at) (ISO 8601 UTC of the last transaction replayed, or null), C(promoted),
      C(stop_reason) (from the timeline's history file) and C(stopping) (PostgreSQL's C(recovery stopping) line).
    - Null in check mode.
  returned: unless state is absent
  type: dict
  sample:
    timeline: 2
    lsn: 0/6000148
    last_replayed_at: "2026-12-05T10:01:58.512311Z"
    promoted: true
    stop_reason: before 2026-12-05 10:01:59+00
    stopping: before commit of transaction 747, time 2026-12-05 10:02:00.104517+00
wal_replayed_bytes:
  description: The end of recovery minus the backup's stop LSN.
  returned: unless state is absent
  type: int
seconds:
  description: C(restore_files) (pgBackRest's restore), C(recovery) (start to promotion), C(total).
  returned: unless state is absent
  type: dict
actions:
  description: What the task did (or would do in check mode), in plain sentences.
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
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.restore import run


def argument_spec():
    # The connection options are accepted so that the action group's module_defaults apply. `port` is the scratch
    # instance's own: it has no default, and a live server's port given by module_defaults is refused as taken.
    spec = connection_argument_spec()
    spec.update(pgbackrest_argument_spec())
    spec.update(
        port=dict(type='int', required=True),
        target_type=dict(type='str', default='latest', choices=['time', 'lsn', 'name', 'immediate', 'latest']),
        target=dict(type='str'),
        target_exclusive=dict(type='bool', default=False),
        backup_set=dict(type='str'),
        data_dir=dict(type='path', required=True),
        bin_dir=dict(type='path'),
        state=dict(type='str', default='started', choices=['started', 'stopped', 'absent']),
        timeout=dict(type='int', default=600),
        settings=dict(type='dict', default={}),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
