# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A files set restored from S3 on any host: the disaster recovery of the uploads directory.

The sets are listed with every manifest validated and its sizes bounded by S3's listing
(storage.s3_store); the chosen manifest's contents are checked before anything is downloaded; the
set is downloaded into the private cache with every file checked against its sha256 as it
arrives (S3Store.fetch), then restored as a local set (archive.restore_set: archive hashed again,
every entry checked, private staging, swap with the previous directory kept). The download is
removed once the restore is done; after a failure it stays for the next run, which checks it again.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError, error_text
from ansible_collections.lifeboat.db.plugins.module_utils.files.archive import listed_contents, resolve_set, restore_set
from ansible_collections.lifeboat.db.plugins.module_utils.restore.preflight import check_space


def restore_from_s3(ctx, name, reference, dest):
    """Download the set from the task's s3:// repository into its cache, then restore it."""
    store, cache = ctx.store, ctx.repository
    remote = resolve_set(store, name, reference)
    count = len(listed_contents(remote))  # the manifest's contents are checked before anything is downloaded
    size = sum(f['size'] for f in remote.manifest['files'])
    if ctx.check_mode:
        if remote.archived:
            raise LifeboatError('files backup %s is in %s; it would have to be restored from there first (check '
                                'mode starts nothing)' % (remote.backup_id, remote.storage[remote.archived[0]]))
        return dict(changed=True, backup_id=remote.backup_id, backup_path=remote.path,
                    actions=['Would download files backup %s (%d bytes) from %s into %s, checking every file'
                             % (remote.backup_id, size, store.url, cache.root),
                             'Would unpack %d files into %s' % (count, dest)])
    store.ensure_readable(remote)
    check_space(cache.root, size, 'downloading files backup %s' % remote.backup_id)
    # A copy already in the cache (an earlier run's that failed later) is used when its manifest is
    # this set's; restore_set checks it again either way.
    local, dummy = store.fetch(remote, cache)
    # Pinned while it is read: another run's clean-up of the cache leaves it alone.
    with cache.pin(local):
        result = restore_set(ctx, local, dest)
    result['backup_path'] = remote.path
    result['actions'].insert(0, 'Downloaded files backup %s from %s, every file checked against its manifest'
                             % (remote.backup_id, store.url))
    _remove_download(cache, name, local, result)
    return result


def _remove_download(cache, name, local, result):
    """The restore is done: a failure to clean up is a warning, never a failure."""
    try:
        with cache.lock(name, 60, 'removing the download of %s' % local.backup_id):
            removed = cache.delete(local)
    except (LifeboatError, IOError, OSError) as exc:
        result['warnings'] = ['the restore is done, but lifeboat could not remove its download %s (%s); delete it '
                              'by hand' % (local.path, error_text(exc))]
        return
    result['actions'].append('Removed the download of files backup %s from the cache' % local.backup_id
                             if removed else 'Kept the download of files backup %s in the cache: another restore '
                             'is reading it' % local.backup_id)
