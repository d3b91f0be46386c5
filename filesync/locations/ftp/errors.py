"""FTP failures and their kinds: one place turns any exception into an ``Err``'s kind.

Servers say what went wrong in a three-digit code and a free text. The code alone cannot
tell a missing file from a forbidden one (both are 550 on most servers; pure-ftpd answers
553 for refused uploads of either), so the text is read too. Wordings seen in the wild:

- pyftpdlib: ``550 No such file or directory.``, ``501 No such directory.`` (MLSD),
  ``550 /x is not retrievable`` (SIZE, MDTM), ``550 Not enough privileges.``,
  ``550 Directory not empty.``, ``530 Authentication failed.``
- pure-ftpd: ``550 Can't open x: No such file or directory``, ``550 Sorry, but that file
  doesn't exist`` (RNFR), ``553 Can't open that file: Permission denied``, ``451
  Rename/move failure: Permission denied``, ``553 Prohibited file name: x``,
  ``530 Login authentication failed``

A reply that says neither is ``FAILED``; callers that can afford one more round trip
(``open_read``, ``rename``) look the path up to tell ``NOT_FOUND`` for sure.
"""

from __future__ import annotations

import ftplib
import re

from filesync.result import ErrorKind


class FtpFailure(Exception):
    """A failure worth telling the user about; ``str()`` is the message."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.FAILED) -> None:
        super().__init__(message)
        #: What went wrong, for the engine (``ftp_kind`` reads it).
        self.kind = kind


class ServerUnavailable(FtpFailure):
    """The server cannot be reached or dropped the connection; it may come back."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorKind.UNAVAILABLE)


class LoginRefused(FtpFailure):
    """The server refused the login, TLS or its certificate: configuration, not luck.

    ``INVALID`` rather than ``REFUSED`` when our own settings are at fault (a CA file
    that cannot be read).
    """

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.REFUSED) -> None:
        super().__init__(message, kind)


class TooManyConnections(FtpFailure):
    """The server refused one more connection (421) while others are open.

    Not a ``ServerUnavailable``: the pool handles it by using fewer connections.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorKind.UNAVAILABLE)


#: Everything an FTP operation may raise that is the server's or the network's doing:
#: the one tuple every ``except`` at the location boundary uses.
FTP_ERRORS: tuple[type[BaseException], ...] = (FtpFailure, ftplib.Error, OSError, EOFError)


def reply_code(exc: BaseException) -> str:
    """The three-digit code of an ``ftplib`` error ("" when it has none)."""
    text = str(exc)
    return text[:3] if text[:3].isdigit() else ""


def is_broken(exc: BaseException) -> bool:
    """True when ``exc`` means the connection it happened on cannot be used any more."""
    if isinstance(exc, ftplib.error_temp):
        return reply_code(exc) == "421"
    return isinstance(exc, (OSError, EOFError, ftplib.error_reply, ftplib.error_proto,
                            ServerUnavailable, UnicodeDecodeError))


_NOT_FOUND = re.compile(
    r"no such (file|directory|folder|path)|not found|does ?n[o']t exist|not exist|"
    r"is not retrievable|cannot find|can't find|unknown (file|directory)", re.IGNORECASE)
_REFUSED = re.compile(
    r"permission|privilege|access (is )?denied|forbidden|not allowed|read[- ]only|"
    r"not authori[sz]ed|operation not permitted", re.IGNORECASE)
_NO_SPACE = re.compile(
    r"no (space|room)|disk (is )?full|quota|insufficient storage|storage allocation|"
    r"exceeded storage", re.IGNORECASE)
_INVALID = re.compile(r"(prohibited|illegal|invalid|bad) (file ?)?name|name not allowed|"
                      r"file ?name too long", re.IGNORECASE)
#: Replies that mean "not now": the server or its data connections are out of reach.
_UNAVAILABLE_CODES = frozenset({"421", "425", "426", "450"})


def reply_kind(code: str, text: str) -> ErrorKind:
    """The kind of a server reply: its code where that is unambiguous, else its text."""
    if code == "421":
        return ErrorKind.UNAVAILABLE  # the server is closing the session
    if code in ("530", "532"):
        return ErrorKind.REFUSED      # not logged in
    if code in ("452", "552") or _NO_SPACE.search(text):
        return ErrorKind.NO_SPACE
    for pattern, kind in ((_NOT_FOUND, ErrorKind.NOT_FOUND), (_REFUSED, ErrorKind.REFUSED),
                          (_INVALID, ErrorKind.INVALID)):
        if pattern.search(text):
            return kind
    if code in _UNAVAILABLE_CODES:
        return ErrorKind.UNAVAILABLE
    if code == "553":
        return ErrorKind.REFUSED      # "requested action not taken": the server will not
    return ErrorKind.FAILED


def ftp_kind(exc: BaseException) -> ErrorKind:
    """The kind of anything ``FTP_ERRORS`` holds (and of ``UnicodeDecodeError``).

    A refused login is ``REFUSED``; a server out of reach, a dropped connection, a
    timeout or a 421 ``UNAVAILABLE``; a server reply by its code and text (``reply_kind``).
    """
    if isinstance(exc, FtpFailure):
        return exc.kind
    if isinstance(exc, ftplib.Error) and not is_broken(exc):
        return reply_kind(reply_code(exc), str(exc))
    if is_broken(exc):
        # Sockets, TLS and unreadable replies: the connection, not the file, failed.
        return ErrorKind.UNAVAILABLE
    return ErrorKind.FAILED
