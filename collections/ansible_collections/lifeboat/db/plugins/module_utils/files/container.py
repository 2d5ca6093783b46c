# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lifeboat.db.files with `container` (issue 20): a folder named as the container sees it.

An application's uploads next to a containerized database live on a volume or a bind mount: the
files are on the Docker host already, in the mount's source folder. So lifeboat reads and writes
them there, with the same checks, ownership and atomic swap as any folder on the host - the path
inside the container is only translated, through the container's mounts. A folder in the
container's own writable layer is refused: it is lost with the container anyway, and copying it out
through the engine would bypass what a restore relies on (a rename within one filesystem).
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import posixpath
import stat

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError


def _mount_of(container, path):
    """(mount point in the container, mount) of the mount `path` is on (the deepest), or None."""
    found = None
    for mount in container.attrs.get('Mounts') or []:
        point = posixpath.normpath(mount.get('Destination') or '/')
        if path == point or path.startswith(point.rstrip('/') + '/'):
            if found is None or len(point) > len(found[0]):
                found = (point, mount)
    return found


def host_path(container, option, path, restore=False):
    """Where the folder `path` inside `container` is on this host (the Docker host), through the
    volume or bind mount it is on; one line when it is on none, or cannot be reached from here."""
    name = container.name
    if not path.startswith('/'):
        raise LifeboatError('%s %s must be an absolute path inside container %r' % (option, path, name))
    path = posixpath.normpath(path)
    if not container.docker_host.startswith('unix://'):
        raise LifeboatError('%s %s is in container %r of the remote engine %s, whose volumes are on its own host; run '
                            'the task on that host (the Docker host)' % (option, path, name, container.docker_host))
    found = _mount_of(container, path)
    if found is None:
        mounts = ', '.join(sorted(posixpath.normpath(m.get('Destination') or '/')
                                  for m in container.attrs.get('Mounts') or [])) or 'none'
        raise LifeboatError('%s %s is not on a volume or bind mount of container %r (its mounts: %s), so it lives in '
                            'the container\'s own layer; mount that folder (docker run -v), or name its folder on the '
                            'Docker host and leave container out' % (option, path, name, mounts))
    point, mount = found
    source = mount.get('Source')
    if not source or not os.path.isdir(source):
        raise LifeboatError('%s %s is on mount %s of container %r, whose folder on the Docker host (%s) is not a '
                            'folder here; run the task on the Docker host, or name the host folder and leave '
                            'container out' % (option, path, point, name, source or 'none: a tmpfs'))
    if restore and path == point:
        # The swap renames dest: the container would go on seeing the old folder through its mount.
        raise LifeboatError('%s %s is where %s is mounted in container %r: a restore swaps the folder by renaming it, '
                            'and the container would keep the old one; restore into a folder below it (%s/<name>), '
                            'or into its host folder %s with the container stopped and container left out'
                            % (option, path, source, name, path.rstrip('/'), source))
    parts = [part for part in path[len(point):].split('/') if part]
    _refuse_links(source, parts, option, path, point, name)
    return os.path.join(source, *parts) if parts else source


def _refuse_links(source, parts, option, path, point, name):
    """One line when a step of `parts` below the mount's host folder is a symbolic link.

    The container writes its volume as root: a link it made there (`escape -> /`) would point at this
    host's own files once the path is joined onto the mount's folder, and lifeboat runs as root here -
    a restore could write anywhere, a backup copy /etc/shadow into the repository. So each step is
    looked at itself (lstat), up to the first one that does not exist yet (a restore's new dest)."""
    current = source
    for depth, part in enumerate(parts, 1):
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return
            raise
        if stat.S_ISLNK(mode):
            inside = posixpath.join(point, *parts[:depth])
            raise LifeboatError(
                '%s %s: %s is a symbolic link inside mount %s of container %r; lifeboat never follows a link the '
                'container made - name the folder it points to as the container sees it, or remove the link'
                % (option, path, inside, point, name))

