"""The low-level ZIP records (``zip.format``): ZIP64 fields, names, times, descriptors."""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filesync.locations.zip import format as zf
from filesync.locations.zip.view import is_safe
from filesync.model import unsafe_reason
from tests.test_zip_support import assert_valid, location, read_all, write

GIB = 1 << 30


@given(st.text(alphabet="ab./\\:\x00C ", max_size=12))
def test_quick_name_check_agrees_with_the_base_class(path):
    assert is_safe(path) == (unsafe_reason(path) is None)


def _central(usize: int, csize: int) -> zf.Central:
    return zf.new_central("big.bin", False, 1_600_000_000 * 10**9, zf.DEFLATED, 0x1234,
                          csize, usize)


@pytest.mark.parametrize(("usize", "csize", "offset"), [
    (10, 5, 7),
    (5 * GIB, 3 * GIB, 7),
    (5 * GIB, 5 * GIB + 1, 6 * GIB),
    (10, 5, 6 * GIB),
    (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
])
def test_zip64_fields_round_trip(usize, csize, offset):
    record = zf.central_record(_central(usize, csize), offset)
    (member,) = zf._parse_central(record, 1, 0)
    assert (member.central.usize, member.central.csize, member.offset) == (usize, csize, offset)
    assert member.central.extra == _central(usize, csize).extra, "no ZIP64 field kept"
    needs64 = max(usize, csize, offset) >= 0xFFFFFFFF
    name_len, extra_len = struct.unpack_from("<HH", record, 28)
    extra = record[46 + name_len:46 + name_len + extra_len]
    assert (zf.EXTRA_ZIP64 in [tag for tag, _ in zf.extra_fields(extra)]) == needs64
    header = zf.local_header(_central(usize, csize))
    fields = struct.unpack_from("<4sHHHHHIIIHH", header)
    if usize >= 0xFFFFFFFF or csize >= 0xFFFFFFFF:
        assert fields[7] == fields[8] == 0xFFFFFFFF
        assert struct.unpack_from("<HHQQ", header, 30 + 7) == (1, 16, usize, csize)
    else:
        assert (fields[7], fields[8]) == (csize, usize)


def test_zip64_end_records_beyond_4_gib(tmp_path):
    """A directory past 4 GiB with more than 65,535 entries (a sparse file: no disk used)."""
    path = tmp_path / "sparse.zip"
    central = zf.new_central("x", False, 0, zf.STORED, 0, 0, 0)
    count = 70_000
    cd_start = 5 * GIB
    records = b"".join(zf.central_record(central, i * 100) for i in range(count))
    with path.open("wb") as handle:
        handle.seek(cd_start)
        handle.write(records + zf.end_records(count, cd_start, len(records), b"note"))
    fd = os.open(path, os.O_RDONLY)
    try:
        directory = zf.read_directory(fd, path.stat().st_size, check_locals=False)
    finally:
        os.close(fd)
    assert len(directory.members) == count
    assert directory.cd_start == cd_start and directory.comment == b"note"
    assert directory.members[-1].offset == (count - 1) * 100


def _unicode_path(raw: bytes, name: str, crc: int | None = None) -> bytes:
    data = b"\x01" + struct.pack("<I", zlib.crc32(raw) if crc is None else crc) + name.encode()
    return data


def test_name_decoding():
    assert zf.decode_name("ä".encode(), zf.FLAG_UTF8) == "ä"
    assert zf.decode_name(b"\x84.txt", 0) == "ä.txt"  # IBM 437
    assert zf.decode_name("ä.txt".encode(), 0) == "ä.txt"  # unflagged UTF-8, as Unix tools
    assert zf.decode_name(b"a?.txt", 0, _unicode_path(b"a?.txt", "aä.txt")) == "aä.txt"
    stale = _unicode_path(b"a?.txt", "old.txt", crc=1)  # renamed by a tool unaware of it
    assert zf.decode_name(b"a?.txt", 0, stale) == "a?.txt"
    assert zf.encode_name("ä") == ("ä".encode(), zf.FLAG_UTF8)
    assert zf.encode_name("a") == (b"a", 0)
    with pytest.raises(UnicodeEncodeError):
        zf.encode_name("bad-\udcff")


def test_unicode_path_field_is_read_and_dropped_on_rename(tmp_path):
    archive = tmp_path / "b.zip"
    with zipfile.ZipFile(archive, "w") as other:
        info = zipfile.ZipInfo("caf?.txt", (2020, 1, 1, 0, 0, 0))
        info.extra = struct.pack("<HH", 0x7075, 5 + len("café.txt".encode())) + _unicode_path(
            b"caf?.txt", "café.txt")
        other.writestr(info, b"coffee")
    loc = location(archive)
    assert read_all(loc, "café.txt") == b"coffee"
    assert loc.rename("café.txt", "tea.txt").ok
    fresh = location(archive)
    assert read_all(fresh, "tea.txt") == b"coffee"
    assert fresh.stat("café.txt").value is None
    assert_valid(archive)


def test_dos_times():
    assert zf.dos_datetime(-10**9) == (1 << 5 | 1, 0)  # before 1980: 1980-01-01 00:00
    assert zf.dos_datetime(10**12)[0] >> 9 == 2107 - 1980
    when = int(time.mktime((2024, 2, 29, 13, 45, 58, 0, 0, -1)))
    date, clock = zf.dos_datetime(when)
    assert zf.dos_to_ns(date, clock) == when * 10**9
    assert zf.dos_to_ns(date, clock + 1) == (when + 2) * 10**9  # two-second steps
    central = zf.new_central("x", False, when * 10**9 + 999, zf.STORED, 0, 0, 0)
    assert zf.member_mtime_ns(central) == when * 10**9


def test_renamed_local_header_keeps_everything_but_the_name():
    central = zf.new_central("a?.txt", False, 0, zf.DEFLATED, 7, 3, 4)
    extra = struct.pack("<HH", 0x7075, 5 + 3) + _unicode_path(b"a?.txt", "aä")
    local = zf.local_header(central)[:-len(central.extra)]
    local = (local[:28] + struct.pack("<H", len(extra)) + local[30:] + extra)
    local = bytearray(local)
    local[6:8] = struct.pack("<H", zf.FLAG_DESCRIPTOR)
    renamed = zf.renamed_local(bytes(local), zf.renamed_central(central, "ü.txt"))
    fields = struct.unpack_from("<4sHHHHHIIIHH", renamed)
    assert fields[2] == zf.FLAG_DESCRIPTOR | zf.FLAG_UTF8
    assert renamed[30:30 + fields[9]] == "ü.txt".encode()
    assert fields[10] == 0, "the stale Unicode Path field is gone"
    assert fields[3:9] == struct.unpack_from("<4sHHHHHIIIHH", local)[3:9]


class _Pipe(io.RawIOBase):
    """A write-only stream: ``zipfile`` then writes data descriptors."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


@pytest.mark.parametrize("force_zip64", [False, True])
def test_data_descriptors_from_python_zipfile(tmp_path, force_zip64):
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as other:
        for name in ("a.txt", "b.txt"):
            with other.open(name, "w", force_zip64=force_zip64) as member:
                member.write(name.encode() * 1000)
    archive = tmp_path / "b.zip"
    archive.write_bytes(pipe.data)
    loc = location(archive)
    assert loc.check().ok
    assert read_all(loc, "b.txt") == b"b.txt" * 1000
    assert loc.rename("a.txt", "moved/a.txt").ok
    write(loc, "c.txt", b"c")
    assert_valid(archive)
    fresh = location(archive)
    assert read_all(fresh, "moved/a.txt") == b"a.txt" * 1000
    assert read_all(fresh, "b.txt") == b"b.txt" * 1000


def test_a_member_needing_zip64_without_the_field_is_refused():
    record = bytearray(zf.central_record(_central(10, 5), 0))
    record[20:24] = b"\xff\xff\xff\xff"  # compressed size says "see the ZIP64 field"
    with pytest.raises(zf.ZipFormatError, match="ZIP64"):
        zf._parse_central(bytes(record), 1, 0)


def test_spanned_archives_are_refused(tmp_path):
    archive = tmp_path / "b.zip"
    with zipfile.ZipFile(archive, "w") as other:
        other.writestr("a", b"a")
    data = bytearray(archive.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    data[end + 4:end + 6] = b"\x01\x00"  # "this is disk 2"
    archive.write_bytes(data)
    checked = location(archive).check()
    assert not checked.ok and "spanned" in checked.message


def test_supported_methods_match_the_standard_library():
    assert {zf.STORED, zf.DEFLATED} <= zf.SUPPORTED_METHODS
    assert zf.member_problem(_central(1, 1)) is None
    odd = zf.Central(b"x", 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, b"", b"")
    assert "Deflate64" in str(zf.member_problem(odd))
    locked = zf.Central(b"x", 0, 0, zf.FLAG_ENCRYPTED, 8, 0, 0, 0, 0, 0, 0, 0, b"", b"")
    assert "encrypted" in str(zf.member_problem(locked))
