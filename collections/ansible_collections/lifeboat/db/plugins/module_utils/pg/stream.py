# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a client tool whose output we write ourselves, hashing it on the way.

module.run_command collects output in memory, which a multi-gigabyte dump cannot afford; here the
tool's stdout goes through a fixed-size buffer into the file and into sha256 at once, so the
checksum costs no second read. Still an argument list, never a shell.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import hashlib
import os
import subprocess
import tempfile

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import last_error_line

CHUNK = 1024 * 1024


@contextlib.contextmanager
def _producer(argv, env, what):
    """Run argv with its stdout piped to the caller (its stderr kept for the message). If the
    caller fails, the tool is killed; if the tool fails, its last error line is raised."""
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=dict(os.environ, **env),
                                    close_fds=True)
        except OSError as exc:
            raise LifeboatError('%s failed to start: %s' % (what, exc.strerror or exc))
        try:
            yield proc
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        rc = proc.wait()
        if rc != 0:
            errors.seek(0)
            detail = last_error_line(errors.read().decode('utf-8', 'replace'), 'exit code %d' % rc)
            raise LifeboatError('%s failed: %s' % (what, detail))


def stream_to_file(argv, env, path, what, progress=None):
    """Run argv, write its stdout to `path` (created 0600, must not exist); return the sha256."""
    digest = hashlib.sha256()
    with _producer(argv, env, what) as proc:
        written = 0
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'wb') as out:
                for block in iter(lambda: proc.stdout.read(CHUNK), b''):
                    out.write(block)
                    digest.update(block)
                    written += len(block)
                    if progress:
                        progress(written)
                out.flush()
                os.fsync(out.fileno())
        except (IOError, OSError) as exc:
            raise LifeboatError('%s could not be written to %s: %s' % (what, path, exc.strerror or exc))
    return digest.hexdigest()


class TocTee(object):
    """Passes a stream through while feeding it to `pg_restore --list`, which reads an archive's
    header and table of contents and exits: the archive is proven readable as it streams, before
    it lands in a storage class (GLACIER) that cannot be read back."""

    def __init__(self, source, pg_restore):
        self.source = source
        self.errors = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen([pg_restore, '--list'], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=self.errors, close_fds=True)
        except OSError as exc:
            self.errors.close()
            raise LifeboatError('pg_restore --list failed to start: %s' % (exc.strerror or exc))
        self.feeding = True

    def read(self, size):
        block = self.source.read(size)
        if self.feeding and block:
            try:
                self.proc.stdin.write(block)
            except (IOError, OSError):
                self._stop_feeding()  # it has read what it needs and exited
        return block

    def _stop_feeding(self):
        self.feeding = False
        try:
            self.proc.stdin.close()
        except (IOError, OSError):
            pass

    def outcome(self):
        """None when the table of contents read back, else pg_restore's error line."""
        self._stop_feeding()
        rc = self.proc.wait()
        self.errors.seek(0)
        detail = last_error_line(self.errors.read().decode('utf-8', 'replace'), 'exit code %d' % rc)
        self.errors.close()
        return None if rc == 0 else detail


def stream_to_s3(argv, env, store, key, what, progress=None, toc_reader=None):
    """Run argv and upload its stdout to `key` in an S3Store as it is produced (bounded memory);
    returns the upload's {size, sha256, checksum, checked}, and with `toc_reader` (a pg_restore)
    `toc_error`: None when the archive's table of contents read back.

    If the tool fails, S3 holds whatever came out before; the set has no manifest and is swept."""
    tee = None
    with _producer(argv, env, what) as proc:
        try:
            tee = TocTee(proc.stdout, toc_reader) if toc_reader else None
            sent = store.upload(tee or proc.stdout, key, progress=progress)
        finally:
            if tee is not None:
                toc_error = tee.outcome()
    if tee is not None:
        sent['toc_error'] = toc_error
    return sent


def run_following_stderr(argv, env, what, on_line):
    """Run argv (its output goes where its own arguments say), calling on_line for each line it
    writes to stderr; raise with its error line when it fails."""
    environ = dict(os.environ, **env)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=environ, close_fds=True)
    except OSError as exc:
        raise LifeboatError('%s failed to start: %s' % (what, exc.strerror or exc))
    tail = []
    for raw in iter(proc.stderr.readline, b''):
        line = raw.decode('utf-8', 'replace').rstrip()
        tail = (tail + [line])[-50:]
        on_line(line)
    proc.stderr.close()
    rc = proc.wait()
    if rc != 0:
        raise LifeboatError('%s failed: %s' % (what, last_error_line('\n'.join(tail), 'exit code %d' % rc)))


def tool_output(argv, env, what):
    """The stdout of argv as blocks, for stream_into; raises after the last block if the tool failed
    (so a consumer never gets what follows a truncated output)."""
    with _producer(argv, env, what) as proc:
        for block in iter(lambda: proc.stdout.read(CHUNK), b''):
            yield block


def _file_blocks(path, opener):
    try:
        with opener(path, 'rb') as source:
            for block in iter(lambda: source.read(CHUNK), b''):
                yield block
    except (IOError, OSError) as exc:
        raise LifeboatError('cannot read %s: %s' % (path, exc.strerror or exc))


def stream_from_file(argv, env, path, what, decompress=None):
    """Run argv feeding `path` (decompressed by `decompress`, a file-like opener) to its stdin."""
    stream_into(argv, env, _file_blocks(path, decompress or open), what)


def stream_into(argv, env, blocks, what):
    """Run argv feeding it `blocks` (an iterable of bytes, e.g. tool_output) on stdin.

    If producing a block fails, the tool is killed before its input ends: psql never sees the end
    of a truncated script, so it cannot commit one. If the tool stops reading (psql's
    ON_ERROR_STOP), the producer is closed and the tool's own error line is raised."""
    environ = dict(os.environ, **env)
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT,
                                    env=environ, close_fds=True)
        except OSError as exc:
            raise LifeboatError('%s failed to start: %s' % (what, exc.strerror or exc))
        source = iter(blocks)
        try:
            for block in source:
                try:
                    proc.stdin.write(block)
                except (IOError, OSError):
                    # It stopped reading (ON_ERROR_STOP): its own message below says why.
                    if proc.poll() is None:
                        proc.kill()
                    break
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if hasattr(source, 'close'):
                source.close()
            try:
                proc.stdin.close()
            except (IOError, OSError):
                pass
        rc = proc.wait()
        if rc != 0:
            output.seek(0)
            raise LifeboatError('%s failed: %s' % (what, last_error_line(output.read().decode('utf-8', 'replace'),
                                                                        'exit code %d' % rc)))
