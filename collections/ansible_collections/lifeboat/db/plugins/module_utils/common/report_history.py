# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The earlier runs of an evidence folder (<dir>/<run>/summary.json), read for a report's history.

Those files are untrusted: anyone who can write into the evidence folder can plant a link, a FIFO,
a huge file or a summary with wrong types. Each run folder and its summary.json are opened without
following links (O_NOFOLLOW, relative to the folder's descriptor, so a folder swapped for a link
meanwhile is not followed either), only a regular file no larger than MAX_SUMMARY_BYTES is read,
and anything wrong skips that run (counted, so the report can say so). No path is ever built from
a file's contents: the run folders are found by listing the evidence folder."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import stat

# A summary lifeboat writes is a few KiB (one entry per table); a MiB leaves room for big schemas.
MAX_SUMMARY_BYTES = 1024 * 1024
# At most this many folder entries are looked at, whatever the folder holds.
MAX_ENTRIES = 5000


class BadRun(Exception):
    """An earlier run whose summary cannot be used (the reason is not shown: it is not trusted)."""


def _open_summary(folder_fd, name):
    """The text of <name>/summary.json below the folder open as `folder_fd`, or None when `name`
    is not a run folder (a file such as latest-summary.json); BadRun when it cannot be used."""
    try:
        facts = os.lstat(name, dir_fd=folder_fd)
    except OSError:
        raise BadRun()
    if stat.S_ISLNK(facts.st_mode):
        raise BadRun()
    if not stat.S_ISDIR(facts.st_mode):
        return None
    run_fd = summary_fd = None
    try:
        run_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
        # O_NONBLOCK: a FIFO planted as summary.json must not hold the report up (it is refused below).
        summary_fd = os.open('summary.json', os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=run_fd)
        facts = os.fstat(summary_fd)
        if not stat.S_ISREG(facts.st_mode) or facts.st_size > MAX_SUMMARY_BYTES:
            raise BadRun()
        data = os.read(summary_fd, MAX_SUMMARY_BYTES + 1)
        if len(data) > MAX_SUMMARY_BYTES:
            raise BadRun()  # grew while it was read
        return data.decode('utf-8')
    except (OSError, UnicodeDecodeError):
        raise BadRun()
    finally:
        for fd in (summary_fd, run_fd):
            if fd is not None:
                os.close(fd)


def read_history(folder, run_id, limit, belongs):
    """The newest `limit` earlier runs of `folder` (not `run_id`) that `belongs(summary)` accepts,
    oldest first, as [(folder name, summary dict)], and how many runs were skipped as unusable.

    `belongs` returns False for another host's or database's run (left out, not counted) and raises
    BadRun for a summary of the wrong shape. Run folders are named <UTC stamp>-..., so their names
    sort by time; the newest are read first and reading stops at `limit`."""
    runs, skipped = [], 0
    if limit <= 0:
        return runs, skipped
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return runs, skipped
        raise
    try:
        names = sorted(os.listdir(folder_fd), reverse=True)[:MAX_ENTRIES]
        for name in names:
            if name == run_id or name.startswith('.'):
                continue
            try:
                raw = _open_summary(folder_fd, name)
                if raw is None:
                    continue
                summary = json.loads(raw)
                if not isinstance(summary, dict):
                    raise BadRun()
                if not belongs(summary):
                    continue
            except (BadRun, ValueError, RecursionError):
                skipped += 1
                continue
            runs.append((name, summary))
            if len(runs) >= limit:
                break
    finally:
        os.close(folder_fd)
    runs.reverse()
    return runs, skipped
