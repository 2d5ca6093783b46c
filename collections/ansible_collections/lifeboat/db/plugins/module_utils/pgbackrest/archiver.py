# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery-point exposure now, from the server's own archiver statistics: how long ago the last
WAL segment reached the archive (archive_command succeeded), and whether archiving is failing. All
it loses in a disaster is what was written since, so this is the RPO the archive gives right now."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso

# now() and the archiver's times come from the same clock, the server's: no skew with the target host.
ARCHIVER_SQL = '''
SELECT archived_count, last_archived_wal, last_archived_time,
       EXTRACT(EPOCH FROM now() - last_archived_time)::float8 AS exposure_seconds,
       failed_count, last_failed_wal, last_failed_time, stats_reset,
       current_setting('archive_mode') AS archive_mode,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal
FROM pg_stat_archiver
'''


def when(moment):
    # psycopg gives the session's time zone; results are UTC like every other lifeboat time.
    return iso(moment.astimezone(datetime.timezone.utc)) if moment is not None else None


def read_archiver(conn):
    row = conn.execute(ARCHIVER_SQL).fetchone()
    archived, last_wal, last_time, exposure, failed, failed_wal, failed_time, reset, mode, current_wal = row
    # A failure after the last success means the segments since are waiting on archive_command.
    failing = failed_time is not None and (last_time is None or failed_time > last_time)
    return dict(
        archived_count=archived, last_archived_wal=last_wal, last_archived_time=when(last_time),
        exposure_seconds=round(exposure, 3) if exposure is not None else None,
        failed_count=failed, last_failed_wal=failed_wal, last_failed_time=when(failed_time),
        failing=failing, stats_reset=when(reset), archive_mode=mode, current_wal=current_wal)
