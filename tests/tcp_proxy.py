"""A loopback TCP proxy a test can shut, to make one server unreachable for one client.

The S3 servers are shared by a whole test session; a location that reaches its server
through a ``TcpProxy`` goes away (connection refused, open connections cut) when the test
calls ``close()``, while the server keeps serving everyone else. It also counts the
connections and bytes it carried, which tests may read.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port``, thread per direction."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        #: Connections accepted so far, and bytes carried towards the target.
        self.connections = 0
        self.sent = 0
        #: Once ``sent`` passes this, the proxy shuts itself (a line cut mid-transfer).
        self.cut_after: int | None = None
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed.is_set():
                    client.close()
                    upstream.close()
                    return
                self.connections += 1
                self._sockets.update((client, upstream))
                for source, sink in ((client, upstream), (upstream, client)):
                    thread = threading.Thread(target=self._pump,
                                              args=(source, sink, source is client),
                                              name="tcp-proxy-pump", daemon=True)
                    self._threads.append(thread)
                    thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        """Copy one direction until either side closes; then close both."""
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
                if upstream:
                    with self._lock:
                        self.sent += len(data)
                        cut = self.cut_after is not None and self.sent > self.cut_after
                    if cut:
                        self._shut()
                        return
        except OSError:
            pass  # one side went away: the other is closed below, which the peer sees
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        """Stop listening and cut every open connection; new connections are refused."""
        self._shut()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def _shut(self) -> None:
        """Refuse new connections and cut the open ones (no waiting: a pump may call it)."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
