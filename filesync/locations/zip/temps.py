"""The temporary files beside an archive: staging files and new archives being written.

Each one is locked (``flock``) while a filesync process uses it, so a later run can tell a
file abandoned by a killed run (stale: safe to remove) from one a live run still writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from filesync.model import TEMP_NAME

try:
    import fcntl
except ImportError:  # not on POSIX: temporary files are then told apart by this process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("filesync")

CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def lock_file(fd: int) -> None:
    """Mark a temporary file as in use, so no other run removes it as stale."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def in_use(path: str) -> bool:
    """True when a live filesync process holds the lock of this temporary file."""
    if fcntl is None:
        return False
    try:
        # Never wait on a FIFO or follow a link someone put under a temporary name.
        fd = os.open(path, os.O_RDONLY | CLOEXEC | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


class Temps:
    """The temporary files of this process beside the archive, and the stale ones of others."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        #: Names of this process's own temporary files beside the archive.
        self.live: set[str] = set()
        self._stamp: int | None = None
        self._names: list[str] = []

    def stale(self) -> list[str]:
        """Temporary files beside the archive that no live filesync run holds.

        The folder is listed again only when its mtime moved (a file was added or
        removed), so a watcher's scan stays cheap in a large folder.
        """
        try:
            stamp = os.stat(self.folder).st_mtime_ns
            if stamp != self._stamp:
                with os.scandir(self.folder) as items:
                    self._names = [item.name for item in items
                                   if TEMP_NAME.match(item.name)
                                   and item.is_file(follow_symlinks=False)]
                self._stamp = stamp
        except OSError as exc:
            log.debug("cannot look for stale temporary files in %s: %s", self.folder, exc)
            return []
        return [name for name in self._names
                if name not in self.live and not in_use(str(self.folder / name))]

    def remove(self, name: str) -> bool:
        """Remove a stale temporary file (one that is gone already is fine).

        False when a live filesync run holds it (it is left alone); raises ``OSError``.
        """
        full = self.folder / name
        if name in self.live or in_use(str(full)):
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(full)
        return True
