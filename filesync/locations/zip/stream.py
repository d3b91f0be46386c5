"""Reading one member of a ZIP archive as a stream: decompressed, checked against its CRC."""

from __future__ import annotations

import errno
import io
import os
import zlib
from typing import Any, cast

from filesync.locations.base import CHUNK_SIZE
from filesync.locations.zip import format as zf


class _Inflater:
    """One interface over the stdlib decompressors, each producing bounded output."""

    def __init__(self, method: int, properties: bytes = b"") -> None:
        self.tail = b""
        self.zlib = zlib.decompressobj(-15) if method == zf.DEFLATED else None
        self.other: Any = None if self.zlib else zf.decompressor(method, properties)

    @property
    def needs_input(self) -> bool:
        """True when the decompressor has no buffered input left."""
        if self.zlib is not None:
            return not self.tail
        return bool(self.other.needs_input)

    def more(self, data: bytes, limit: int) -> bytes:
        """Up to ``limit`` decompressed bytes, given ``data`` (may be empty)."""
        if self.zlib is not None:
            out = self.zlib.decompress(self.tail + data if self.tail else data, limit)
            self.tail = self.zlib.unconsumed_tail
            if not out and not self.tail and not data:
                out = self.zlib.flush()
            return out
        return cast(bytes, self.other.decompress(data, limit))


class MemberStream(io.RawIOBase):
    """Streams one member's content from an open archive, checking its CRC at the end."""

    def __init__(self, fd: int, start: int, central: zf.Central, label: str) -> None:
        super().__init__()
        self._fd = fd
        self._pos = start
        self._left = central.csize
        self._out_left = central.usize
        self._crc = 0
        self._expected_crc = central.crc
        self._method = central.method
        self._label = label
        self._inflater: _Inflater | None = None
        self._finished = False

    def readable(self) -> bool:
        """True: this is a read stream."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` with the next bytes."""
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes of content (all of it for a negative size)."""
        if size is None or size < 0:
            parts = []
            while chunk := self.read(CHUNK_SIZE):
                parts.append(chunk)
            return b"".join(parts)
        if size == 0 or self._finished:
            return b""
        try:
            data = self._next(size)
        except zf.DATA_ERRORS as exc:
            raise OSError(errno.EIO, f"{self._label} is damaged: {exc}") from exc
        except OSError as exc:
            if exc.errno is None:  # bz2 reports bad data as a bare OSError
                raise OSError(errno.EIO, f"{self._label} is damaged: {exc}") from exc
            raise
        if data:
            self._crc = zlib.crc32(data, self._crc)
            self._out_left -= len(data)
            if self._out_left < 0:
                raise OSError(errno.EIO, f"{self._label} is damaged: longer than recorded")
            return data
        self._finished = True
        if self._out_left:
            raise OSError(errno.EIO, f"{self._label} is damaged: shorter than recorded")
        if self._crc != self._expected_crc:
            raise OSError(errno.EIO, f"{self._label} is damaged: its checksum does not match")
        return b""

    def _pread(self, size: int) -> bytes:
        size = min(size, self._left)
        if size <= 0:
            return b""
        data = os.pread(self._fd, size, self._pos)
        if not data:
            raise OSError(errno.EIO, f"{self._label} is cut short (the archive is truncated)")
        self._pos += len(data)
        self._left -= len(data)
        return data

    def _next(self, size: int) -> bytes:
        if self._out_left == 0:
            return b""
        if self._method == zf.STORED:
            return self._pread(min(size, self._out_left))
        if self._inflater is None:
            properties = b""
            if self._method == zf.LZMA:
                header = self._pread(4)
                properties = self._pread(int.from_bytes(header[2:4], "little"))
            self._inflater = _Inflater(self._method, properties)
        inflater = self._inflater
        limit = min(size, self._out_left)
        while True:
            data = self._pread(CHUNK_SIZE) if inflater.needs_input else b""
            out = inflater.more(data, limit)
            if out:
                return out
            if not data and inflater.needs_input and self._left == 0:
                return b""

    def close(self) -> None:
        """Release the archive file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()
