# -*- coding: utf-8 -*-
"""The two ways a backup set reaches an s3:// repository (backup/pg_dump.py), against a real S3 API (moto's server,
tests/tools/s3server.py): StagedS3Sink (with container: written into the cache, uploaded when whole) and S3Sink
(streamed). take_backup calls abort() for anything raised until the task ends - an upload failing half-way must
leave nothing in S3 or the cache, and a Ctrl-C after the commit must never delete the set it made."""
import hashlib
import os
import sys
from pathlib import Path

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.backup.pg_dump import S3Sink, StagedS3Sink
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import Repository, new_backup_id
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import S3Settings
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3_store import S3Store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tools'))
from s3server import start_moto  # noqa: E402

DB = 'app'


@pytest.fixture(scope='module')
def moto():
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture
def store(moto, request):
    bucket = moto.bucket('lb-sink-' + hashlib.sha256(request.node.name.encode()).hexdigest()[:16])
    return S3Store('s3://%s/backups' % bucket, S3Settings(moto.options()))


def keys(moto, store):
    return moto.keys(store.location.bucket)


def manifest_of(backup_id, files):
    return dict(backup_id=backup_id, database=DB, files=files)


def staged_set(tmp_path, store):
    """A StagedS3Sink whose staging folder in the cache holds a two-file set."""
    cache = Repository(str(tmp_path / 'cache'))
    sink = StagedS3Sink(cache, store)
    backup_id = new_backup_id(utc_now())
    sink.begin(DB, backup_id)
    for name, size in (('app.dir/toc.dat', 900), ('app.dir/3456.dat.gz', 70000)):
        os.makedirs(os.path.dirname(sink.path(name)), exist_ok=True)
        with open(sink.path(name), 'wb') as out:
            out.write(os.urandom(size))
    return cache, sink, backup_id


def test_a_staged_upload_failing_half_way_leaves_nothing_in_s3_or_the_cache(moto, store, tmp_path):
    cache, sink, backup_id = staged_set(tmp_path, store)
    files = sink.files()
    # The second file changes after the manifest was made: upload_set finds it out once both files are in S3.
    with open(sink.path('app.dir/toc.dat'), 'r+b') as damaged:
        damaged.write(b'X')
    with pytest.raises(LifeboatError) as caught:
        sink.commit(DB, manifest_of(backup_id, files))
    assert 'changed while it was uploaded' in caught.value.msg
    assert len(keys(moto, store)) == 2  # both files, no manifest: what the abort below must take away
    sink.abort()
    assert keys(moto, store) == []
    assert os.listdir(cache.database_dir(DB)) == []


def test_a_staged_set_committed_is_never_deleted_by_an_abort(moto, store, tmp_path):
    # A Ctrl-C (or a cache copy that cannot be removed) after the upload reaches take_backup's abort() all the same.
    cache, sink, backup_id = staged_set(tmp_path, store)
    files = sink.files()
    assert sink.commit(DB, manifest_of(backup_id, files)) == 's3://%s/backups/app/%s' % (store.location.bucket,
                                                                                        backup_id)
    sink.abort()
    prefix = 'backups/app/%s/' % backup_id
    assert keys(moto, store) == [prefix + 'app.dir/3456.dat.gz', prefix + 'app.dir/toc.dat', prefix + 'manifest.json']
    assert os.listdir(cache.database_dir(DB)) == []


def test_a_streamed_set_committed_is_never_deleted_by_an_abort(moto, store):
    sink = S3Sink(store)
    backup_id = new_backup_id(utc_now())
    sink.begin(DB, backup_id)
    sink.write_stream(['printf', 'SELECT 1;\\n'], {}, 'app.sql', 'writing app.sql')
    assert sink.files()[0]['sha256'] == hashlib.sha256(b'SELECT 1;\n').hexdigest()
    sink.commit(DB, manifest_of(backup_id, sink.files()))
    sink.abort()
    prefix = 'backups/app/%s/' % backup_id
    assert keys(moto, store) == [prefix + 'app.sql', prefix + 'manifest.json']
