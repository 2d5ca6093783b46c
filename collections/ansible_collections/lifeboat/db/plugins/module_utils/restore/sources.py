# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a restore's `backup` names, and where that backup is.

- `latest` (of `kind`, or the newest whole-database backup) or a backup id, looked up in the
  repository (local, or S3 when the repository is an s3:// URL);
- `s3://bucket/prefix/<database>/<backup_id>` (or `.../<database>/latest`): one set in S3, whatever
  the repository is; it is downloaded into the private cache, every file checked as it arrives;
- an absolute path on the target: a lifeboat set folder (it has a manifest.json), or an archive
  lifeboat did not write - a `pg_dump -Fc` file, a `-Fd` folder, a plain `.sql` or `.sql.gz` -
  such as the runbooks' hand-made dumps. Such an archive has no manifest: there are no checksums
  to check and no row counts to compare, which the restore reports; its table of contents must
  still read back, and its pg_dump version comes from its own header.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import gzip
import os
import re

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import MANIFEST_NAME
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import (
    VERIFICATION_NAME, Backup, Repository, read_record, read_set_manifest)
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import S3Location, S3Settings, is_s3_url
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3_store import S3Store
from ansible_collections.lifeboat.db.plugins.module_utils.storage.cache import DEFAULT_CACHE_DIR, private_dir
from ansible_collections.lifeboat.db.plugins.module_utils.pg.toc import dumped_by, dumped_database, read_toc
from ansible_collections.lifeboat.db.plugins.module_utils.restore.container import in_container, read_external_toc

CUSTOM_MAGIC = b'PGDMP'
PLAIN_VERSION = re.compile(r'^-- Dumped by pg_dump version (\d+(?:\.\d+)?)', re.M)
EXTERNAL_KIND = 'external'


def resolve_source(ctx, reference, backup_db, kind=None):
    """(store, backup): the S3Store the backup must be downloaded from (None when it is local),
    and the backup set (an S3Backup, not downloaded yet, when store is set)."""
    if is_s3_url(reference):
        return _s3_set(ctx, reference)
    if reference.startswith('/'):
        return None, local_path(ctx, reference)
    if os.sep in reference:
        raise LifeboatError('backup %r is neither latest, a backup id, an absolute path nor an s3:// URL; '
                            'write a path as /full/path/to/backup' % reference)
    if ctx.store is not None:
        return ctx.store, ctx.store.resolve(backup_db, reference, kind)
    return None, ctx.repository.resolve(backup_db, reference, kind)


def download_cache(ctx):
    """The local repository downloads go into: the cache of an s3:// repository, or cache_dir."""
    if ctx.store is not None:
        return ctx.repository
    return Repository(private_dir(ctx.params.get('cache_dir') or DEFAULT_CACHE_DIR, ctx.check_mode))


def _s3_set(ctx, url):
    location = S3Location(url)
    parts = location.prefix.split('/') if location.prefix else []
    if len(parts) < 2:
        raise LifeboatError('%s does not name a backup set; write it as s3://bucket/prefix/<database>/<backup_id> '
                            '(or .../<database>/latest), as backup_info lists it' % url)
    store = S3Store('s3://%s%s' % (location.bucket, ''.join('/' + p for p in parts[:-2])), S3Settings(ctx.params))
    return store, store.resolve(parts[-2], parts[-1])


def local_path(ctx, path):
    """A backup set folder, or an archive lifeboat did not write, at an absolute path."""
    path = path.rstrip('/') or '/'
    if not os.path.exists(path):
        raise LifeboatError('backup %s does not exist on the target host; give the path of a backup set folder or '
                            'of a pg_dump archive there' % path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, MANIFEST_NAME)):
        # A set given by path: its folder must still carry its id (its database folder may not).
        folder, backup_id = os.path.split(path)
        return Backup(path, read_set_manifest(path, backup_id, None, folder or '/'),
                      read_record(path, VERIFICATION_NAME))
    return external_archive(ctx, path)


def external_archive(ctx, path):
    """A Backup standing for a pg_dump archive made without lifeboat (no manifest)."""
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, 'toc.dat')):
            raise LifeboatError('%s is neither a lifeboat backup set (no manifest.json) nor a pg_dump directory '
                                'archive (no toc.dat)' % path)
        fmt, folder, archive, method = 'directory', path, '', 'none'
    else:
        folder, archive = os.path.dirname(path), os.path.basename(path)
        fmt, method = _file_format(path)
    manifest = dict(backup_id=os.path.basename(path), kind=EXTERNAL_KIND, external=True, format=fmt, archive=archive,
                    compression=dict(method=method), files=[], row_counts=None, database=None,
                    finished_at=iso(datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)))
    if fmt == 'plain':
        manifest['pg_dump_version'] = _plain_version(path, method)
    else:
        toc = _read_toc_any(ctx, path)
        manifest['pg_dump_version'] = dumped_by(toc)
        if not manifest['pg_dump_version']:
            raise LifeboatError('cannot tell which pg_dump wrote %s (no "Dumped by pg_dump version" in its table of '
                                'contents)' % path)
        manifest['database'] = dumped_database(toc)
    return Backup(folder, manifest)


def _file_format(path):
    try:
        with open(path, 'rb') as handle:
            head = handle.read(5)
    except (IOError, OSError) as exc:
        raise LifeboatError('cannot read %s: %s' % (path, exc.strerror or exc))
    if head == CUSTOM_MAGIC:
        return 'custom', 'none'
    if head[:2] == b'\x1f\x8b' and path.endswith('.sql.gz'):
        return 'plain', 'gzip'
    if path.endswith('.sql'):
        return 'plain', 'none'
    raise LifeboatError('%s is not a pg_dump archive lifeboat can restore: expected a custom-format file (pg_dump '
                        '-Fc), a directory archive, or a plain .sql or .sql.gz file' % path)


def _plain_version(path, method):
    opener = gzip.open if method == 'gzip' else open
    try:
        with opener(path, 'rb') as handle:
            head = handle.read(64 * 1024).decode('utf-8', 'replace')
    except (IOError, OSError) as exc:
        raise LifeboatError('cannot read %s: %s' % (path, exc.strerror or exc))
    match = PLAIN_VERSION.search(head)
    if not match:
        raise LifeboatError('%s does not start like pg_dump output (no "-- Dumped by pg_dump version" line); '
                            'lifeboat restores only what pg_dump wrote' % path)
    return match.group(1)


def _read_toc_any(ctx, path):
    """The table of contents, read with the newest pg_restore installed (it reads every older
    archive version, and the header then says which pg_dump wrote it)."""
    if in_container(ctx):
        return read_external_toc(ctx, path)
    tools = ctx.finder.candidates('pg_restore')
    if not tools:
        ctx.finder.find('pg_restore', 0, 'reading %s' % path)
    newest = max(tools, key=lambda tool: tool.major)
    return read_toc(ctx, newest.path, path, 'reading the table of contents of %s' % path)
