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

import binascii
import datetime
import hashlib
import json
import os
import re
import stat

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

MANIFEST_NAME = 'manifest.json'
FORMAT_VERSION = 1
CHUNK = 1024 * 1024
ISO_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'
# Names a set keeps for lifeboat's own records: never a file a manifest may list.
RECORD_NAMES = (MANIFEST_NAME, 'verification.json', 'offsite.json')
# What new_backup_id writes (and a little more): one plain path component, never hidden.
BACKUP_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}$')
# What pg_dump writes inside a directory archive: its table of contents, one data file per
# table and the large objects' table of contents and data, each maybe compressed.
DIRECTORY_MEMBER = re.compile(r'^(toc\.dat|[0-9]+\.dat|blobs(_[0-9]+)?\.toc|blob_[0-9]+\.dat)(\.gz|\.lz4|\.zst)?$')
SHA256 = re.compile(r'^[0-9a-f]{64}$')
VERSION = re.compile(r'^[0-9]+(\.[0-9]+)*')


def sha256_of(path):
    digest = hashlib.sha256()
    # O_NOFOLLOW: a link planted in a set never makes lifeboat read (or vouch for) another file.
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


class HashingWriter(object):
    """A file object that hashes what it writes: the sha256 a manifest lists for a file written as
    a stream (a files archive, a delta's table), with no second read (describe_files' `known`)."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, data):
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()


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
    """Write JSON to `path` as write_text_atomic does."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + '\n', mode)


def write_text_atomic(path, text, mode=0o600):
    """Write text to a temporary name, fsync it, then rename over `path`.

    The temporary name is new (O_EXCL, never an existing file or a planted link) and the rename
    replaces whatever is at `path` - a link there is replaced, never written through."""
    tmp = '%s.tmp-%d-%s' % (path, os.getpid(), binascii.hexlify(os.urandom(4)).decode())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename:
            exc.filename = path  # a failed write or fsync names no file; the operator needs to know which
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
        path = member_path(directory, entry['name'], manifest.get('backup_id'))
        try:
            facts = os.lstat(path)
        except OSError:
            facts = None
        if facts is None or not stat.S_ISREG(facts.st_mode):
            raise LifeboatError('backup %s is incomplete: %s is %s' % (manifest.get('backup_id'), entry['name'],
                                                                      'missing' if facts is None else
                                                                      'not a regular file (a link?)'))
        size = facts.st_size
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


class InvalidSet(LifeboatError):
    """A set whose manifest is not one lifeboat wrote: refused by every reader, never a backup."""

    def __init__(self, backup_id, where, reason):
        self.backup_id, self.where, self.reason = backup_id, where, reason
        super(InvalidSet, self).__init__(
            'backup set %s in %s is refused: %s; lifeboat did not write it like this, so it is not counted as a '
            'backup - move it out of the repository' % (backup_id, where, reason))

    def summary(self, database=None):
        return dict(backup_id=self.backup_id, database=database, where=self.where, reason=self.reason)


def name_problem(name, subfolder=False):
    """Why `name` is not a file name lifeboat's writers produce, or None. A plain name inside
    the set; `subfolder` allows one folder level (a directory archive). Never empty, hidden,
    `..`, absolute, with a NUL, or climbing through backslashes."""
    if not isinstance(name, str) or not name:
        return 'a file name that is not a non-empty string (%r)' % (name,)
    if '\0' in name:
        return 'the file name %r holds a NUL character' % name
    parts = name.split('/')
    if len(parts) > (2 if subfolder else 1):
        return 'the file name %r is not a plain name inside the set' % name
    for part in parts:
        if len(part.encode('utf-8', 'surrogateescape')) > 255:
            return 'the file name %r is too long' % name
        # A backslash is an ordinary character here, but a name that would climb or start at
        # the root where it is a separator is no name lifeboat writes.
        if any(not piece or piece.startswith('.') for piece in part.split('\\')):
            return 'the file name %r is absolute, hidden or climbs out of the set' % name
    if parts[0] in RECORD_NAMES:
        return 'the file name %r is one lifeboat keeps for its own records' % name
    return None


def member_path(directory, name, backup_id):
    """The path of a set's file, after checking the name stays inside the set."""
    problem = name_problem(name, subfolder=True)
    if problem:
        raise LifeboatError('backup %s is refused: %s' % (backup_id, problem))
    return os.path.join(directory, name)


def _problem(manifest, backup_id, database):
    """Why a manifest is not one lifeboat wrote for `backup_id` of `database`, or None."""
    if not isinstance(manifest, dict):
        return 'its manifest is JSON but not an object (%s)' % type(manifest).__name__
    if manifest.get('backup_id') != backup_id:
        return 'its manifest says backup_id %r, but it is stored as %s' % (manifest.get('backup_id'), backup_id)
    if not BACKUP_ID.match(backup_id):
        return 'its id is not a backup id'
    if database is not None and manifest.get('database') != database:
        return 'its manifest is of database %r, but it is stored under %r' % (manifest.get('database'), database)
    expected = dict(kind=str, format=str, database=str, archive=str, globals=str, pg_dump_version=str,
                    finished_at=str, verified_at=str, started_at=str, selection=dict, compression=dict,
                    row_counts=dict, total_rows=int)
    for key, kind in expected.items():
        value = manifest.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return 'its manifest has %s of type %s' % (key, type(value).__name__)
    for key in ('started_at', 'finished_at', 'verified_at'):
        try:
            if manifest.get(key) is not None:
                datetime.datetime.strptime(manifest[key], ISO_FORMAT)
        except ValueError:
            return 'its manifest has %s %r, not a time' % (key, manifest[key])
    if not manifest.get('started_at'):
        return 'its manifest has no started_at'
    if manifest.get('pg_dump_version') is not None and not VERSION.match(manifest['pg_dump_version']):
        return 'its manifest has pg_dump_version %r' % manifest['pg_dump_version']
    counts = manifest.get('row_counts') or {}
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in counts.values()):
        return 'its manifest has row counts that are not counts'
    directory = manifest.get('format') == 'directory'
    for key in ('archive', 'globals'):
        problem = manifest.get(key) is not None and name_problem(manifest[key])
        if problem:
            return problem
    files = manifest.get('files')
    if not isinstance(files, list):
        return 'its manifest has no list of files'
    seen = set()
    for entry in files:
        if not isinstance(entry, dict):
            return 'its manifest lists a file that is not an object'
        name = entry.get('name')
        problem = name_problem(name, subfolder=directory)
        if problem:
            return problem
        if '/' in name:
            folder, member = name.split('/')
            if folder != manifest.get('archive') or not DIRECTORY_MEMBER.match(member):
                return 'the file name %r is not a member of its directory archive' % name
        if name in seen:
            return 'its manifest lists %r twice' % name
        seen.add(name)
        size = entry.get('size')
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return 'its manifest gives %r a size of %r' % (name, size)
        if not isinstance(entry.get('sha256'), str) or not SHA256.match(entry['sha256']):
            return 'its manifest gives %r no sha256' % name
    return _delta_problem(manifest.get('delta'), seen)


# What delta apply reads of each table of a delta set (delta/export.py writes them).
DELTA_TABLE_FIELDS = dict(schema=str, table=str, file=str, rows=int, columns=list, key=list)


def _delta_problem(delta, files):
    """Why a delta set's table list is not one lifeboat wrote, or None: each table is loaded from
    one of the set's own listed (hence name-checked and hashed) files, never from a path of its own."""
    if delta is None:
        return None
    tables = delta.get('tables') if isinstance(delta, dict) else None
    if not isinstance(tables, dict) or not all(isinstance(entry, dict) for entry in tables.values()):
        return 'its manifest has a delta whose tables are not an object of tables'
    for name, entry in sorted(tables.items()):
        for key, kind in DELTA_TABLE_FIELDS.items():
            if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
                return 'its manifest gives delta table %r a %s of %r' % (name, key, entry.get(key))
        if not all(isinstance(column, str) for column in entry['columns'] + entry['key']):
            return 'its manifest gives delta table %r columns that are not names' % name
        if entry['file'] not in files:
            return 'its manifest loads delta table %r from %r, which is not one of its listed files' % (
                name, entry['file'])
    return None


def validate_manifest(manifest, backup_id, database, where):
    """The one check every reader of a set makes before using anything in its manifest: raise
    InvalidSet unless it is a JSON object of the shape lifeboat writes, for `backup_id` (the
    folder or S3 prefix it was found under) and `database` (its database folder; None when the
    set was given by path), naming only files inside the set. Returns the manifest."""
    problem = _problem(manifest, backup_id, database)
    if problem:
        raise InvalidSet(backup_id, where, problem)
    return manifest


def parse_manifest(text, backup_id, database, where):
    """A manifest's text, parsed and validated (InvalidSet when it is not JSON)."""
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise InvalidSet(backup_id, where, 'its manifest is not valid JSON (%s)' % exc)
    return validate_manifest(manifest, backup_id, database, where)
