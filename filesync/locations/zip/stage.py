"""Staging: new members are compressed into temporary files beside the archive.

A write reads its source to the end here, long before the rewrite, so the rewrite only
copies bytes that are already compressed and checked.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from filesync.locations.base import CHUNK_SIZE, Readable
from filesync.locations.zip import format as zf
from filesync.locations.zip.temps import CLOEXEC, lock_file
from filesync.model import temp_name

log = logging.getLogger("filesync")

#: Deflate level of new members: Info-ZIP's default, a good speed/size balance.
_LEVEL = 6
#: Data that deflate cannot shrink below this share of its size is stored as it is.
_STORE_ABOVE = 0.97
_SAMPLE = 64 * 1024


def write_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset``."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class Slot:
    """A temporary file beside the archive that new members are staged in, one after another.

    Each writer thread holds one slot at a time, so concurrent writes never interleave,
    and a batch needs only as many temporary files as it has writers.
    """

    def __init__(self, folder: Path, live: set[str], owner: str) -> None:
        self.name = temp_name("x", owner)
        self.path = folder / self.name
        self.live = live
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | CLOEXEC, 0o600)
        live.add(self.name)
        try:
            lock_file(self.fd)
        except OSError:
            self.close()
            raise
        self.size = 0

    def close(self) -> None:
        """Close and remove the file."""
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            self.live.discard(self.name)


@dataclass(frozen=True, slots=True)
class Staged:
    """Where the compressed bytes of a new member wait for the rewrite."""

    slot: Slot
    offset: int


def _deflate(data: bytes) -> bytes:
    """Raw deflate (no zlib header), as ZIP stores it; ``zlib.compress`` has no wbits in 3.10."""
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def stage(source: Readable, slot: Slot) -> tuple[int, int, int, int]:
    """Read ``source`` to its end, compressing into ``slot``: (method, crc, csize, usize).

    Deflate unless a sample shows the data does not shrink (already compressed media).
    On any error the slot is cut back, so nothing of the failed member remains.
    """
    start = slot.size
    try:
        first = source.read(CHUNK_SIZE)
        second = source.read(CHUNK_SIZE) if first else b""
        if not second:
            # The whole file is known: pick whichever of deflated and stored is smaller.
            packed = _deflate(first) if first else b""
            method, out = ((zf.DEFLATED, packed) if len(packed) < len(first)
                           else (zf.STORED, first))
            write_all(slot.fd, out, start)
            slot.size = start + len(out)
            return method, zlib.crc32(first), len(out), len(first)
        sample = first[:_SAMPLE]
        shrinks = len(zlib.compress(sample, 1)) < len(sample) * _STORE_ABOVE
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15) if shrinks else None
        crc = usize = 0
        position = start
        chunk: bytes = first
        pending: bytes | None = second
        while chunk:
            crc = zlib.crc32(chunk, crc)
            usize += len(chunk)
            out = compressor.compress(chunk) if compressor else chunk
            if out:
                write_all(slot.fd, out, position)
                position += len(out)
            if pending is not None:
                chunk, pending = pending, None
            else:
                chunk = source.read(CHUNK_SIZE)
        if compressor:
            out = compressor.flush()
            write_all(slot.fd, out, position)
            position += len(out)
        slot.size = position
        return (zf.DEFLATED if compressor else zf.STORED), crc, position - start, usize
    except BaseException:
        slot.size = start
        try:
            os.ftruncate(slot.fd, start)
        except OSError as exc:
            log.debug("cannot cut back staging file %s: %s", slot.path, exc)
        raise
