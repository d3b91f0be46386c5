"""The archive file on disk: opened safely, its directory parsed once per version.

A version is told apart by ``key`` (device, inode, size, mtime, ctime): any program that
replaces, grows or touches the file makes a new one, and only then is it parsed again.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from filesync.locations.localfile import open_regular
from filesync.locations.zip import format as zf
from filesync.locations.zip.errors import Retry
from filesync.locations.zip.view import Snapshot, View

#: Another program changing the archive while it is read makes filesync start over this often.
ATTEMPTS = 3

Key = tuple[int, int, int, int, int]


def key(info: os.stat_result) -> Key:
    """What identifies one version of the archive file (replaced, grown or touched)."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


@dataclass
class Cached:
    """One parsed archive version, and what is derived from it on first use."""

    key: Key
    directory: zf.Directory
    view: View | None = None
    snapshot: Snapshot | None = None


class Archive:
    """Reads one archive file, keeping the parse of its latest version.

    Every method may raise ``OSError`` (``FileNotFoundError`` when the archive is gone),
    ``zf.ZipFormatError`` for a damaged archive, or ``Retry`` when it changed while being
    read; ``Errors.of`` turns them into results.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cache: Cached | None = None

    def open(self) -> int:
        """Open the archive for reading; a FIFO or device there is refused, never waited on."""
        return open_regular(self.path, follow=True)

    def remember(self, cached: Cached | None) -> None:
        """Keep ``cached`` as the latest version (a rewrite knows what it wrote)."""
        with self._lock:
            self._cache = cached

    def directory(self, fd: int, info: os.stat_result) -> zf.Directory:
        """The parsed directory of the archive open as ``fd`` (cached per version)."""
        version = key(info)
        with self._lock:
            cached = self._cache
        if cached is not None and cached.key == version:
            return cached.directory
        directory = zf.read_directory(fd, info.st_size)
        if key(os.fstat(fd)) != version:
            raise Retry
        self.remember(Cached(version, directory))
        return directory

    def current(self) -> tuple[os.stat_result, zf.Directory]:
        """The archive's version and directory as they are now (retried while it changes)."""
        for _attempt in range(ATTEMPTS):
            fd = self.open()
            try:
                info = os.fstat(fd)
                return info, self.directory(fd, info)
            except Retry:
                continue
            finally:
                os.close(fd)
        raise Retry

    def base_view(self, directory: zf.Directory) -> View:
        """The view of ``directory``, built once per archive version; copy it to change it."""
        with self._lock:
            cached = self._cache
        if cached is not None and cached.directory is directory:
            if cached.view is None:
                cached.view = View(directory)
            return cached.view
        return View(directory)

    def snapshot(self) -> Snapshot:
        """The listing of the archive as it is now (from the cache while it is unchanged)."""
        for _attempt in range(ATTEMPTS):
            version = key(os.stat(self.path))
            with self._lock:
                cached = self._cache
            if cached is None or cached.key != version:
                fd = self.open()
                try:
                    try:
                        self.directory(fd, os.fstat(fd))
                    except Retry:
                        continue
                finally:
                    os.close(fd)
                with self._lock:
                    cached = self._cache
                if cached is None:
                    continue
            if cached.snapshot is None:
                cached.snapshot = Snapshot.of(self.base_view(cached.directory))
            return cached.snapshot
        raise Retry
