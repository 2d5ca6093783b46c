"""S3 offsite copies and S3 repositories, against a real S3 API server (moto) on loopback."""
import json
import os
import stat

import pytest

from conftest import backup_sets


@pytest.fixture
def bucket(moto, request):
    name = "lb-" + request.node.name.split("[")[0][-40:].lower().replace("_", "-")
    client = moto.client()
    try:
        for key in moto.keys(name):
            client.delete_object(Bucket=name, Key=key)
        client.delete_bucket(Bucket=name)
    except client.exceptions.NoSuchBucket:
        pass
    return moto.bucket(name)


def test_offsite_copy_after_dump(ansible, sample_db, moto, bucket):
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), kind="daily",
                            offsite_url=f"s3://{bucket}/prod", s3_storage_class="STANDARD_IA", s3_sse="AES256",
                            **moto.options())
    assert result["changed"] and not result["failed"], result.get("msg")
    backup_id = result["backup_id"]
    offsite = result["offsite"]
    assert offsite["url"] == f"s3://{bucket}/prod/{sample_db}/{backup_id}"
    keys = moto.keys(bucket)
    assert f"prod/{sample_db}/{backup_id}/manifest.json" in keys
    archive_key = f"prod/{sample_db}/{backup_id}/{sample_db}.dump"
    head = moto.client().head_object(Bucket=bucket, Key=archive_key, ChecksumMode="ENABLED")
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == result["size"]
    assert [o["checked"] for o in offsite["objects"]] == ["sha256"]
    body = moto.client().get_object(Bucket=bucket, Key=archive_key)["Body"].read()
    import hashlib
    assert hashlib.sha256(body).hexdigest() == result["sha256"]
    manifest_head = moto.client().head_object(Bucket=bucket, Key=f"prod/{sample_db}/{backup_id}/manifest.json")
    assert manifest_head.get("StorageClass", "STANDARD") == "STANDARD"
    record = json.loads((ansible.repository / sample_db / backup_id / "offsite.json").read_text())
    assert record["url"] == offsite["url"]
    assert stat.S_IMODE(os.stat(ansible.repository / sample_db / backup_id / "offsite.json").st_mode) == 0o600


def test_stream_to_s3(ansible, sample_db, moto, bucket):
    result = ansible.module("dump", db=sample_db, repository=f"s3://{bucket}/stream", cache_dir=str(ansible.workdir / "cache"),
                            **moto.options())
    assert result["changed"] and not result["failed"], result.get("msg")
    keys = moto.keys(bucket)
    assert keys == sorted([f"stream/{sample_db}/{result['backup_id']}/{sample_db}.dump",
                           f"stream/{sample_db}/{result['backup_id']}/manifest.json"])
    assert backup_sets(ansible.workdir / "cache" / sample_db) == []
