# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing to S3: uploads checked end to end, JSON records, and whole backup sets.

Every upload is checked end to end: each part carries its SHA-256, which S3 verifies on receipt,
and afterwards the object's checksum as S3 stored it is compared with the one computed from the
bytes read here. Memory stays bounded: at most `concurrency + 1` parts are held at once.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import hashlib
import json
import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import MANIFEST_NAME
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import MB

MAX_PARTS = 10000
MAX_PART = 5 * 1024 * MB


def part_sizes(base, size=None):
    """Part sizes for an upload: fixed when the size is known (grown to fit 10,000 parts); for a
    stream of unknown length, doubled every 1,000 parts, so 16 MiB parts reach 16 TiB in 10,000
    parts while a dump under 16 GiB never holds more than (concurrency + 1) x 16 MiB."""
    if size is not None:
        fixed = max(base, -(-size // MAX_PARTS))
        fixed = -(-fixed // MB) * MB
        while True:
            yield min(fixed, MAX_PART)
    number = 0
    while True:
        yield min(base * 2 ** (number // 1000), MAX_PART)
        number += 1


def b64(digest):
    return base64.b64encode(digest).decode('ascii')


class S3Uploads(object):
    """The writing half of s3_store.S3Store, which provides `call`, `client`, `settings`,
    `location`, `url`, `set_key`, `set_url` and `_objects`."""

    def upload(self, source, key, storage_class=None, progress=None, size=None):
        """Upload a file-like `source` (a file or a pipe) to `key`; return {size, sha256, checksum}.

        The checksum is S3's own SHA-256 (of the object, or of the parts' digests for a multipart
        upload), compared after the upload with what S3 reports it stored.
        """
        what = 'uploading %s' % key
        extra = self.settings.upload_args(storage_class)
        sizes = part_sizes(self.settings.part_size, size)
        part_size = next(sizes)
        whole = hashlib.sha256()
        first = _read_full(source, part_size)
        if len(first) < part_size:
            digest = hashlib.sha256(first).digest()
            whole.update(first)
            self.call(what, 'put_object', Key=key, Body=first, ChecksumAlgorithm='SHA256', ChecksumSHA256=b64(digest),
                      **extra)
            size, expected = len(first), b64(digest)
        else:
            size, expected = self._multipart(source, key, first, whole, extra, progress, sizes)
        head = self.call('checking the upload of %s' % key, 'head_object', Key=key, ChecksumMode='ENABLED')
        if head.get('ContentLength') != size:
            raise LifeboatError('S3 holds %s bytes for %s but %d were sent; the upload is damaged, run again'
                                % (head.get('ContentLength'), key, size))
        stored = head.get('ChecksumSHA256')
        if stored is not None and not same_checksum(stored, expected):
            raise LifeboatError('S3 stored %s with checksum %s but the bytes sent have %s; the upload is damaged, '
                                'run again' % (key, stored, expected))
        return dict(size=size, sha256=whole.hexdigest(), checksum=expected,
                    checked='sha256' if stored is not None else 'size')

    def _multipart(self, source, key, first, whole, extra, progress, sizes):
        what = 'uploading %s' % key
        upload_id = self.call(what, 'create_multipart_upload', Key=key, ChecksumAlgorithm='SHA256',
                              **extra)['UploadId']
        digests, pending, done = [], set(), []
        size = 0
        try:
            with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
                block, number = first, 1
                while block:
                    if number > MAX_PARTS:
                        raise LifeboatError('%s needs more than %d parts, S3\'s limit; raise s3_part_size_mb'
                                            % (key, MAX_PARTS))
                    whole.update(block)
                    digest = hashlib.sha256(block).digest()
                    digests.append(digest)
                    size += len(block)
                    pending.add(pool.submit(self._part, what, key, upload_id, number, block, digest))
                    block = None  # the worker holds the only reference now
                    if len(pending) >= self.settings.concurrency:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        done.extend(f.result() for f in finished)
                    if progress:
                        progress(size)
                    block = _read_full(source, next(sizes))
                    number += 1
                done.extend(f.result() for f in pending)
            done.sort(key=lambda part: part['PartNumber'])
            self.call(what, 'complete_multipart_upload', Key=key, UploadId=upload_id,
                      MultipartUpload=dict(Parts=done))
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.location.bucket, Key=key, UploadId=upload_id)
            except Exception:  # the next run's leftover sweep aborts it
                pass
            raise
        return size, '%s-%d' % (b64(hashlib.sha256(b''.join(digests)).digest()), len(digests))

    def _part(self, what, key, upload_id, number, block, digest):
        answer = self.call(what, 'upload_part', Key=key, UploadId=upload_id, PartNumber=number, Body=block,
                           ChecksumAlgorithm='SHA256', ChecksumSHA256=b64(digest))
        return dict(PartNumber=number, ETag=answer['ETag'], ChecksumSHA256=b64(digest))

    def put_json(self, key, data):
        body = (json.dumps(data, indent=2, sort_keys=True) + '\n').encode('utf-8')
        digest = hashlib.sha256(body).digest()
        # Manifests stay in STANDARD so listing never needs a GLACIER restore.
        self.call('writing %s' % key, 'put_object', Key=key, Body=body, ChecksumAlgorithm='SHA256',
                  ChecksumSHA256=b64(digest),
                  **self.settings.upload_args('STANDARD'))

    def upload_set(self, database, backup_id, directory, manifest, progress=None):
        """Copy a local set to S3 (files first, manifest last); returns the offsite record."""
        objects = []
        for entry in manifest['files']:
            key = self.set_key(database, backup_id, entry['name'])
            with open(os.path.join(directory, entry['name']), 'rb') as source:
                sent = self.upload(source, key, progress=progress, size=entry['size'])
            if sent['sha256'] != entry['sha256']:
                raise LifeboatError('%s changed while it was uploaded (sha256 %s, manifest says %s); the local set '
                                    'is damaged, verify it with lifeboat.db.backup_info'
                                    % (entry['name'], sent['sha256'], entry['sha256']))
            objects.append(dict(name=entry['name'], key=key, size=sent['size'], s3_checksum=sent['checksum'],
                                checked=sent['checked']))
        self.confirm_set(database, backup_id, objects)
        self.put_json(self.set_key(database, backup_id, MANIFEST_NAME), manifest)
        return dict(url=self.set_url(database, backup_id), uploaded_at=iso(utc_now()),
                    storage_class=self.settings.storage_class, sse=self.settings.sse, objects=objects)

    def confirm_set(self, database, backup_id, sent):
        """Before the manifest makes a set a backup: every file sent is there, at its size."""
        prefix = self.set_key(database, backup_id, '')
        stored = dict((item['Key'][len(prefix):], item) for item in self._objects(prefix, 'listing %s' % prefix))
        for entry in sent:
            item = stored.get(entry['name'])
            if item is None or item['Size'] != entry['size']:
                raise LifeboatError('%s of backup %s is %s in %s after its upload; is another host writing the same '
                                    'prefix? The set was not completed'
                                    % (entry['name'], backup_id, 'missing' if item is None else 'the wrong size',
                                       self.url))


def same_checksum(stored, expected):
    """A multipart object's checksum is the SHA-256 of its parts' digests, written `<b64>-<parts>`
    by AWS; some S3-compatible stores leave the part count off."""
    stored_digest, _, stored_parts = stored.partition('-')
    expected_digest, _, expected_parts = expected.partition('-')
    return stored_digest == expected_digest and (not stored_parts or stored_parts == expected_parts)


def _read_full(source, size):
    """Read up to `size` bytes, looping over short reads of a pipe."""
    chunks, missing = [], size
    while missing:
        block = source.read(missing)
        if not block:
            break
        chunks.append(block)
        missing -= len(block)
    return chunks[0] if len(chunks) == 1 else b''.join(chunks)
