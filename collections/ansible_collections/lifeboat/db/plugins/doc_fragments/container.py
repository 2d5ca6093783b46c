# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # A database that lives in a container (issue 20): the options every module that runs a PostgreSQL
    # client tool takes, defined once (module_utils/container/tools.container_argument_spec).
    DOCUMENTATION = r'''
options:
  container:
    description:
      - Name or id of the container the PostgreSQL server runs in, on the Docker host this task runs on.
      - The client tools then run inside that container through the Docker API - the server's own tools,
        so their version matches the server's - reaching the server over the container's local socket as
        O(login_user). The repository, manifest, checksums, retention and locks stay on the Docker host.
      - The password travels in the environment of the command run in the container, never in its arguments.
      - This host's own connection (row counts, checks) goes to O(login_host) and O(port) when
        O(login_host) is given, else to the port the container publishes for 5432/tcp, else to the
        container's address on its network.
      - The container must exist and run; one that does not, or has no PostgreSQL client tools, fails the task
        in one line.
    type: str
  docker_host:
    description:
      - The container engine's API, for example C(unix:///var/run/docker.sock) or C(tcp://engine.example:2376).
      - Default is the E(DOCKER_HOST) environment variable, else C(unix:///var/run/docker.sock).
      - Needs the Docker SDK for Python (C(docker)) on this host. Only used with O(container).
    type: str
'''
