# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest of a backup set: what it holds and how to prove the files are intact.

A backup set is a folder whose manifest.json is written last; a folder without one is not a
backup. The manifest records every file's size and sha256, the versions of server and tool, and
the exact row count of every table in the snapshot the dump was taken from.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os

from ansible_collections.lifeboat.db.plugins.module_utils.errors import LifeboatError

MANIFEST_NAME = 'manifest.json'
FORMAT_VERSION = 1
CHUNK = 1024 * 1024


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def walk_files(directory):
    """Relative paths of every file below directory, sorted (a directory-format dump is a tree)."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            found.append(os.path.relpath(os.path.join(root, name), directory))
    return sorted(found)


def describe_files(directory, names, known=None):
    """[{name, size, sha256}]; `known` maps names to sha256 already computed while writing."""
    known = known or {}
    return [dict(name=name, size=os.path.getsize(os.path.join(directory, name)),
                 sha256=known.get(name) or sha256_of(os.path.join(directory, name))) for name in names]


def write_json_atomic(path, data, mode=0o600):
    """Write JSON to a temporary name, fsync it, then rename over `path`."""
    tmp = '%s.tmp-%d' % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, 'w') as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write('\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(path) or '.')


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(path):
    """Read a manifest.json (or a baseline file) and check it is one of ours."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError) as exc:
        raise LifeboatError('cannot read %s: %s' % (path, exc.strerror or exc))
    except ValueError as exc:
        raise LifeboatError('%s is not valid JSON (%s); it is damaged or not a lifeboat manifest' % (path, exc))
    if not isinstance(data, dict) or 'row_counts' not in data:
        raise LifeboatError('%s is not a lifeboat manifest or baseline (no row_counts)' % path)
    return data


def verify_files(directory, manifest):
    """Check every file listed in the manifest against its size and sha256.

    Returns the list of files checked; raises on the first mismatch so that nothing downstream
    (a restore, a deletion of an older backup) ever trusts a damaged backup.
    """
    checked = []
    for entry in manifest.get('files', []):
        path = os.path.join(directory, entry['name'])
        if not os.path.isfile(path):
            raise LifeboatError('backup %s is incomplete: %s is missing' % (manifest.get('backup_id'), entry['name']))
        size = os.path.getsize(path)
        if size != entry['size']:
            raise LifeboatError('backup %s is damaged: %s is %d bytes, the manifest says %d'
                                % (manifest.get('backup_id'), entry['name'], size, entry['size']))
        actual = sha256_of(path)
        if actual != entry['sha256']:
            raise LifeboatError('backup %s is damaged: sha256 of %s is %s, the manifest says %s; '
                                'use another backup' % (manifest.get('backup_id'), entry['name'], actual, entry['sha256']))
        checked.append(entry['name'])
    if not checked:
        raise LifeboatError('backup %s lists no files in its manifest' % manifest.get('backup_id'))
    return checked
