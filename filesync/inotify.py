"""Linux inotify through ``ctypes``: watches on folders, events read and parsed from the fd.

Standard library only. ``available()`` says whether this system has inotify; ``Inotify``
owns one inotify file descriptor (``close`` is idempotent). Errors of ``add_watch`` become
exceptions the caller can tell apart: ``WatchLimitError`` (``ENOSPC``: the table of
``fs.inotify.max_user_watches`` is full), ``WatchAccessError`` (``EACCES``) and
``WatchGoneError`` (``ENOENT``/``ENOTDIR``: the folder vanished).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any

# Event bits (linux/inotify.h).
IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
# inotify_init1 flags (the values of O_NONBLOCK and O_CLOEXEC on Linux).
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

#: What a folder watch asks for: changes of its entries and of the folder itself.
FOLDER_MASK = (IN_CREATE | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM
               | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW
               | IN_EXCL_UNLINK)

#: ``struct inotify_event`` without its name: wd, mask, cookie, len.
_HEADER = struct.Struct("iIII")
#: Enough for many events per read (one event is at most 16 + NAME_MAX + 1 bytes).
_READ_SIZE = 64 * 1024
#: Reads per ``read`` call before returning what was gathered (bounded work per call).
_MAX_READS = 16


class InotifyError(OSError):
    """An inotify call failed (``errno`` tells why)."""


class WatchLimitError(InotifyError):
    """``ENOSPC``: no more watches (``fs.inotify.max_user_watches`` is reached)."""


class WatchAccessError(InotifyError):
    """``EACCES``: the folder may not be read."""


class WatchGoneError(InotifyError):
    """``ENOENT``/``ENOTDIR``: the folder is gone (or is no folder any more)."""


_ERRORS: dict[int, type[InotifyError]] = {
    errno.ENOSPC: WatchLimitError,
    errno.EACCES: WatchAccessError,
    errno.ENOENT: WatchGoneError,
    errno.ENOTDIR: WatchGoneError,
}


@dataclass(frozen=True)
class RawEvent:
    """One ``struct inotify_event``; ``name`` is decoded with ``os.fsdecode`` ("" for none)."""

    wd: int
    mask: int
    cookie: int
    name: str

    @property
    def is_dir(self) -> bool:
        """True when the event's subject is a directory."""
        return bool(self.mask & IN_ISDIR)


def pack_event(wd: int, mask: int, cookie: int = 0, name: str = "") -> bytes:
    """The kernel's bytes for one event (names NUL-padded to 16 bytes), as ``parse`` reads."""
    raw = os.fsencode(name)
    if raw:
        raw += b"\0" * (16 - len(raw) % 16)
    return _HEADER.pack(wd, mask, cookie, len(raw)) + raw


def parse_events(data: bytes) -> list[RawEvent]:
    """Split a buffer read from an inotify fd into events.

    A truncated event at the end is an error: the kernel only returns whole events.
    """
    events: list[RawEvent] = []
    offset, size = 0, len(data)
    while offset < size:
        if offset + _HEADER.size > size:
            raise ValueError(f"truncated inotify event header at byte {offset}")
        wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        if offset + length > size:
            raise ValueError(f"truncated inotify event name at byte {offset}")
        name = data[offset:offset + length].split(b"\0", 1)[0]
        offset += length
        events.append(RawEvent(wd, mask, cookie, os.fsdecode(name)))
    return events


_libc: Any = None
_libc_lock = threading.Lock()


def _load_libc() -> Any:
    """The C library with the inotify functions typed, or None where there is none."""
    global _libc  # noqa: PLW0603 - loaded once per process
    with _libc_lock:
        if _libc is not None:
            return _libc or None
        _libc = False
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if not hasattr(libc, "inotify_init1"):
                name = ctypes.util.find_library("c")
                if name is None:
                    return None
                libc = ctypes.CDLL(name, use_errno=True)
            init, add, remove = (libc.inotify_init1, libc.inotify_add_watch,
                                 libc.inotify_rm_watch)
        except (OSError, AttributeError):
            return None
        init.argtypes, init.restype = [ctypes.c_int], ctypes.c_int
        add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        add.restype = ctypes.c_int
        remove.argtypes, remove.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _libc = libc
        return libc


def available() -> bool:
    """True on Linux when libc offers inotify."""
    return _load_libc() is not None


def _error(call: str, path: str | None = None) -> InotifyError:
    code = ctypes.get_errno()
    kind = _ERRORS.get(code, InotifyError)
    return kind(code, f"{call}: {os.strerror(code)}", path)


class Inotify:
    """One inotify instance: add and remove folder watches, read their events.

    ``watch_limit`` (tests only) makes ``add_watch`` fail with ``ENOSPC`` once that many
    watches exist, as the kernel does at ``fs.inotify.max_user_watches``.
    """

    def __init__(self, watch_limit: int | None = None) -> None:
        libc = _load_libc()
        if libc is None:
            raise InotifyError(errno.ENOSYS, "inotify is not available on this system")
        self._libc = libc
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise _error("inotify_init1")
        self._fd: int | None = fd
        self.watch_limit = watch_limit
        self._watches: set[int] = set()
        self._injected: list[bytes] = []
        self._inject_lock = threading.Lock()

    def fileno(self) -> int:
        """The inotify file descriptor (an error once closed)."""
        if self._fd is None:
            raise ValueError("inotify instance is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        """True once ``close`` ran."""
        return self._fd is None

    def add_watch(self, path: str, mask: int = FOLDER_MASK) -> int:
        """Watch ``path``; returns the watch descriptor (the same one for a watched inode)."""
        fd = self.fileno()
        if self.watch_limit is not None and len(self._watches) >= self.watch_limit:
            raise WatchLimitError(errno.ENOSPC, "inotify_add_watch: "
                                  + os.strerror(errno.ENOSPC), path)
        wd = self._libc.inotify_add_watch(fd, os.fsencode(path), mask)
        if wd < 0:
            raise _error("inotify_add_watch", path)
        self._watches.add(wd)
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        """Stop a watch; one the kernel already dropped (``EINVAL``) is no error."""
        fd = self.fileno()
        self._watches.discard(wd)
        if self._libc.inotify_rm_watch(fd, wd) < 0 and ctypes.get_errno() != errno.EINVAL:
            raise _error("inotify_rm_watch")

    def forget(self, wd: int) -> None:
        """Drop ``wd`` from the count after the kernel removed it (``IN_IGNORED``)."""
        self._watches.discard(wd)

    def inject(self, data: bytes) -> None:
        """Feed raw event bytes to the next ``read`` (tests: an overflow, say)."""
        with self._inject_lock:
            self._injected.append(data)

    def read(self, timeout: float | None) -> list[RawEvent]:
        """Wait up to ``timeout`` seconds for events and return all that are ready."""
        with self._inject_lock:
            data, self._injected = b"".join(self._injected), []
        fd = self.fileno()
        if not data:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return []
        chunks = [data]
        for _ in range(_MAX_READS):
            try:
                chunk = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                break
            chunks.append(chunk)
            if len(chunk) < _READ_SIZE // 2:
                break
        return parse_events(b"".join(chunks))

    def close(self) -> None:
        """Close the fd (the kernel drops every watch); calling it again does nothing."""
        fd, self._fd = self._fd, None
        self._watches.clear()
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
