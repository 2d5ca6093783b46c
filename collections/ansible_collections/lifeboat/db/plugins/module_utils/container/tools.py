# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client tools of a containerized server, as the modules use the host's (pg/tools, pg/stream).

What a module needs to run pg_dump in the container instead of on the host: the options
(`container_argument_spec`, documented by the lifeboat.db.container doc fragment), the container
(`open_container`), its tools with their versions (`ContainerToolFinder`, ToolFinder's counterpart),
their environment (`container_tool_environment`), pg_dump's output written into the repository
and hashed as it arrives (`stream_to_file`, pg/stream.stream_to_file's counterpart), and an
archive here read back by the container's pg_restore (`read_toc` for a custom archive, `read_toc_dir`
for a directory-format one; pg/toc.read_toc's counterparts).
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import queue
import stat
import threading

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container import archive as container_archive
from ansible_collections.lifeboat.db.plugins.module_utils.container.engine import Container, connect
from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import ContainerExec, LostOutput
from ansible_collections.lifeboat.db.plugins.module_utils.container.feed import DRAINED, file_blocks
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import VERSION_RE, Tool


def container_argument_spec():
    """Options documented by the lifeboat.db.container doc fragment."""
    return dict(container=dict(type='str'), docker_host=dict(type='str'))


def open_container(params):
    """(Container, ContainerExec) for params['container'] on params['docker_host'], or (None, None)."""
    if not params.get('container'):
        return None, None
    api = connect(params.get('docker_host'))
    container = Container.find(api, params['container'], params.get('docker_host'))
    return container, ContainerExec(container)


class ContainerToolFinder(object):
    """Finds a client tool on the container's PATH: the server's own tools, so normally the
    server's version. Returns pg/tools.Tool, whose path is the name the container runs."""

    def __init__(self, execer):
        self.execer = execer
        self._probed = {}

    def find(self, name, min_major, why):
        if name not in self._probed:
            try:
                # Proven whole and asked again once, as exec.ContainerExec.ask does (its exit code is
                # judged here): a version lost on the way would otherwise read as "not PostgreSQL's".
                result = self.execer.run([name, '--version'], whole=True)
            except LostOutput:
                result = self.execer.run([name, '--version'], whole=True)
            if result.exit_code != 0:
                raise LifeboatError(self.execer.failure(name, '%s --version' % name, result))
            match = VERSION_RE.search((result.stdout or b'').decode('utf-8', 'replace'))
            if not match:
                raise LifeboatError('%s in container %r did not tell its PostgreSQL version (it answered %r); it is '
                                    'not PostgreSQL\'s %s' % (name, self.execer.container.name,
                                                               (result.stdout or b'')[:80], name))
            self._probed[name] = Tool(name, name, match.group(0).split()[-1], int(match.group(1)))
        tool = self._probed[name]
        if tool.major < min_major:
            raise LifeboatError('%s in container %r is version %s, but %d or newer is needed (%s); run it against the '
                                'container of the server itself, whose image has the matching tools'
                                % (name, self.execer.container.name, tool.version, min_major, why))
        return tool


def container_tool_environment(options, dbname):
    """PG* variables for a tool in the container. It reaches the server in the same container over
    the local socket (the tools and the server of one image agree on where it is), as the task's
    login_user; the password, if any, travels in PGPASSWORD of the exec's environment - never in
    its arguments, and there is no file to leave behind in the container."""
    return dict(PGDATABASE=dbname, PGAPPNAME='lifeboat', PGUSER=options.user or 'postgres',
                PGPASSWORD=options.password or '')


def stream_to_file(execer, argv, env, path, what, progress=None):
    """Run argv in the container and write its stdout to `path` on this host (created 0600, must not
    exist), hashed as it arrives; returns the sha256. A failure raises with the tool's error line
    after the partial file was written: the caller's staging folder is removed with it, so a partial
    backup never counts. So does an output the engine cut (its start or end lost, exec.WholeOutput):
    the file and its hash only ever hold the tool's own bytes, and only a whole output returns."""
    digest = hashlib.sha256()
    written = [0]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except (IOError, OSError) as exc:
        raise LifeboatError('%s could not be written to %s: %s' % (what, path, exc.strerror or exc))
    with os.fdopen(fd, 'wb') as out:
        def write(block):
            out.write(block)
            digest.update(block)
            written[0] += len(block)
            if progress:
                progress(written[0])
        try:
            result = execer.run(argv, environment=env, on_stdout=write, whole=True)
            out.flush()
            os.fsync(out.fileno())
        except (IOError, OSError) as exc:
            raise LifeboatError('%s could not be written to %s: %s' % (what, path, exc.strerror or exc))
    if result.exit_code != 0:
        raise LifeboatError(execer.failure(argv[0], what, result))
    return digest.hexdigest()


def read_toc(execer, pg_restore, archive, what):
    """The text `pg_restore --list` prints for the custom-format archive file `archive` on this host,
    run in the container with the file on its standard input: the archive is proven to read back
    with the server's own pg_restore, without a copy of it in the container. pg_restore reads the
    header and the table of contents only; the container's sh then drains the rest, for an exec
    that stops reading its input loses the end of its output (exec.ContainerExec._attached)."""
    result = execer.run(DRAINED + [pg_restore, '--list'], stdin=file_blocks(archive, what), whole=True)
    if result.exit_code != 0:
        raise LifeboatError(execer.failure(pg_restore, what, result))
    return result.stdout.decode('utf-8', 'replace')


def read_toc_dir(execer, pg_restore, folder, what, warnings=None):
    """The text `pg_restore --list` prints for the directory-format archive `folder` on this host, run
    in the container. --list reads nothing of the archive but its toc.dat, so only that file is
    copied into a private folder there (the data files are proven by their checksums); the folder is
    removed afterwards whatever happened - a removal that fails is added to `warnings`, or without
    them fails the read (in one line, after a success only: a failure's own message comes first)."""
    toc = os.path.join(folder, 'toc.dat')
    try:
        facts = os.lstat(toc)
    except (IOError, OSError):
        raise LifeboatError('%s: %s has no toc.dat, so it is not a directory-format archive' % (what, folder))
    if not stat.S_ISREG(facts.st_mode):
        # A link would copy whatever it points at into the container (and pg_restore print it back).
        raise LifeboatError('%s: %s is not a regular file (a symbolic link?), so nothing of it is copied into the '
                            'container - put the file itself in its place' % (what, toc))
    scratch = container_archive.scratch_dir(execer, what)
    try:
        uid, gid = container_archive.exec_user(execer)
        container_archive.copy_in(execer, toc, scratch, 'toc.dat', uid=uid, gid=gid, follow=False)
        result = execer.run([pg_restore, '--list', scratch], whole=True)
        if result.exit_code != 0:
            raise LifeboatError(execer.failure(pg_restore, what, result))
    finally:
        problem = container_archive.remove_in(execer, scratch)
        left = problem and '%s; remove it by hand (docker exec %s rm -rf %s)' % (problem, execer.container.name,
                                                                                 scratch)
        if left and warnings is not None:
            warnings.append(left)
    if left and warnings is None:
        raise LifeboatError(left)
    return result.stdout.decode('utf-8', 'replace')


# Blocks of one command's output held on their way into another's input: enough to keep both busy,
# bounded so a fast pg_restore waits for a slow psql instead of filling memory.
PIPE_BLOCKS = 8
_END = object()


class _Stopped(Exception):
    """The consumer of output_blocks went away: the producing command's output is closed."""


def output_blocks(execer, argv, what, environment=None):
    """The stdout of argv run in the container, as blocks as they arrive - to feed another command's
    input, as `pg_restore --file=- | psql` does on a host. Raises after the last block when the
    command failed or the engine lost part of its output (exec.WholeOutput), so a consumer never
    takes a cut output for a whole one (psql then never sees the COMMIT that follows it). Closing
    the generator early closes the command's output."""
    blocks = queue.Queue(maxsize=PIPE_BLOCKS)
    stop = threading.Event()
    outcome = {}

    def put(item):
        while True:
            if stop.is_set():
                raise _Stopped()
            try:
                blocks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def produce():
        try:
            outcome['result'] = execer.run(argv, environment=environment, on_stdout=put, whole=True)
        except BaseException as exc:  # noqa: B902 - handed to the consumer's thread
            outcome['error'] = exc
        try:
            put(_END)
        except _Stopped:
            pass

    producer = threading.Thread(target=produce, name='exec-output')
    producer.daemon = True
    producer.start()
    try:
        while True:
            item = blocks.get()
            if item is _END:
                break
            yield item
    finally:
        stop.set()
        producer.join(30)
    if 'error' in outcome:
        raise outcome['error']
    result = outcome['result']
    if result.exit_code != 0:
        raise LifeboatError(execer.failure(argv[0], what, result))
