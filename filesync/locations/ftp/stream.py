"""Moving file contents over FTP data connections: resumable downloads and upload helpers.

A download holds one pooled connection and resumes (REST) after a dropped connection; an
upload keeps its last bytes (``Window``) so it can resume where the server's copy ends.
"""

from __future__ import annotations

import collections
import contextlib
import ftplib
import io
import logging
import socket
from collections.abc import Callable

from filesync.locations.base import Readable
from filesync.locations.ftp.client import finish_data
from filesync.locations.ftp.errors import (
    FtpFailure,
    LoginRefused,
    ftp_kind,
    is_broken,
    reply_code,
)
from filesync.locations.ftp.pool import Lease
from filesync.locations.ftp.retry import retrying
from filesync.result import ErrorKind

log = logging.getLogger("filesync")

#: An interrupted upload resumes only if the bytes the server lost are still in memory.
RESUME_WINDOW = 16 << 20
#: How often one transfer may resume after a dropped connection before giving up.
MAX_RESUMES = 3


class SourceFailed(Exception):
    """Reading the source of an upload failed (it changed, or the user stopped)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class TargetChanged(Exception):
    """The target of a write no longer holds what the plan saw; nothing was replaced."""


class Window:
    """The last bytes sent, so an upload can resume where the server's copy ends."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.end = 0
        self._pieces: collections.deque[tuple[int, bytes]] = collections.deque()
        self._held = 0

    def add(self, data: bytes) -> None:
        """Remember ``data`` as the next bytes sent, forgetting what falls out of reach."""
        self._pieces.append((self.end, data))
        self.end += len(data)
        self._held += len(data)
        while self._pieces and self._held - len(self._pieces[0][1]) >= self.limit:
            self._held -= len(self._pieces.popleft()[1])

    @property
    def start(self) -> int:
        """The first byte still held (a resume must not need an earlier one)."""
        return self._pieces[0][0] if self._pieces else self.end

    def since(self, offset: int) -> bytes:
        """The bytes from ``offset`` to the end (``offset`` must be >= ``start``)."""
        return b"".join(data[max(0, offset - begin):] for begin, data in self._pieces
                        if begin + len(data) > offset)


def stale(exc: BaseException) -> bool:
    """A dropped connection (not a server that is down): worth one more try at once."""
    return is_broken(exc) and not isinstance(exc, FtpFailure)


class Counted:
    """Counts what is read from an upload's source: a retry is safe only before any byte."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        """Read from the source and count it."""
        data = self._source.read(size)
        self.count += len(data)
        return data


def abort_upload(lease: Lease, conn: socket.socket) -> None:
    """Stop an upload in flight; the connection is kept only if the server answers sanely."""
    with contextlib.suppress(OSError):
        conn.close()
    client = lease.client
    if client is None:
        return
    try:
        client.voidresp()
    except ftplib.error_temp as exc:
        lease.broken = reply_code(exc) == "421"
    except ftplib.error_perm:
        pass
    except (OSError, EOFError, ftplib.Error):
        lease.broken = True


class Download(io.RawIOBase):
    """A RETR stream that holds one pooled connection and resumes after a drop."""

    def __init__(self, lease: Lease, remote: str, label: str, can_resume: bool,
                 explain: Callable[[BaseException], str]) -> None:
        super().__init__()
        self._lease: Lease | None = lease
        self._remote = remote
        self._label = label
        self._can_resume = can_resume
        #: Turns a failure into the message of the ``OSError`` a reader sees.
        self._explain = explain
        self._conn: socket.socket | None = None
        self._pos = 0
        self._resumes = 0
        self._finished = False

    def readable(self) -> bool:
        """A download can be read."""
        return True

    def start(self) -> None:
        """Send RETR (with REST when resuming) and open the data connection."""
        lease = self._lease
        assert lease is not None
        self._conn, _ = retrying(
            lambda: lease.ftp.ntransfercmd("RETR " + self._remote, rest=self._pos or None),
            self._label)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the data connection, resuming after a drop; 0 at the end."""
        while True:
            if self._finished:
                return 0
            try:
                if self._conn is None:
                    self.start()
                assert self._conn is not None
                count = self._conn.recv_into(buffer)
                if count:
                    self._pos += count
                    return count
                conn, self._conn = self._conn, None
                finish_data(conn)
                assert self._lease is not None
                self._lease.ftp.voidresp()
                self._finished = True
                return 0
            except (OSError, EOFError, ftplib.error_temp, ftplib.error_reply,
                    ftplib.error_proto, FtpFailure) as exc:
                self._drop_conn()
                if (self._resumes >= MAX_RESUMES or not self._can_resume
                        or isinstance(exc, LoginRefused)):
                    raise self._failure(exc) from None
                self._resumes += 1
                log.info("download of %s from %s interrupted; resuming at byte %d",
                         self._remote, self._label, self._pos)
                try:
                    assert self._lease is not None
                    self._lease.renew()
                except (FtpFailure, OSError) as again:
                    raise self._failure(again) from None
            except ftplib.error_perm as exc:
                self._drop_conn()
                raise self._failure(exc) from None

    def _failure(self, exc: BaseException) -> OSError:
        """The error a reader sees: a ``ConnectionError`` when the server is out of reach.

        ``result.kind_of`` then reads it as ``UNAVAILABLE``; its ``str()`` is the message.
        """
        message = self._explain(exc)
        if ftp_kind(exc) is ErrorKind.UNAVAILABLE:
            return ConnectionError(message)
        return OSError(message)

    def _drop_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Give the connection back (closed when the transfer stopped midway)."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            if self._conn is not None or not self._finished:
                # Stopped mid-transfer: the control connection's state is unknown.
                self._drop_conn()
                lease.broken = True
            lease.release()
        super().close()
