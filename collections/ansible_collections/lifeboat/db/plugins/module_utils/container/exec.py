# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a PostgreSQL client tool inside a container, as `docker exec` does, through the API.

The SDK's high-level `exec_run(stream=True)` never reports the exit code, so a pg_dump that failed
halfway would look like a short dump. Here: exec_create, exec_start attached to the exec's socket
(stdout and stderr apart, as they come), then exec_inspect until the command has ended, for its
exit code. stdout goes to a
callback as it arrives (into the repository, hashed on the way), stderr is kept for the message.

Passwords travel in the exec's environment, never in its arguments: an exec's arguments are shown
by `docker inspect` and `ps` inside the container, its environment is not logged.

An engine may lose part of an exec's output and still report the command's exit code 0 (`id -u`
answered nothing, seen under load): a dump cut at its start or end would then count. So an exec
whose stdout is data runs inside the container's sh between two markers - a random nonce per exec,
handed over in its environment - and its output counts only when the start marker is its first
bytes and the end marker its last (`WholeOutput`). stdout is one ordered pipe: the end marker
arriving proves that all before it arrived.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import errno
import os
import socket
import struct
import threading
import time

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container.engine import api_error_text, docker
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import last_error_line

# Kept of a command's stderr: enough for its error lines, bounded for a chatty --verbose.
STDERR_LIMIT = 64 * 1024
# How long an ended exec may take to report its exit code. It must be read before the engine cleans
# the exec session up (Docker keeps it; podman after exit_command_delay, 5 min by default).
EXIT_CODE_WAIT = 30.0
CHUNK = 1024 * 1024
# The runtime's words when the program itself is missing (runc, crun, Docker: exit code 126/127).
RUNTIME_MISSING = ('executable file not found', 'no such file or directory')
# A command run under WHOLE_SCRIPT that is missing: the container's sh says `sh: 1: pg_dump: not found`.
MISSING_PROGRAM = RUNTIME_MISSING + ('command not found', ': not found')
STREAM_STDOUT, STREAM_STDERR = 1, 2
# What is kept of a --verbose tool's stderr lines for the failure message: the lines around the end.
TAIL_LINES = 50
# The markers around an output that must arrive whole. The shell prints them, the command runs as
# "$0" "$@" between them, so its argv reaches it unchanged and its exit code is the exec's.
WHOLE_SHELL = 'sh'
WHOLE_START, WHOLE_END = 'LIFEBOAT_OUTPUT_START', 'LIFEBOAT_OUTPUT_END'
WHOLE_SCRIPT = ('printf %%s "$%s"; "$0" "$@"; status=$?; printf %%s "$%s"; exit $status'
                % (WHOLE_START, WHOLE_END))


class LostOutput(LifeboatError):
    """The engine lost part of a command's output (its markers missing or damaged)."""


class ExecResult(object):
    def __init__(self, exec_id, exit_code, stderr, stdout=None, size=0, cut=False):
        self.exec_id = exec_id
        self.cut = cut  # it stopped reading its input and the engine dropped the rest of its output
        self.exit_code = exit_code
        self.stderr = stderr
        self.stdout = stdout  # the output itself, when no callback took it
        self.size = size      # bytes of stdout


class ContainerExec(object):
    """Runs commands in one running container (engine.Container)."""

    def __init__(self, container):
        self.container = container
        self.api = container.api

    def run(self, argv, environment=None, on_stdout=None, user=None, workdir=None, stdin=None, on_stderr=None,
            whole=None):
        """Run argv in the container; return an ExecResult (a failing command is not an error here:
        see `check`). on_stdout(block) receives stdout as it arrives; without it, stdout is
        collected. on_stderr(block) sees stderr as it arrives too (pg_restore --verbose's progress),
        which is kept for the message all the same. `stdin`, an iterable of bytes blocks, is fed to
        the command's standard input.

        `whole` (the default with on_stdout; pass it for a collected output that is data) proves
        the output arrived whole (WholeOutput): on_stdout sees only the command's own bytes, the
        last of them once the end marker is in, and an output the engine cut raises LostOutput
        when the command succeeded (a failure is the caller's to report, its output unused)."""
        program = argv[0]
        if whole is None:
            whole = on_stdout is not None
        collected = []
        sink = on_stdout or collected.append
        proof = None
        if whole:
            proof = WholeOutput(sink, program, self.container.name)
            environment = dict(environment or {}, **proof.environment())
            argv = [WHOLE_SHELL, '-c', WHOLE_SCRIPT] + list(argv)
            sink = proof.feed
        exec_id = self._create(argv, environment, user, workdir, stdin is not None, program)
        errors = bytearray()
        size = 0
        state = dict(cut=False)
        frames = self._attached(exec_id, stdin, state)
        try:
            while True:
                # Only the engine's side is translated here: what the sink raises (a full disk) is
                # the caller's to report.
                try:
                    kind, block = next(frames)
                except StopIteration:
                    break
                except _InputFailed as failed:
                    raise failed.error
                except (docker.errors.DockerException, IOError, OSError) as exc:
                    raise LifeboatError('%s in container %r: the engine broke off its output (%s); the result is '
                                        'not trusted' % (program, self.container.name, api_error_text(exc)))
                if kind == STREAM_STDOUT:
                    size += len(block)
                    sink(block)
                else:
                    if on_stderr is not None:
                        on_stderr(block)
                    if len(errors) < STDERR_LIMIT:
                        errors.extend(block[:STDERR_LIMIT - len(errors)])
        finally:
            frames.close()
        exit_code = self._exit_code(exec_id, program)
        stderr = errors.decode('utf-8', 'replace')
        if state['cut'] and exit_code == 0:
            raise LifeboatError('%s in container %r ended before reading all its input, and the engine dropped the end '
                                'of its output with it; the result is not trusted' % (program, self.container.name))
        if proof is not None:
            # The runtime's words, not the shell's (`sh: 1: pg_dump: not found`, after its start marker).
            if not proof.started and exit_code in (126, 127) and _missing(stderr, RUNTIME_MISSING):
                raise LifeboatError('container %r has no %s, which lifeboat runs %s under to prove its output '
                                    'arrived whole; use an image with a POSIX shell (every official PostgreSQL '
                                    'image has one)' % (self.container.name, WHOLE_SHELL, program))
            if not proof.close() and exit_code == 0:
                raise proof.lost()
            size = proof.size
        return ExecResult(exec_id, exit_code, stderr, stdout=None if on_stdout else b''.join(collected), size=size,
                          cut=state['cut'])

    def ask(self, argv, what):
        """check() of a small read-only command whose output is data (`id -u`), proven whole and
        asked once more if the engine lost it: running it again changes nothing."""
        try:
            return self.check(argv, what, whole=True)
        except LostOutput:
            return self.check(argv, what, whole=True)

    def check(self, argv, what, **kwargs):
        """run(), then one line for a failure: a missing program, or the command's own error line."""
        result = self.run(argv, **kwargs)
        if result.exit_code != 0:
            raise LifeboatError(self.failure(argv[0], what, result))
        return result

    def failure(self, program, what, result):
        """The one-line message for a failed ExecResult."""
        if result.exit_code in (126, 127) and _missing(result.stderr):
            return ('container %r has no %s (not found in its PATH); run it against the container of the '
                    'PostgreSQL server itself, whose image holds the client tools' % (self.container.name, program))
        detail = last_error_line(result.stderr, 'no error message')
        if result.cut:
            detail += ' (it stopped reading its input; the rest of its messages were lost)'
        return '%s failed in container %r (exit code %d): %s' % (what, self.container.name, result.exit_code, detail)

    def _create(self, argv, environment, user, workdir, with_stdin, program):
        try:
            created = self.api.exec_create(self.container.id, list(argv), stdout=True, stderr=True, stdin=with_stdin,
                                           environment=dict(environment or {}), user=user or '', workdir=workdir)
        except docker.errors.NotFound:
            raise LifeboatError('container %r is gone (removed while lifeboat was using it)' % self.container.name)
        except docker.errors.APIError as exc:
            text = api_error_text(exc)
            if 'not running' in text or 'state improper' in text or exc.status_code == 409:
                raise LifeboatError('container %r is not running, so %s cannot run in it; start it (docker start '
                                    '%s) and run again' % (self.container.name, program, self.container.name))
            raise LifeboatError('the engine refused to run %s in container %r: %s'
                                % (program, self.container.name, text))
        return created['Id']

    def _attached(self, exec_id, blocks, state):
        """Start the exec attached to its raw socket and yield (stream, block) as the output comes,
        split from the engine's frames (8-byte header: stream, 3 zero bytes, length). Closing the
        socket is what stops a command lifeboat no longer reads (a full disk here): the engine then
        closes its output, so it cannot linger in the container holding a snapshot.

        With `blocks`, a thread sends them to stdin (then closes it) while the output is read, so a
        command that writes as it reads never blocks on a full pipe. If producing a block fails,
        the command sees its input end there, and that error is raised once the output ended. So
        feed only input that is whole already: a script to apply in one transaction is better
        copied in (archive.copy_in) and run with psql -f. A command that ends before reading all its
        input may lose the end of its output (state['cut']): one that reads only the start of its
        input must drain the rest (see tools.read_toc)."""
        attached = self.api.exec_start(exec_id, socket=True)
        raw = getattr(attached, '_sock', attached)
        failed = []

        def send():
            source = iter(blocks)
            while True:
                try:
                    block = next(source)
                except StopIteration:
                    break
                except BaseException as exc:  # noqa: B902 - raised in the caller's thread below
                    failed.append(exc)
                    _shutdown(raw, socket.SHUT_RDWR)
                    return
                try:
                    raw.sendall(block)
                except (IOError, OSError):
                    break  # it stopped reading (psql's ON_ERROR_STOP): its stderr says why
            _shutdown(raw, socket.SHUT_WR)

        sender = None
        if blocks is not None:
            sender = threading.Thread(target=send, name='exec-stdin')
            sender.daemon = True
            sender.start()
        def receive():
            try:
                return raw.recv(CHUNK)
            except (IOError, OSError) as exc:
                # A command that ended before reading all its input (psql stopped by an error): the
                # engine drops the connection with our unread input in it, and what it had not yet
                # sent of the output is lost. Its exit code still tells; run() decides.
                if blocks is not None and getattr(exc, 'errno', None) == errno.ECONNRESET:
                    state['cut'] = True
                    return b''
                raise

        try:
            frames = FrameReader()
            for block in iter(receive, b''):
                for frame in frames.feed(block):
                    yield frame
            if sender is not None:
                sender.join()
            if failed:
                raise _InputFailed(failed[0])
            frames.close()
        finally:
            # Early (the caller stopped reading): the command's output is closed, and the sender
            # unblocked.
            _shutdown(raw, socket.SHUT_RDWR)
            if sender is not None:
                sender.join(5)
            raw.close()
            close = getattr(attached, 'close', None)
            if close is not None and attached is not raw:
                close()

    def _exit_code(self, exec_id, program):
        deadline = time.monotonic() + EXIT_CODE_WAIT
        delay = 0.01
        while True:
            try:
                facts = self.api.exec_inspect(exec_id)
            except docker.errors.APIError as exc:
                raise LifeboatError('%s in container %r ended, but the engine lost its exit code (%s); the result '
                                    'is not trusted' % (program, self.container.name, api_error_text(exc)))
            if not facts.get('Running') and facts.get('ExitCode') is not None:
                return facts['ExitCode']
            if time.monotonic() > deadline:
                raise LifeboatError('%s in container %r closed its output but did not end within %ds; the result '
                                    'is not trusted' % (program, self.container.name, EXIT_CODE_WAIT))
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class WholeOutput(object):
    """The stdout of a command run between WHOLE_SCRIPT's markers, checked as it arrives: the start
    marker must be its first bytes (else it raises at once - what follows is not the command's
    whole output - and the command is stopped), the end marker its last. `sink` gets the bytes in
    between and never the last len(end) of them until the end is seen, so what reaches it (the
    repository's file, its hash) is only ever the command's own output."""

    def __init__(self, sink, program, container_name):
        self.sink = sink
        self.program = program
        self.container_name = container_name
        nonce = binascii.hexlify(os.urandom(16)).decode('ascii')
        self.start = ('lifeboat-start-%s\n' % nonce).encode('ascii')
        self.end = ('lifeboat-end-%s\n' % nonce).encode('ascii')
        self.held = bytearray()
        self.started = False
        self.size = 0  # bytes passed to the sink

    def environment(self):
        return {WHOLE_START: self.start.decode('ascii'), WHOLE_END: self.end.decode('ascii')}

    def lost(self):
        return LostOutput('the engine lost part of %s\'s output in container %r; nothing of it is used, run again'
                          % (self.program, self.container_name))

    def feed(self, block):
        self.held += block
        if not self.started:
            if not (self.start.startswith(bytes(self.held[:len(self.start)]))):
                raise self.lost()
            if len(self.held) < len(self.start):
                return
            del self.held[:len(self.start)]
            self.started = True
        if len(self.held) > len(self.end):
            passed = bytes(self.held[:-len(self.end)])
            del self.held[:-len(self.end)]
            self.size += len(passed)
            self.sink(passed)

    def close(self):
        """True when the output ended with the end marker; the held bytes are never passed on."""
        return self.started and bytes(self.held) == self.end


class LineTail(object):
    """Splits stderr blocks (cut anywhere by the engine) into lines for `on_line` - a --verbose
    tool's progress - and keeps the last TAIL_LINES of them for the failure message."""

    def __init__(self, on_line):
        self.on_line = on_line
        self.pending = b''
        self.lines = []

    def feed(self, block):
        self.pending += block
        complete = self.pending.split(b'\n')
        self.pending = complete.pop()
        for raw in complete:
            self._line(raw)

    def close(self):
        if self.pending:
            self._line(self.pending)
            self.pending = b''

    def _line(self, raw):
        line = raw.decode('utf-8', 'replace').rstrip()
        self.lines = (self.lines + [line])[-TAIL_LINES:]
        if self.on_line is not None:
            self.on_line(line)


class _InputFailed(Exception):
    """What producing stdin raised, carried past run()'s translation of the engine's errors."""

    def __init__(self, error):
        super(_InputFailed, self).__init__(str(error))
        self.error = error


def _missing(stderr, words=MISSING_PROGRAM):
    """The runtime's or the shell's words for a program that is not there."""
    return any(said in stderr.lower() for said in words)


def _shutdown(sock, how):
    try:
        sock.shutdown(how)
    except (IOError, OSError):
        pass  # already closed by the other side


class FrameReader(object):
    """Splits the Docker API's multiplexed stream (stdout/stderr frames) as blocks arrive."""

    HEADER = struct.Struct('>BxxxL')

    def __init__(self):
        self.pending = b''

    def feed(self, block):
        self.pending += block
        frames = []
        start = 0
        while len(self.pending) - start >= self.HEADER.size:
            kind, length = self.HEADER.unpack_from(self.pending, start)
            if kind not in (0, STREAM_STDOUT, STREAM_STDERR):
                raise LifeboatError('the container engine sent output that is not a Docker stream (frame type %d)'
                                    % kind)
            end = start + self.HEADER.size + length
            if len(self.pending) < end:
                break
            frames.append((STREAM_STDOUT if kind in (0, STREAM_STDOUT) else STREAM_STDERR,
                           self.pending[start + self.HEADER.size:end]))
            start = end
        self.pending = self.pending[start:]
        return frames

    def close(self):
        if self.pending:
            raise LifeboatError('the container engine cut the command\'s output short (%d bytes of a frame)'
                                % len(self.pending))
