"""The web dashboard: a read-only page and ``/api/status`` served by the standard library.

``Dashboard(address, provider)`` runs a ``ThreadingHTTPServer`` in a thread it owns. Every
request calls ``provider()`` for the status document (see ``status --json``), so the
provider must be safe to call from several threads at once. The page is rendered on the
server from one document (it shows the data without JavaScript) and then refreshes itself
from ``/api/status`` every second.

Safety: only GET and HEAD; no external resources (a strict Content-Security-Policy); when
bound to a loopback address, requests for any other host name are refused (DNS
rebinding); binding anywhere else logs a warning, because everyone who can reach the port
sees the file names.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from filesync.dashboard_page import render_page
from filesync.result import Err, ErrorKind, Ok, Result

log = logging.getLogger("filesync")

DEFAULT_HOST = "127.0.0.1"
#: The host names a browser may use for a dashboard bound to a loopback address.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
#: Only the page's own script and style; nothing from anywhere else, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSETS = Path(__file__).resolve().parent
#: Static files served next to the page: URL path -> (file, content type).
_STATIC = {
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
#: Seconds a connection may stay silent before its thread gives up on it.
REQUEST_TIMEOUT = 10.0

StatusProvider = Callable[[], "dict[str, Any]"]


def parse_address(text: str) -> Result[tuple[str, int]]:
    """``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT`` -> ``(host, port)``; host 127.0.0.1 by default.

    Port 0 asks the system for any free port.
    """
    value = text.strip()
    if not value:
        return _address_error(text, "it is empty")
    if value.startswith("["):
        close = value.find("]")
        if close < 0 or not value[close + 1:].startswith(":"):
            return _address_error(text, "write an IPv6 address as [ADDRESS]:PORT, "
                                        "e.g. [::1]:8080")
        host, port_text = value[1:close], value[close + 2:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return _address_error(text, f"{host!r} is not an IPv6 address")
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        if ":" in host:
            return _address_error(text, "write an IPv6 address in brackets, e.g. [::1]:8080")
        if not host:
            host = DEFAULT_HOST
        elif not _is_host_name(host):
            return _address_error(text, f"{host!r} is not a host name or IP address")
    else:
        host, port_text = DEFAULT_HOST, value
    if not port_text.isdigit() or not port_text.isascii():
        return _address_error(text, f"the port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        return _address_error(text, f"the port {port} is above 65535")
    return Ok((host, port))


def _address_error(text: str, why: str) -> Err:
    return Err(f"bad dashboard address {text!r}: {why}; expected PORT or HOST:PORT "
               "(e.g. 8080, 127.0.0.1:8080, [::1]:8080)", ErrorKind.INVALID)


def _is_host_name(host: str) -> bool:
    """A dotted IPv4 address or a DNS name (letters, digits, '-', '.')."""
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(
        label and len(label) <= 63 and label.isascii()
        and label.replace("-", "").isalnum() and not label.startswith("-")
        for label in labels)


def is_loopback(host: str) -> bool:
    """Whether an address (as bound) only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """The warning to log when the dashboard is reachable from other machines, else None."""
    if is_loopback(host):
        return None
    return (f"the dashboard listens on {_url_host(host)}:{port}, not only on this machine: "
            "anyone who can reach that address sees the file names and status of this "
            "sync set (there is no login); use 127.0.0.1:PORT unless that is intended")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def host_allowed(host_header: str | None) -> bool:
    """Whether a Host header names this machine's loopback (with or without a port)."""
    if not host_header:
        return False
    name = host_header.strip().lower()
    name = name[:name.find("]") + 1] if name.startswith("[") else name.partition(":")[0]
    return name in LOOPBACK_NAMES


class _Server(ThreadingHTTPServer):
    """Joins its request threads on close and can cut their connections short."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily,
                 dashboard: Dashboard) -> None:
        self.address_family = family
        self.dashboard = dashboard
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Wake threads waiting on idle connections (a browser's spare sockets) at stop."""
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # already closed by its thread
                log.debug("dashboard: closing a connection: %s", exc)


class _Handler(BaseHTTPRequestHandler):
    """Serves the page, its script and style, and the status document."""

    server: _Server
    server_version = "filesync-dashboard"
    sys_version = ""
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def __getattr__(self, name: str) -> Any:
        # Any other method (POST, PUT, DELETE, ...): the dashboard is read-only.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def _method_not_allowed(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, _json_bytes({"error": "read-only: use GET"}),
                   "application/json", extra={"Allow": "GET, HEAD"})

    def _respond(self, send_body: bool) -> None:
        dashboard = self.server.dashboard
        if dashboard.check_host and not host_allowed(self.headers.get("Host")):
            self._send(HTTPStatus.FORBIDDEN, b"forbidden: open the dashboard as "
                       b"http://127.0.0.1:PORT/ or http://localhost:PORT/\n",
                       "text/plain; charset=utf-8", send_body)
            return
        path = self.path.split("?", 1)[0]
        if path == "/api/status":
            status, document = dashboard.read_status()
            body = _json_bytes(document if status == HTTPStatus.OK else
                               {"error": dashboard.error_text})
            self._send(status, body, "application/json", send_body)
        elif path == "/":
            status, document = dashboard.read_status()
            page = render_page(document, None if status == HTTPStatus.OK
                               else dashboard.error_text)
            self._send(status, page.encode("utf-8", "replace"), "text/html; charset=utf-8",
                       send_body)
        elif path in _STATIC:
            file_name, content_type = _STATIC[path]
            self._send(HTTPStatus.OK, (_ASSETS / file_name).read_bytes(), content_type,
                       send_body)
        else:
            self._send(HTTPStatus.NOT_FOUND, _json_bytes({"error": "not found"}),
                       "application/json", send_body)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              send_body: bool = True, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def end_headers(self) -> None:
        # On every response, the server's own error pages included.
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: %s - %s", self.address_string(), format % args)


def _json_bytes(document: object) -> bytes:
    # ASCII escapes keep undecodable file names (lone surrogates) valid JSON.
    return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class Dashboard:
    """The dashboard server on ``address`` showing what ``provider()`` returns."""

    error_text = "the status could not be read; see the filesync log"

    def __init__(self, address: tuple[str, int], provider: StatusProvider) -> None:
        self.address = address
        self.provider = provider
        #: Whether requests must name a loopback host (set at start, from the bound address).
        self.check_host = True
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str | None:
        """``http://HOST:PORT/`` once started, else None."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return f"http://{_url_host(str(host))}:{port}/"

    def start(self) -> Result[str]:
        """Bind and serve in a background thread; Ok(url), or Err saying what to do."""
        with self._lock:
            if self._server is not None:
                return Ok(str(self.url))
            host, port = self.address
            resolved = _resolve(host, port)
            if not resolved.ok:
                return resolved
            family, sockaddr = resolved.value
            try:
                server = _Server(sockaddr, family, self)
            except OSError as exc:
                return Err(_bind_error(host, port, exc), ErrorKind.INVALID)
            bound_host = str(server.server_address[0])
            self.check_host = is_loopback(bound_host)
            warning = exposure_warning(bound_host, int(server.server_address[1]))
            if warning:
                log.warning("%s", warning)
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever,
                                            kwargs={"poll_interval": 0.2},
                                            name="filesync-dashboard", daemon=True)
            self._thread.start()
            url = str(self.url)
        log.info("dashboard: %s", url)
        return Ok(url)

    def stop(self) -> None:
        """Stop serving and join every thread of the server; safe to call again."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.cut_connections()
        server.server_close()  # joins the request threads
        thread.join()

    def read_status(self) -> tuple[HTTPStatus, dict[str, Any] | None]:
        """Call the provider; a failure is logged and answered with 500, never raised."""
        try:
            document = self.provider()
            # Serialise once here so an unserialisable document also counts as a failure.
            json.dumps(document)
        except Exception:  # the provider is someone else's code; the server must go on
            log.exception("dashboard: the status provider failed")
            return HTTPStatus.INTERNAL_SERVER_ERROR, None
        return HTTPStatus.OK, document

    def __enter__(self) -> Dashboard:
        started = self.start()
        if not started.ok:
            raise OSError(started.message)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def _resolve(host: str, port: int) -> Result[tuple[socket.AddressFamily, tuple[str, int]]]:
    """The address family and socket address to bind for ``host``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return Err(f"cannot serve the dashboard on {host!r}: no such host ({exc}); "
                   "use 127.0.0.1:PORT or an address of this machine", ErrorKind.INVALID)
    # Prefer IPv4 for names like "localhost" that resolve to both.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, sockaddr = infos[0]
    return Ok((socket.AddressFamily(family), (str(sockaddr[0]), int(sockaddr[1]))))


def _bind_error(host: str, port: int, exc: OSError) -> str:
    where = f"{_url_host(host)}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot serve the dashboard on {where}: the port is already in use; "
                "stop what uses it or choose another port (0 picks any free one)")
    if exc.errno == errno.EACCES:
        return (f"cannot serve the dashboard on {where}: not allowed (ports below 1024 "
                "need root); choose a port above 1023")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot serve the dashboard on {where}: this machine has no such "
                "address; use 127.0.0.1 or one of its own addresses")
    return f"cannot serve the dashboard on {where}: {exc.strerror or exc}"
