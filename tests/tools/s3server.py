"""moto's S3 server (its server mode) in a process of its own: the one way the tests, the benchmarks
and the test hosts (testhosts.py --s3) start it. Imports neither pytest nor the tests' conftest:
testhosts.py runs it as a script too (Molecule's create).
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MOTO_SERVER = Path(sys.executable).parent / "moto_server"


class MotoServer:
    """A real S3 API server on `address`:`port`, and boto3 clients that reach it."""

    ACCESS_KEY, SECRET_KEY = "lifeboat-test-key", "lifeboat-test-secret"

    def __init__(self, address, port, proc):
        self.port, self.proc = port, proc
        self.endpoint_url = f"http://{address}:{port}"

    def client(self, access_key=None, secret_key=None):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=access_key or self.ACCESS_KEY,
                            aws_secret_access_key=secret_key or self.SECRET_KEY)

    def options(self):
        """Module options that reach this server."""
        return {"s3_endpoint_url": self.endpoint_url, "s3_region": "us-east-1",
                "aws_access_key": self.ACCESS_KEY, "aws_secret_key": self.SECRET_KEY}

    def bucket(self, name):
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket, prefix=""):
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def stop(self, timeout=10):
        self.proc.terminate()
        self.proc.wait(timeout=timeout)


def start_moto(address="127.0.0.1", env=None, detach=False):
    """moto_server on a free port of `address`, once it answers /moto-api/; `detach`: in a session of
    its own, so that it outlives the script that started it (testhosts.py create). Raises RuntimeError
    (one line) when moto exits or does not answer within 30 s, and leaves no process behind."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([str(MOTO_SERVER), "-H", address, "-p", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **(env or {})), start_new_session=detach)
    server = MotoServer(address, port, proc)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                urllib.request.urlopen(server.endpoint_url + "/moto-api/", timeout=1).read()
                return server
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"moto_server exited (rc {proc.returncode}) before it answered on "
                                       f"{server.endpoint_url}; run {MOTO_SERVER} -H {address} -p {port} to see why")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {server.endpoint_url} within 30 s")
                time.sleep(0.2)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
