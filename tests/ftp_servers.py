"""Real FTP servers on loopback for the FTP tests and benchmarks.

- ``PyftpdServer``: pyftpdlib in a thread (plain, TLS with a certificate made at test time,
  a delay before every reply, optional faults: no MLSD/MFMT, a connection limit, one dropped
  transfer). It records what clients did (peak connections, commands) so tests can check.
- ``PureFtpd``: Debian's pure-ftpd as a child process with one virtual user.

Fixtures (``pyftpd``, ``pureftpd``, ``tls_files``) are importable from here.
"""

from __future__ import annotations

import contextlib
import datetime
import ftplib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

USER = "alice"
#: Distinctive, so a test can search any output for it.
PASSWORD = "Pw-7f3k9Zq2"
PURE_FTPD = "/usr/sbin/pure-ftpd"
#: Commands that move data over a data connection (``PyftpdServer.fail_data`` hits these).
DATA_COMMANDS = frozenset({"RETR", "STOR", "APPE", "STOU", "LIST", "NLST", "MLSD"})

# A handler of our own keeps pyftpdlib from configuring logging to stderr by itself.
logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
logging.getLogger("pyftpdlib").setLevel(logging.CRITICAL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_greeting(port: int, timeout: float = 10.0) -> None:
    """Poll until a server on ``port`` answers with a 220 greeting."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = ftplib.FTP()
            client.connect("127.0.0.1", port, timeout=2)
            client.close()
            return
        except (OSError, ftplib.Error) as exc:
            last = exc
            time.sleep(0.05)
    raise RuntimeError(f"no FTP server answered on port {port}: {last}")


# ----- TLS ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    """A test CA and a server certificate for 127.0.0.1 signed by it."""

    server_pem: Path   # certificate + private key, as pyftpdlib wants them
    ca_pem: Path       # the CA certificate a client trusts


def make_tls_files(folder: Path) -> TlsFiles:
    """Create a CA and a server certificate (SAN 127.0.0.1, localhost) in ``folder``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "filesync test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                            False, False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    server_pem = folder / "server.pem"
    server_pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()))
    ca_pem = folder / "ca.pem"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return TlsFiles(server_pem, ca_pem)


# ----- pyftpdlib --------------------------------------------------------------------------
@dataclass
class ServerStats:
    """What clients did to one server (shared by its handler threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: int = 0
    peak: int = 0
    logins: int = 0
    failed_logins: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    dropped: bool = False
    #: Replies given instead of serving the next data commands (one each, in order).
    data_faults: deque[str] = field(default_factory=deque)

    def opened(self) -> None:
        with self.lock:
            self.connections += 1
            self.peak = max(self.peak, self.connections)

    def closed(self) -> None:
        with self.lock:
            self.connections -= 1


def _filesystem_class(evil_names: list[str]) -> type[AbstractedFS]:
    """A file system that adds ``evil_names`` to root listings, as a hostile server would.

    They are added only where the root holds a file called ``inject-here``.
    """

    class EvilFS(AbstractedFS):  # type: ignore[misc]
        def _injects(self, basedir: str) -> bool:
            return bool(evil_names) and os.path.exists(os.path.join(basedir, "inject-here"))

        def format_mlsx(self, basedir: str, listing: list[str], *args: Any,
                        **kwargs: Any) -> Iterator[bytes]:
            yield from super().format_mlsx(basedir, listing, *args, **kwargs)
            if len(listing) > 1 and self._injects(basedir):
                for name in evil_names:
                    yield f"type=file;size=3;modify=20200101000000; {name}\r\n".encode()

        def format_list(self, basedir: str, listing: list[str],
                        ignore_err: bool = True) -> Iterator[bytes]:
            yield from super().format_list(basedir, listing, ignore_err)
            if self._injects(basedir):
                for name in evil_names:
                    yield f"-rw-r--r--   1 owner    group           3 Jan 01  2020 {name}\r\n" \
                        .encode()

    return EvilFS


def _handler_class(stats: ServerStats, *, delay: float, tls: TlsFiles | None,
                   no_mlsd: bool, no_mfmt: bool, drop_after: int | None,
                   timeout: float, site_utime: bool,
                   evil_names: list[str]) -> type[FTPHandler]:
    """Build a handler class for one server instance (class attributes are per server)."""
    base: type[FTPHandler]
    if tls is not None:
        from pyftpdlib.handlers import TLS_FTPHandler
        base = TLS_FTPHandler
    else:
        base = FTPHandler

    class DroppingDTP(base.dtp_handler):  # type: ignore[name-defined,misc]
        """Drops the whole session once, after ``drop_after`` bytes of one transfer."""

        def _maybe_drop(self) -> None:
            moved = self.tot_bytes_received + self.tot_bytes_sent
            if drop_after is not None and moved > drop_after and not stats.dropped:
                stats.dropped = True
                self.cmd_channel.close()

        def handle_read(self) -> None:
            super().handle_read()
            self._maybe_drop()

        handle_read_event = handle_read  # pyftpdlib's loop calls this alias

        def send(self, data: bytes) -> int:
            sent = super().send(data)
            self._maybe_drop()
            return int(sent)

    class Handler(base):  # type: ignore[valid-type,misc]
        proto_cmds: ClassVar[dict[str, Any]] = dict(base.proto_cmds)
        auth_failed_timeout = 0.05
        use_sendfile = False
        dtp_handler = DroppingDTP if drop_after is not None else base.dtp_handler

        def __init__(self, conn: Any, server: Any, ioloop: Any = None) -> None:
            self._counted = False
            super().__init__(conn, server, ioloop)
            if self.connected:
                self._counted = True
                stats.opened()

        def close(self) -> None:
            if self._counted:
                self._counted = False
                stats.closed()
            super().close()

        def respond(self, resp: str, logfun: Any = None) -> None:
            if delay:
                time.sleep(delay)
            if logfun is None:
                super().respond(resp)
            else:
                super().respond(resp, logfun)

        def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
            with stats.lock:
                stats.commands[cmd] += 1
                fault = (stats.data_faults.popleft()
                         if cmd in DATA_COMMANDS and stats.data_faults else None)
            if fault is not None:
                # As a server whose data connection failed: the one opened is dropped.
                if self.data_channel is not None:
                    self.data_channel.close()
                if self._dtp_acceptor is not None:
                    self._dtp_acceptor.close()
                    self._dtp_acceptor = None
                self.respond(fault)
                return
            super().pre_process_command(line, cmd, arg)

        def on_login(self, username: str) -> None:
            with stats.lock:
                stats.logins += 1

        def on_login_failed(self, username: str, password: str) -> None:
            with stats.lock:
                stats.failed_logins += 1

        def ftp_SITE_UTIME(self, line: str) -> None:
            """``SITE UTIME path atime mtime ctime UTC`` (the form pure-ftpd and lftp use)."""
            parts = line.rsplit(" ", 4)
            if len(parts) != 5 or parts[4].upper() != "UTC":
                self.respond("501 Syntax: SITE UTIME path atime mtime ctime UTC.")
                return
            path = self.fs.ftp2fs(parts[0])
            try:
                moment = datetime.datetime.strptime(parts[2], "%Y%m%d%H%M%S").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                if not self.fs.validpath(path):
                    raise ValueError("outside the root")
                os.utime(path, (moment, moment))
            except (OSError, ValueError) as exc:
                self.respond(f"550 {exc}.")
                return
            self.respond("200 UTIME OK")

    if no_mlsd:
        Handler.proto_cmds.pop("MLSD", None)
        Handler.proto_cmds.pop("MLST", None)
    if no_mfmt:
        Handler.proto_cmds.pop("MFMT", None)
    if site_utime:
        Handler.proto_cmds["SITE UTIME"] = dict(
            perm=None, auth=True, arg=True,
            help="Syntax: SITE UTIME <SP> path atime mtime ctime UTC (set times).")
    Handler.abstracted_fs = _filesystem_class(evil_names)
    Handler.timeout = timeout
    if tls is not None:
        Handler.certfile = str(tls.server_pem)
        Handler.ssl_context = None
        Handler.tls_control_required = True
        Handler.tls_data_required = True
    return Handler


class _Server(ThreadedFTPServer):
    """A threaded server with its own stop flag and I/O loop.

    pyftpdlib shares one stop flag per class and one I/O loop per process by default: two
    servers would then serve each other's sockets and close each other down.
    """

    def __init__(self, address: tuple[str, int], handler: type[FTPHandler]) -> None:
        self._exit = threading.Event()
        self._lock = threading.Lock()
        super().__init__(address, handler, ioloop=IOLoop())


class PyftpdServer:
    """pyftpdlib serving ``root`` on 127.0.0.1 from a thread; one connection per thread.

    Threads (not the async loop) so that ``delay`` sleeps hold up one session only, the
    way latency to a distant server would.
    """

    def __init__(self, root: Path, *, delay: float = 0.0, tls: TlsFiles | None = None,
                 no_mlsd: bool = False, no_mfmt: bool = False, max_cons_per_ip: int = 0,
                 drop_after: int | None = None, timeout: float = 300.0,
                 site_utime: bool = False, evil_names: list[str] | None = None) -> None:
        self.root = root
        self.stats = ServerStats()
        self.tls = tls
        self.max_cons_per_ip = max_cons_per_ip
        self.handler = _handler_class(self.stats, delay=delay, tls=tls, no_mlsd=no_mlsd,
                                      no_mfmt=no_mfmt, drop_after=drop_after, timeout=timeout,
                                      site_utime=site_utime, evil_names=evil_names or [])
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
        self.handler.authorizer = authorizer
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> PyftpdServer:
        """Start serving (again, on the same port after a ``stop``)."""
        assert self._server is None
        server = _Server(("127.0.0.1", self.port), self.handler)
        server.max_cons_per_ip = self.max_cons_per_ip
        self.port = server.address[1]
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="test-ftpd", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        try:
            while not self._stopping.is_set():
                server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        finally:
            server.close_all()

    def stop(self) -> None:
        """Stop serving and drop every client connection."""
        if self._server is None:
            return
        self._stopping.set()
        assert self._thread is not None
        self._thread.join(10)
        self._server = None

    def fail_data(self, *replies: str) -> None:
        """Answer the next data commands with ``replies`` (e.g. ``"425 ..."``), in order."""
        with self.stats.lock:
            self.stats.data_faults.extend(replies)

    def data_faults_left(self) -> int:
        """How many of the replies given to ``fail_data`` were not used yet."""
        with self.stats.lock:
            return len(self.stats.data_faults)

    def url(self, path: str = "", scheme: str | None = None, password: bool = True) -> str:
        """A location string for this server (``ftps`` when it runs TLS)."""
        scheme = scheme or ("ftps" if self.tls else "ftp")
        secret = f":{PASSWORD}" if password else ""
        return f"{scheme}://{USER}{secret}@127.0.0.1:{self.port}/{path}"


# ----- pure-ftpd --------------------------------------------------------------------------
class PureFtpd:
    """Debian's pure-ftpd as a child process, one virtual user chrooted to ``root``.

    Virtual users need a non-root uid; files are served as ``nobody``, so the folder lives
    in a world-accessible temporary folder (pytest's own is 0700) removed by ``cleanup``.
    """

    def __init__(self) -> None:
        if not os.path.exists(PURE_FTPD):
            pytest.fail("pure-ftpd is not installed: run `apt-get install -y pure-ftpd` "
                        "(.ci/run installs it); the FTP tests need it", pytrace=False)
        self.base = Path(tempfile.mkdtemp(prefix="filesync-pureftpd-"))
        self.base.chmod(0o755)
        self.root = self.base / "srv"
        self.root.mkdir()
        self.uid = self.gid = 65534
        os.chown(self.root, self.uid, self.gid)
        hashed = subprocess.run(["openssl", "passwd", "-6", PASSWORD], check=True,
                                capture_output=True, text=True).stdout.strip()
        passwd = self.base / "pureftpd.passwd"
        fields = [USER, hashed, str(self.uid), str(self.gid), "", f"{self.root}/./"]
        passwd.write_text(":".join(fields + [""] * 12) + "\n")
        self.pdb = self.base / "pureftpd.pdb"
        subprocess.run(["pure-pw", "mkdb", str(self.pdb), "-f", str(passwd)], check=True,
                       capture_output=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PureFtpd:
        """Start the daemon (again, on the same port) and wait for its greeting."""
        assert self.process is None
        self.process = subprocess.Popen(
            [PURE_FTPD, "-l", f"puredb:{self.pdb}", "-S", f"127.0.0.1,{self.port}", "-H",
             "-E", "-f", "none", "-u", "1", "-c", "100", "-C", "100"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_greeting(self.port)
        return self

    def stop(self) -> None:
        """Stop the daemon and its per-connection session processes (its process group)."""
        if self.process is None:
            return
        group = self.process.pid  # it leads its own session, so this is its group id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        self.process.wait(10)
        self.process = None
        # Sessions exit on their own signal; wait until none is left in the group.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)

    def cleanup(self) -> None:
        """Stop and remove the served folder."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def own(self, path: Path) -> None:
        """Give ``path`` (and everything below) to the virtual user, as if it uploaded it."""
        for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
            os.chown(item, self.uid, self.gid)

    def url(self, path: str = "", password: bool = True) -> str:
        """A location string for this server."""
        secret = f":{PASSWORD}" if password else ""
        return f"ftp://{USER}{secret}@127.0.0.1:{self.port}/{path}"


# ----- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a server certificate, made once per test session."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def pyftpd(tmp_path: Path) -> Iterator[Callable[..., PyftpdServer]]:
    """Start pyftpdlib servers (keyword options as ``PyftpdServer``); all stopped after."""
    started: list[PyftpdServer] = []

    def start(**options: Any) -> PyftpdServer:
        root = tmp_path / f"ftproot{len(started)}"
        root.mkdir()
        server = PyftpdServer(root, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@contextlib.contextmanager
def running_pureftpd() -> Iterator[PureFtpd]:
    """A running pure-ftpd with one virtual user; stopped and removed afterwards."""
    server = PureFtpd()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pureftpd() -> Iterator[PureFtpd]:
    """pure-ftpd for one test."""
    with running_pureftpd() as server:
        yield server


@dataclass
class Served:
    """One of the two real servers, as the location tests use it."""

    name: str
    root: Path                                  # the served folder, on this machine
    url: Callable[[str], str]                   # location string for a path below the root
    own: Callable[[Path], None]                 # make a file placed there the user's
    stop: Callable[[], None]
    start: Callable[[], object]
    #: Make a served folder read-only for the FTP user (pyftpdlib: its permission
    #: setting, as it runs as root; pure-ftpd: the folder's mode, its user is not root).
    deny: Callable[[Path], None]


@pytest.fixture(params=["pyftpdlib", "pure-ftpd"])
def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """Each test using this runs once against pyftpdlib and once against pure-ftpd."""
    if request.param == "pyftpdlib":
        root = tmp_path / "pyftpd-root"
        root.mkdir()
        server = PyftpdServer(root).start()
        try:
            def deny(folder: Path) -> None:
                server.handler.authorizer.override_perm(USER, str(folder), "elr",
                                                         recursive=True)

            yield Served("pyftpdlib", root, lambda path="": server.url(path),
                         lambda _path: None, server.stop, server.start, deny)
        finally:
            server.stop()
    else:
        pure = PureFtpd()
        try:
            pure.start()
            yield Served("pure-ftpd", pure.root, lambda path="": pure.url(path), pure.own,
                         pure.stop, pure.start, lambda folder: folder.chmod(0o555))
        finally:
            pure.cleanup()


@pytest.fixture
def open_ftp() -> Iterator[Callable[..., Any]]:
    """Open FTP locations from location strings (not prepared); all closed after the test.

    ``open_ftp(url, keepalive=..., **settings)``: ``settings`` are ``Settings`` fields.
    """
    from filesync.locations import Settings, parse_location
    from filesync.locations.ftp import FtpLocation
    from filesync.locations.ftp.pool import KEEPALIVE_SECONDS

    opened: list[FtpLocation] = []

    def make(url: str, keepalive: float = KEEPALIVE_SECONDS, **settings: Any) -> FtpLocation:
        location = FtpLocation(parse_location(url).unwrap(), Settings(**settings),  # type: ignore[arg-type]
                               keepalive=keepalive)
        opened.append(location)
        return location

    yield make
    for location in opened:
        location.close()
