# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup sets in S3 (or any S3-compatible store): list, read, download, delete; uploads are
s3_upload's (S3Store inherits them).

A set lives under `<prefix>/<database>/<backup_id>/`, one object per file of the set, and is a
backup only once its `manifest.json` is there: the manifest is uploaded last and deleted first,
as on disk. Manifests (and verification records) always use STANDARD storage so a repository can
be listed and planned even when the data sits in GLACIER.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import hashlib
import json
import os

from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.stream import TocTee
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import (
    MANIFEST_NAME, InvalidSet, member_path, parse_manifest, validate_manifest)
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import (
    MAX_MANIFEST, VERIFICATION_NAME, Backup, latest_restorable, plan_retention, refuse)
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import (
    ARCHIVE_CLASSES, S3Error, S3Location, explain)
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3_upload import S3Uploads

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # S3Settings says boto3 is missing before a store can be made
    pass
try:
    from botocore.exceptions import FlexibleChecksumError
except ImportError:  # a botocore older than S3's checksums (or none): never raised

    class FlexibleChecksumError(Exception):
        pass

READ_CHUNK = 1024 * 1024
# Incomplete sets and uploads younger than this may belong to a run on another host.
LEFTOVER_AGE = datetime.timedelta(hours=24)


class S3Backup(Backup):
    """A complete set in S3. `storage` maps file names to their storage classes."""

    def __init__(self, store, database, manifest, verification, storage):
        self.store = store
        self.database = database
        self.storage = storage
        super(S3Backup, self).__init__(store.set_url(database, manifest['backup_id']), manifest,
                                       verification=verification)
        self.locations = [self.path]

    @property
    def archived(self):
        """Files whose storage class needs a restore from GLACIER before they can be read."""
        return sorted(name for name, cls in self.storage.items() if cls in ARCHIVE_CLASSES
                      and name not in (MANIFEST_NAME, VERIFICATION_NAME))

    def summary(self, now=None):
        result = super(S3Backup, self).summary(now)
        classes = sorted(set(cls for name, cls in self.storage.items() if name not in (MANIFEST_NAME,
                                                                                        VERIFICATION_NAME)))
        result['storage_class'] = ','.join(classes)
        return result


class S3Store(S3Uploads):
    """One `s3://bucket/prefix` repository."""

    def __init__(self, url, settings):
        self.location = S3Location(url)
        self.settings = settings
        self._client = None
        # Sets that failed validation, by database, as the last listing found them (InvalidSet).
        self.refused = {}

    @property
    def url(self):
        return self.location.url

    @property
    def client(self):
        # boto3 clients are thread safe, sessions are not: one client, made once.
        if self._client is None:
            self._client = self.settings.client()
        return self._client

    def call(self, what, method, **kwargs):
        try:
            return getattr(self.client, method)(Bucket=self.location.bucket, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and exc.response.get('Error', {}).get('Code') == 'NoSuchKey':
                # A missing object is something S3 proved, not S3 being unreachable.
                raise LifeboatError(explain(exc, what, self.location, self.settings.endpoint_url))
            raise S3Error(explain(exc, what, self.location, self.settings.endpoint_url))

    def set_key(self, database, backup_id, name=''):
        return self.location.key(database, backup_id, name)

    def set_url(self, database, backup_id):
        return 's3://%s/%s' % (self.location.bucket, self.location.key(database, backup_id))

    def check_bucket(self):
        self.call('checking bucket %s' % self.location.bucket, 'head_bucket')

    # -- listing --------------------------------------------------------------------------------

    def _objects(self, prefix, what):
        token = None
        while True:
            args = dict(Prefix=prefix)
            if token:
                args['ContinuationToken'] = token
            page = self.call(what, 'list_objects_v2', **args)
            for item in page.get('Contents', []):
                yield item
            if not page.get('IsTruncated'):
                return
            token = page.get('NextContinuationToken')

    def databases(self):
        base = self.location.key('')
        names = set()
        for item in self._objects(base, 'listing %s' % self.url):
            rest = item['Key'][len(base):]
            if '/' in rest:
                names.add(rest.split('/', 1)[0])
        return sorted(names)

    def _sets(self, database):
        """{backup_id: {file name: object}} of everything under the database's prefix."""
        base = self.location.key(database, '')
        sets = {}
        for item in self._objects(base, 'listing %s/%s' % (self.url, database)):
            backup_id, _, name = item['Key'][len(base):].partition('/')
            if name:
                sets.setdefault(backup_id, {})[name] = item
        return sets

    def get_json(self, key, what):
        body = self.call(what, 'get_object', Key=key)['Body']
        try:
            text = body.read(MAX_MANIFEST + 1)
        except FlexibleChecksumError:
            # Bytes that do not match the checksum S3 keeps: a damaged object, not S3 unreachable.
            raise LifeboatError('%s in %s does not match the checksum S3 keeps for it; the object is damaged'
                                % (key, self.url))
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(explain(exc, what, self.location, self.settings.endpoint_url))
        finally:
            body.close()
        try:
            return json.loads(text.decode('utf-8'))
        except ValueError:
            raise LifeboatError('%s in %s is not valid JSON; the object is damaged' % (key, self.url))

    def read_manifest(self, database, backup_id, objects):
        """The manifest of a set, validated (manifest.validate_manifest) and its sizes bounded by
        what S3 lists for each object: InvalidSet otherwise."""
        where = '%s/%s' % (self.url, database)
        if objects[MANIFEST_NAME]['Size'] > MAX_MANIFEST:
            raise InvalidSet(backup_id, where, 'its manifest is larger than %d bytes' % MAX_MANIFEST)
        key = self.set_key(database, backup_id, MANIFEST_NAME)
        body = self.call('reading the manifest of %s' % backup_id, 'get_object', Key=key)['Body']
        try:
            text = body.read(MAX_MANIFEST + 1)
        except FlexibleChecksumError:
            raise InvalidSet(backup_id, where, 'its manifest does not match the checksum S3 keeps for it (damaged)')
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(explain(exc, 'reading %s' % key, self.location, self.settings.endpoint_url))
        finally:
            body.close()
        manifest = parse_manifest(text.decode('utf-8', 'replace'), backup_id, database, where)
        for entry in manifest['files']:
            stored = objects.get(entry['name'])
            if stored is None:
                raise InvalidSet(backup_id, where, '%s is not in S3' % entry['name'])
            if stored['Size'] != entry['size']:
                raise InvalidSet(backup_id, where, 'S3 holds %d bytes for %s, its manifest says %d'
                                 % (stored['Size'], entry['name'], entry['size']))
        return manifest

    def backups(self, database, kind=None):
        found = []
        self.refused[database] = []
        for backup_id, objects in self._sets(database).items():
            if MANIFEST_NAME not in objects:
                continue
            try:
                manifest = self.read_manifest(database, backup_id, objects)
            except InvalidSet as exc:
                self.refused[database].append(exc)
                continue
            if kind is not None and manifest.get('kind', 'full') != kind:
                continue
            verification = None
            if VERIFICATION_NAME in objects:
                try:
                    verification = self.get_json(self.set_key(database, backup_id, VERIFICATION_NAME),
                                                 'reading the verification of %s' % backup_id)
                except S3Error:
                    raise
                except LifeboatError:
                    verification = None  # not JSON: a record proves nothing, the manifest decides
                if not isinstance(verification, dict) or not isinstance(verification.get('status', ''), str):
                    verification = None
            storage = dict((name, item.get('StorageClass', 'STANDARD')) for name, item in objects.items())
            found.append(S3Backup(self, database, manifest, verification, storage))
        found.sort(key=lambda b: (b.manifest.get('started_at', ''), b.backup_id), reverse=True)
        return found

    def resolve(self, database, reference, kind=None):
        if reference == 'latest':
            return latest_restorable(self.backups(database, kind=kind), database, kind, self.url)
        candidates = self.backups(database)
        for backup in candidates:
            if backup.backup_id == reference:
                return backup
        refuse(self.refused.get(database), reference)
        raise LifeboatError('backup %r of database %r not found in %s (newest: %s)'
                            % (reference, database, self.url,
                               ', '.join(b.backup_id for b in candidates[:5]) or 'none'))

    def delete(self, backup):
        """Manifest first (the set stops being a backup at once), then everything else."""
        database = backup.database
        self.call('deleting %s' % backup.path, 'delete_object',
                  Key=self.set_key(database, backup.backup_id, MANIFEST_NAME))
        self.delete_prefix(self.set_key(database, backup.backup_id, ''))

    def delete_prefix(self, prefix):
        keys = [item['Key'] for item in self._objects(prefix, 'listing %s' % prefix)]
        for start in range(0, len(keys), 1000):
            batch = [dict(Key=k) for k in keys[start:start + 1000]]
            answer = self.call('deleting %s' % prefix, 'delete_objects', Delete=dict(Objects=batch, Quiet=True))
            errors = answer.get('Errors') or []
            if errors:
                raise LifeboatError('S3 did not delete %d object(s) under %s, e.g. %s: %s'
                                    % (len(errors), prefix, errors[0].get('Key'), errors[0].get('Message')))

    def remove_leftovers(self, database, now=None):
        """Sets without a manifest and unfinished multipart uploads of this database: what killed
        runs left. Call under the lock. The lock is per host, so only a run that started more than
        a day ago (its backup id is its start time) is swept: a younger one may be another host's
        run in progress."""
        horizon = (now or utc_now()) - LEFTOVER_AGE
        removed = []
        for backup_id, objects in sorted(self._sets(database).items()):
            if MANIFEST_NAME not in objects and _started(backup_id, horizon) < horizon:
                self.delete_prefix(self.set_key(database, backup_id, ''))
                removed.append(backup_id)
        prefix = self.location.key(database, '')
        try:
            pages = self.client.get_paginator('list_multipart_uploads').paginate(Bucket=self.location.bucket,
                                                                                  Prefix=prefix)
            uploads = [u for page in pages for u in page.get('Uploads', [])]
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(explain(exc, 'listing unfinished uploads', self.location, self.settings.endpoint_url))
        for upload in uploads:
            backup_id = upload['Key'][len(prefix):].split('/', 1)[0]
            if min(_started(backup_id, horizon), upload['Initiated']) < horizon:
                self.call('aborting an unfinished upload', 'abort_multipart_upload', Key=upload['Key'],
                          UploadId=upload['UploadId'])
                removed.append('upload of %s' % upload['Key'][len(prefix):])
        return removed

    def retention_plan(self, database, kind, keep_last=None, keep_days=None, incoming=0, now=None, protect=(),
                       incoming_group=''):
        return plan_retention(self.backups(database, kind=kind), keep_last, keep_days, incoming, now, protect,
                              incoming_group)

    def apply_retention(self, database, kind, keep_last=None, keep_days=None, protect=(), errors=None):
        """As Repository.apply_retention: with an `errors` list, a failed deletion is noted there."""
        deleted = []
        for old in self.retention_plan(database, kind, keep_last, keep_days, protect=protect):
            try:
                self.delete(old)
            except LifeboatError as exc:
                if errors is None:
                    raise
                errors.append('cannot delete backup %s from %s: %s' % (old.backup_id, self.url, exc.msg))
                continue
            deleted.append(old.backup_id)
        return deleted

    def record_verification(self, backup, record):
        self.put_json(self.set_key(backup.database, backup.backup_id, VERIFICATION_NAME), record)

    # -- reading --------------------------------------------------------------------------------

    def ensure_readable(self, backup, glacier_restore=False, days=7):
        """Raise unless every data file can be read now; with glacier_restore, start the thaw."""
        waiting, started = [], []
        for name in backup.archived:
            key = self.set_key(backup.database, backup.backup_id, name)
            state = self.call('checking %s' % key, 'head_object', Key=key).get('Restore') or ''
            if 'ongoing-request="false"' in state:
                continue
            if 'ongoing-request="true"' in state:
                waiting.append(name)
            elif glacier_restore:
                self.call('starting the restore of %s from %s' % (key, backup.storage[name]), 'restore_object',
                          Key=key, RestoreRequest=dict(Days=days, GlacierJobParameters=dict(Tier='Standard')))
                started.append(name)
            else:
                raise LifeboatError('backup %s in %s is in storage class %s and must be restored before it can be '
                                    'read; set glacier_restore: true (or run aws s3api restore-object) and run '
                                    'again when the restore has finished'
                                    % (backup.backup_id, self.url, backup.storage[name]))
        if started or waiting:
            raise LifeboatError('backup %s is being restored from %s (started now: %d file(s), already in progress: '
                                '%d); run again when S3 has finished, usually within hours'
                                % (backup.backup_id, ', '.join(sorted(set(backup.storage[n] for n in backup.archived))),
                                   len(started), len(waiting)), glacier_restore_started=started)

    def open(self, backup, name):
        key = self.set_key(backup.database, backup.backup_id, name)
        return self.call('reading %s' % key, 'get_object', Key=key)['Body']

    def _entry(self, backup, name):
        """The manifest's entry for `name` (the manifest was validated when the set was listed)."""
        for entry in backup.manifest['files']:
            if entry['name'] == name:
                return entry
        raise LifeboatError('backup %s lists no file %r' % (backup.backup_id, name))

    def _blocks(self, backup, name, body):
        """The object's bytes, never more than the manifest's size (which S3's listing matched)."""
        limit = self._entry(backup, name)['size']
        seen = 0
        for block in iter(lambda: body.read(min(READ_CHUNK, limit - seen + 1)), b''):
            seen += len(block)
            if seen > limit:
                raise LifeboatError('%s of backup %s in %s is larger than the %d bytes its manifest and S3 listed; '
                                    'it changed while read, use another backup' % (name, backup.backup_id, self.url,
                                                                                 limit))
            yield block

    def download(self, backup, name, target):
        """Stream one file of a set into `target` (0600, must not exist, never through a link);
        returns its sha256."""
        digest = hashlib.sha256()
        body = self.open(backup, name)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            body.close()
            raise LifeboatError('cannot write %s: %s' % (target, exc.strerror or exc))
        try:
            with os.fdopen(fd, 'wb') as out:
                for block in self._blocks(backup, name, body):
                    out.write(block)
                    digest.update(block)
                out.flush()
                os.fsync(out.fileno())
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(explain(exc, 'downloading %s' % name, self.location, self.settings.endpoint_url))
        except (IOError, OSError) as exc:
            raise LifeboatError('cannot write %s: %s' % (target, exc.strerror or exc))
        finally:
            body.close()
        return digest.hexdigest()

    def fetch(self, backup, repository, lock_timeout=60):
        """Download a set into a local repository (the cache), every file checked against the
        manifest as it arrives; returns (the local Backup, whether it was downloaded now)."""
        database = backup.database
        # Checked again here, the one place that writes what a manifest names.
        validate_manifest(backup.manifest, backup.backup_id, database, '%s/%s' % (self.url, database))
        self.ensure_readable(backup)
        with repository.lock(database, lock_timeout, 'a download of %s' % backup.backup_id):
            for cached in repository.backups(database):
                # Only a copy of this very set (same files, same checksums); verified again before use.
                if cached.backup_id == backup.backup_id and cached.manifest.get('files') == backup.manifest['files']:
                    return cached, False
                if cached.backup_id == backup.backup_id:
                    repository.delete(cached)
            repository.remove_leftovers(database)
            staging = repository.begin(database, backup.backup_id)
            try:
                for entry in backup.manifest['files']:
                    target = member_path(staging, entry['name'], backup.backup_id)
                    parent = os.path.dirname(target)
                    if parent != staging and not os.path.lexists(parent):
                        os.mkdir(parent, 0o700)
                    digest = self.download(backup, entry['name'], target)
                    if digest != entry['sha256']:
                        raise LifeboatError('%s of backup %s downloaded from %s has sha256 %s, the manifest says %s; '
                                            'the copy in S3 is damaged, use another backup'
                                            % (entry['name'], backup.backup_id, self.url, digest, entry['sha256']))
                repository.commit(database, staging, backup.manifest)
            except BaseException:
                repository.abort(staging)
                raise
            return repository.resolve(database, backup.backup_id), True

    def hash_object(self, backup, name):
        """sha256 and size of a stored file, read as a stream (nothing written to disk)."""
        digest, size = hashlib.sha256(), 0
        body = self.open(backup, name)
        try:
            for block in self._blocks(backup, name, body):
                digest.update(block)
                size += len(block)
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(explain(exc, 'reading %s' % name, self.location, self.settings.endpoint_url))
        finally:
            body.close()
        return digest.hexdigest(), size

    def list_archive(self, key, pg_restore, what):
        """`pg_restore --list` fed from the stored object: it reads the header and table of
        contents and stops, so only the start of the archive is downloaded."""
        body = self.call('reading %s' % key, 'get_object', Key=key)['Body']
        tee = TocTee(body, pg_restore)
        try:
            while tee.feeding and tee.read(256 * 1024):
                pass
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(explain(exc, 'reading %s' % key, self.location, self.settings.endpoint_url))
        finally:
            body.close()
            error = tee.outcome()
        if error:
            raise LifeboatError('%s failed: %s' % (what, error))


def _started(backup_id, default):
    """The start time a backup id carries (see repository.new_backup_id), or `default`."""
    try:
        return datetime.datetime.strptime(backup_id[:16], '%Y%m%dT%H%M%SZ').replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return default
