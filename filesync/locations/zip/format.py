"""Low-level ZIP structures (PKWARE APPNOTE.TXT 6.3): read a directory, build records.

Only what a live archive location needs: the central directory is parsed and checked
against every local header (so a damaged archive is refused before anything is written),
and headers are built so that unchanged members can be copied as their raw bytes.
"""

from __future__ import annotations

import itertools
import os
import stat
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

try:
    import bz2
except ImportError:  # optional in some Python builds: such members are then skipped
    bz2 = None  # type: ignore[assignment]
try:
    import lzma
except ImportError:  # optional in some Python builds: such members are then skipped
    lzma = None  # type: ignore[assignment]

SIG_LOCAL = b"PK\x03\x04"
SIG_CENTRAL = b"PK\x01\x02"
SIG_END = b"PK\x05\x06"
SIG_END64 = b"PK\x06\x06"
SIG_LOCATOR64 = b"PK\x06\x07"
SIG_DESCRIPTOR = b"PK\x07\x08"

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_END64 = struct.Struct("<4sQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<4sIQI")
_EXTRA_HEADER = struct.Struct("<HH")

FLAG_ENCRYPTED = 0x0001
FLAG_DESCRIPTOR = 0x0008
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800
FLAG_MASKED = 0x2000

EXTRA_ZIP64 = 0x0001
EXTRA_TIME = 0x5455
EXTRA_UNICODE_PATH = 0x7075

STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
METHOD_NAMES = {1: "Shrink", 6: "Implode", 9: "Deflate64", 12: "bzip2", 14: "LZMA",
                93: "Zstandard", 95: "XZ", 98: "PPMd", 99: "AES encryption"}

LIMIT32 = 0xFFFFFFFF
LIMIT16 = 0xFFFF
#: "Made by" a Unix system, so other tools restore permissions from the external attributes.
HOST_UNIX = 3
MADE_BY_UNIX = HOST_UNIX << 8
VERSION_DEFAULT, VERSION_ZIP64 = 20, 45
#: Permissions of new members whose source did not say (as Info-ZIP under umask 022).
FILE_MODE, DIR_MODE = 0o644, 0o755

_MAX_TAIL = _END.size + LIMIT16
_DOS_MIN = (1980, 1, 1, 0, 0, 0)
_DOS_MAX = (2107, 12, 31, 23, 59, 58)


SUPPORTED_METHODS = frozenset({STORED, DEFLATED} | ({BZIP2} if bz2 else set())
                              | ({LZMA} if lzma else set()))
#: What the decompressors raise for damaged data.
DATA_ERRORS: tuple[type[Exception], ...] = (zlib.error, EOFError, ValueError) + (
    (lzma.LZMAError,) if lzma else ())


def decompressor(method: int, properties: bytes = b"") -> Any:
    """A bzip2 or LZMA decompressor (``decompress(data, max_length)``, ``needs_input``).

    ``properties`` are the LZMA properties stored in front of the data (APPNOTE 5.8.8).
    """
    if method == BZIP2:
        return bz2.BZ2Decompressor()
    if len(properties) < 5:
        raise ValueError("damaged LZMA properties")
    value = properties[0]
    lc, value = value % 9, value // 9
    lp, pb = value % 5, value // 5
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[{
        "id": lzma.FILTER_LZMA1, "dict_size": int.from_bytes(properties[1:5], "little"),
        "lc": lc, "lp": lp, "pb": pb}])


class ZipFormatError(ValueError):
    """The bytes are not a ZIP archive filesync can use (the message says why)."""


@dataclass(frozen=True, slots=True)
class Central:
    """One central-directory record; sizes are the real ones (ZIP64 fields resolved).

    ``extra`` never holds a ZIP64 field: that one is rebuilt whenever the record is
    written, because the member's offset changes with every rewrite.
    """

    raw_name: bytes
    made_by: int
    needed: int
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc: int
    csize: int
    usize: int
    internal_attr: int
    external_attr: int
    extra: bytes
    comment: bytes


@dataclass(slots=True)
class Member:
    """A member as found in an archive: its record plus where its bytes are."""

    central: Central
    name: str
    offset: int
    mtime_ns: int = 0
    local_len: int = 0
    span: int = 0

    @property
    def data_offset(self) -> int:
        """Where the (compressed) data starts."""
        return self.offset + self.local_len


@dataclass(slots=True)
class Directory:
    """The parsed archive: members in central-directory order and the surrounding bytes."""

    members: list[Member]
    prefix_end: int
    cd_start: int
    comment: bytes


# ----- small helpers ------------------------------------------------------------------------
def extra_fields(extra: bytes) -> Iterator[tuple[int, bytes]]:
    """The (tag, data) pairs of an extra field; a truncated tail is ignored."""
    pos, end = 0, len(extra)
    while pos + 4 <= end:
        tag, size = _EXTRA_HEADER.unpack_from(extra, pos)
        if pos + 4 + size > end:
            return
        yield tag, extra[pos + 4:pos + 4 + size]
        pos += 4 + size


def strip_extra(extra: bytes, tags: frozenset[int]) -> bytes:
    """``extra`` without the fields whose tag is in ``tags`` (a damaged tail is dropped)."""
    if not extra:
        return extra
    return b"".join(_EXTRA_HEADER.pack(tag, len(data)) + data
                    for tag, data in extra_fields(extra) if tag not in tags)


def decode_name(raw: bytes, flags: int, unicode_path: bytes | None = None) -> str:
    """The member name as text.

    Flag bit 11 means UTF-8. Otherwise Info-ZIP's Unicode Path field (its data given as
    ``unicode_path``) wins when it still matches the name; then UTF-8 (what Unix tools
    write without saying so); then the IBM 437 code page the format defines.
    """
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", "surrogateescape")
    data = unicode_path
    if (data is not None and len(data) > 5 and data[0] == 1
            and int.from_bytes(data[1:5], "little") == zlib.crc32(raw)):
        try:
            return data[5:].decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def encode_name(name: str) -> tuple[bytes, int]:
    """Name bytes and the flag to store them with; ``ValueError`` if not valid Unicode."""
    raw = name.encode("utf-8")  # surrogates (undecodable bytes of a local name) raise here
    return raw, (FLAG_UTF8 if not name.isascii() else 0)


def dos_datetime(seconds: int) -> tuple[int, int]:
    """(date, time) in MS-DOS format, local time, clamped to the years 1980-2107."""
    try:
        fields = tuple(time.localtime(seconds))[:6]
    except (OverflowError, OSError, ValueError):
        fields = _DOS_MIN if seconds < 0 else _DOS_MAX
    fields = max(_DOS_MIN, min(_DOS_MAX, fields))
    year, month, day, hour, minute, second = fields
    return ((year - 1980) << 9 | month << 5 | day,
            hour << 11 | minute << 5 | second // 2)


def dos_to_ns(dos_date: int, dos_time: int) -> int:
    """An MS-DOS local date and time as nanoseconds since the epoch (0 if nonsense)."""
    fields = ((dos_date >> 9) + 1980, (dos_date >> 5) & 15, dos_date & 31,
              dos_time >> 11, (dos_time >> 5) & 63, (dos_time & 31) * 2, 0, 0, -1)
    try:
        return int(time.mktime(fields)) * 1_000_000_000
    except (OverflowError, ValueError):
        return 0


def member_mtime_ns(central: Central) -> int:
    """The modification time a member reports: UTC seconds from 0x5455, else DOS time."""
    if central.extra:
        for tag, data in extra_fields(central.extra):
            if tag == EXTRA_TIME:
                return _mtime(data, central)
    return dos_to_ns(central.dos_date, central.dos_time)


def _mtime(time_field: bytes | None, central: Central) -> int:
    if time_field is not None and len(time_field) >= 5 and time_field[0] & 1:
        return int.from_bytes(time_field[1:5], "little", signed=True) * 1_000_000_000
    return dos_to_ns(central.dos_date, central.dos_time)


def unix_attributes(is_dir: bool, mode: int = 0) -> int:
    """External attributes holding the Unix file type and ``mode`` (0: the default)."""
    if is_dir:  # 0x10: the MS-DOS directory bit, which tools from other systems look at
        return ((stat.S_IFDIR | (stat.S_IMODE(mode) or DIR_MODE)) << 16) | 0x10
    return (stat.S_IFREG | (stat.S_IMODE(mode) or FILE_MODE)) << 16


def member_mode(central: Central) -> int:
    """The permission bits a member made on Unix carries; 0 for other systems."""
    if central.made_by >> 8 != HOST_UNIX:
        return 0
    return stat.S_IMODE(central.external_attr >> 16)


def member_problem(central: Central) -> str | None:
    """Why filesync cannot read a member's content, or None when it can."""
    if central.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED):
        return "it is encrypted"
    if central.method not in SUPPORTED_METHODS and not central.raw_name.endswith(b"/"):
        name = METHOD_NAMES.get(central.method, "unknown")
        return f"its compression method {central.method} ({name}) is not supported"
    return None


def time_extra(seconds: int) -> bytes:
    """An extended-timestamp field holding the UTC mtime, or nothing when out of range."""
    if not 0 <= seconds <= 0x7FFFFFFF:
        return b""
    return _EXTRA_HEADER.pack(EXTRA_TIME, 5) + struct.pack("<Bi", 1, seconds)


def new_central(name: str, is_dir: bool, mtime_ns: int, method: int, crc: int, csize: int,
                usize: int, mode: int = 0) -> Central:
    """The record of a member filesync writes itself (mtime kept at 1 s resolution).

    The time is whole UTC seconds (0x5455) where that field can hold it, so the member
    reads back as the same entry (``member_mtime_ns``) on every later scan; ``mode``
    (0: the default) is stored as Unix permissions, as Info-ZIP does.
    """
    raw, flags = encode_name(name + "/" if is_dir else name)
    seconds = mtime_ns // 1_000_000_000
    dos_date, dos_time = dos_datetime(seconds)
    return Central(raw, MADE_BY_UNIX | VERSION_DEFAULT, VERSION_DEFAULT, flags, method, dos_time,
                   dos_date, crc, csize, usize, 0, unix_attributes(is_dir, mode),
                   time_extra(seconds), b"")


def renamed_central(central: Central, name: str) -> Central:
    """The same member under another name (a stale Unicode Path field is dropped)."""
    raw, utf8 = encode_name(name)
    flags = (central.flags & ~FLAG_UTF8) | utf8
    return replace(central, raw_name=raw, flags=flags,
                   extra=strip_extra(central.extra, frozenset({EXTRA_UNICODE_PATH})))


# ----- building records ---------------------------------------------------------------------
def local_header(central: Central) -> bytes:
    """A local header for a member whose sizes and CRC are known before its data."""
    extra = central.extra
    usize, csize, needed = central.usize, central.csize, central.needed
    if usize >= LIMIT32 or csize >= LIMIT32:
        # The local ZIP64 field must hold both sizes (APPNOTE 4.5.3).
        extra = struct.pack("<HHQQ", EXTRA_ZIP64, 16, usize, csize) + extra
        usize = csize = LIMIT32
        needed = max(needed, VERSION_ZIP64)
    return _LOCAL.pack(SIG_LOCAL, needed, central.flags, central.method, central.dos_time,
                       central.dos_date, central.crc, csize, usize, len(central.raw_name),
                       len(extra)) + central.raw_name + extra


def renamed_local(raw_local: bytes, central: Central) -> bytes:
    """An existing local header rewritten for ``central``'s name and flags."""
    fields = list(_LOCAL.unpack_from(raw_local))
    start = _LOCAL.size + fields[9]
    extra = strip_extra(raw_local[start:start + fields[10]], frozenset({EXTRA_UNICODE_PATH}))
    # Only the name-encoding bit follows the new name; the rest must keep describing the data.
    fields[2] = (fields[2] & ~FLAG_UTF8) | (central.flags & FLAG_UTF8)
    fields[9], fields[10] = len(central.raw_name), len(extra)
    return _LOCAL.pack(*fields) + central.raw_name + extra


def central_record(central: Central, offset: int) -> bytes:
    """The central-directory record of a member whose local header is at ``offset``."""
    values = []
    usize, csize = central.usize, central.csize
    if usize >= LIMIT32:
        values.append(usize)
        usize = LIMIT32
    if csize >= LIMIT32:
        values.append(csize)
        csize = LIMIT32
    if offset >= LIMIT32:
        values.append(offset)
        offset = LIMIT32
    extra, needed, made_by = central.extra, central.needed, central.made_by
    if values:
        extra = struct.pack(f"<HH{len(values)}Q", EXTRA_ZIP64, 8 * len(values), *values) + extra
        needed = max(needed, VERSION_ZIP64)
        made_by = (made_by & 0xFF00) | max(made_by & 0xFF, VERSION_ZIP64)
    if len(extra) > LIMIT16:
        raise ZipFormatError(f"the extra field of {central.raw_name!r} is too long")
    return _CENTRAL.pack(SIG_CENTRAL, made_by, needed, central.flags, central.method,
                         central.dos_time, central.dos_date, central.crc, csize, usize,
                         len(central.raw_name), len(extra), len(central.comment), 0,
                         central.internal_attr, central.external_attr, offset
                         ) + central.raw_name + extra + central.comment


def end_records(count: int, cd_start: int, cd_size: int, comment: bytes) -> bytes:
    """The end-of-central-directory record, with its ZIP64 versions when any value needs it."""
    out = b""
    if count >= LIMIT16 or cd_start >= LIMIT32 or cd_size >= LIMIT32:
        out = (_END64.pack(SIG_END64, _END64.size - 12, MADE_BY_UNIX | VERSION_ZIP64,
                           VERSION_ZIP64, 0, 0, count, count, cd_size, cd_start)
               + _LOCATOR64.pack(SIG_LOCATOR64, 0, cd_start + cd_size, 1))
    entries = min(count, LIMIT16)
    return out + _END.pack(SIG_END, 0, 0, entries, entries, min(cd_size, LIMIT32),
                           min(cd_start, LIMIT32), len(comment)) + comment


# ----- reading ------------------------------------------------------------------------------
def _pread(fd: int, size: int, offset: int) -> bytes:
    """Exactly ``size`` bytes at ``offset``, or fewer only at the end of the file."""
    data = os.pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _find_end(fd: int, size: int) -> tuple[int, tuple[int, ...]]:
    """Position and fields of the end record; it must end exactly where the file ends."""
    if size < _END.size:
        raise ZipFormatError(f"the file is too small to be a ZIP archive ({size} bytes)")
    tail_len = min(size, _MAX_TAIL)
    tail = _pread(fd, tail_len, size - tail_len)
    pos = tail.rfind(SIG_END)
    while pos >= 0:
        if pos + _END.size <= len(tail):
            fields = _END.unpack_from(tail, pos)
            if pos + _END.size + fields[7] == len(tail):
                return size - tail_len + pos, fields
        pos = tail.rfind(SIG_END, 0, pos)
    raise ZipFormatError("no end-of-archive record where a ZIP archive has one (not a ZIP "
                         "archive, or truncated)")


def _zip64_end(fd: int, end_pos: int) -> tuple[int, int, int, int] | None:
    """(position, count, cd_size, cd_offset) from the ZIP64 end record, if there is one."""
    if end_pos < _LOCATOR64.size:
        return None
    locator = _pread(fd, _LOCATOR64.size, end_pos - _LOCATOR64.size)
    if locator[:4] != SIG_LOCATOR64:
        return None
    _, disk, record_offset, disks = _LOCATOR64.unpack(locator)
    if disk != 0 or disks > 1:
        raise ZipFormatError("it is split over several files (spanned archives are not "
                             "supported)")
    # Normally right before the locator; the stored offset is the fallback (it is relative
    # to the start of the archive, which differs when something precedes it).
    for pos in (end_pos - _LOCATOR64.size - _END64.size, record_offset):
        if pos < 0:
            continue
        record = _pread(fd, _END64.size, pos)
        if len(record) == _END64.size and record[:4] == SIG_END64:
            fields = _END64.unpack(record)
            if fields[4] != 0 or fields[5] != 0:
                raise ZipFormatError("it is split over several files (spanned archives are "
                                     "not supported)")
            return pos, fields[7], fields[8], fields[9]
    raise ZipFormatError("its ZIP64 end record is missing or damaged")


def _parse_central(data: bytes, count: int, shift: int) -> list[Member]:
    """Members from the raw central directory; offsets moved by ``shift``."""
    members: list[Member] = []
    pos, end = 0, len(data)
    unpack = _CENTRAL.unpack_from
    unpack_extra = _EXTRA_HEADER.unpack_from
    header = _CENTRAL.size
    for index in range(count):
        if pos + header > end:
            raise ZipFormatError(f"its central directory ends after {index} of {count} members")
        (sig, made_by, needed, flags, method, dos_time, dos_date, crc, csize, usize, name_len,
         extra_len, comment_len, disk, internal_attr, external_attr, offset) = unpack(data, pos)
        if sig != SIG_CENTRAL:
            raise ZipFormatError(f"its central directory is damaged at member {index + 1}")
        start = pos + header
        pos = start + name_len + extra_len + comment_len
        if pos > end:
            raise ZipFormatError(f"its central directory ends inside member {index + 1}")
        raw_name = data[start:start + name_len]
        extra = data[start + name_len:start + name_len + extra_len]
        comment = data[start + name_len + extra_len:pos] if comment_len else b""
        # One pass over the extra fields (usually one or two) for what matters here.
        time_field = unicode_path = zip64 = None
        field_pos = 0
        while field_pos + 4 <= extra_len:
            tag, size = unpack_extra(extra, field_pos)
            if tag == EXTRA_TIME:
                time_field = extra[field_pos + 4:field_pos + 4 + size]
            elif tag == EXTRA_ZIP64:
                zip64 = extra[field_pos + 4:field_pos + 4 + size]
            elif tag == EXTRA_UNICODE_PATH:
                unicode_path = extra[field_pos + 4:field_pos + 4 + size]
            field_pos += 4 + size
        if LIMIT32 in (usize, csize, offset) or disk == LIMIT16:
            usize, csize, offset, disk = _apply_zip64(zip64, usize, csize, offset, disk, raw_name)
        if zip64 is not None:
            extra = strip_extra(extra, frozenset({EXTRA_ZIP64}))
        if disk != 0:
            raise ZipFormatError("it is split over several files (spanned archives are not "
                                 "supported)")
        central = Central(raw_name, made_by, needed, flags, method, dos_time, dos_date, crc,
                          csize, usize, internal_attr, external_attr, extra, comment)
        if flags & FLAG_UTF8 or (unicode_path is None and raw_name.isascii()):
            name = raw_name.decode("utf-8", "surrogateescape")
        else:
            name = decode_name(raw_name, flags, unicode_path)
        members.append(Member(central, name, offset + shift, _mtime(time_field, central)))
    return members


def _apply_zip64(data: bytes | None, usize: int, csize: int, offset: int, disk: int,
                 raw_name: bytes) -> tuple[int, int, int, int]:
    """Replace saturated 32-bit fields by the values of the ZIP64 extra field ``data``."""
    if data is None:
        if disk == LIMIT16 and LIMIT32 not in (usize, csize, offset):
            return usize, csize, offset, 0
        raise ZipFormatError(f"{raw_name!r} needs a ZIP64 field but has none")
    pos = 0
    result = [usize, csize, offset, disk]
    for index, saturated in enumerate((usize == LIMIT32, csize == LIMIT32,
                                       offset == LIMIT32, disk == LIMIT16)):
        if not saturated:
            continue
        width = 4 if index == 3 else 8
        if pos + width > len(data):
            raise ZipFormatError(f"the ZIP64 field of {raw_name!r} is too short")
        result[index] = int.from_bytes(data[pos:pos + width], "little")
        pos += width
    return result[0], result[1], result[2], result[3]


def _descriptor_length(fd: int, member: Member, data_end: int, limit: int) -> int:
    """How long the data descriptor after a member's data is (it has four layouts)."""
    central = member.central
    tail = _pread(fd, 24, data_end)
    layouts = ((4, 8), (4, 4), (0, 8), (0, 4)) if tail[:4] == SIG_DESCRIPTOR else ((0, 8),
                                                                                  (0, 4))
    for sig_len, width in layouts:
        length = sig_len + 4 + 2 * width
        if len(tail) < length or data_end + length > limit:
            continue
        crc = int.from_bytes(tail[sig_len:sig_len + 4], "little")
        csize = int.from_bytes(tail[sig_len + 4:sig_len + 4 + width], "little")
        usize = int.from_bytes(tail[sig_len + 4 + width:length], "little")
        if (crc, csize, usize) == (central.crc, central.csize, central.usize):
            return length
    raise ZipFormatError(f"the data descriptor of {member.name!r} does not match its "
                         "directory record")


def verify_locals(fd: int, members: list[Member], cd_start: int) -> None:
    """Check that each member's local header is where it should be and names it.

    The members' ``local_len`` and ``span`` must be known already (see ``_read_locals``).
    """
    for member in members:
        header = _pread(fd, _LOCAL.size + len(member.central.raw_name), member.offset)
        if (len(header) < _LOCAL.size or header[:4] != SIG_LOCAL
                or header[_LOCAL.size:] != member.central.raw_name
                or member.offset + member.span > cd_start):
            raise ZipFormatError(f"the local header of {member.name!r} is not as written")


def _read_locals(fd: int, members: list[Member], cd_start: int) -> None:
    """Check every local header and work out how many bytes each member occupies."""
    unpack = _LOCAL.unpack_from
    for member in members:
        header = _pread(fd, _LOCAL.size, member.offset)
        if member.offset + _LOCAL.size > cd_start or len(header) < _LOCAL.size:
            raise ZipFormatError(f"the data of {member.name!r} lies outside the archive "
                                 "(truncated?)")
        fields = unpack(header)
        if fields[0] != SIG_LOCAL:
            raise ZipFormatError(f"the local header of {member.name!r} is damaged")
        member.local_len = _LOCAL.size + fields[9] + fields[10]
        data_end = member.offset + member.local_len + member.central.csize
        if data_end > cd_start:
            raise ZipFormatError(f"the data of {member.name!r} runs past the end of the "
                                 "archive (truncated?)")
        if member.central.flags & FLAG_DESCRIPTOR:
            data_end += _descriptor_length(fd, member, data_end, cd_start)
        member.span = data_end - member.offset
    ordered = sorted(members, key=lambda m: m.offset)
    for before, after in itertools.pairwise(ordered):
        if before.offset + before.span > after.offset:
            raise ZipFormatError(f"members {before.name!r} and {after.name!r} overlap (a damaged "
                                 "or malicious archive)")


def read_directory(fd: int, size: int, check_locals: bool = True) -> Directory:
    """Parse and check the archive open as ``fd`` (``size`` bytes long).

    Raises ``ZipFormatError`` for anything that is not a sound ZIP archive, and
    ``OSError`` when the file cannot be read. Without ``check_locals`` only the
    directory is read: the members' ``local_len`` and ``span`` stay 0.
    """
    end_pos, fields = _find_end(fd, size)
    _, disk, cd_disk, _, count, cd_size, cd_offset, comment_len = fields
    if disk != 0 or cd_disk != 0:
        raise ZipFormatError("it is split over several files (spanned archives are not "
                             "supported)")
    comment = _pread(fd, comment_len, end_pos + _END.size)
    cd_end = end_pos
    found64 = _zip64_end(fd, end_pos)
    if found64 is not None:
        cd_end, count, cd_size, cd_offset = found64
    cd_start = cd_end - cd_size
    shift = cd_start - cd_offset
    if cd_start < 0 or shift < 0:
        raise ZipFormatError("its central directory lies outside the file (truncated?)")
    if count and not cd_size:
        raise ZipFormatError("its central directory is empty but should list members")
    data = _pread(fd, cd_size, cd_start)
    if len(data) != cd_size:
        raise ZipFormatError("its central directory is cut short (truncated?)")
    members = _parse_central(data, count, shift)
    if check_locals:
        _read_locals(fd, members, cd_start)
    prefix_end = min((m.offset for m in members), default=cd_start)
    return Directory(members, prefix_end, cd_start, comment)
