"""Keep-alive HTTP connections to one S3 host, shared by threads, and streamed bodies."""

from __future__ import annotations

import http.client
import io
import ssl
import threading
from typing import BinaryIO, cast


class ConnectionPool:
    """At most ``size`` idle keep-alive connections; more are opened when threads need them."""

    def __init__(self, scheme: str, host: str, port: int, size: int, timeout: float) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.size = max(1, size)
        self.timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._context = ssl.create_default_context() if scheme == "https" else None

    def acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection and whether it was used before (a reused one may have been dropped)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the S3 client is closed")
            if self._idle:
                return self._idle.pop(), True
        if self._context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=self._context), False
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout), False

    def release(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        """Give a connection back (closed instead when it cannot serve another request)."""
        if reusable and conn.sock is not None:
            with self._lock:
                if not self._closed and len(self._idle) < self.size:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        """Close every idle connection; connections in use close when released."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _ResponseReader(io.RawIOBase):
    """A response body; closing it returns the connection when the body was read to the end."""

    def __init__(self, pool: ConnectionPool, conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse) -> None:
        self._pool, self._conn, self._response = pool, conn, response
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        count = self._response.readinto(buffer)
        if count == 0 and len(buffer):
            self._done = True
        return count

    def close(self) -> None:
        if not self.closed:
            complete = self._done or self._response.isclosed()
            reusable = complete and not self._response.will_close
            if not complete:
                self._response.close()
            self._pool.release(self._conn, reusable)
        super().close()


def stream(pool: ConnectionPool, conn: http.client.HTTPConnection,
           response: http.client.HTTPResponse) -> BinaryIO:
    """A buffered binary reader over ``response``; ``close()`` hands ``conn`` back to ``pool``."""
    return cast(BinaryIO, io.BufferedReader(_ResponseReader(pool, conn, response),
                                            buffer_size=256 * 1024))


class LimitedReader:
    """At most ``size`` bytes of a file object, for a request body of known length."""

    def __init__(self, source: BinaryIO, size: int) -> None:
        self._source, self._left = source, size

    def read(self, amount: int = -1) -> bytes:
        """Up to ``amount`` bytes (all that is left when negative)."""
        if self._left <= 0:
            return b""
        want = self._left if amount is None or amount < 0 else min(amount, self._left)
        data = self._source.read(want)
        self._left -= len(data)
        return data
