# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container engine and the container a database lives in.

Through the low-level Docker SDK client (docker.APIClient), which speaks the Docker REST API to
Docker itself or to anything that serves it (podman's `system service`). The API version is
negotiated, so an engine older than the SDK's default is still understood.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

try:
    import docker
    import docker.errors
    HAS_DOCKER = True
except ImportError:
    docker = None
    HAS_DOCKER = False

DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'
POSTGRES_PORT = 5432
# Published on all addresses: reach it on the Docker host itself.
ANY_ADDRESS = ('', '0.0.0.0', '::')


def docker_host_url(docker_host=None, environ=None):
    """The engine to talk to: docker_host, else DOCKER_HOST, else the local engine's socket."""
    environ = os.environ if environ is None else environ
    return docker_host or environ.get('DOCKER_HOST') or DEFAULT_DOCKER_HOST


def connect(docker_host=None, timeout=60):
    """A docker.APIClient for the engine, which answered; one-line errors otherwise."""
    url = docker_host_url(docker_host)
    if not HAS_DOCKER:
        raise LifeboatError('the docker Python package (the Docker SDK) is not installed for the Python that runs '
                            'lifeboat on this host; install it (pip install docker) to use container')
    try:
        # version='auto' asks the engine which API version it speaks (podman 4 serves 1.41).
        return docker.APIClient(base_url=url, version='auto', timeout=timeout)
    except docker.errors.DockerException as exc:
        raise LifeboatError('cannot reach the container engine at %s: %s; start Docker (or podman system service) '
                            'there, or point docker_host (or DOCKER_HOST) at its socket'
                            % (url, _reason(exc)))


# What a failed connection to the engine comes down to, as requests and urllib3 word it deep inside.
CONNECTION_REASONS = (('filenotfounderror', 'no such socket'), ('no such file or directory', 'no such socket'),
                      ('connection refused', 'connection refused'), ('permission denied', 'permission denied'),
                      ('timed out', 'no answer (timed out)'), ('name or service not known', 'unknown host name'),
                      ('temporary failure in name resolution', 'unknown host name'))


def _reason(exc):
    """The few words that matter of a connection failure (requests nests them deeply)."""
    text = getattr(exc, 'explanation', None) or str(exc)
    lowered = text.lower()
    for marker, reason in CONNECTION_REASONS:
        if marker in lowered:
            return reason
    return ' '.join(text.split())[:300]


def api_error_text(exc):
    """An engine's refusal in one line."""
    text = getattr(exc, 'explanation', None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    return ' '.join(str(text).split())


class Container(object):
    """A running container, as the engine describes it (`inspect`)."""

    def __init__(self, api, attrs, docker_host=None):
        self.api = api
        self.attrs = attrs
        self.docker_host = docker_host_url(docker_host)
        self.id = attrs['Id']
        self.name = (attrs.get('Name') or self.id[:12]).lstrip('/')

    @classmethod
    def find(cls, api, name, docker_host=None):
        """The container `name` (a name or an id), which must exist and be running."""
        try:
            attrs = api.inspect_container(name)
        except docker.errors.NotFound:
            raise LifeboatError('container %r does not exist on the engine at %s; check its name with `docker ps -a`'
                                % (name, docker_host_url(docker_host)))
        except docker.errors.APIError as exc:
            raise LifeboatError('the container engine at %s could not describe container %r: %s'
                                % (docker_host_url(docker_host), name, api_error_text(exc)))
        except docker.errors.DockerException as exc:
            raise LifeboatError('cannot reach the container engine at %s: %s' % (docker_host_url(docker_host),
                                                                                _reason(exc)))
        container = cls(api, attrs, docker_host)
        container.require_running()
        return container

    @property
    def image(self):
        """The image the container runs, as it was named (e.g. postgres:16), and its id."""
        return dict(name=self.attrs.get('Config', {}).get('Image'), id=self.attrs.get('Image'))

    def require_running(self):
        state = self.attrs.get('State') or {}
        if not state.get('Running') or state.get('Paused'):
            status = state.get('Status') or ('paused' if state.get('Paused') else 'not running')
            raise LifeboatError('container %r is %s, so nothing can run in it; start it (docker start %s) and run '
                                'again' % (self.name, status, self.name))

    def address(self, network=None, port=POSTGRES_PORT):
        """(host, port) where this host reaches PostgreSQL in the container; see server_address."""
        return server_address(self.attrs, self.docker_host, network=network, port=port)


def server_address(attrs, docker_host, network=None, port=POSTGRES_PORT):
    """(host, port) at which the Docker host reaches `port` of a container described by `attrs`.

    A port published on the Docker host comes first: it is reached the same way whether the engine
    is local or remote (tcp://, ssh://), and on engines whose container addresses are not routable
    from the host (Docker Desktop). Without one, the container's address on its network (named by
    `network`, else its only network with an address), which a local engine's host can reach."""
    name = (attrs.get('Name') or attrs.get('Id', '')[:12]).lstrip('/')
    settings = attrs.get('NetworkSettings') or {}
    networks = settings.get('Networks') or {}
    if network is not None:
        found = networks.get(network)
        if not found or not found.get('IPAddress'):
            raise LifeboatError('container %r has no address on network %r (its networks: %s); name one of them, or '
                                'give login_host and port' % (name, network, ', '.join(sorted(networks)) or 'none'))
        return found['IPAddress'], port
    published = (settings.get('Ports') or {}).get('%d/tcp' % port) or []
    for binding in published:
        host_ip, host_port = binding.get('HostIp', ''), binding.get('HostPort')
        if host_port:
            return _published_host(host_ip, docker_host), int(host_port)
    addressed = sorted((net, facts['IPAddress']) for net, facts in networks.items() if facts.get('IPAddress'))
    if not docker_host.startswith('unix://'):
        raise LifeboatError('container %r publishes no port for %d/tcp, and its address on its network is not '
                            'reachable from here through the remote engine %s; publish the port (-p %d) or give '
                            'login_host and port' % (name, port, docker_host, port))
    if len(addressed) == 1:
        return addressed[0][1], port
    if not addressed:
        raise LifeboatError('container %r publishes no port for %d/tcp and has no network address; publish the port '
                            '(-p %d) or give login_host and port' % (name, port, port))
    raise LifeboatError('container %r is on several networks (%s) and publishes no port for %d/tcp; name the network '
                        'to reach it on, or give login_host and port'
                        % (name, ', '.join(net for net, _ in addressed), port))


def _published_host(host_ip, docker_host):
    if host_ip not in ANY_ADDRESS:
        return host_ip
    if docker_host.startswith(('tcp://', 'http://', 'https://', 'ssh://')):
        # The engine's own host: tcp://engine.example:2376 -> engine.example
        rest = docker_host.split('://', 1)[1].split('/', 1)[0]
        rest = rest.rsplit('@', 1)[-1]
        if rest.startswith('['):
            return rest[1:].split(']', 1)[0]
        return rest.rsplit(':', 1)[0] if rest.count(':') == 1 else rest
    return '127.0.0.1'
