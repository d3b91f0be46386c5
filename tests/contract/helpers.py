"""What the contract tests do to a location: every change inside ``with location.batch()``.

A transactional backend (a ZIP archive) lands its changes when the batch ends, so each
helper makes one batch, checks it began and ended, and returns the operation's result;
reads come after the batch. The same code path runs for every backend.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from typing import TypeVar

from filesync.excludes import Excludes
from filesync.locations import Entry, Listing, Location
from filesync.locations.base import CHUNK_SIZE, Readable
from filesync.model import ANY, Unchecked, is_reserved
from filesync.result import Err, ErrorKind, Result

T = TypeVar("T")

#: A source mtime with a fraction no coarse clock keeps (2023-11-14 22:13:20.123456789 UTC).
T1 = 1_700_000_000_123_456_789
#: A later one (one day and a half second on).
T2 = T1 + 86_400_500_000_000


def batched(location: Location, operation: Callable[[], Result[T]]) -> Result[T]:
    """Run ``operation`` in one batch; the batch must begin and land without refusals."""
    with location.batch() as batch:
        assert batch.begun.ok, batch.begun
        result = operation()
    assert batch.ended is not None and batch.ended.ok, batch.ended
    assert not batch.refused, batch.refused
    return result


def first_failure(location: Location, operation: Callable[[], Result[T]]) -> Result[T] | Err:
    """Like ``batched`` for an operation expected to fail: the first ``Err`` of the batch's
    start, the operation, and the batch's end (or the operation's ``Ok``)."""
    with location.batch() as batch:
        result: Result[T] | Err = operation() if batch.begun.ok else batch.begun
    if not batch.begun.ok or not result.ok:
        return result
    assert batch.ended is not None
    if not batch.ended.ok:
        return batch.ended
    return result


def write(location: Location, path: str, data: bytes | Readable, mtime_ns: int = T1,
          keep_old_as: str | None = None, expect: Entry | Unchecked | None = ANY,
          mode: int = 0) -> Result[Entry]:
    """``location.write`` in a batch of its own."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    return first_failure(location, lambda: location.write(
        path, source, mtime_ns, keep_old_as=keep_old_as, expect=expect, mode=mode))


def written(location: Location, path: str, data: bytes, mtime_ns: int = T1,
            mode: int = 0) -> Entry:
    """Write ``data`` to ``path``; the write must succeed."""
    result = batched(location, lambda: location.write(path, io.BytesIO(data), mtime_ns,
                                                      mode=mode))
    assert result.ok, result
    return result.value


def read(location: Location, path: str) -> bytes:
    """The whole content of ``path`` (read in pieces, as the engine does)."""
    opened = location.open_read(path)
    assert opened.ok, opened
    parts = []
    with opened.value as stream:
        while piece := stream.read(CHUNK_SIZE):
            parts.append(piece)
    return b"".join(parts)


def scanned(location: Location) -> Listing:
    """Everything below the root, ``.filesync`` included."""
    result = location.scan(lambda _path: False)
    assert result.ok, result
    return result.value


def names(location: Location) -> list[str]:
    """The sorted paths a scan finds, filesync's own (``.filesync``, temporaries) left out.

    A scan may report the reserved folder (a ZIP archive always holds ``.filesync/``,
    since an archive without members is not valid); ``list`` is what drops it.
    """
    return sorted(path for path in scanned(location).entries if not is_reserved(path))


def listed(location: Location) -> Listing:
    """What the engine sees: the listing without reserved, excluded and unsafe names."""
    result = location.list(Excludes())
    assert result.ok, result
    return result.value


def kind_of(result: Result[object]) -> ErrorKind | None:
    """The kind of a failed result, None for a success (so assertions show both)."""
    return None if result.ok else result.kind


def same_time(location: Location, found: int, wanted: int) -> bool:
    """True when ``found`` is ``wanted`` as kept by a clock of the declared precision."""
    precision = location.capabilities.mtime_precision_ns
    slack = precision + location.capabilities.mtime_tolerance_ns
    return abs(found - wanted) < slack


class Generated:
    """A source of ``size`` pseudo-random bytes made on the fly, hashed as it is read.

    Only the piece being handed out exists at any moment, so the test itself holds no
    copy of the file.
    """

    def __init__(self, size: int, fail_after: int | None = None) -> None:
        self.left = size
        self.given = 0
        self.fail_after = fail_after
        self.digest = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (at most one piece); raises once ``fail_after`` is passed."""
        if self.fail_after is not None and self.given >= self.fail_after:
            raise OSError("the source changed while it was copied")
        wanted = min(self.left, size if size > 0 else CHUNK_SIZE, CHUNK_SIZE)
        piece = os.urandom(wanted)
        self.left -= wanted
        self.given += wanted
        self.digest.update(piece)
        return piece


def digest_of(location: Location, path: str) -> str:
    """SHA-256 of ``path`` read as a stream (no copy of the whole file)."""
    opened = location.open_read(path)
    assert opened.ok, opened
    digest = hashlib.sha256()
    with opened.value as stream:
        while piece := stream.read(CHUNK_SIZE):
            digest.update(piece)
    return digest.hexdigest()
