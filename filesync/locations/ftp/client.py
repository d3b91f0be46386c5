"""FTP and FTPS control connections as ``ftplib`` clients, and closing them politely."""

from __future__ import annotations

import contextlib
import ftplib
import socket
import ssl
from typing import Any

#: Seconds to wait for a server to answer (connect, commands, data).
TIMEOUT_SECONDS = 30.0


class _Replies:
    """Decode control replies leniently: a greeting in Latin-1 must not break the session."""

    sock: socket.socket | None
    encoding: str
    file: Any

    def _lenient_file(self) -> None:
        if self.sock is not None:
            self.file = self.sock.makefile("r", encoding=self.encoding, errors="replace")


class PlainClient(_Replies, ftplib.FTP):
    """A plain FTP control connection."""

    tls = False

    def connect(self, *args: Any, **kwargs: Any) -> str:
        """Connect and read the greeting."""
        welcome = super().connect(*args, **kwargs)
        self._lenient_file()
        return welcome


class TlsClient(_Replies, ftplib.FTP_TLS):
    """An explicit-TLS control connection (AUTH TLS) with protected data connections.

    Data connections resume the control connection's TLS session: many servers (vsftpd,
    pure-ftpd in strict mode) refuse data connections that do not.
    """

    tls = True

    def connect(self, *args: Any, **kwargs: Any) -> str:
        """Connect and read the greeting (still unencrypted: ``auth`` follows)."""
        welcome = super().connect(*args, **kwargs)
        self._lenient_file()
        return welcome

    def auth(self) -> str:
        """Switch the control connection to TLS (AUTH TLS), checking the certificate."""
        reply = super().auth()
        self._lenient_file()
        return reply

    def ntransfercmd(self, cmd: str,
                     rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        """Open a data connection, wrapped in TLS when PROT P is on.

        Unlike ftplib's, it resumes the control connection's TLS session, which servers
        such as pure-ftpd and vsftpd require on data connections.
        """
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if getattr(self, "_prot_p", False):  # set by ftplib's prot_p()
            session = getattr(self.sock, "session", None)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


Client = PlainClient | TlsClient


def finish_data(conn: socket.socket) -> None:
    """Close a data connection properly (a TLS one says goodbye first, as servers expect).

    A failed goodbye is not an error: the server's reply and the size check decide.
    """
    try:
        if isinstance(conn, ssl.SSLSocket):
            with contextlib.suppress(OSError):
                conn.unwrap()
    finally:
        conn.close()


def close_quietly(client: Client | None, polite: bool = False) -> None:
    """Close a connection, saying QUIT first when ``polite``; errors do not matter here."""
    if client is None:
        return
    if polite and client.sock is not None:
        # QUIT without waiting for the goodbye: a slow server must not delay our exit.
        with contextlib.suppress(OSError, ValueError):
            client.sock.settimeout(2)
            client.putcmd("QUIT")
    with contextlib.suppress(OSError):
        client.close()
