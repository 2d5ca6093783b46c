# -*- coding: utf-8 -*-
"""files with container: a folder named as the container sees it is found on the Docker host through
the container's mounts (as the engine describes them), the deepest mount first; anything that is not
on a mount reachable here, or a restore that would swap the mount point itself, is one line."""
import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.files.container import host_path


class FakeContainer(object):
    def __init__(self, mounts, docker_host='unix:///run/podman.sock'):
        self.name = 'app'
        self.docker_host = docker_host
        self.attrs = {'Mounts': mounts}


@pytest.fixture
def container(tmp_path):
    (tmp_path / 'uploads').mkdir()
    (tmp_path / 'volume' / '_data').mkdir(parents=True)
    return FakeContainer([
        {'Type': 'bind', 'Source': str(tmp_path / 'uploads'), 'Destination': '/srv/uploads'},
        {'Type': 'volume', 'Source': str(tmp_path / 'volume' / '_data'), 'Destination': '/srv/uploads/cache/'},
        {'Type': 'tmpfs', 'Source': '', 'Destination': '/run/scratch'},
    ])


def test_paths_are_mapped_through_the_deepest_mount(container, tmp_path):
    assert host_path(container, 'path', '/srv/uploads') == str(tmp_path / 'uploads')
    assert host_path(container, 'path', '/srv/uploads/2026/11/') == str(tmp_path / 'uploads' / '2026' / '11')
    assert host_path(container, 'path', '/srv/uploads/cache/x') == str(tmp_path / 'volume' / '_data' / 'x')
    # A name that only starts like the mount point is not on it; one that climbs out is normalised first.
    with pytest.raises(LifeboatError, match='is not on a volume or bind mount'):
        host_path(container, 'path', '/srv/uploads-old')
    with pytest.raises(LifeboatError, match='is not on a volume or bind mount'):
        host_path(container, 'path', '/srv/uploads/../../etc')


def test_a_restore_into_the_mount_point_itself_is_refused(container, tmp_path):
    with pytest.raises(LifeboatError, match=r'dest /srv/uploads is where .* is mounted in container .app.'):
        host_path(container, 'dest', '/srv/uploads', restore=True)
    assert host_path(container, 'dest', '/srv/uploads/restored', restore=True) == str(tmp_path / 'uploads' / 'restored')


@pytest.mark.parametrize('path, container_args, fragment', [
    ('/etc', {}, 'its mounts: /run/scratch, /srv/uploads, /srv/uploads/cache'),
    ('relative/dir', {}, 'must be an absolute path inside container'),
    ('/run/scratch/x', {}, 'none: a tmpfs'),
    ('/srv/uploads', {'docker_host': 'tcp://engine.example:2376'}, 'run the task on that host'),
])
def test_paths_the_docker_host_cannot_reach_are_one_line(container, path, container_args, fragment):
    if container_args:
        container = FakeContainer(container.attrs['Mounts'], **container_args)
    with pytest.raises(LifeboatError) as raised:
        host_path(container, 'path', path)
    assert fragment in raised.value.msg and '\n' not in raised.value.msg


def test_a_link_the_container_made_is_never_followed(container, tmp_path):
    uploads = tmp_path / 'uploads'
    (uploads / 'escape').symlink_to('/')
    (uploads / 'real' / 'deep').mkdir(parents=True)
    (uploads / 'real' / 'inner').symlink_to(uploads / 'real' / 'deep')  # even a link that stays on the mount
    for option, path, restore, link in (
            ('path', '/srv/uploads/escape/etc', False, '/srv/uploads/escape'),
            ('dest', '/srv/uploads/escape/tmp/x', True, '/srv/uploads/escape'),
            ('path', '/srv/uploads/escape', False, '/srv/uploads/escape'),
            ('dest', '/srv/uploads/real/inner/new', True, '/srv/uploads/real/inner')):
        with pytest.raises(LifeboatError) as raised:
            host_path(container, option, path, restore=restore)
        assert raised.value.msg.startswith(
            "%s %s: %s is a symbolic link inside mount /srv/uploads of container 'app'; lifeboat never follows a "
            "link the container made" % (option, path, link)), raised.value.msg
        assert '\n' not in raised.value.msg
    # Real folders, and a restore's new dest below them (the first missing step ends the walk), pass.
    assert host_path(container, 'path', '/srv/uploads/real/deep') == str(uploads / 'real' / 'deep')
    assert host_path(container, 'dest', '/srv/uploads/real/new/x', restore=True) == str(uploads / 'real' / 'new' / 'x')
