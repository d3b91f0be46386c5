"""Writing archives: raw copies of unchanged members, the staged bytes of new ones.

The new file is read back and compared with what was meant before it may replace the
old one (see ``verified``).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from filesync.locations.base import CHUNK_SIZE
from filesync.locations.zip import format as zf
from filesync.locations.zip.stage import write_all
from filesync.locations.zip.temps import CLOEXEC
from filesync.locations.zip.view import Item
from filesync.model import RESERVED_DIR

log = logging.getLogger("filesync")

_FADVISE = hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")
#: Large copies into a new archive go in steps of this size, each handed to the disk at once.
_WRITEBACK_STEP = 8 << 20


def _copy_range(src: int, src_offset: int, dst: int, dst_offset: int, length: int) -> None:
    """Copy bytes between files inside the kernel when it can, else through a small buffer."""
    fast = hasattr(os, "copy_file_range")
    while length > 0:
        if fast:
            try:
                done = os.copy_file_range(src, dst, min(length, 1 << 30), src_offset, dst_offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                     errno.EPERM, errno.EBADF):
                    raise
                fast = False
                continue
        else:
            data = os.pread(src, min(length, CHUNK_SIZE), src_offset)
            write_all(dst, data, dst_offset)
            done = len(data)
        if done == 0:
            raise OSError(errno.EIO, "a file ended early while being copied")
        src_offset += done
        dst_offset += done
        length -= done


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Let the disk start on bytes just written, so the final fsync has less left to wait for.

    ``POSIX_FADV_DONTNEED`` starts writeback of dirty pages without waiting, and drops only
    clean ones, so what was just written stays cached for the next reader.
    """
    if _FADVISE:
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            log.debug("posix_fadvise: %s", exc)


def fsync_folder(folder: Path) -> None:
    """Make a rename durable; some systems cannot open folders, which is fine there."""
    try:
        fd = os.open(folder, os.O_RDONLY | CLOEXEC | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


class Writer:
    """Sequential output to the new archive: small records buffered, big ranges copied."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        self._buffer += data
        self.pos += len(data)
        if len(self._buffer) >= CHUNK_SIZE:
            self.flush()

    def copy(self, src: int, offset: int, length: int) -> None:
        """Append ``length`` bytes of the file ``src`` from ``offset``."""
        if length <= 0:
            return
        self.flush()
        while length > 0:
            step = min(length, _WRITEBACK_STEP)
            _copy_range(src, offset, self.fd, self.pos, step)
            if step == _WRITEBACK_STEP:
                _start_writeback(self.fd, self.pos, step)
            offset += step
            length -= step
            self.pos += step

    def flush(self) -> None:
        """Write out the buffered records."""
        if self._buffer:
            write_all(self.fd, self._buffer, self.pos - len(self._buffer))
            self._buffer.clear()


def write_archive(out: Writer, src: int, directory: zf.Directory,
                   items: list[Item]) -> list[zf.Member]:
    """Write the archive holding ``items``; unchanged members come from ``src`` raw.

    Returns the members as they are in the new file, in the order of ``items``.
    """
    out.copy(src, 0, directory.prefix_end)
    offsets = [0] * len(items)
    layout = [(0, 0)] * len(items)
    # Unchanged members in their order in the old file, so neighbours merge into one copy.
    kept = sorted((index for index, item in enumerate(items)
                   if item.member is not None and not item.renamed),
                  key=lambda index: items[index].member.offset)  # type: ignore[union-attr]
    runs: list[tuple[int, int]] = []
    position = out.pos
    for index in kept:
        member = items[index].member
        assert member is not None
        if runs and runs[-1][0] + runs[-1][1] == member.offset:
            runs[-1] = (runs[-1][0], runs[-1][1] + member.span)
        else:
            runs.append((member.offset, member.span))
        offsets[index] = position
        layout[index] = (member.local_len, member.span)
        position += member.span
    for start, length in runs:
        out.copy(src, start, length)
    kept_set = set(kept)
    for index, item in enumerate(items):
        if index in kept_set:
            continue
        offsets[index] = out.pos
        member = item.member
        if member is not None:
            raw_local = os.pread(src, member.local_len, member.offset)
            header = zf.renamed_local(raw_local, item.central)
            out.write(header)
            out.copy(src, member.data_offset, member.span - member.local_len)
            layout[index] = (len(header), len(header) + member.span - member.local_len)
        else:
            header = zf.local_header(item.central)
            out.write(header)
            if item.staged is not None:
                out.copy(item.staged.slot.fd, item.staged.offset, item.central.csize)
            layout[index] = (len(header), len(header) + item.central.csize)
    cd_start = out.pos
    for index, item in enumerate(items):
        out.write(zf.central_record(item.central, offsets[index]))
    out.write(zf.end_records(len(items), cd_start, out.pos - cd_start, directory.comment))
    out.flush()
    return [zf.Member(item.central, item.path + "/" if item.is_dir else item.path,
                      offsets[index], item.mtime_ns, *layout[index])
            for index, item in enumerate(items)]


def verified(fd: int, size: int, old: zf.Directory, members: list[zf.Member],
              items: list[Item]) -> zf.Directory:
    """Read the new archive back as a reader will, and compare it with what was meant.

    The directory and end records are parsed again; the local headers written anew
    (not copied) are checked too. Raises ``ZipFormatError`` on any difference.
    """
    found = zf.read_directory(fd, size, check_locals=False)
    if [(m.offset, m.central.raw_name) for m in found.members] != [
            (m.offset, m.central.raw_name) for m in members]:
        raise zf.ZipFormatError("its directory differs from the one written")
    fresh = [m for m, item in zip(members, items, strict=True)
             if item.member is None or item.renamed]
    zf.verify_locals(fd, fresh, found.cd_start)
    return zf.Directory(members, old.prefix_end if members else found.cd_start,
                        found.cd_start, found.comment)


def moved_to(item: Item, member: zf.Member) -> Item:
    """``item`` as it is after a rewrite: an unchanged member at ``member``'s place."""
    return Item(item.path, item.is_dir, item.central, item.mtime_ns, item.problem, member,
                False, None, item.safe)


def empty_archive(mtime_ns: int) -> bytes:
    """A complete archive holding only the reserved ``.filesync/`` folder."""
    central = zf.new_central(RESERVED_DIR, True, mtime_ns, zf.STORED, 0, 0, 0)
    local = zf.local_header(central)
    record = zf.central_record(central, 0)
    return local + record + zf.end_records(1, len(local), len(record), b"")
