# -*- coding: utf-8 -*-
"""S3 part sizing, URL parsing and checksum comparison: the pure logic behind the uploads."""
import itertools

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import MB, S3Location
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3_upload import MAX_PARTS, part_sizes, same_checksum

GIB = 1024 * MB


def test_known_size_fits_in_ten_thousand_parts():
    assert next(part_sizes(16 * MB, 10 * GIB)) == 16 * MB
    big = 500 * GIB
    size = next(part_sizes(16 * MB, big))
    assert size % MB == 0 and size * MAX_PARTS >= big


def test_stream_parts_double_every_thousand_and_reach_terabytes():
    sizes = list(itertools.islice(part_sizes(16 * MB), MAX_PARTS))
    assert sizes[0] == sizes[999] == 16 * MB and sizes[1000] == 32 * MB
    assert max(sizes) <= 5 * GIB
    assert sum(sizes) > 10 * 1024 * GIB


def test_checksums_compare_with_or_without_the_part_count():
    assert same_checksum("abc=-3", "abc=-3")
    assert same_checksum("abc=", "abc=-3")
    assert not same_checksum("abc=-2", "abc=-3")
    assert not same_checksum("abd=", "abc=")


@pytest.mark.parametrize("url, bucket, prefix", [
    ("s3://backups", "backups", ""), ("s3://backups/", "backups", ""),
    ("s3://my.backups-1/prod/db/", "my.backups-1", "prod/db")])
def test_locations(url, bucket, prefix):
    location = S3Location(url)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert location.key("app", "id1", "") == "/".join(([prefix] if prefix else []) + ["app", "id1", ""])


@pytest.mark.parametrize("url", ["backups", "s3://", "s3://Upper/x", "s3://a/x", "http://bucket/x"])
def test_bad_locations(url):
    with pytest.raises(LifeboatError):
        S3Location(url)


class _Set(object):
    backup_id = '20261120T030000Z-abcdef'
    manifest = dict(files=[dict(name='app.dump', size=10, sha256='0' * 64)])


def _reads(body):
    from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3_store import S3Store
    store = S3Store.__new__(S3Store)  # _blocks needs no client: it only bounds what a body yields
    store.location = S3Location('s3://bucket-a/p')
    return b''.join(store._blocks(_Set(), 'app.dump', body))


class _Endless(object):
    """A body that never ends (an object swapped for a bigger one after the listing)."""

    def __init__(self):
        self.read_total = 0

    def read(self, size):
        self.read_total += size
        return b'x' * size


def test_a_download_never_reads_more_than_the_manifest_and_listing_agreed_on():
    import io
    assert _reads(io.BytesIO(b'x' * 10)) == b'x' * 10
    endless = _Endless()
    with pytest.raises(LifeboatError, match='larger than the 10 bytes'):
        _reads(endless)
    assert endless.read_total == 11
