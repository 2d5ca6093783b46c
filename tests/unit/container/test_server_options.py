# -*- coding: utf-8 -*-
"""With container, the task's server is the container's, looked up only when something connects: a task that
never does (lifeboat.db.files, on an application container without PostgreSQL or any address) must not fail on
it, and login_host or login_unix_socket, when given, win without a look-up."""
import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import ContainerServerOptions


class Container(object):
    def __init__(self, address=None):
        self.name = 'app'
        self.looked_up = 0
        self._address = address

    def address(self):
        self.looked_up += 1
        if self._address is None:
            raise LifeboatError("container 'app' publishes no port for 5432/tcp and has no network address")
        return self._address


def params(**given):
    return dict(dict(login_host=None, login_unix_socket=None, port=5432, login_user='u', login_password='pw'), **given)


def test_the_address_is_looked_up_once_and_only_when_read():
    container = Container(('127.0.0.1', 40123))
    options = ContainerServerOptions(params(), container)
    assert container.looked_up == 0 and options.user == 'u'
    assert (options.host, options.port) == ('127.0.0.1', 40123)
    assert 'database \'db\' on 127.0.0.1:40123' in options.describe('db')
    assert container.looked_up == 1


def test_a_container_without_an_address_fails_only_a_task_that_connects():
    container = Container()
    options = ContainerServerOptions(params(), container)
    assert container.looked_up == 0
    with pytest.raises(LifeboatError, match='publishes no port'):
        options.connect('db')


@pytest.mark.parametrize('given, where', [
    (dict(login_host='10.0.0.5', port=6000), ('10.0.0.5', 6000)),
    (dict(login_unix_socket='/run/postgresql'), ('/run/postgresql', 5432)),
])
def test_login_host_or_socket_win_without_a_look_up(given, where):
    container = Container()
    options = ContainerServerOptions(params(**given), container)
    assert (options.host, options.port) == where and container.looked_up == 0
    options.host, options.port = 'elsewhere', 1  # what is set is kept, never looked up over
    assert (options.host, options.port) == ('elsewhere', 1)
