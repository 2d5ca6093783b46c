#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: partition
short_description: Keep a range-partitioned PostgreSQL table's partitions - ahead, without gaps, old ones archived
version_added: 0.1.0
description:
  - Seed 002's partition management as one idempotent task - for a table partitioned by range on one
    C(date), C(timestamp), C(timestamptz) or integer column, keeps O(premake) partitions ahead of the
    current period and fills gaps, and retires partitions older than O(retain) periods.
  - Existing partitions are recognised by their bounds, whatever their names (partitions made by
    hand count); every one must be exactly one period of O(interval), else the task fails naming it.
  - New partitions get the parent's indexes (partitioned indexes) and the extra O(partition_indexes).
    Rows of the default partition that belong to a new partition are moved into it in the same
    transaction that creates it (O(default_rows=move)), or the task refuses (O(default_rows=refuse)).
  - Retention marks each old partition (a table comment) and detaches it (C(CONCURRENTLY) on
    PostgreSQL 14+ when there is no default partition). With O(retention_action=archive) it is then
    dumped into O(repository) as a backup set of kind C(partition-archive) (and copied to S3 with
    O(offsite_url), in O(s3_storage_class) such as C(GLACIER)), and the archive proven - checksums,
    table of contents, and the rows read back from the archive equal to the rows counted when it was
    dumped. O(retention_action=archive_and_drop) then drops the table, in a transaction that holds it
    locked and finds exactly the archived rows. Data that is not archived is never dropped.
  - A run that stopped half-way (detached but not archived, archived but not dropped) is finished by the next run.
  - With O(restore_partition), a retired partition is attached again - the detached table if it is still
    there, else restored from its archive (proven first) and attached with its recorded bounds.
  - Marks and archive manifests are read back as untrusted - a table's owner can write its comment. Bounds
    are read as values of the key's type and written as literals, never run as SQL; a mark counts only on
    the table it was written on (same OID and name), owned by the parent's owner or the login, with the
    parent's columns. Any other marked table is left alone with a warning, and O(restore_partition) refuses it.
  - One run per table at a time (an advisory lock).
  - With O(container), the archive is dumped by the container's own C(pg_dump) and streamed through the Docker API
    into O(repository) on this host (the Docker host), as M(lifeboat.db.dump) does, and read back - table of
    contents, rows, the restore of O(restore_partition) - by the container's C(pg_restore) through its standard
    input, so no copy is left in the container. Everything else runs over this host's connection to the
    container's server (see the fragment). The result names the container (RV(container)).
extends_documentation_fragment:
  - lifeboat.db.connection
  - lifeboat.db.container
  - lifeboat.db.s3
options:
  db:
    description: Database holding the table.
    type: str
    required: true
    aliases: [login_db, database]
  table:
    description: The partitioned table, as C(schema.table) (or C(table) in C(public)).
    type: str
    required: true
  interval:
    description:
      - C(yearly), C(quarterly), C(monthly), C(weekly) (ISO weeks, from Monday) or C(daily) for a date or
        timestamp key; a positive integer step (like C(100000)) for an integer key.
    type: str
    required: true
  premake:
    description: Partitions to keep ahead of the current one (pg_partman's premake). The current one always exists.
    type: int
    default: 4
  start:
    description:
      - The first period to keep partitions for (a date, or a key value). Default is the oldest existing
        partition, or the current period for a table without partitions.
    type: str
  now:
    description:
      - The moment the plan is made for (C(2026-11-29) or C(2026-11-29T10:00)), in O(time_zone); default is
        the clock. For an integer key, the current key value; default is the table's highest key.
    type: str
  time_zone:
    description:
      - Time zone whose midnights bound the partitions of a C(timestamptz) key, and in which O(now) is read.
    type: str
    default: UTC
  name_pattern:
    description:
      - Name of new partitions. Time keys may use C({table}), C({YYYY}), C({MM}), C({DD}), C({Q}) (quarter),
        C({IYYY}) and C({IW}) (ISO year and week); integer keys C({table}) and C({start}).
      - Default like pg_partman and pagila - C({table}_p{YYYY}_{MM}) monthly, C({table}_p{YYYY}) yearly,
        C({table}_p{YYYY}q{Q}), C({table}_p{IYYY}w{IW}), C({table}_p{YYYY}_{MM}_{DD}), C({table}_p{start}).
        Seed 002's names are C({table}_{YYYY}).
    type: str
  partition_indexes:
    description:
      - Indexes to create on each new partition besides the parent's, as C(name) (may use C({partition}))
        and C(definition), the SQL after C(ON <partition>), such as C(USING GIN (context)).
    type: list
    elements: dict
    default: []
  default_rows:
    description:
      - What to do when the default partition holds rows of a new partition's range - C(move) them into the
        new partition in the transaction that creates it, or C(refuse) (fail before changing anything).
    type: str
    default: move
    choices: [move, refuse]
  retain:
    description:
      - Retire partitions that end O(retain) periods or more before O(now) (wholly older than that).
        Default is to retire nothing. Must leave at least one partition.
    type: int
  retention_action:
    description:
      - C(detach) - detach retired partitions and keep them as tables.
      - C(archive) - also archive each into O(repository) and verify the archive; the table is kept.
      - C(archive_and_drop) - archive, verify, then drop. Never drops a table whose archive is not proven.
    type: str
    default: detach
    choices: [detach, archive, archive_and_drop]
  repository:
    description: Backup repository on the target host that receives partition archives (kind C(partition-archive)).
    type: path
  lock_timeout:
    description:
      - Seconds to wait for the repository lock of the database, which a backup of it running at the same
        time holds. A run that gives up leaves the partition detached; the next run archives it.
    type: int
    default: 600
  offsite_url:
    description: Copy each partition archive to C(s3://bucket/prefix), in O(s3_storage_class) (seed 002 uses C(GLACIER)).
    type: str
  offsite:
    description:
      - C(required) - a failed copy fails the task and the partition is not dropped. C(optional) - a warning.
    type: str
    default: required
    choices: [required, optional]
  restore_partition:
    description:
      - Attach this retired partition (C(name) in the table's schema, or C(schema.name)) again instead of
        keeping partitions - the detached table, or its archive restored from O(repository).
    type: str
  backup_id:
    description: With O(restore_partition), the archive to restore. Default is the partition's newest archive.
    type: str
attributes:
  check_mode:
    support: full
    description: Lists the partitions it would create (with rows it would move), detach, archive and drop; changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    description: A second run right after the first reports no change.
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Keep pagila's payment four months ahead, with no gaps
  lifeboat.db.partition:
    db: pagila
    table: public.payment
    interval: monthly
    premake: 4

- name: Seed 002 - next year's policy_violations ahead, three years kept, older years archived to Glacier and dropped
  lifeboat.db.partition:
    db: consulting_tool
    table: public.policy_violations
    interval: yearly
    premake: 1
    name_pattern: '{table}_{YYYY}'
    partition_indexes:
      - {name: 'idx_{partition}_target', definition: '(target_type, target_id)'}
      - {name: 'idx_{partition}_context', definition: 'USING GIN (context)'}
    retain: 3
    retention_action: archive_and_drop
    repository: /backup/lifeboat
    offsite_url: s3://consulting-tool-backups/bc-004/archive
    s3_storage_class: GLACIER

- name: Bring the 2022 partition back from its archive
  lifeboat.db.partition:
    db: consulting_tool
    table: public.policy_violations
    interval: yearly
    restore_partition: policy_violations_2022
    repository: /backup/lifeboat
'''

RETURN = r'''
container:
  description: The container the database lives in - C(name), C(id), C(image), C(image_id), C(docker_host).
  returned: with O(container)
  type: dict
table:
  description: The partitioned table, C(schema.table).
  returned: always
  type: str
column:
  description: The partition key column.
  returned: when keeping partitions
  type: str
key_type:
  description: The key column's type.
  returned: when keeping partitions
  type: str
interval:
  description: The interval (C(integer) for an integer step).
  returned: when keeping partitions
  type: str
now:
  description: The moment (wall-clock time in O(time_zone), or key value) the plan was made for.
  returned: when keeping partitions
  type: str
created:
  description:
    - Partitions created (or, in check mode, to create) - C(name), C(period), C(reason) (C(ahead) or
      C(gap)), C(lower) and C(upper), C(default_rows) found in the default partition and C(moved_rows) moved.
  returned: when keeping partitions
  type: list
  elements: dict
detached:
  description: Partitions detached by this run (or that would be).
  returned: when keeping partitions
  type: list
  elements: str
archived:
  description:
    - Archives made - C(partition), C(backup_id), C(backup_path), C(rows), C(size), C(offsite_url),
      C(storage_class). In check mode only C(partition).
  returned: when keeping partitions
  type: list
  elements: dict
dropped:
  description: Tables dropped after their archive was proven - C(partition), C(backup_id), C(rows).
  returned: when keeping partitions
  type: list
  elements: dict
partitions:
  description: The table's partitions after the run (in check mode, as they would be).
  returned: when keeping partitions
  type: list
  elements: str
restored:
  description: With O(restore_partition), the partition attached again.
  returned: when restore_partition is set
  type: str
bound:
  description: With O(restore_partition), the bounds it was attached with.
  returned: when restore_partition is set and it was attached
  type: str
backup_id:
  description: With O(restore_partition), the archive restored (null when the detached table was attached).
  returned: when restore_partition is set
  type: str
rows:
  description: With O(restore_partition), the rows restored from the archive.
  returned: when restore_partition is set
  type: int
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
from ansible_collections.lifeboat.db.plugins.module_utils.partition.run import RETENTION_ACTIONS, run
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import s3_argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import container_argument_spec


def argument_spec():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', required=True, aliases=['login_db', 'database'])
    spec.update(
        table=dict(type='str', required=True),
        interval=dict(type='str', required=True),
        premake=dict(type='int', default=4),
        start=dict(type='str'),
        now=dict(type='str'),
        time_zone=dict(type='str', default='UTC'),
        name_pattern=dict(type='str'),
        partition_indexes=dict(type='list', elements='dict', default=[]),
        default_rows=dict(type='str', default='move', choices=['move', 'refuse']),
        retain=dict(type='int'),
        retention_action=dict(type='str', default='detach', choices=list(RETENTION_ACTIONS)),
        repository=dict(type='path'),
        lock_timeout=dict(type='int', default=600),
        offsite_url=dict(type='str'),
        offsite=dict(type='str', default='required', choices=['required', 'optional']),
        restore_partition=dict(type='str'),
        backup_id=dict(type='str'),
    )
    spec.update(s3_argument_spec())
    spec.update(container_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == '__main__':
    main()
