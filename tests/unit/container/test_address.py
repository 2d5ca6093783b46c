# -*- coding: utf-8 -*-
"""Where the Docker host reaches PostgreSQL in a container, from the container's description as podman 4.3's
Docker API gave it (tests/tools/dockerengine.py), and the engine lifeboat talks to."""
import copy
import json
from pathlib import Path

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.container.engine import docker_host_url, server_address

INSPECT = json.loads((Path(__file__).parent / 'fixtures' / 'inspect_podman_4.3.json').read_text())
LOCAL = 'unix:///var/run/docker.sock'


def described(ports=None, networks=None):
    attrs = copy.deepcopy(INSPECT)
    if ports is not None:
        attrs['NetworkSettings']['Ports'] = ports
    if networks is not None:
        attrs['NetworkSettings']['Networks'] = {name: dict(IPAddress=ip) for name, ip in networks.items()}
    return attrs


def refused(attrs, docker_host=LOCAL, *fragments, **kwargs):
    with pytest.raises(LifeboatError) as caught:
        server_address(attrs, docker_host, **kwargs)
    msg = caught.value.msg
    assert '\n' not in msg and 'k-test1' in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def test_a_published_port_comes_first():
    assert server_address(INSPECT, LOCAL) == ('127.0.0.1', 33843)


@pytest.mark.parametrize('host_ip', ['', '0.0.0.0', '::'])
def test_a_port_published_on_every_address_is_reached_on_the_engines_host(host_ip):
    attrs = described(ports={'5432/tcp': [dict(HostIp=host_ip, HostPort='49153')]})
    assert server_address(attrs, LOCAL) == ('127.0.0.1', 49153)
    assert server_address(attrs, 'tcp://db-host.example:2376') == ('db-host.example', 49153)
    assert server_address(attrs, 'ssh://admin@db-host.example') == ('db-host.example', 49153)
    assert server_address(attrs, 'tcp://[2001:db8::7]:2376') == ('2001:db8::7', 49153)


def test_without_a_published_port_the_address_on_its_network():
    attrs = described(ports={'5432/tcp': None})
    assert server_address(attrs, LOCAL) == ('10.88.0.2', 5432)
    assert server_address(described(ports={}), LOCAL, port=5433) == ('10.88.0.2', 5433)


def test_a_named_network_wins_over_a_published_port():
    attrs = described(networks={'podman': '10.88.0.2', 'legacy': '10.89.0.5'})
    assert server_address(attrs, LOCAL, network='legacy') == ('10.89.0.5', 5432)
    refused(attrs, LOCAL, "no address on network 'modern'", 'legacy, podman', network='modern')


def test_what_cannot_be_reached_is_refused_in_one_line():
    refused(described(ports={}, networks={'a': '10.89.0.5', 'b': '10.89.1.5'}), LOCAL, 'several networks (a, b)',
            'give login_host and port')
    refused(described(ports={}, networks={'none': ''}), LOCAL, 'no network address', '-p 5432')
    # A remote engine's container networks are not routable from here: only a published port is.
    refused(described(ports={}), 'tcp://db-host.example:2376', 'not reachable from here', 'publish the port')


def test_the_engine_is_docker_host_then_DOCKER_HOST_then_the_local_socket():
    assert docker_host_url('tcp://a:2375', {'DOCKER_HOST': 'unix:///b.sock'}) == 'tcp://a:2375'
    assert docker_host_url(None, {'DOCKER_HOST': 'unix:///b.sock'}) == 'unix:///b.sock'
    assert docker_host_url(None, {}) == LOCAL
