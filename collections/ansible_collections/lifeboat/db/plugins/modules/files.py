#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: files
short_description: Back up and restore a directory next to the database (seed 003's uploads)
version_added: 0.1.0
description:
  - O(action=backup) archives directory O(path) on the target host into
    C(<repository>/<name>/<backup_id>/files.tar.gz) with ownership, modes and times, hashed while
    it is written, and a manifest listing every file with its size, mode, owner and sha256. The set
    appears only when complete, like a database backup; one run per O(name) at a time.
  - O(action=restore) checks the archive against its manifest, refuses it whole if any entry is
    not a plain directory or regular file inside the tree (a symbolic or hard link, a device, a
    FIFO, an absolute name, a C(..) part, a file the manifest does not list), unpacks it into a
    fresh private folder with an unpredictable name beside O(dest) without ever following a link,
    checks every file's sha256, and only then swaps it in. The current O(dest) is kept as
    C(<dest>.prev-<time>-<random>); a failed restore leaves O(dest) untouched.
  - O(dest) and its parent must not be symbolic links (name the real directory).
  - Only directories and regular files are archived; symbolic links and special files are reported
    in RV(not_archived), because a restore refuses to unpack links. Each file is opened without
    following a link and must be the file the walk listed (same inode); one replaced meanwhile
    is reported there too.
  - Setuid and setgid bits are not restored.
  - Ownership is restored when the module runs as root.
  - Connects to no database; the connection options are accepted for C(module_defaults) but unused.
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  repository:
    description: Absolute path of the backup repository on the target host.
    type: path
    required: true
  name:
    description: Name of the file set in the repository (its folder), e.g. C(uploads).
    type: str
    required: true
  action:
    description: Back up O(path), or restore into O(dest).
    type: str
    default: backup
    choices: [backup, restore]
  path:
    description: Directory to back up (O(action=backup)).
    type: path
  dest:
    description: Directory to restore into (O(action=restore)); its parent must exist.
    type: path
  backup:
    description: Files backup id to restore, or C(latest).
    type: str
    default: latest
  keep_last:
    description: Keep this many newest file backups of O(name); unset keeps all.
    type: int
attributes:
  check_mode:
    support: full
    description: Reports what would be archived or unpacked; a restore's archive is still verified.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Back up the uploads directory with the database (seed 003)
  lifeboat.db.files:
    repository: /var/backups/lifeboat
    name: uploads
    path: /srv/app/uploads
    keep_last: 30

- name: Put the uploads back; the current directory is kept beside it
  lifeboat.db.files:
    repository: /var/backups/lifeboat
    name: uploads
    action: restore
    dest: /srv/app/uploads
'''

RETURN = r'''
backup_id:
  description: Id of the files backup taken or restored.
  returned: always
  type: str
backup_path:
  description: Folder of the files backup taken.
  returned: action is backup and not check mode
  type: str
file_count:
  description: Files archived or restored.
  returned: success and not check mode
  type: int
total_bytes:
  description: Bytes of the files archived.
  returned: action is backup and not check mode
  type: int
size:
  description: Size of the archive.
  returned: action is backup and not check mode
  type: int
sha256:
  description: sha256 of the archive.
  returned: action is backup and not check mode
  type: str
not_archived:
  description: Entries below O(path) that were not archived (symbolic links, sockets, devices, files replaced while archived).
  returned: action is backup and not check mode
  type: list
  elements: str
deleted:
  description: File backups removed by O(keep_last).
  returned: action is backup and not check mode
  type: list
  elements: str
dest:
  description: Directory restored.
  returned: action is restore and not check mode
  type: str
previous:
  description: Where the directory that was at O(dest) was kept, if there was one.
  returned: action is restore and not check mode
  type: str
actions:
  description: What the task did (or would do), in plain sentences.
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
from ansible_collections.lifeboat.db.plugins.module_utils.files.run import run


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        repository=dict(type='path', required=True),
        name=dict(type='str', required=True),
        action=dict(type='str', default='backup', choices=['backup', 'restore']),
        path=dict(type='path'),
        dest=dict(type='path'),
        backup=dict(type='str', default='latest'),
        keep_last=dict(type='int'),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
