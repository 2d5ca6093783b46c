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
  - The module user must be able to read every file and folder under O(path); one it cannot read fails
    the backup (it is never left out without a word).
  - Only directories and regular files are archived; symbolic links and special files are reported
    in RV(not_archived), because a restore refuses to unpack links. Each file is opened without
    following a link and must be the file the walk listed (same inode); one replaced meanwhile
    is reported there too.
  - Setuid and setgid bits are not restored.
  - Ownership is restored when the module runs as root, by number (uid and gid as on the host that
    took the backup); otherwise the files come back owned by the module user. The example inventory becomes C(postgres) through the variable C(ansible_become_user),
    which outranks a task's C(become_user) keyword, so set that variable to C(root) in the restore
    task's C(vars) (see EXAMPLES).
  - With O(offsite_url), each new set (archive and manifest) is then copied to S3 exactly as
    M(lifeboat.db.dump) copies a database set - files first, manifest last, each upload checked
    against S3's checksums, retention applied there too - and C(offsite.json) in the local set
    records where the copy went. The local set is kept whatever happens to the copy.
  - With O(repository) an C(s3://) URL, O(action=restore) restores from the copies in S3 on any
    host (disaster recovery) - the set's manifest is validated (file names, sizes against S3's
    listing) and its contents checked before anything is downloaded, the set is downloaded into
    O(cache_dir) with every file checked against its sha256, then restored as above; the download
    is removed afterwards.
  - Connects to no database; the connection options are accepted for C(module_defaults) but unused.
  - With O(container), O(path) and O(dest) are named as the container sees them, and must be on one of its
    volumes or bind mounts - where an application's uploads live, on the Docker host already. lifeboat
    reads and writes them in the mount's folder on the Docker host (found from the container's mounts),
    exactly as above; nothing is copied through the engine. A path in the container's own layer, on a
    tmpfs, or on a remote engine's host is refused in one line, and so is a O(dest) that is the mount
    point itself (the swap renames O(dest), and the container would keep the old folder) - restore into a
    folder below it. A symbolic link on the way below the mount point is refused too (the container made
    it, and on the Docker host it would point at the host's own files). RV(container) names the container
    and the paths as the container sees them. The container needs no PostgreSQL and no network.
extends_documentation_fragment:
  - lifeboat.db.connection
  - lifeboat.db.container
  - lifeboat.db.s3
  - lifeboat.db.offsite
options:
  repository:
    description:
      - Absolute path of the backup repository on the target host.
      - For O(action=restore), also C(s3://bucket/prefix) - where O(offsite_url) copied the sets.
    type: path
    required: true
  cache_dir:
    description:
      - With an C(s3://) O(repository), the local folder on the target host the set is downloaded
        into and checked before it is restored. It must be the module user's own, 0700.
      - Not the database modules' cache - a files restore runs as root to restore owners, and that
        cache belongs to C(postgres).
    type: path
    default: /var/tmp/lifeboat-files-cache
  offsite_url:
    description:
      - Copy each new files backup to C(s3://bucket/prefix) after it is complete (O(action=backup)).
    type: str
  offsite_keep_days:
    description: Keep the S3 copies of the last this many days (with O(offsite_keep_last), a set either keeps is kept).
    type: float
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

- name: Back up the uploads and copy them to S3, kept 90 days there (seed 002)
  lifeboat.db.files:
    repository: /var/backups/lifeboat
    name: uploads
    path: /srv/app/uploads
    keep_last: 7
    offsite_url: s3://acme-db-backups/prod
    offsite_keep_days: 90
    s3_sse: aws:kms

- name: Disaster recovery on a new host - the uploads from S3, owners restored as root
  vars:
    ansible_become_user: root
  lifeboat.db.files:
    repository: s3://acme-db-backups/prod
    name: uploads
    action: restore
    dest: /srv/app/uploads
'''

RETURN = r'''
container:
  description:
    - The container - C(name), C(id), C(image), C(image_id), C(docker_host) - and C(path_in_container) or
      C(dest_in_container), the folder as the container sees it (RV(dest) and the actions name its Docker host folder).
  returned: with O(container)
  type: dict
backup_id:
  description: Id of the files backup taken or restored.
  returned: always
  type: str
backup_path:
  description:
    - Folder of the files backup taken; for a restore from an C(s3://) O(repository), the set's C(s3://) URL.
  returned: action is backup and not check mode, or a restore from S3
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
offsite:
  description:
    - The offsite copy - C(url), C(uploaded_at), C(storage_class), C(sse), per-object C(objects) (key,
      size, S3 checksum, how the upload was C(checked)) and the S3 sets C(deleted) by retention.
    - With O(offsite=optional) and a failed copy, C(url) is null and C(error) says why.
    - In check mode, the C(url) it would go to and the sets retention would delete there.
  returned: action is backup and offsite_url is set
  type: dict
retention_errors:
  description: What local retention could not do after the new set was complete.
  returned: when retention failed
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
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import s3_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import container_argument_spec
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
        cache_dir=dict(type='path', default='/var/tmp/lifeboat-files-cache'),
        offsite_url=dict(type='str'),
        offsite=dict(type='str', default='required', choices=['required', 'optional']),
        offsite_keep_last=dict(type='int'),
        offsite_keep_days=dict(type='float'),
    )
    spec.update(s3_argument_spec())
    spec.update(container_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
