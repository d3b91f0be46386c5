"""Modification times on S3: rclone's ``x-amz-meta-mtime`` and a cache that spares look-ups.

Listings carry ETag, size and LastModified but no user metadata, so the modification time
a file was written with needs a HEAD per object. ``MtimeCache`` remembers, per key, the
(ETag, size, LastModified) a time was read for: while a listing reports the same three, the
time is known without asking. The cache also remembers the multipart uploads this sync set
started, so a later run aborts its own leftovers at once (and others' only when stale).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from filesync.locations.s3.client import ObjectInfo

log = logging.getLogger("filesync")

#: The user metadata name (``x-amz-meta-mtime``) holding decimal seconds since the epoch.
MTIME_META = "mtime"
_SECONDS = re.compile(r"^\s*(-?)(\d+)(?:\.(\d*))?\s*$")
#: Bumped when the cache file's layout changes; another version is ignored (rebuilt).
_CACHE_VERSION = 1


def format_mtime(mtime_ns: int) -> str:
    """``mtime_ns`` as rclone writes it: decimal seconds with nine fractional digits."""
    sign = "-" if mtime_ns < 0 else ""
    seconds, fraction = divmod(abs(mtime_ns), 10**9)
    return f"{sign}{seconds}.{fraction:09d}"


def parse_mtime(text: str) -> int | None:
    """Decimal seconds (any number of fractional digits, or none) as exact nanoseconds.

    Digits past the ninth are cut off (no float rounding anywhere); anything else than a
    decimal number is None (the caller falls back to LastModified).
    """
    match = _SECONDS.match(text)
    if not match:
        return None
    sign, seconds, fraction = match.groups()
    nanos = int(seconds) * 10**9 + int((fraction or "")[:9].ljust(9, "0"))
    return -nanos if sign else nanos


def mtime_of(info: ObjectInfo) -> int:
    """A file's modification time: our metadata, else LastModified.

    LastModified is taken in whole seconds: a HEAD answer has no more, and a listing's
    milliseconds would disagree with it.
    """
    text = info.metadata.get(MTIME_META)
    parsed = None if text is None else parse_mtime(text)
    if parsed is None:
        return info.last_modified_ns - info.last_modified_ns % 10**9
    return parsed


@dataclass(frozen=True, slots=True)
class Seen:
    """What one object looked like when its modification time was read.

    ``last_modified_ns`` is None right after our own write (a PUT does not return it): the
    next listing fills it in when ETag and size still match.
    """

    etag: str
    size: int
    last_modified_ns: int | None
    mtime_ns: int


class MtimeCache:
    """Key -> ``Seen``, plus our own multipart upload ids; thread-safe; kept in a JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._objects: dict[str, Seen] = {}
        self._uploads: set[tuple[str, str]] = set()
        self._dirty = False
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        """Read the file; a missing, damaged or foreign one only costs look-ups."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.debug("the S3 cache %s cannot be read (%s); it is rebuilt", path, exc)
            return
        if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
            log.debug("the S3 cache %s has another layout; it is rebuilt", path)
            return
        try:
            for key, (etag, size, modified, mtime) in data.get("objects", {}).items():
                self._objects[str(key)] = Seen(str(etag), int(size),
                                               None if modified is None else int(modified),
                                               int(mtime))
            for key, upload_id in data.get("uploads", []):
                self._uploads.add((str(key), str(upload_id)))
        except (TypeError, ValueError) as exc:
            log.debug("the S3 cache %s is damaged (%s); it is rebuilt", path, exc)
            self._objects.clear()
            self._uploads.clear()

    # ----- modification times ---------------------------------------------------------
    def lookup(self, key: str, etag: str, size: int, last_modified_ns: int) -> int | None:
        """The cached mtime of ``key`` if the listing still reports what it was read for."""
        with self._lock:
            seen = self._objects.get(key)
            if seen is None or seen.etag != etag or seen.size != size:
                return None
            if seen.last_modified_ns is None:
                self._objects[key] = Seen(etag, size, last_modified_ns, seen.mtime_ns)
                self._dirty = True
            elif seen.last_modified_ns // 10**9 != last_modified_ns // 10**9:
                # Compared in whole seconds: a HEAD answer dates to the second, a listing
                # often to the millisecond.
                return None
            return seen.mtime_ns

    def get(self, key: str) -> Seen | None:
        """What is remembered about ``key``."""
        with self._lock:
            return self._objects.get(key)

    def remember(self, key: str, seen: Seen) -> None:
        """Record what ``key`` holds now."""
        with self._lock:
            if self._objects.get(key) != seen:
                self._objects[key] = seen
                self._dirty = True

    def forget(self, key: str) -> None:
        """Drop ``key`` (deleted, or replaced by someone else)."""
        with self._lock:
            if self._objects.pop(key, None) is not None:
                self._dirty = True

    def keep_only(self, keys: set[str], under: str) -> None:
        """Drop the keys below ``under`` a complete listing of it did not report."""
        with self._lock:
            gone = [key for key in self._objects if key.startswith(under) and key not in keys]
            for key in gone:
                del self._objects[key]
            self._dirty = self._dirty or bool(gone)

    # ----- our own multipart uploads ----------------------------------------------------
    def upload_started(self, key: str, upload_id: str) -> None:
        """Remember an upload we started, on disk at once: a killed run leaves it listed."""
        with self._lock:
            self._uploads.add((key, upload_id))
            self._dirty = True
        self.save()

    def upload_ended(self, key: str, upload_id: str) -> None:
        """Forget an upload that was completed or aborted."""
        with self._lock:
            self._uploads.discard((key, upload_id))
            self._dirty = True

    def is_own_upload(self, key: str, upload_id: str) -> bool:
        """True for an upload this sync set started."""
        with self._lock:
            return (key, upload_id) in self._uploads

    # ----- the file -----------------------------------------------------------------------
    def save(self) -> None:
        """Write the cache atomically (temporary file, then rename) when it changed."""
        if self.path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            data = {"version": _CACHE_VERSION,
                    "objects": {key: [s.etag, s.size, s.last_modified_ns, s.mtime_ns]
                                for key, s in self._objects.items()},
                    "uploads": sorted(self._uploads)}
            self._dirty = False
        text = json.dumps(data, separators=(",", ":"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp",
                                        dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text)
                os.replace(temp, self.path)
            except BaseException:
                os.unlink(temp)
                raise
        except OSError as exc:
            # Only a cache: the next run pays look-ups instead. Said, not hidden.
            log.warning("cannot save the S3 cache %s: %s (the next run looks times up "
                        "again)", self.path, exc)
            with self._lock:
                self._dirty = True
