"""A bounded pool of logged-in FTP/FTPS connections shared by every thread of one location.

The pool never holds more than ``limit`` connections (fewer when the server answers 421
"too many connections"), reuses logins, replaces a connection that dropped, backs off
while the server is unreachable, stops trying after a refused login, and keeps idle
connections alive with NOOP.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from filesync.locations.ftp.client import Client, close_quietly
from filesync.locations.ftp.errors import (
    FtpFailure,
    LoginRefused,
    ServerUnavailable,
    TooManyConnections,
    is_broken,
)

log = logging.getLogger("filesync")

T = TypeVar("T")

#: Seconds a connection may sit idle before it gets a NOOP (servers drop idle ones).
KEEPALIVE_SECONDS = 30.0
#: Backoff while a server is unreachable: first delay, growth factor, ceiling (seconds).
BACKOFF_FIRST, BACKOFF_FACTOR, BACKOFF_MAX = 0.5, 2.0, 15.0
#: After a refused login, wait this long before logging in again (no retry storm).
LOGIN_RETRY_SECONDS = 60.0


class Lease:
    """One connection lent to one thread; ``renew`` swaps a dropped one for a fresh one."""

    def __init__(self, pool: FtpPool, client: Client) -> None:
        self.pool = pool
        self.client: Client | None = client
        #: Set when the connection is in an unknown state; it is closed on release.
        self.broken = False

    @property
    def ftp(self) -> Client:
        """The connection (raises when a failed ``renew`` left none)."""
        if self.client is None:
            raise ServerUnavailable(f"no connection to {self.pool.label}")
        return self.client

    def renew(self) -> Client:
        """Close the current connection and log in again on the same slot."""
        close_quietly(self.client)
        self.client = None
        self.pool.forget_idle()
        self.client = self.pool.open_connection()
        self.broken = False
        return self.client

    def release(self) -> None:
        """Give the connection back (or close it when broken)."""
        client, self.client = self.client, None
        self.pool.give_back(client, self.broken)


class FtpPool:
    """At most ``limit`` connections, opened on demand by ``connect`` and shared by threads."""

    def __init__(self, connect: Callable[[], Client], limit: int, label: str,
                 keepalive: float = KEEPALIVE_SECONDS) -> None:
        self._connect = connect
        self.limit = max(1, limit)
        self.label = label
        self.keepalive = keepalive
        self._cond = threading.Condition()
        self._idle: list[tuple[Client, float]] = []
        self._count = 0          # connections open or being opened (leased + idle)
        self._cap = self.limit   # lowered when the server refuses more connections
        self._failure: FtpFailure | None = None
        self._retry_at = 0.0
        self._delay = 0.0
        self._closed = False
        self._keeper: threading.Thread | None = None
        #: The most connections this pool ever had at once (tests check the limit).
        self.peak = 0

    # ----- connections ------------------------------------------------------------------
    def open_connection(self) -> Client:
        """Log in once (the slot is the caller's), honouring backoff and refused logins."""
        with self._cond:
            failure = self._failure
            if failure is not None and time.monotonic() < self._retry_at:
                raise failure
        try:
            client = self._connect()
        except (ServerUnavailable, LoginRefused) as exc:
            self._note_failure(exc)
            raise
        with self._cond:
            if self._failure is not None:
                log.debug("%s reachable again", self.label)
            self._failure = None
            self._delay = 0.0
            self._start_keeper()
        return client

    def _note_failure(self, exc: ServerUnavailable | LoginRefused) -> None:
        """Refuse new attempts for a while: a refused login for long, an outage growing."""
        with self._cond:
            if isinstance(exc, LoginRefused):
                self._retry_at = time.monotonic() + LOGIN_RETRY_SECONDS
            else:
                self._delay = min(BACKOFF_MAX, max(BACKOFF_FIRST, self._delay * BACKOFF_FACTOR))
                self._retry_at = time.monotonic() + self._delay
                log.debug("%s unreachable; next attempt in %.1f s", self.label, self._delay)
            self._failure = exc

    def acquire(self) -> Lease:
        """Lend a connection: an idle one, a new one within the limit, or wait for one."""
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        raise ServerUnavailable(f"{self.label} is closed")
                    if self._idle:
                        client, _ = self._idle.pop()
                        return Lease(self, client)
                    if self._count < self._cap:
                        self._count += 1
                        self.peak = max(self.peak, self._count)
                        break
                    self._cond.wait(1.0)
            try:
                return Lease(self, self.open_connection())
            except TooManyConnections:
                with self._cond:
                    self._count -= 1
                    if self._count > 0:
                        # The server allows only this many: stay below its limit and wait.
                        self._cap = self._count
                        log.debug("%s allows %d connections; using no more", self.label,
                                  self._cap)
                        self._cond.notify_all()
                        continue
                busy = ServerUnavailable(f"{self.label} refuses every connection (421 too "
                                         "many connections); it will be retried")
                self._note_failure(busy)
                raise busy from None
            except BaseException:
                with self._cond:
                    self._count -= 1
                    self._cond.notify_all()
                raise

    def give_back(self, client: Client | None, broken: bool) -> None:
        """Return a lent connection; a broken one is closed and its slot freed."""
        with self._cond:
            if client is not None and not broken and not self._closed:
                self._idle.append((client, time.monotonic()))
                self._cond.notify()
                return
            self._count -= 1
            self._cond.notify_all()
        if broken:
            log.debug("dropping a broken connection to %s", self.label)
            self.forget_idle()
        close_quietly(client)

    def forget_idle(self) -> None:
        """Close idle connections: after one dropped, the others are likely dead too."""
        with self._cond:
            stale = [client for client, _ in self._idle]
            self._idle.clear()
            self._count -= len(stale)
            self._cond.notify_all()
        for client in stale:
            close_quietly(client)

    @contextlib.contextmanager
    def lease(self) -> Iterator[Lease]:
        """``with pool.lease() as lease:`` use ``lease.ftp``; errors decide its fate."""
        lease = self.acquire()
        try:
            yield lease
        except BaseException as exc:
            lease.broken = lease.broken or is_broken(exc) or not isinstance(exc, Exception)
            raise
        finally:
            lease.release()

    def run(self, work: Callable[[Client], T]) -> T:
        """Run ``work`` on a connection; once more on a fresh one if the connection dropped.

        ``work`` must be safe to repeat (listings, stats, idempotent commands).
        """
        for attempt in (1, 2):
            with self.lease() as lease:
                try:
                    return work(lease.ftp)
                except Exception as exc:
                    if attempt == 2 or not is_broken(exc) or isinstance(exc, FtpFailure):
                        raise
                    lease.broken = True
                    log.debug("connection to %s dropped (%s); reconnecting", self.label, exc)
        raise AssertionError("unreachable")

    # ----- keepalive ----------------------------------------------------------------------
    def _start_keeper(self) -> None:
        if self._keeper is None and self.keepalive > 0 and not self._closed:
            self._keeper = threading.Thread(target=self._keep_alive, daemon=True,
                                            name="filesync-ftp-noop")
            self._keeper.start()

    def _keep_alive(self) -> None:
        """Send NOOP on connections idle for ``keepalive`` seconds, so servers keep them."""
        while True:
            with self._cond:
                if self._closed:
                    return
                self._cond.wait(self.keepalive / 4)
                if self._closed:
                    return
                now = time.monotonic()
                due = [(c, t) for c, t in self._idle if now - t >= self.keepalive]
                self._idle = [(c, t) for c, t in self._idle if now - t < self.keepalive]
            for client, _ in due:
                try:
                    client.voidcmd("NOOP")
                except (OSError, EOFError, ftplib.Error):
                    self.give_back(client, broken=True)
                else:
                    self.give_back(client, broken=False)

    # ----- shutdown -----------------------------------------------------------------------
    def close(self) -> None:
        """Say goodbye on idle connections; lent ones are closed when given back."""
        with self._cond:
            self._closed = True
            idle = [client for client, _ in self._idle]
            self._idle.clear()
            self._count -= len(idle)
            self._cond.notify_all()
        for client in idle:
            close_quietly(client, polite=True)
        keeper = self._keeper
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join(5)
