#!/usr/bin/env python3
"""Benchmark: lifeboat's S3 upload next to boto3's upload_file, to the same moto server.

    .venv/bin/python tests/perf/bench_s3.py [--gb 1] [--part-size-mb 16] [--concurrency 4]

Writes a backup set holding one file of random bytes (incompressible, like a compressed dump)
and its manifest, starts a moto S3 server on loopback, and uploads the set twice, each in a fresh
Python process: with lifeboat's S3Store.upload_set (the code path of dump's offsite copy: SHA-256
per part, whole-file sha256 compared with the manifest, the stored checksum compared after the
upload) and with boto3's client.upload_file (default TransferConfig: 8 MiB parts, 10 threads, no
checksum comparison). It prints wall time, throughput and the peak RSS of each process (from
wait4's rusage), and their ratios. Timings on a shared machine are noisy: compare within one run.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "tests" / "integration"))
from conftest import start_moto  # noqa: E402  (one way to start moto, shared with the tests)

COLLECTIONS = str(PROJECT / "collections")

OURS = """
import json, sys
sys.path.insert(0, {collections!r})
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3 import S3Settings
from ansible_collections.lifeboat.db.plugins.module_utils.storage.s3_store import S3Store
args = json.loads(sys.argv[1])
settings = S3Settings(dict(s3_endpoint_url=args['endpoint'], s3_region='us-east-1', aws_access_key='k',
                           aws_secret_key='s', s3_part_size_mb=args['part_mb'], s3_concurrency=args['concurrency']))
store = S3Store('s3://bench/ours', settings)
record = store.upload_set('db', 'set1', args['directory'], json.load(open(args['manifest'])))
print(json.dumps(record['objects']))
"""

BOTO3 = """
import json, sys, boto3
args = json.loads(sys.argv[1])
client = boto3.client('s3', endpoint_url=args['endpoint'], region_name='us-east-1', aws_access_key_id='k',
                      aws_secret_access_key='s')
client.upload_file(args['file'], 'bench', 'boto3/db/set1/data.dump')
"""


def run_child(code, args):
    """Run `code` in a fresh interpreter; return (seconds, peak RSS in MiB, stdout)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit("upload failed (exit %d)" % proc.returncode)
    return seconds, usage.ru_maxrss / 1024.0, out.decode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--part-size-mb", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    size = int(options.gb * 1024 ** 3)
    with tempfile.TemporaryDirectory(prefix="lifeboat-s3-perf-") as tmp:
        directory = Path(tmp) / "set"
        directory.mkdir()
        data = directory / "data.dump"
        digest = hashlib.sha256()
        with open(data, "wb") as out:
            left = size
            while left:
                block = os.urandom(min(left, 4 * 1024 * 1024))
                out.write(block)
                digest.update(block)
                left -= len(block)
        manifest = Path(tmp) / "manifest.json"
        manifest.write_text(json.dumps({"backup_id": "set1", "files": [
            {"name": "data.dump", "size": size, "sha256": digest.hexdigest()}]}))
        moto = start_moto()
        try:
            moto.bucket("bench")
            args = dict(endpoint=moto.endpoint_url, directory=str(directory), manifest=str(manifest), file=str(data),
                        part_mb=options.part_size_mb, concurrency=options.concurrency)
            theirs = run_child(BOTO3, args)
            ours = run_child(OURS.format(collections=COLLECTIONS), args)
            checked = json.loads(ours[2])[0]["checked"]
        finally:
            moto.proc.terminate()
            moto.proc.wait(timeout=30)
    mib = size / 1024 ** 2
    print("S3 upload of %.0f MiB to moto on loopback (lifeboat: %d MiB parts x %d at once)"
          % (mib, options.part_size_mb, options.concurrency))
    print("%-28s %10s %12s %14s" % ("", "seconds", "MiB/s", "peak RSS MiB"))
    for name, (seconds, rss, _) in (("boto3 upload_file", theirs), ("lifeboat upload_set", ours)):
        print("%-28s %10.2f %12.1f %14.1f" % (name, seconds, mib / seconds, rss))
    print("throughput ratio lifeboat/boto3: %.2f (bar >= 0.8); lifeboat peak RSS %.0f MiB (bar <= 200); "
          "upload checked by %s" % (theirs[0] / ours[0], ours[1], checked))


if __name__ == "__main__":
    main()
