"""S3 offsite copies and S3 repositories, against a real S3 API server (moto) on loopback."""
import contextlib
import hashlib
import http.server
import json
import os
import stat
import threading
import urllib.error
import urllib.request

import pytest

from conftest import backup_sets, embedded_only, start_moto


def listing_args(args):
    """backup_info takes no cache_dir: it never downloads."""
    return {k: v for k, v in args.items() if k != "cache_dir"}


@embedded_only
def test_offsite_copy_after_dump(ansible, sample_db, moto, bucket):
    result = ansible.module("dump", db=sample_db, repository=str(ansible.repository), kind="daily",
                            offsite_url=f"s3://{bucket}/prod", s3_storage_class="STANDARD_IA", s3_sse="AES256",
                            **moto.options())
    assert result["changed"] and not result["failed"], result.get("msg")
    backup_id = result["backup_id"]
    offsite = result["offsite"]
    assert offsite["url"] == f"s3://{bucket}/prod/{sample_db}/{backup_id}"
    archive_key = f"prod/{sample_db}/{backup_id}/{sample_db}.dump"
    assert moto.keys(bucket) == sorted([archive_key, f"prod/{sample_db}/{backup_id}/manifest.json"])
    head = moto.client().head_object(Bucket=bucket, Key=archive_key)
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == result["size"]
    assert [o["checked"] for o in offsite["objects"]] == ["sha256"]
    body = moto.client().get_object(Bucket=bucket, Key=archive_key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result["sha256"]
    # The manifest stays in STANDARD so the repository can be listed without a GLACIER restore.
    manifest_head = moto.client().head_object(Bucket=bucket, Key=f"prod/{sample_db}/{backup_id}/manifest.json")
    assert manifest_head.get("StorageClass", "STANDARD") == "STANDARD"
    local = ansible.repository / sample_db / backup_id
    assert json.loads((local / "offsite.json").read_text())["url"] == offsite["url"]
    assert stat.S_IMODE(os.stat(local / "offsite.json").st_mode) == 0o600

    listing = ansible.module("backup_info", repository=str(ansible.repository), db=sample_db)
    assert listing["backups"][0]["locations"] == ["local", offsite["url"]]


@embedded_only
def test_multipart_upload_is_checked_part_by_part(ansible, server, moto, bucket, request):
    db = "t_s3_multipart"
    server.drop_db(db)
    server.sql("postgres", f'CREATE DATABASE "{db}"')
    request.addfinalizer(lambda: server.drop_db(db))
    # ~14 MB of incompressible text: three 5 MiB parts.
    server.sql(db, "CREATE TABLE noise AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS a "
                   "FROM generate_series(1, 200000) g")
    result = ansible.module("dump", db=db, repository=str(ansible.repository), compress=0,
                            offsite_url=f"s3://{bucket}", s3_part_size_mb=5, s3_concurrency=2, **moto.options())
    assert not result["failed"], result.get("msg")
    assert result["size"] > 10 * 1024 * 1024
    obj = result["offsite"]["objects"][0]
    assert obj["s3_checksum"].endswith("-3") and obj["checked"] == "sha256"
    body = moto.client().get_object(Bucket=bucket, Key=f"{db}/{result['backup_id']}/{db}.dump")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result["sha256"]


def test_stream_to_s3_list_verify_and_restore(ansible, server, sample_db, moto, bucket):
    cache = ansible.workdir / "cache"
    s3 = dict(repository=f"s3://{bucket}/stream", cache_dir=str(cache), **moto.options())
    result = ansible.module("dump", db=sample_db, **s3)
    assert result["changed"] and not result["failed"], result.get("msg")
    backup_id = result["backup_id"]
    assert result["backup_path"] == f"s3://{bucket}/stream/{sample_db}/{backup_id}"
    assert moto.keys(bucket) == sorted([f"stream/{sample_db}/{backup_id}/{sample_db}.dump",
                                        f"stream/{sample_db}/{backup_id}/manifest.json"])
    assert backup_sets(cache / sample_db) == [], "streaming must not write the dump locally"

    info = listing_args(s3)
    listing = ansible.module("backup_info", verify=True, **info)
    assert not listing["failed"], listing.get("msg")
    (entry,) = listing["backups"]
    assert entry["backup_id"] == backup_id and entry["storage_class"] == "STANDARD"
    assert entry["verified"] and entry["verification"] == "passed"
    assert f"stream/{sample_db}/{backup_id}/verification.json" in moto.keys(bucket)

    target = sample_db + "_from_s3"
    server.drop_db(target)
    check = ansible.module("restore", db=target, backup_db=sample_db, check=True, **s3)
    assert check["changed"] and not server.exists(target) and not (cache / sample_db).exists() or \
        backup_sets(cache / sample_db) == []
    restored = ansible.module("restore", db=target, backup_db=sample_db, **s3)
    try:
        assert not restored["failed"], restored.get("msg")
        for table, rows in result["row_counts"].items():
            assert server.count(target, table) == rows, table
        assert backup_sets(cache / sample_db) == [], "the download is removed after a successful restore"
    finally:
        server.drop_db(target)


@embedded_only
def test_damaged_object_is_caught_by_verify_and_restore(ansible, server, sample_db, moto, bucket):
    s3 = dict(repository=f"s3://{bucket}", cache_dir=str(ansible.workdir / "cache"), **moto.options())
    result = ansible.module("dump", db=sample_db, **s3)
    key = f"{sample_db}/{result['backup_id']}/{sample_db}.dump"
    body = bytearray(moto.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    moto.client().put_object(Bucket=bucket, Key=key, Body=bytes(body))
    listing = ansible.module("backup_info", verify=True, **listing_args(s3))
    assert listing["failed"] and "sha256" in listing["msg"]
    target = sample_db + "_bad"
    server.drop_db(target)
    restored = ansible.module("restore", db=target, backup_db=sample_db, backup=result["backup_id"], **s3)
    assert restored["failed"] and "damaged" in restored["msg"] and "\n" not in restored["msg"]
    assert not server.exists(target)


@embedded_only
def test_glacier_needs_a_restore_first(ansible, server, sample_db, moto, bucket):
    s3 = dict(repository=f"s3://{bucket}/monthly", cache_dir=str(ansible.workdir / "cache"), **moto.options())
    result = ansible.module("dump", db=sample_db, kind="monthly", s3_storage_class="GLACIER", **s3)
    assert not result["failed"], result.get("msg")
    listing = ansible.module("backup_info", verify=True, **listing_args(s3))
    assert not listing["failed"], listing.get("msg")
    assert listing["backups"][0]["storage_class"] == "GLACIER"
    assert listing["verified"][result["backup_id"]]["status"] == "unavailable"

    target = sample_db + "_thawed"
    server.drop_db(target)
    args = dict(db=target, backup_db=sample_db, backup=result["backup_id"], **s3)
    refused = ansible.module("restore", **args)
    assert refused["failed"] and "GLACIER" in refused["msg"] and "glacier_restore" in refused["msg"]
    started = ansible.module("restore", glacier_restore=True, **args)
    assert started["failed"] and "run again" in started["msg"]
    assert started["glacier_restore_started"] == [f"{sample_db}.dump"]
    # moto completes a GLACIER restore at once; real S3 takes hours. Then the restore goes through.
    restored = ansible.module("restore", **args)
    try:
        assert not restored["failed"], restored.get("msg")
        for table, rows in result["row_counts"].items():
            assert server.count(target, table) == rows, table
    finally:
        server.drop_db(target)


@embedded_only
def test_retention_applies_to_s3_copies(ansible, sample_db, moto, bucket):
    args = dict(db=sample_db, repository=str(ansible.repository), offsite_url=f"s3://{bucket}",
                offsite_keep_last=2, **moto.options())
    ids = [ansible.module("dump", **args)["backup_id"] for _ in range(3)]
    remote_sets = sorted({key.split("/")[1] for key in moto.keys(bucket, f"{sample_db}/")})
    assert remote_sets == ids[1:]
    assert sorted(backup_sets(ansible.repository / sample_db)) == ids, "local retention is separate"
    planned = ansible.module("dump", check=True, keep_last=3, **args)
    assert planned["deleted"] == [ids[0]], "check mode lists the local deletions"
    assert planned["offsite"]["deleted"] == [ids[1]], "and the S3 ones"
    assert sorted({key.split("/")[1] for key in moto.keys(bucket, f"{sample_db}/")}) == ids[1:]


@embedded_only
def test_stream_sweeps_what_a_killed_run_left(ansible, sample_db, moto, bucket):
    client = moto.client()
    client.put_object(Bucket=bucket, Key=f"{sample_db}/20200101T000000Z-dead00/{sample_db}.dump", Body=b"partial")
    upload = client.create_multipart_upload(Bucket=bucket, Key=f"{sample_db}/20200101T000001Z-dead01/x.dump")
    result = ansible.module("dump", db=sample_db, repository=f"s3://{bucket}", cache_dir=str(ansible.workdir / "c"),
                            **moto.options())
    assert not result["failed"], result.get("msg")
    assert any("20200101T000000Z-dead00" in action for action in result["actions"])
    assert not [k for k in moto.keys(bucket) if "dead0" in k]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert upload["UploadId"] not in [u["UploadId"] for u in uploads]
    # A set started minutes ago without a manifest may be another host's run: left alone.
    recent = f"{sample_db}/{result['backup_id'][:16]}-other1/{sample_db}.dump"
    client.put_object(Bucket=bucket, Key=recent, Body=b"in progress elsewhere")
    again = ansible.module("dump", db=sample_db, repository=f"s3://{bucket}", cache_dir=str(ansible.workdir / "c"),
                           **moto.options())
    assert not again["failed"], again.get("msg")
    assert recent in moto.keys(bucket)


@embedded_only
def test_cache_dir_must_be_private(ansible, sample_db, moto, bucket):
    shared = ansible.workdir / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    result = ansible.module("restore", db=sample_db + "_x", backup_db=sample_db, repository=f"s3://{bucket}",
                            cache_dir=str(shared), **moto.options())
    assert result["failed"] and "open to others" in result["msg"] and "\n" not in result["msg"]


@pytest.mark.skipif(os.geteuid() != 0, reason="a folder of another owner needs root")
@embedded_only
def test_cache_dir_is_never_a_link_nor_another_users_folder(ansible, sample_db, moto, bucket):
    """Issue 15 item 3: cache_dir is checked with lstat - a link to a private folder is refused, and
    so is a 0700 folder that another user owns (they could plant what gets restored)."""
    private = ansible.workdir / "private"
    private.mkdir(mode=0o700)
    linked = ansible.workdir / "linked"
    linked.symlink_to(private)
    others = ansible.workdir / "others"
    others.mkdir(mode=0o700)
    os.chown(others, 65534, 65534)
    base = dict(db=sample_db + "_x", backup_db=sample_db, repository=f"s3://{bucket}", **moto.options())
    played = ansible.play([{"name": name, "ignore_errors": True, "lifeboat.db.restore": dict(base, cache_dir=str(path))}
                           for name, path in (("link", linked), ("others", others))])
    for name, fragment in (("link", "is a symbolic link"), ("others", "belongs to uid 65534")):
        result = played.result(name)
        assert result["failed"] and fragment in result["msg"] and "\n" not in result["msg"], result.get("msg")
    assert os.listdir(private) == [] and os.listdir(others) == []


# -- faults ------------------------------------------------------------------------------------

@embedded_only
def test_s3_unreachable_keeps_the_local_backup(ansible, sample_db, moto):
    unreachable = dict(moto.options(), s3_endpoint_url="http://127.0.0.1:9")  # discard port: refused
    args = dict(db=sample_db, repository=str(ansible.repository), offsite_url="s3://nowhere-bucket")
    result = ansible.module("dump", **args, **unreachable)
    assert result["failed"]
    assert "cannot reach the S3 endpoint" in result["msg"] and "\n" not in result["msg"]
    assert result["backup_id"] in result["msg"]
    assert backup_sets(ansible.repository / sample_db) == [result["backup_id"]]
    assert not (ansible.repository / sample_db / result["backup_id"] / "offsite.json").exists()

    optional = ansible.module("dump", offsite="optional", **args, **unreachable)
    assert not optional["failed"] and optional["changed"]
    assert optional["offsite"]["url"] is None and "cannot reach" in optional["offsite"]["error"]
    assert any("offsite copy failed" in w for w in optional.get("warnings", []))
    assert len(backup_sets(ansible.repository / sample_db)) == 2


class Faulty(http.server.BaseHTTPRequestHandler):
    """S3 in front of moto with a fault on the GETs of some objects (everything else passes):
    `throttle` (a key suffix) answers 503 SlowDown, as S3 throttling does; `damage` (a key suffix)
    flips a byte of the body, which then no longer matches the checksum S3 sends with it."""
    upstream, throttle, damage = None, None, None

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        data = b""
        while True:  # botocore streams uploads in HTTP chunks
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def relay(self):
        body = self.body()
        key = self.path.split("?")[0]
        if self.command == "GET" and self.throttle and key.endswith(self.throttle):
            reply = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "connection", "transfer-encoding", "content-length", "expect")}
        # urllib would call a body form data, which moto's server then parses away.
        headers.setdefault("Content-Type", "binary/octet-stream")
        request = urllib.request.Request(self.upstream + self.path, data=body, method=self.command, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as error:
            response = error
        data = response.read()
        if self.command == "GET" and self.damage and key.endswith(self.damage) and data:
            data = bytes([data[0] ^ 0x01]) + data[1:]
        self.send_response(response.status)
        for key, value in response.headers.items():
            if key.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", response.headers.get("Content-Length", str(len(data)))
                         if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = relay

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def faulty_s3(moto, **faults):
    """The endpoint URL of a Faulty proxy in front of moto, for the duration of the block."""
    handler = type("FaultyHere", (Faulty,), dict(upstream=moto.endpoint_url, **faults))
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % proxy.server_address[1]
    finally:
        proxy.shutdown()
        proxy.server_close()


@embedded_only
def test_verification_that_s3_throttles_is_unchecked_not_failed(ansible, sample_db, moto, bucket):
    """Issue 15 item 6c: S3 answering SlowDown while a set is verified proves nothing about the set:
    it is recorded `unchecked`, stays verified and `latest`, and the task warns instead of failing."""
    repository = dict(repository=f"s3://{bucket}", **moto.options())
    taken = ansible.module("dump", db=sample_db, cache_dir=str(ansible.workdir / "cache"), **repository)
    assert not taken["failed"], taken.get("msg")
    with faulty_s3(moto, throttle=".dump") as endpoint:
        checked = ansible.module("backup_info", db=sample_db, verify=True, **dict(repository, s3_endpoint_url=endpoint))
    assert not checked["failed"], checked.get("msg")
    assert checked["verified"][taken["backup_id"]]["status"] == "unchecked", checked["verified"]
    assert any("could not be verified" in w for w in checked["warnings"]), checked.get("warnings")
    listed = ansible.module("backup_info", db=sample_db, backup="latest", **repository)
    assert not listed["failed"], listed.get("msg")
    assert listed["backups"][0]["backup_id"] == taken["backup_id"] and listed["backups"][0]["verified"], listed


@embedded_only
def test_objects_that_do_not_match_their_s3_checksum_are_damaged_in_one_line(ansible, sample_db, moto, bucket):
    """Issue 15 items 1 and 10: a verification record or a manifest whose bytes do not match the
    checksum S3 keeps for it is damaged, not a traceback: the record proves nothing (the set stays
    listed), the set whose manifest it is is refused in one line and listed as invalid."""
    repository = dict(repository=f"s3://{bucket}", **moto.options())
    taken = ansible.module("dump", db=sample_db, cache_dir=str(ansible.workdir / "cache"), **repository)
    recorded = ansible.module("backup_info", db=sample_db, verify=True, **repository)
    assert not taken["failed"] and not recorded["failed"], (taken.get("msg"), recorded.get("msg"))
    assert recorded["verified"][taken["backup_id"]]["status"] == "passed", recorded["verified"]
    with faulty_s3(moto, damage="/verification.json") as endpoint:
        record = ansible.module("backup_info", db=sample_db, **dict(repository, s3_endpoint_url=endpoint))
    with faulty_s3(moto, damage="/manifest.json") as endpoint:
        manifest = ansible.module("backup_info", db=sample_db, **dict(repository, s3_endpoint_url=endpoint))
        restore = ansible.module("restore", db=sample_db + "_x", backup_db=sample_db, backup=taken["backup_id"],
                                 cache_dir=str(ansible.workdir / "cache"), **dict(repository, s3_endpoint_url=endpoint))
    assert not record["failed"], record.get("msg")
    assert [b["backup_id"] for b in record["backups"]] == [taken["backup_id"]], record["backups"]
    assert not manifest["failed"], manifest.get("msg")
    assert manifest["backups"] == [] and [i["backup_id"] for i in manifest["invalid"]] == [taken["backup_id"]]
    assert restore["failed"] and "checksum" in restore["msg"] and "\n" not in restore["msg"], restore.get("msg")
    assert "Module failed" not in restore["msg"] and taken["backup_id"] in restore["msg"], restore["msg"]


@embedded_only
def test_bucket_missing(ansible, sample_db, moto):
    result = ansible.module("dump", db=sample_db, repository="s3://no-such-bucket-here", **moto.options(),
                            cache_dir=str(ansible.workdir / "c"))
    assert result["failed"] and "'no-such-bucket-here' does not exist" in result["msg"]
    offsite = ansible.module("dump", db=sample_db, repository=str(ansible.repository),
                             offsite_url="s3://no-such-bucket-here/x", **moto.options())
    assert offsite["failed"] and "does not exist" in offsite["msg"]
    assert backup_sets(ansible.repository / sample_db) == [offsite["backup_id"]]


@pytest.fixture(scope="module")
def moto_with_auth():
    """A moto server that checks credentials after the first three requests, which create the one
    IAM user whose key is valid."""
    server = start_moto(env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    import boto3
    iam = boto3.client("iam", endpoint_url=server.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="backup")
    iam.put_user_policy(UserName="backup", PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="backup")["AccessKey"]
    server.ACCESS_KEY, server.SECRET_KEY = key["AccessKeyId"], key["SecretAccessKey"]
    server.bucket("authbucket")
    yield server
    server.proc.terminate()
    server.proc.wait(timeout=10)


@embedded_only
def test_wrong_credentials(ansible, sample_db, moto_with_auth):
    moto = moto_with_auth
    # A prefix of this run's own: the module-scoped server outlives one server parameter's run.
    prefix = f"s3://authbucket/{ansible.workdir.name}"
    good = dict(db=sample_db, repository=prefix, cache_dir=str(ansible.workdir / "c"), **moto.options())
    assert not ansible.module("dump", **good)["failed"]
    wrong_key = ansible.module("dump", **dict(good, aws_access_key="AKIANOTAREALKEY00000"))
    assert wrong_key["failed"] and "InvalidAccessKeyId" in wrong_key["msg"]
    wrong_secret = ansible.module("dump", **dict(good, aws_secret_key="not-the-secret-at-all"))
    assert wrong_secret["failed"] and "secret key does not match" in wrong_secret["msg"]
    assert "not-the-secret-at-all" not in json.dumps(wrong_secret)
    listing = ansible.module("backup_info", repository=prefix, **moto.options())
    assert listing["count"] == 1, "the failed runs left no set behind"
    # boto3's own chain: credentials from the environment, none in the task.
    chain = {k: v for k, v in good.items() if k not in ("aws_access_key", "aws_secret_key")}
    from_env = ansible.module("dump", env={"AWS_ACCESS_KEY_ID": moto.ACCESS_KEY,
                                           "AWS_SECRET_ACCESS_KEY": moto.SECRET_KEY}, **chain)
    assert not from_env["failed"], from_env.get("msg")


@pytest.mark.parametrize("args, message", [
    ({"repository": "s3://Bad_Bucket/x"}, "does not name a valid S3 bucket"),
    ({"repository": "s3://okbucket", "format": "directory"}, "cannot be streamed to S3"),
    ({"offsite_url": "s3://okbucket", "s3_sse_kms_key_id": "k1"}, "needs s3_sse: aws:kms"),
    ({"offsite_url": "s3://okbucket", "s3_part_size_mb": 1}, "between 5 and 5120"),
    ({"offsite_url": "s3://okbucket", "aws_access_key": "AKIA0"}, "go together"),
    ({"offsite_url": "s3://okbucket", "offsite_keep_last": 0}, "keep_last must be at least 1"),
    ({"offsite_url": "http://okbucket"}, "is not an S3 URL"),
])
@embedded_only
def test_bad_s3_input(ansible, sample_db, moto, args, message):
    base = dict(db=sample_db, repository=str(ansible.repository), s3_endpoint_url=moto.endpoint_url,
                cache_dir=str(ansible.workdir / "c"))
    result = ansible.module("dump", **dict(base, **args))
    assert result["failed"] and message in result["msg"] and "\n" not in result["msg"], result["msg"]
    assert not (ansible.repository / sample_db).exists() or backup_sets(ansible.repository / sample_db) == []
