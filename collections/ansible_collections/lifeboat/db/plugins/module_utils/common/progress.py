# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a long dump, in `<repository>/<db>/.progress.json`, for a task to read while the
dump runs as an async job: phase, bytes written, tables dumped, updated at most once a second."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import write_json_atomic
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now

PROGRESS_NAME = '.progress.json'
# pg_dump --verbose announces each table's data as it starts dumping it.
TABLE_LINE = re.compile(r'dumping contents of table "?([^"]+)"?')


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, name)) for root, dummy, names in os.walk(path) for name in names)
    return os.path.getsize(path) if os.path.exists(path) else 0


class Progress(object):
    def __init__(self, directory, backup_id, tables_total, name=PROGRESS_NAME):
        self.path = os.path.join(directory, name)
        self.state = dict(backup_id=backup_id, pid=os.getpid(), phase='starting', bytes=0, tables_done=0,
                          tables_total=tables_total, current_table=None, started_at=iso(utc_now()))
        self.last_write = 0.0

    def update(self, force=False, **facts):
        self.state.update(facts)
        now = time.monotonic()
        if force or now - self.last_write >= 1.0:
            self.state['updated_at'] = iso(utc_now())
            try:
                write_json_atomic(self.path, self.state)
            except (IOError, OSError):
                pass  # progress is a courtesy: a full disk must fail the dump, not the report of it
            self.last_write = now

    def tool_line(self, line, archive):
        """Follow pg_dump --verbose: count tables as they start, measure what is written."""
        match = TABLE_LINE.search(line)
        if match:
            self.state['tables_done'] += 1
            self.state['current_table'] = match.group(1)
        self.update(bytes=size_of(archive))
