"""A small typed Result: operations that can fail return ``Ok(value)`` or ``Err(message)``.

An ``Err`` carries a ``kind`` (what went wrong, for the engine's decisions: exit codes,
retries, "unavailable is not empty") and a message (for the user). Policy reads the kind,
never the wording.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Generic, Literal, NoReturn, TypeVar, Union

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Ok(Generic[T_co]):
    """A successful outcome carrying ``value``."""

    value: T_co
    #: Always True; a literal, so type checkers narrow ``Result`` on ``if result.ok``.
    ok: ClassVar[Literal[True]] = True

    def unwrap(self) -> T_co:
        """Return the value."""
        return self.value


class ErrorKind(Enum):
    """What kind of failure an ``Err`` reports; the engine decides what to do from it."""

    #: The location cannot be reached now (server down, root or marker missing): skip it
    #: this round, retry later, and never conclude that anything in it was deleted.
    UNAVAILABLE = "unavailable"
    #: The path (or a folder on its way) is not there.
    NOT_FOUND = "not found"
    #: Login refused, permission denied, or an operation the location forbids: retrying
    #: the same thing will not help.
    REFUSED = "refused"
    #: The target changed since the plan was made: a new change for the next round.
    CHANGED = "changed"
    #: Bad input: a location string, an option, a name the location cannot hold, a
    #: damaged archive.
    INVALID = "invalid"
    #: The disk or quota is full.
    NO_SPACE = "no space"
    #: Anything else (an I/O error, an unexpected reply).
    FAILED = "failed"


_ERRNO_KINDS = {
    errno.ENOENT: ErrorKind.NOT_FOUND, errno.ENOTDIR: ErrorKind.NOT_FOUND,
    errno.EACCES: ErrorKind.REFUSED, errno.EPERM: ErrorKind.REFUSED,
    errno.EROFS: ErrorKind.REFUSED, errno.ENOSPC: ErrorKind.NO_SPACE,
    errno.EDQUOT: ErrorKind.NO_SPACE, errno.EFBIG: ErrorKind.NO_SPACE,
    errno.ENAMETOOLONG: ErrorKind.INVALID, errno.EILSEQ: ErrorKind.INVALID,
    errno.ECONNREFUSED: ErrorKind.UNAVAILABLE, errno.ECONNRESET: ErrorKind.UNAVAILABLE,
    errno.ETIMEDOUT: ErrorKind.UNAVAILABLE, errno.EHOSTUNREACH: ErrorKind.UNAVAILABLE,
    errno.ENETUNREACH: ErrorKind.UNAVAILABLE, errno.EPIPE: ErrorKind.UNAVAILABLE,
    errno.ENODEV: ErrorKind.UNAVAILABLE, errno.ENXIO: ErrorKind.UNAVAILABLE,
}


def kind_of(exc: BaseException) -> ErrorKind:
    """The kind of an ``OSError`` by its errno (``FAILED`` for anything else)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return _ERRNO_KINDS.get(exc.errno, ErrorKind.FAILED)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return ErrorKind.UNAVAILABLE
    return ErrorKind.FAILED


@dataclass(frozen=True)
class Err:
    """A failed outcome: a message a user can act on, and its kind for the engine."""

    message: str
    kind: ErrorKind = ErrorKind.FAILED
    #: Always False; see ``Ok.ok``.
    ok: ClassVar[Literal[False]] = False

    def unwrap(self) -> NoReturn:
        """Raise, because there is no value; callers should check ``ok`` first."""
        raise ResultError(self.message)


class ResultError(RuntimeError):
    """Raised by ``Err.unwrap()``: a programming error, not a user-facing one."""


Result = Union[Ok[T], Err]
