# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting for an async job on its own host (lifeboat.db.async_watch): the job's status file is
looked at four times a second in this one process, so the controller hears of the end within a
quarter of a second whatever its poll interval, and each look over SSH costs one module run for
a whole interval instead of one for every file read.

Both files are input: the status file is only matched as text (ansible-core 2.19 writes tagged
objects into it that JSON readers do not expect), and a progress file that is not a JSON object is
reported as unreadable, never trusted."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import stat
import time

# async_wrapper writes {"started": true, "finished": false, ...} (1 and 0 before ansible-core 2.19)
# while the job runs, and the module's result after; a missing file is a job that is gone.
RUNNING = re.compile(r'\A\s*[{]"started": (1|true), "finished": (0|false)')
LOOK_SECONDS = 0.25
# Larger files are not ours: a status file while the job runs, or a progress file, is far smaller.
READ_LIMIT = 1 << 20


def _read(path):
    """The text of a regular file (not followed through a link), or None when there is none there:
    opened without blocking, so a FIFO planted at the path cannot hold the look up."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, 'rb') as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(READ_LIMIT).decode('utf-8', 'replace')


def job_running(job_file):
    text = _read(job_file)
    return text is not None and RUNNING.match(text) is not None


def read_progress(progress_file):
    """(progress dict or None, why there is none)."""
    if not progress_file:
        return None, 'no progress file'
    text = _read(progress_file)
    if text is None:
        return None, 'no progress reported yet (%s)' % progress_file
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return None, 'progress file %s is not a progress report' % progress_file
    return data, None


def watch(job_file, progress_file, wait, clock=time.monotonic, sleep=time.sleep):
    """Wait up to `wait` seconds for the job to finish; then its state and its latest progress."""
    deadline = clock() + max(wait, 0)
    running = job_running(job_file)
    while running and clock() < deadline:
        sleep(min(LOOK_SECONDS, max(deadline - clock(), 0)))
        running = job_running(job_file)
    progress, note = read_progress(progress_file)
    return dict(changed=False, finished=not running, progress=progress, progress_note=note,
                waited=round(wait - max(deadline - clock(), 0), 3))
