# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module's main() shares: the task's context and the single error path."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type


from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import (
    ConnectionOptions, first_line, psycopg, require_psycopg, scrub)
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import check_name
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.access import permission_hint
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import Repository
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import task_timer
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import S3Settings, is_s3_url
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3_store import S3Store
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import ToolFinder
from ansible_collections.lifeboat.db.plugins.module_utils.storage.cache import DEFAULT_CACHE_DIR, private_dir
from ansible_collections.lifeboat.db.plugins.module_utils.container.tools import ContainerToolFinder, open_container


class ContainerServerOptions(ConnectionOptions):
    """Connection options whose server, unless login_host or login_unix_socket is given, is the
    container's - looked up the first time host or port is read, not when the task starts:
    lifeboat.db.files never connects, and the application container holding its uploads runs no
    PostgreSQL and may have no address at all (--network none)."""

    def __init__(self, params, container):
        self._container = container
        self._host = self._port = None
        self._found = False
        ConnectionOptions.__init__(self, params)

    def _find(self):
        if not self._found:
            if not self._host:
                self._host, self._port = self._container.address()
            self._found = True

    @property
    def host(self):
        self._find()
        return self._host

    @host.setter
    def host(self, value):
        self._host = value

    @property
    def port(self):
        self._find()
        return self._port

    @port.setter
    def port(self, value):
        self._port = value


class TaskContext(object):
    """The parts of an AnsibleModule the module_utils need, and nothing else."""

    def __init__(self, module):
        self.params = module.params
        self.options = ConnectionOptions(module.params)
        self.run_command = module.run_command
        self.finder = ToolFinder(module.run_command, module.params.get('pg_bin_dir'))
        self.check_mode = module.check_mode
        self.tmpdir = module.tmpdir
        repository = module.params.get('repository')
        self.store = None
        if is_s3_url(repository):
            # An S3 repository: the local cache (downloads, the lock, progress) stands in for it.
            self.store = S3Store(repository, S3Settings(module.params))
            repository = private_dir(module.params.get('cache_dir') or DEFAULT_CACHE_DIR, module.check_mode)
        self.repository = Repository(repository) if repository else None
        self.container = self.execer = None
        if module.params.get('container'):
            self._use_container(module.params)

    def _use_container(self, params):
        """The client tools run in the container (issue 20): its own, found on its PATH. This host's
        connection goes to login_host/port when given (or login_unix_socket), else to where the
        container's server is reached from here (its published 5432/tcp, else its network address)."""
        if params.get('pg_bin_dir'):
            raise LifeboatError('pg_bin_dir names client tools on this host, but with container the tools of container '
                                '%r run; drop pg_bin_dir (or container)' % params['container'])
        self.container, self.execer = open_container(params)
        self.finder = ContainerToolFinder(self.execer)
        self.options = ContainerServerOptions(params, self.container)

    def container_facts(self):
        """What a manifest or result says of the container the tools ran in, or None."""
        if self.container is None:
            return None
        return dict(name=self.container.name, id=self.container.id, image=self.container.image['name'],
                    image_id=self.container.image['id'], docker_host=self.container.docker_host)

    def offsite_store(self):
        """The S3 store of `offsite_url`, or None."""
        url = self.params.get('offsite_url')
        return S3Store(url, S3Settings(self.params)) if url else None


# Options that name a database: a name over 63 bytes would be cut by the server to another
# database's name (in a connection as in a statement), so it is refused before anything runs.
DATABASE_NAME_OPTIONS = ('db', 'backup_db', 'maintenance_db')


def one_line(msg, password):
    """The failure message as one line: a name holding a line break (a database may be called
    that) is shown escaped, never splitting the message."""
    return scrub(msg, password).replace('\r', '\\r').replace('\n', '\\n')


def os_error_line(exc):
    what = exc.strerror or str(exc)
    where = ' (%s)' % exc.filename if getattr(exc, 'filename', None) else ''
    # A folder of the wrong owner says whose it is and whose it must be (prepare.yml fixes it).
    hint = permission_hint(exc, exc.filename) if getattr(exc, 'filename', None) else ''
    return ('system error: %s%s; %s' % (what, where, hint or
                                        'check free space, permissions and mounts on the target host, then run again'))


def failure_line(exc):
    """What a failure says: a LifeboatError's message, a database error's first line, or a system
    error with what to check (the error types run_module turns into fail_json)."""
    if isinstance(exc, LifeboatError):
        return exc.msg
    if isinstance(exc, psycopg.Error):
        return 'PostgreSQL error: %s' % first_line(exc)
    return os_error_line(exc)


def run_module(module, work):
    """Run `work(ctx)` and exit; any LifeboatError or database error becomes one fail_json."""
    require_psycopg(module)
    password = module.params.get('login_password')
    timing = task_timer()
    try:
        for option in DATABASE_NAME_OPTIONS:
            check_name(option, module.params.get(option))
        result = work(TaskContext(module))
    except (LifeboatError, psycopg.Error, IOError, OSError) as exc:
        # A full disk, a busy mount point, a folder that vanished too: one line, never a traceback.
        facts = exc.facts if isinstance(exc, LifeboatError) else {}
        module.fail_json(msg=one_line(failure_line(exc), password), timing=timing(), **facts)
    result['timing'] = timing()
    module.exit_json(**result)
