"""moto's S3 server (its server mode) in a process of its own: the one way the tests, the benchmarks
and the test hosts (testhosts.py --s3) start it. Imports neither pytest nor the tests' conftest:
testhosts.py runs it as a script too (Molecule's create).

Plain HTTP by default. `start_moto(tls_dir=...)` serves HTTPS instead, with a certificate signed by a CA
made for the run (openssl's CLI): Debian's pgBackRest 2.45 speaks S3 only over TLS, and with the CA
handed to its repo1-storage-ca-file the certificate checks stay on in the tests too. Not moto_server's
own -c/-k: its server closes the connection after every response without TLS's close_notify, which an
OpenSSL 3 client such as pgBackRest takes for a truncation ("TLS error ... unexpected eof while
reading" after every PUT). So this file, run as a script, serves moto on a loopback port of its own
process behind a TLS listener (asyncio) that ends every connection properly:

    python tests/tools/s3server.py --tls ADDRESS PORT CERT KEY
"""
import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MOTO_SERVER = Path(sys.executable).parent / "moto_server"


class MotoServer:
    """A real S3 API server on `address`:`port`, and boto3 clients that reach it."""

    ACCESS_KEY, SECRET_KEY = "lifeboat-test-key", "lifeboat-test-secret"

    def __init__(self, address, port, proc, ca_file=None):
        self.address, self.port, self.proc = address, port, proc
        # ca_file: the CA that signed the server's certificate when it serves HTTPS (start_moto's tls_dir).
        self.ca_file = ca_file
        self.endpoint_url = f"{'https' if ca_file else 'http'}://{address}:{port}"

    def client(self, access_key=None, secret_key=None):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=access_key or self.ACCESS_KEY,
                            aws_secret_access_key=secret_key or self.SECRET_KEY,
                            **({"verify": str(self.ca_file)} if self.ca_file else {}))

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


def make_certificate(folder, address):
    """A CA (folder/ca.pem) and a certificate for `address` signed by it (folder/server.pem and its key
    folder/server.key, 0600), made by openssl's CLI; returns the three paths. The address is in the
    certificate both as an IP and as a DNS name: Python checks the one, older TLS clients the other."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, request = folder / "server.pem", folder / "server.key", folder / "server.csr"
    extensions = folder / "server.ext"
    extensions.write_text("basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\n"
                          "extendedKeyUsage = serverAuth\nsubjectAltName = IP:%s, DNS:%s\n" % (address, address))

    def openssl(*argv):
        proc = subprocess.run(["openssl", *map(str, argv)], capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError("openssl %s failed: %s" % (argv[0], proc.stderr.strip().splitlines()[-1:]))

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lifeboat test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", ca_key, "-out", ca)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % address, "-keyout", key, "-out", request)
    openssl("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
            "-extfile", extensions, "-out", cert)
    for private in (ca_key, key):
        private.chmod(0o600)
    return ca, cert, key


def start_moto(address="127.0.0.1", env=None, detach=False, tls_dir=None):
    """moto_server on a free port of `address`, once it answers /moto-api/; `detach`: in a session of
    its own, so that it outlives the script that started it (testhosts.py create); `tls_dir`: over
    HTTPS, with a CA and certificate made in that folder (make_certificate; the server's ca_file).
    Raises RuntimeError (one line) when moto exits or does not answer within 30 s, and leaves no
    process behind."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        port = probe.getsockname()[1]
    argv, ca_file, context = [str(MOTO_SERVER), "-H", address, "-p", str(port)], None, None
    if tls_dir is not None:
        ca_file, cert, key = make_certificate(tls_dir, address)
        argv = [sys.executable, str(Path(__file__).resolve()), "--tls", address, str(port), str(cert), str(key)]
        context = ssl.create_default_context(cafile=str(ca_file))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **(env or {})), start_new_session=detach)
    server = MotoServer(address, port, proc, ca_file=ca_file)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                urllib.request.urlopen(server.endpoint_url + "/moto-api/", timeout=1, context=context).read()
                return server
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"moto_server exited (rc {proc.returncode}) before it answered on "
                                       f"{server.endpoint_url}; run {' '.join(argv)} to see why")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {server.endpoint_url} within 30 s")
                time.sleep(0.2)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


async def _pipe(reader, writer):
    """Copy until `reader` ends, then end `writer`: a TLS writer's close() sends close_notify first, and
    a plain one is half-closed only, so the server's answer to what it read still comes back."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        if writer.can_write_eof() and writer.get_extra_info("sslcontext") is None:
            try:
                writer.write_eof()
            except OSError:
                writer.close()
        else:
            writer.close()


async def _serve_tls(address, port, cert, key, upstream_port):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def connection(client_reader, client_writer):
        try:
            moto_reader, moto_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, moto_writer), _pipe(moto_reader, client_writer))
        moto_writer.close()

    server = await asyncio.start_server(connection, address, port, ssl=context)
    async with server:
        await server.serve_forever()


def serve_tls(address, port, cert, key):
    """moto on a loopback port of this process, and HTTPS on `address`:`port` in front of it (until killed)."""
    import signal
    from moto.server import ThreadedMotoServer
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(_serve_tls(address, port, cert, key, moto.get_host_and_port()[1]))


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "--tls":
        sys.exit("usage: s3server.py --tls ADDRESS PORT CERT KEY")
    serve_tls(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
