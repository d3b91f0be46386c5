"""Shared helpers for the ZIP tests (no tests here): real archives, checks, raw bytes."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

from filesync.locations.spec import ZipSpec
from filesync.locations.zip import ZipLocation
from filesync.model import Entry

ZIP = "/usr/bin/zip"
UNZIP = "/usr/bin/unzip"
#: 2021-01-02 03:04:05 UTC, with a fraction, as a folder reports it.
WHEN_NS = 1_609_556_645_123_456_789


def location(path: Path) -> ZipLocation:
    """A ZIP location for ``path`` (like ``zip:PATH`` on the command line)."""
    return ZipLocation(ZipSpec(path))


def assert_valid(path: Path, python: bool = True, unzip: tuple[str, ...] | None = ()) -> None:
    """``python -m zipfile -t`` and ``unzip -t`` (with ``unzip`` options) accept the archive.

    Either check can be left out for archives holding what that tool cannot read
    (``unzip`` 6.0 has no LZMA, ``zipfile`` no passwords); ``unzip -l`` must still list it.
    """
    if python:
        checked = subprocess.run([sys.executable, "-m", "zipfile", "-t", str(path)],
                                 capture_output=True, text=True, check=False)
        assert checked.returncode == 0 and "Done testing" in checked.stdout, checked
        assert "error" not in (checked.stdout + checked.stderr).lower(), checked
    if unzip is not None:
        tested = subprocess.run([UNZIP, *unzip, "-t", str(path)], capture_output=True,
                                text=True, check=False)
        assert tested.returncode == 0, tested.stdout + tested.stderr
    listed = subprocess.run([UNZIP, "-l", str(path)], capture_output=True, text=True,
                            check=False)
    assert listed.returncode == 0, listed.stdout + listed.stderr


def zip_cmd(cwd: Path, *args: str) -> None:
    """Run Info-ZIP ``zip`` in ``cwd``."""
    subprocess.run([ZIP, "-q", *args], cwd=cwd, check=True)


def make_zip(path: Path, members: Iterable[tuple[str, bytes]],
             compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """An archive written by Python's ``zipfile`` (DOS times only, like many tools)."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members:
            info = zipfile.ZipInfo("placeholder", (2020, 5, 6, 7, 8, 10))
            info.filename = name  # set afterwards so odd names are kept exactly
            info.compress_type = compression
            archive.writestr(info, data)
    return path


def read_all(loc: ZipLocation, path: str) -> bytes:
    """The content of a member, read through the location."""
    opened = loc.open_read(path)
    assert opened.ok, opened
    with opened.value as stream:
        return stream.read()


def write(loc: ZipLocation, path: str, data: bytes, mtime_ns: int = WHEN_NS,
          keep_old_as: str | None = None) -> Entry:
    """Write a member through the location; fails the test on an error."""
    written = loc.write(path, io.BytesIO(data), mtime_ns, keep_old_as=keep_old_as)
    assert written.ok, written
    return written.value


def listing(loc: ZipLocation) -> dict[str, Entry]:
    """Every user entry (``.filesync`` left out), as the engine sees them."""
    from filesync.excludes import Excludes

    listed = loc.list(Excludes())
    assert listed.ok, listed
    return listed.value.entries


def raw_record(path: Path, name: str) -> bytes:
    """A member's compressed bytes exactly as stored (local header excluded)."""
    with zipfile.ZipFile(path) as archive:
        infos = [info for info in archive.infolist() if _name(info) == name]
    info = infos[-1]
    data = path.read_bytes()
    offset = info.header_offset
    name_len, extra_len = struct.unpack_from("<HH", data, offset + 26)
    start = offset + 30 + name_len + extra_len
    return data[start:start + info.compress_size]


def _name(info: zipfile.ZipInfo) -> str:
    """The name as Unix tools mean it (zipfile reads unflagged names as IBM 437)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


class Chunks(io.RawIOBase):
    """A source of ``count`` copies of ``block`` (a large file without the disk).

    With ``fail_after``, reading past that many blocks raises ``OSError``, as the engine's
    reader does when the source changes during a copy.
    """

    def __init__(self, block: bytes, count: int, fail_after: int | None = None) -> None:
        super().__init__()
        self.block = block
        self.left = count
        self.fail_after = fail_after
        self.given = 0
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            if self.fail_after is not None and self.given >= self.fail_after:
                raise OSError("the source changed while being copied")
            if self.left <= 0:
                return b""
            self.left -= 1
            self.given += 1
            self._pending = memoryview(self.block)
        take = len(self._pending) if size is None or size < 0 else size
        out, self._pending = self._pending[:take], self._pending[take:]
        return bytes(out)
