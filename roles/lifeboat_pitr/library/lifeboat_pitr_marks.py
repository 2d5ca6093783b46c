#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: lifeboat_pitr_marks
short_description: The PITR drill's writer - marker rows at known times, then the fault, all archived
version_added: 0.1.0
description:
  - PRIVATE to role lifeboat_pitr (its drill); not part of the collection's interface.
  - Makes O(table) afresh (only a table this module made - it carries the comment C(lifeboat PITR drill markers)),
    writes O(count) marker rows O(interval) seconds apart, each in its own transaction, and switches the WAL and
    waits until the archiver has archived that segment.
  - Then plans the fault at a moment F and the recovery target at F minus O(target_before_fault), writes O(late)
    marker rows between the two (changes a recovery to the target must lose), and at F runs the fault -
    C(DELETE) without C(WHERE) on O(table), or C(DROP TABLE). Then the WAL is switched and archived again, so the
    archive holds everything a recovery to the target needs, the commits after it included.
  - Times are the server's (C(clock_timestamp())), as PostgreSQL compares a recovery target with its commit
    records. Each marker has C(written_at) (its row's time, before its commit) and C(committed_by) (read after
    its commit returned), so its commit lies between them; the plan keeps every marker at least 0.25 s from the target.
extends_documentation_fragment:
  - lifeboat.db.connection
options:
  db:
    description: Database on the live cluster to write the markers into (it must exist).
    type: str
    required: true
    aliases: [login_db, database]
  table:
    description: The marker table, C(schema.table); the schema is created when missing.
    type: str
    default: lifeboat_pitr_drill.marks
  count:
    description: Markers written before the target (a recovery to the target must keep them all).
    type: int
    default: 5
  interval:
    description: Seconds between two of those markers.
    type: float
    default: 1.0
  late:
    description: Markers written between the target and the fault (a recovery to the target must lose them).
    type: int
    default: 2
  target_before_fault:
    description: Seconds between the recovery target and the fault (the drill recovers to one second before it).
    type: float
    default: 1.0
  fault:
    description: C(delete) (C(DELETE) without C(WHERE)) or C(drop_table).
    type: str
    default: delete
    choices: [delete, drop_table]
  archive_timeout:
    description: Seconds to wait for the archiver to archive a switched WAL segment.
    type: int
    default: 60
  confirm:
    description: Must equal O(db) - the fault destroys the markers on purpose.
    type: str
    required: true
attributes:
  check_mode:
    support: none
    description: It writes and breaks its markers; the drill refuses check mode before it runs.
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Write the markers and break the table
  lifeboat_pitr_marks:
    db: lifeboat_drill
    confirm: lifeboat_drill
'''

RETURN = r'''
marks:
  description: Every marker - id, phase (C(before_target) or C(after_target)), written_at, committed_by (ISO 8601 UTC).
  returned: success
  type: list
  elements: dict
kept:
  description: Ids a recovery to the target must keep.
  returned: success
  type: list
  elements: int
lost:
  description: Ids a recovery to the target must lose.
  returned: success
  type: list
  elements: int
target_time:
  description: The recovery target, C(YYYY-MM-DD HH:MM:SS.ffffff+00) (as lifeboat.db.pgbackrest_restore takes it).
  returned: success
  type: str
target_at:
  description: The same moment, ISO 8601 UTC.
  returned: success
  type: str
fault:
  description: kind, statement, started_at, committed_by, rows_destroyed.
  returned: success
  type: dict
archived:
  description: The WAL segments switched and archived (after the markers, after the fault).
  returned: success
  type: list
  elements: str
'''

import datetime
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import run_module
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import connection_argument_spec, sql
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import split_name

COMMENT = 'lifeboat PITR drill markers'
# No marker closer to the target than this: its commit time is known to lie between two readings.
MARGIN = 0.25


class Server(object):
    """The live cluster's clock and the table, on one autocommit connection."""

    def __init__(self, conn, table):
        self.conn, self.table = conn, table

    def now(self):
        return utc(self.conn.execute('SELECT clock_timestamp()').fetchone()[0])

    def wait_until(self, moment):
        """Sleep until the server's clock reads `moment` (its clock, not this host's)."""
        while True:
            left = (moment - self.now()).total_seconds()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))

    def mark(self, ident, phase):
        written = self.conn.execute(sql.SQL('INSERT INTO {} (id, phase) VALUES (%s, %s) RETURNING written_at')
                                    .format(self.table), (ident, phase)).fetchone()[0]
        return dict(id=ident, phase=phase, written=utc(written), committed=self.now())

    def switch_and_archive(self, timeout):
        """Close the current WAL segment and wait until the archiver has archived it."""
        segment = self.conn.execute('SELECT pg_walfile_name(pg_switch_wal())').fetchone()[0]
        deadline = time.monotonic() + timeout
        while True:
            archived, failed = self.conn.execute(
                'SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver').fetchone()
            if archived and archived >= segment:
                return segment
            if time.monotonic() > deadline:
                why = ('the archiver last failed on %s' % failed) if failed and failed >= segment else 'it is behind'
                raise LifeboatError('WAL segment %s was not archived within %d s (%s); check archive_command and '
                                    'pg_stat_archiver, then run the drill again' % (segment, timeout, why))
            time.sleep(0.1)


def fresh_table(conn, schema, name, target):
    """Drop the drill's table of an earlier run (only ours: its comment says so) and make it again."""
    found = conn.execute("SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                         (schema, name)).fetchone()
    if found and found[0] != COMMENT:
        raise LifeboatError('table %s.%s exists and is not the PITR drill\'s (its comment is not %r); name another '
                            'table for the markers' % (schema, name, COMMENT))
    conn.execute(sql.SQL('CREATE SCHEMA IF NOT EXISTS {}').format(sql.Identifier(schema)))
    if found:
        conn.execute(sql.SQL('DROP TABLE {}').format(target))
    conn.execute(sql.SQL('CREATE TABLE {} (id integer PRIMARY KEY, phase text NOT NULL, '
                         'written_at timestamptz NOT NULL DEFAULT clock_timestamp())').format(target))
    conn.execute(sql.SQL('COMMENT ON TABLE {} IS {}').format(target, sql.Literal(COMMENT)))


def run(ctx):
    p = ctx.params
    if p['confirm'] != p['db']:
        raise LifeboatError('confirm must repeat the database name %r: the drill destroys its markers on purpose; '
                            'nothing was changed' % p['db'])
    if p['count'] < 1 or p['late'] < 1 or p['interval'] <= 0 or p['target_before_fault'] < 2 * MARGIN:
        raise LifeboatError('count and late must be 1 or more, interval above 0 and target_before_fault at least '
                            '%.1f s; nothing was changed' % (2 * MARGIN))
    schema, name = split_name(p['table'])
    target = sql.SQL('{}.{}').format(sql.Identifier(schema), sql.Identifier(name))
    conn = ctx.options.connect(p['db'])
    try:
        fresh_table(conn, schema, name, target)
        server = Server(conn, target)
        gap = p['target_before_fault']
        marks, start = [], server.now()
        for index in range(p['count']):
            server.wait_until(start + timedelta(index * p['interval']))
            marks.append(server.mark(index + 1, 'before_target'))
        archived = [server.switch_and_archive(p['archive_timeout'])]
        # The fault at F, the target at F - gap: the last marker kept and the first lost both MARGIN from it.
        fault_at = max(server.now() + timedelta(gap), marks[-1]['committed'] + timedelta(gap + MARGIN))
        target_at = fault_at - timedelta(gap)
        step = (gap - 2 * MARGIN) / max(p['late'] - 1, 1)
        for index in range(p['late']):
            server.wait_until(target_at + timedelta(MARGIN + index * step))
            marks.append(server.mark(p['count'] + index + 1, 'after_target'))
        server.wait_until(fault_at)
        fault, started = fault_now(server, p['fault'])
        # One second (gap) before the fault as it really began, a few milliseconds after its plan.
        target_at = started - timedelta(gap)
        archived.append(server.switch_and_archive(p['archive_timeout']))
    finally:
        conn.close()
    for mark in marks:
        mark['written_at'], mark['committed_by'] = iso(mark.pop('written')), iso(mark.pop('committed'))
    return dict(changed=True, marks=marks, archived=archived, fault=fault,
                kept=[m['id'] for m in marks if m['phase'] == 'before_target'],
                lost=[m['id'] for m in marks if m['phase'] == 'after_target'],
                target_at=iso(target_at), target_time=target_at.strftime('%Y-%m-%d %H:%M:%S.%f+00'),
                actions=['Wrote %d marker(s) to keep and %d to lose in %s.%s' % (p['count'], p['late'], schema, name),
                         '%s at %s (%d row(s)); the target is %s s before it' % (
                             fault['statement'], fault['started_at'], fault['rows_destroyed'], gap),
                         'Archived WAL segments %s' % ', '.join(archived)])


def fault_now(server, kind):
    """The fault in one transaction: its facts, and when it began (server clock)."""
    conn, target = server.conn, server.table
    statement = sql.SQL('DELETE FROM {}' if kind == 'delete' else 'DROP TABLE {}').format(target)
    with conn.transaction():
        started = server.now()
        rows = conn.execute(sql.SQL('SELECT count(*) FROM {}').format(target)).fetchone()[0]
        conn.execute(statement)
    return dict(kind=kind, statement=statement.as_string(conn), started_at=iso(started),
                committed_by=iso(server.now()), rows_destroyed=rows), started


def utc(moment):
    """psycopg gives the session's time zone; the evidence is in UTC."""
    return moment.astimezone(datetime.timezone.utc)


def timedelta(seconds):
    return datetime.timedelta(seconds=seconds)


def main():
    spec = connection_argument_spec()
    spec['db'] = dict(type='str', required=True, aliases=['login_db', 'database'])
    spec.update(table=dict(type='str', default='lifeboat_pitr_drill.marks'), count=dict(type='int', default=5),
                interval=dict(type='float', default=1.0), late=dict(type='int', default=2),
                target_before_fault=dict(type='float', default=1.0),
                fault=dict(type='str', default='delete', choices=['delete', 'drop_table']),
                archive_timeout=dict(type='int', default=60), confirm=dict(type='str', required=True))
    run_module(AnsibleModule(argument_spec=spec, supports_check_mode=False), run)


if __name__ == '__main__':
    main()
