"""ZIP archives as locations: members are files, and every batch of changes is one rewrite.

The archive at PATH is a valid ZIP at every moment. Changes are collected per batch (one
engine round); ``end_batch`` writes a complete new archive beside the old one, fsyncs it,
checks it, and renames it over the old one. Members that did not change are copied as their
raw compressed bytes, in as few large kernel-side copies as possible, so replacing one small
member of a large archive costs about one sequential copy of the file.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat as st
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from filesync.locations import zipformat as zf
from filesync.locations.base import (
    ANY,
    CHUNK_SIZE,
    RESERVED_DIR,
    TEMP_NAME,
    Entry,
    Listing,
    Location,
    Readable,
    Unchecked,
    changed_since_planned,
    parents_of,
    still_holds,
    temp_name,
    unsafe_reason,
)
from filesync.locations.capabilities import Capabilities
from filesync.locations.folder import open_regular
from filesync.locations.spec import ZipSpec
from filesync.locations.zipnames import zip_name_problem
from filesync.locations.zipread import MemberStream
from filesync.result import Err, Ok, Result

try:
    import fcntl
except ImportError:  # not on POSIX: temporary files are then told apart by this process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("filesync")

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FADVISE = hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")
#: Large copies into a new archive go in steps of this size, each handed to the disk at once.
_WRITEBACK_STEP = 8 << 20
#: Deflate level of new members: Info-ZIP's default, a good speed/size balance.
_LEVEL = 6
#: Data that deflate cannot shrink below this share of its size is stored as it is.
_STORE_ABOVE = 0.97
_SAMPLE = 64 * 1024
#: Another program changing the archive during a rewrite makes filesync start over this often.
_ATTEMPTS = 3

_Key = tuple[int, int, int, int, int]
#: Matches every name ``unsafe_reason`` rejects; a cheap first look for the common case.
_SUSPICIOUS = re.compile(r"(?:^|/)\.\.?(?:/|$)|^/|^[A-Za-z]:|\\|\x00|//|/$|^$")


def _is_safe(path: str) -> bool:
    return _SUSPICIOUS.search(path) is None or unsafe_reason(path) is None


def _key(info: os.stat_result) -> _Key:
    """What identifies one version of the archive file (replaced, grown or touched)."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _lock(fd: int) -> None:
    """Mark a temporary file as in use, so no other run removes it as stale."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _in_use(path: str) -> bool:
    """True when a live filesync process holds the lock of this temporary file."""
    if fcntl is None:
        return False
    try:
        # Never wait on a FIFO or follow a link someone put under a temporary name.
        fd = os.open(path, os.O_RDONLY | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
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


def _write_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


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
            _write_all(dst, data, dst_offset)
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


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable; some systems cannot open folders, which is fine there."""
    try:
        fd = os.open(folder, os.O_RDONLY | _CLOEXEC | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


# ----- staged data --------------------------------------------------------------------------
class _Slot:
    """A temporary file beside the archive that new members are staged in, one after another.

    Each writer thread holds one slot at a time, so concurrent writes never interleave,
    and a batch needs only as many temporary files as it has writers.
    """

    def __init__(self, folder: Path, live: set[str], owner: str) -> None:
        self.name = temp_name("x", owner)
        self.path = folder / self.name
        self.live = live
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600)
        live.add(self.name)
        try:
            _lock(self.fd)
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
class _Staged:
    """Where the compressed bytes of a new member wait for the rewrite."""

    slot: _Slot
    offset: int


def _deflate(data: bytes) -> bytes:
    """Raw deflate (no zlib header), as ZIP stores it; ``zlib.compress`` has no wbits in 3.10."""
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _stage(source: Readable, slot: _Slot) -> tuple[int, int, int, int]:
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
            _write_all(slot.fd, out, start)
            slot.size = start + len(out)
            return method, zlib.crc32(first), len(out), len(first)
        sample = first[:_SAMPLE]
        deflate = len(zlib.compress(sample, 1)) < len(sample) * _STORE_ABOVE
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15) if deflate else None
        crc = usize = 0
        position = start
        chunk: bytes = first
        pending: bytes | None = second
        while chunk:
            crc = zlib.crc32(chunk, crc)
            usize += len(chunk)
            out = compressor.compress(chunk) if compressor else chunk
            if out:
                _write_all(slot.fd, out, position)
                position += len(out)
            if pending is not None:
                chunk, pending = pending, None
            else:
                chunk = source.read(CHUNK_SIZE)
        if compressor:
            out = compressor.flush()
            _write_all(slot.fd, out, position)
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


# ----- the members an archive will hold -----------------------------------------------------
@dataclass(slots=True)
class _Item:
    """One member of the archive being planned: an existing record, renamed, or new."""

    path: str
    is_dir: bool
    central: zf.Central
    mtime_ns: int
    problem: str | None = None
    member: zf.Member | None = None
    renamed: bool = False
    staged: _Staged | None = None
    #: A name the engine may use; unsafe ones imply no folders and are never touched.
    safe: bool = True

    def entry(self) -> Entry:
        """The entry a scan reports for this member."""
        if self.is_dir:
            return Entry(self.path, True, mode=zf.member_mode(self.central))
        return Entry(self.path, False, self.central.usize, self.mtime_ns,
                     zf.member_mode(self.central))


def _item_of(member: zf.Member) -> _Item:
    name = member.name
    is_dir = name.endswith("/")
    central = member.central
    path = name[:-1] if is_dir else name
    return _Item(path, is_dir, central, member.mtime_ns,
                 None if is_dir else zf.member_problem(central), member, False, None,
                 _is_safe(path))


def _dir_item(path: str) -> _Item:
    central = zf.new_central(path, True, time.time_ns(), zf.STORED, 0, 0, 0)
    return _Item(path, True, central, 0)


def _parents(path: str) -> Iterable[str]:
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


Look = tuple[Entry | None, str | None]


class _View:
    """The members an archive holds (or will hold), with the folders they imply.

    Folders exist as explicit ``name/`` members or implied by members below them; a
    folder only disappears through ``rmdir``, as in a real file system, so deleting the
    last file of a folder keeps the folder as an explicit member.
    """

    def __init__(self, directory: zf.Directory | None = None) -> None:
        self.items: list[_Item | None] = []
        self.index: dict[str, list[int]] = {}
        self.below: dict[str, int] = {}
        self.changed = False
        if directory is not None:
            for member in directory.members:
                self._insert(_item_of(member))

    @classmethod
    def of_items(cls, items: list[_Item]) -> _View:
        """A view holding ``items`` in this order."""
        view = cls()
        for item in items:
            view._insert(item)
        return view

    def copy(self) -> _View:
        """An independent copy to change (items themselves are never changed in place)."""
        other = _View()
        other.items = list(self.items)
        other.index = {path: list(slots) for path, slots in self.index.items()}
        other.below = dict(self.below)
        return other

    # ----- bookkeeping ---------------------------------------------------------------------
    def _insert(self, item: _Item, at: int | None = None) -> None:
        if at is None:
            at = len(self.items)
            self.items.append(item)
        else:
            self.items[at] = item
        slots = self.index.setdefault(item.path, [])
        slots.append(at)
        if len(slots) > 1:
            slots.sort()
        if item.safe:
            below = self.below
            for parent in _parents(item.path):
                below[parent] = below.get(parent, 0) + 1

    def _remove(self, at: int) -> None:
        item = self.items[at]
        assert item is not None
        self.items[at] = None
        slots = self.index[item.path]
        slots.remove(at)
        if not slots:
            del self.index[item.path]
        if item.safe:
            for parent in _parents(item.path):
                left = self.below[parent] - 1
                if left:
                    self.below[parent] = left
                else:
                    del self.below[parent]

    def _drop_files(self, path: str) -> int | None:
        """Remove every file member named ``path``; the place of the last one is returned."""
        last = None
        for at in list(self.index.get(path, ())):
            item = self.items[at]
            if item is not None and not item.is_dir:
                self._remove(at)
                last = at
        return last

    def _keep_parent(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        # Folders under .filesync are filesync's own and never mirrored: they may vanish.
        if (parent and parent != RESERVED_DIR and not parent.startswith(RESERVED_DIR + "/")
                and unsafe_reason(parent) is None
                and not self.is_dir(parent)):
            self._insert(_dir_item(parent))

    def live(self) -> list[_Item]:
        """The members in central-directory order."""
        return [item for item in self.items if item is not None]

    # ----- questions -----------------------------------------------------------------------
    def file(self, path: str) -> _Item | None:
        """The file member named ``path`` (the last one wins when a name repeats)."""
        at = self._last_file_slot(path)
        return None if at is None else self.items[at]

    def is_dir(self, path: str) -> bool:
        """True when ``path`` is a folder, explicit or implied."""
        if self.below.get(path):
            return True
        items = self.items
        return any(items[at].is_dir for at in self.index.get(path, ()))  # type: ignore[union-attr]

    def look(self, path: str) -> Look:
        """(entry, None), or (None, why it cannot be read)."""
        found = self.file(path)
        folder = self.is_dir(path)
        if found is not None and folder:
            return None, "it is both a file and a folder"
        if found is not None:
            return (None, found.problem) if found.problem else (found.entry(), None)
        return (Entry(path, True), None) if folder else (None, None)

    def _where_file_goes(self, path: str) -> str | None:
        for parent in parents_of(path):
            if self.file(parent) is not None:
                return f"{parent!r} is a file where a folder is needed"
        if self.is_dir(path):
            return "a folder with that name exists"
        existing = self.file(path)
        if existing is not None and existing.problem:
            return f"the member there is kept as it is: {existing.problem}"
        return None

    def _last_file_slot(self, path: str) -> int | None:
        for at in reversed(self.index.get(path, ())):
            item = self.items[at]
            if item is not None and not item.is_dir:
                return at
        return None

    # ----- changes (each returns why it cannot be done, or None) ---------------------------
    def put(self, item: _Item, keep_old_as: str = "") -> str | None:
        """Add ``item``, replacing any file of that name (at the same place in the list).

        With ``keep_old_as``, the file replaced is first moved there (its raw bytes reused).
        """
        problem = self._where_file_goes(item.path)
        if problem:
            return problem
        at = self._last_file_slot(item.path)
        if keep_old_as and at is not None:
            moved, problem = self.move(item.path, keep_old_as, keep_parent=False)
            if moved is None:
                return f"cannot keep the old version as {keep_old_as!r}: {problem}"
        dropped = self._drop_files(item.path)
        self._insert(item, dropped if dropped is not None else at)
        self.changed = True
        return None

    def delete(self, path: str) -> str | None:
        """Remove the file ``path``; a missing one is fine."""
        found = self.file(path)
        if found is None:
            return "it is a folder" if self.is_dir(path) else None
        if found.problem:
            return found.problem
        self._drop_files(path)
        self._keep_parent(path)
        self.changed = True
        return None

    def move(self, old: str, new: str, keep_parent: bool = True) -> tuple[_Item | None, str | None]:
        """Give the file ``old`` the name ``new``; its bytes are reused as they are."""
        source = self.file(old)
        if source is None:
            return None, "it does not exist"
        if source.problem:
            return None, source.problem
        if old == new:
            return source, None
        problem = self._where_file_goes(new)
        if problem:
            return None, problem
        moved = _Item(new, False, zf.renamed_central(source.central, new), source.mtime_ns,
                      None, source.member, source.member is not None, source.staged)
        self._drop_files(old)
        self._insert(moved, self._drop_files(new))
        if keep_parent:
            self._keep_parent(old)
        self.changed = True
        return moved, None

    def mkdir(self, path: str) -> str | None:
        """Create the folder ``path`` unless it exists."""
        for parent in parents_of(path):
            if self.file(parent) is not None:
                return f"{parent!r} is a file where a folder is needed"
        if self.file(path) is not None:
            return "a file with that name exists"
        if not self.is_dir(path):
            self._insert(_dir_item(path))
            self.changed = True
        return None

    def rmdir(self, path: str) -> str | None:
        """Remove the empty folder ``path``; a missing one is fine."""
        if self.below.get(path):
            return "it is not empty"
        slots = [at for at in self.index.get(path, ()) if self.items[at].is_dir]  # type: ignore[union-attr]
        if not slots:
            return "it is a file" if self.file(path) is not None else None
        for at in slots:
            self._remove(at)
        self._keep_parent(path)
        self.changed = True
        return None

    def ensure_not_empty(self) -> None:
        """An archive with no member at all fails ``unzip -t``: keep the reserved folder."""
        if not self.index:
            self._insert(_dir_item(RESERVED_DIR))


# ----- what scans report --------------------------------------------------------------------
@dataclass
class _Snapshot:
    """The listing of one archive version, computed once and reused while it is unchanged."""

    view: _View
    entries: dict[str, Entry]
    dirs: list[str]
    blind: dict[str, str]
    duplicates: list[str]

    @classmethod
    def of(cls, view: _View) -> _Snapshot:
        """Build the listing of the archive ``view`` shows (the view must not change)."""
        entries: dict[str, Entry] = {}
        blind: dict[str, str] = {}
        duplicates: list[str] = []
        items = view.items
        for path, slots in view.index.items():
            if len(slots) > 1 and sum(not items[at].is_dir for at in slots) > 1:  # type: ignore[union-attr]
                duplicates.append(path)
            entry, problem = view.look(path)
            if problem:
                blind[path] = problem
            elif entry is not None:
                entries[path] = entry
        for path in view.below:
            if path not in view.index:
                entries[path] = Entry(path, True)
        dirs = sorted(path for path, entry in entries.items() if entry.is_dir)
        return cls(view, entries, dirs, blind, duplicates)

    def look(self, path: str) -> Look:
        """The entry at ``path`` (or why it cannot be read)."""
        entry = self.entries.get(path)
        if entry is not None:
            return entry, None
        return None, self.blind.get(path)


@dataclass
class _Cached:
    """One parsed archive version, and what is derived from it on first use."""

    key: _Key
    directory: zf.Directory
    view: _View | None = None
    snapshot: _Snapshot | None = None


# ----- batches ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Op:
    """One requested change, kept so it can be applied again to a newer archive."""

    kind: str
    path: str
    expect: Look
    item: _Item | None = None
    new: str = ""
    expect_new: Look = (None, None)


@dataclass
class _Batch:
    """Changes collected until ``end_batch``; ``view`` is the archive they will produce."""

    ops: list[_Op] = field(default_factory=list)
    view: _View | None = None
    key: _Key | None = None
    slots: list[_Slot] = field(default_factory=list)
    free: list[_Slot] = field(default_factory=list)
    #: Changes dropped because another program changed their member meanwhile (path ->
    #: message); see ``ZipLocation.batch_refusals``.
    refused: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        """Remove the staging files."""
        for slot in self.slots:
            try:
                slot.close()
            except OSError as exc:
                log.warning("cannot remove temporary file %s: %s", slot.path,
                            exc.strerror or exc)
        self.slots.clear()
        self.free.clear()


def _apply(view: _View, op: _Op) -> tuple[Entry | None, str | None]:
    """Apply ``op`` to ``view``: (entry now at the target, None) or (None, why not)."""
    if op.kind == "put":
        assert op.item is not None
        problem = view.put(op.item, op.new)
        return (None, problem) if problem else (op.item.entry(), None)
    if op.kind == "move":
        moved, problem = view.move(op.path, op.new)
        return (None, problem) if moved is None else (moved.entry(), None)
    if op.kind == "delete":
        return None, view.delete(op.path)
    if op.kind == "mkdir":
        problem = view.mkdir(op.path)
        return (None, problem) if problem else (Entry(op.path, True), None)
    return None, view.rmdir(op.path)


class _Retry(Exception):
    """The archive changed on disk while it was being rewritten."""


# ----- writing archives ---------------------------------------------------------------------
class _Writer:
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
            _write_all(self.fd, self._buffer, self.pos - len(self._buffer))
            self._buffer.clear()


def _write_archive(out: _Writer, src: int, directory: zf.Directory,
                   items: list[_Item]) -> list[zf.Member]:
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


def _verified(fd: int, size: int, old: zf.Directory, members: list[zf.Member],
              items: list[_Item]) -> zf.Directory:
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


def _moved_to(item: _Item, member: zf.Member) -> _Item:
    """``item`` as it is after a rewrite: an unchanged member at ``member``'s place."""
    return _Item(item.path, item.is_dir, item.central, item.mtime_ns, item.problem, member,
                 False, None, item.safe)


# ----- the location -------------------------------------------------------------------------
class ZipLocation(Location):
    """A ZIP archive whose members are the files; see the module docstring."""

    kind = "zip"
    # No mtime tolerance: a member reports the same time on every scan (whole UTC seconds
    # from 0x5455, else its DOS time), so the archive's own entries compare exactly.
    capabilities = Capabilities(mtime_precision_ns=1_000_000_000, transactional=True,
                                keeps_permissions=True, temps_locked=True)

    def __init__(self, spec: ZipSpec) -> None:
        super().__init__(spec.key, spec.display)
        self.path = spec.path
        self.folder = spec.path.parent
        self._lock = threading.RLock()
        self._cache_lock = threading.Lock()
        self._cache: _Cached | None = None
        self._batch: _Batch | None = None
        #: Names of this process's own temporary files beside the archive.
        self._live: set[str] = set()
        self._temp_stamp: int | None = None
        self._refused: dict[str, str] = {}
        self._temp_names: list[str] = []

    def local_path(self) -> Path:
        """The archive file."""
        return self.path

    # ----- errors --------------------------------------------------------------------------
    def _fail(self, action: str, path: str, exc: OSError) -> Err:
        reason = exc.strerror or str(exc)
        where = f"{path!r} in {self.display}" if path else self.display
        return Err(f"cannot {action} {where}: {reason}")

    def _invalid(self, exc: zf.ZipFormatError) -> Err:
        return Err(f"{self.path} is not a valid ZIP archive: {exc}; filesync leaves it "
                   "untouched (check the path, or repair the archive, e.g. with 'zip -FF')")

    def _missing(self) -> Err:
        return Err(f"archive {self.path} is missing (deleted or moved away?); nothing is "
                   "concluded from it until it is back")

    # ----- reading the archive -------------------------------------------------------------
    def _open_archive(self) -> int:
        """Open the archive for reading; a FIFO or device there is refused, never waited on."""
        return open_regular(self.path, follow=True)

    def _directory(self, fd: int, info: os.stat_result) -> zf.Directory:
        """The parsed directory of the archive open as ``fd`` (cached per version)."""
        key = _key(info)
        with self._cache_lock:
            cached = self._cache
        if cached is not None and cached.key == key:
            return cached.directory
        directory = zf.read_directory(fd, info.st_size)
        if _key(os.fstat(fd)) != key:
            raise _Retry
        with self._cache_lock:
            self._cache = _Cached(key, directory)
        return directory

    def _base_view(self, directory: zf.Directory) -> _View:
        """The view of ``directory``, built once per archive version; copy it to change it."""
        with self._cache_lock:
            cached = self._cache
        if cached is not None and cached.directory is directory:
            if cached.view is None:
                cached.view = _View(directory)
            return cached.view
        return _View(directory)

    def _snapshot(self) -> _Snapshot:
        """The listing of the archive as it is now; raises ``OSError``/``ZipFormatError``."""
        for _attempt in range(_ATTEMPTS):
            key = _key(os.stat(self.path))
            with self._cache_lock:
                cached = self._cache
            if cached is None or cached.key != key:
                fd = self._open_archive()
                try:
                    try:
                        self._directory(fd, os.fstat(fd))
                    except _Retry:
                        continue
                finally:
                    os.close(fd)
                with self._cache_lock:
                    cached = self._cache
                if cached is None:
                    continue
            if cached.snapshot is None:
                cached.snapshot = _Snapshot.of(self._base_view(cached.directory))
            return cached.snapshot
        raise OSError(errno.EAGAIN, "the archive keeps changing while it is read; try again")

    def _read_snapshot(self) -> Result[_Snapshot]:
        """``_snapshot()`` with its failures translated into messages for the user."""
        try:
            return Ok(self._snapshot())
        except FileNotFoundError:
            return self._missing()
        except zf.ZipFormatError as exc:
            return self._invalid(exc)
        except OSError as exc:
            return self._fail("read", "", exc)

    def _look_up(self, paths: Iterable[str]) -> dict[str, Result[Entry | None]]:
        """The entries at ``paths`` now: from the batch being built, or the archive on disk."""
        with self._lock:
            batch = self._batch
            if batch is not None and batch.view is not None:
                try:
                    view = self._batch_view(batch)
                except FileNotFoundError:
                    failed: Err = self._missing()
                except zf.ZipFormatError as exc:
                    failed = self._invalid(exc)
                except OSError as exc:
                    failed = self._fail("read", "", exc)
                else:
                    return {path: self._looked(path, view.look(path)) for path in paths}
                return {path: failed for path in paths}
        snapshot = self._read_snapshot()
        if not snapshot.ok:
            return {path: snapshot for path in paths}
        return {path: self._looked(path, snapshot.value.look(path)) for path in paths}

    def _looked(self, path: str, look: Look) -> Result[Entry | None]:
        entry, problem = look
        if problem:
            return Err(f"cannot read {path!r} in {self.display}: {problem}")
        return Ok(entry)

    # ----- lifecycle -----------------------------------------------------------------------
    def probe(self) -> Result[None]:
        """The archive must be there and readable (from the cache while it is unchanged)."""
        snapshot = self._read_snapshot()
        return self.check_marker() if snapshot.ok else snapshot

    def check(self) -> Result[None]:
        """An existing archive must be a sound ZIP; a missing one needs an existing folder."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            if not self.folder.is_dir():
                return Err(f"neither the archive {self.path} nor its folder {self.folder} "
                           "exists; create the folder first or fix the path")
            return self._check_folder()
        except OSError as exc:
            return self._fail("read", "", exc)
        if st.S_ISDIR(info.st_mode):
            return Err(f"{self.path} is a folder, not a ZIP archive; write folder:{self.path} "
                       "to sync a folder")
        if not st.S_ISREG(info.st_mode):
            return Err(f"{self.path} is not a regular file, so it cannot be a ZIP archive")
        try:
            fd = self._open_archive()
        except OSError as exc:
            return self._fail("read", "", exc)
        try:
            self._directory(fd, os.fstat(fd))
        except zf.ZipFormatError as exc:
            return self._invalid(exc)
        except _Retry:
            return Err(f"{self.path} changed while it was being checked; is another program "
                       "writing it? Try again when it is done")
        except OSError as exc:
            return self._fail("read", "", exc)
        finally:
            os.close(fd)
        return self._check_folder()

    def _check_folder(self) -> Result[None]:
        if not os.access(self.folder, os.W_OK | os.X_OK):
            return Err(f"cannot create files in {self.folder}: filesync writes the updated "
                       f"archive there before renaming it over {self.path.name}; check the "
                       "folder's permissions")
        return Ok(None)

    def prepare(self) -> Result[None]:
        """Create a missing archive (holding only the reserved ``.filesync/`` folder)."""
        checked = self.check()
        if not checked.ok or self.path.exists():
            return checked
        central = zf.new_central(RESERVED_DIR, True, time.time_ns(), zf.STORED, 0, 0, 0)
        local = zf.local_header(central)
        record = zf.central_record(central, 0)
        data = local + record + zf.end_records(1, len(local), len(record), b"")
        temp = self.folder / temp_name("x", self.owner)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
            try:
                _write_all(fd, data, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # A link, unlike a rename, never replaces an archive made in the meantime.
                os.link(temp, self.path)
            except FileExistsError:
                pass
            except OSError:
                if not self.path.exists():
                    os.replace(temp, self.path)
            _fsync_folder(self.folder)
        except OSError as exc:
            return self._fail("create archive", "", exc)
        finally:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove temporary file %s: %s", temp, exc.strerror or exc)
        return self.check()

    def close(self) -> None:
        """Drop an unfinished batch (its staged data was never part of the archive)."""
        with self._lock:
            batch, self._batch = self._batch, None
        if batch is not None:
            batch.close()

    def begin_batch(self) -> Result[None]:
        """Collect the following changes for one rewrite at ``end_batch``."""
        with self._lock:
            if self._batch is None:
                self._batch = _Batch()
        return Ok(None)

    def end_batch(self) -> Result[None]:
        """Write every change of the batch in one new archive and rename it into place."""
        with self._lock:
            batch, self._batch = self._batch, None
            self._refused = {}
            if batch is None:
                return Ok(None)
            try:
                return self._commit(batch) if batch.ops else Ok(None)
            finally:
                self._refused = dict(batch.refused)
                batch.close()

    def batch_refusals(self) -> dict[str, str]:
        """Changes of the last batch that did not land (path -> why), though staged fine.

        Another program changed those members between the staging and the rewrite, so
        their version was kept; the rest of the batch landed. The engine should count
        them as failed, not record them as written.
        """
        with self._lock:
            return dict(self._refused)

    # ----- listing -------------------------------------------------------------------------
    def scan(self, skip_dir: Callable[[str], bool]) -> Result[Listing]:
        """Every member and the folders they imply; unreadable members become blind."""
        read = self._read_snapshot()
        if not read.ok:
            return read
        snapshot = read.value
        hidden: dict[str, bool] = {}
        for path in snapshot.dirs:
            parent = path.rpartition("/")[0]
            hidden[path] = hidden.get(parent, False) or skip_dir(path)
        listing = Listing()
        if any(hidden.values()):
            for path, entry in snapshot.entries.items():
                if not hidden.get(path if entry.is_dir else path.rpartition("/")[0], False):
                    listing.entries[path] = entry
        else:
            listing.entries = dict(snapshot.entries)
        for path, problem in snapshot.blind.items():
            if hidden.get(path.rpartition("/")[0], False):
                continue
            listing.skip(path, f"{problem}; it is "
                                    "not synced and is kept in the archive as it is")
        for path in snapshot.duplicates:
            if not hidden.get(path.rpartition("/")[0], False):
                listing.warnings.append(f"{path!r} is in {self.display} more than once; the "
                                        "last copy is used")
        listing.temps = self._stale_temps()
        return Ok(listing)

    def _stale_temps(self) -> list[str]:
        """Temporary files beside the archive that no live filesync run holds.

        The folder is listed again only when its mtime moved (a file was added or
        removed), so a watcher's scan stays cheap in a large folder.
        """
        try:
            stamp = os.stat(self.folder).st_mtime_ns
            if stamp != self._temp_stamp:
                with os.scandir(self.folder) as items:
                    self._temp_names = [item.name for item in items
                                        if TEMP_NAME.match(item.name)
                                        and item.is_file(follow_symlinks=False)]
                self._temp_stamp = stamp
        except OSError as exc:
            log.debug("cannot look for stale temporary files in %s: %s", self.folder, exc)
            return []
        return [name for name in self._temp_names
                if name not in self._live and not _in_use(str(self.folder / name))]

    def stat(self, path: str) -> Result[Entry | None]:
        """The entry at ``path``; during a batch, what the archive will hold after it."""
        return self._look_up([path])[path]

    def stat_many(self, paths: Iterable[str]) -> dict[str, Result[Entry | None]]:
        """``stat`` several paths from one look at the archive."""
        return self._look_up(paths)

    # ----- reading -------------------------------------------------------------------------
    def open_read(self, path: str) -> Result[BinaryIO]:
        """Stream a member's content (decompressed, CRC-checked at the end)."""
        label = f"{path!r} in {self.display}"
        with self._lock:
            batch = self._batch
            item = batch.view.file(path) if batch and batch.view else None
            if item is not None and item.staged is not None:
                try:
                    fd = os.dup(item.staged.slot.fd)
                except OSError as exc:
                    return self._fail("read", path, exc)
                return Ok(cast(BinaryIO, MemberStream(fd, item.staged.offset, item.central,
                                                       label)))
        for _attempt in range(_ATTEMPTS):
            try:
                fd = self._open_archive()
            except FileNotFoundError:
                return self._missing()
            except OSError as exc:
                return self._fail("read", path, exc)
            try:
                member = self._member(fd, path)
            except _Retry:
                os.close(fd)
                continue
            except zf.ZipFormatError as exc:
                os.close(fd)
                return self._invalid(exc)
            except OSError as exc:
                os.close(fd)
                return self._fail("read", path, exc)
            if not member.ok:
                os.close(fd)
                return member
            return Ok(cast(BinaryIO, MemberStream(fd, member.value.data_offset,
                                                   member.value.central, label)))
        return Err(f"cannot read {label}: the archive keeps changing")

    def _member(self, fd: int, path: str) -> Result[zf.Member]:
        """The member holding the file ``path`` in the archive open as ``fd``."""
        view = self._base_view(self._directory(fd, os.fstat(fd)))
        entry, problem = view.look(path)
        item = view.file(path)
        if problem or item is None or item.member is None:
            why = problem or ("it is a folder" if entry else "it does not exist")
            return Err(f"cannot read {path!r} in {self.display}: {why}")
        return Ok(item.member)

    # ----- changes -------------------------------------------------------------------------
    def name_problem(self, path: str) -> str | None:
        """Why the archive cannot hold ``path`` (see ``zip_name_problem``), or None."""
        return super().name_problem(path) or zip_name_problem(path)

    def _batch_view(self, batch: _Batch) -> _View:
        """The archive as it is on disk now, with the batch's changes applied.

        Built at the batch's first use; when another program has changed the archive
        since, the batch is applied again to the newer one (``_replay``), so re-checks
        before a change always look at what is really there.
        """
        if batch.view is not None and batch.key == _key(os.stat(self.path)):
            return batch.view
        for _attempt in range(_ATTEMPTS):
            fd = self._open_archive()
            try:
                info = os.fstat(fd)
                directory = self._directory(fd, info)
            except _Retry:
                continue
            finally:
                os.close(fd)
            batch.view = (self._base_view(directory).copy() if batch.view is None
                          else self._replay(batch, directory))
            batch.key = _key(info)
            return batch.view
        raise OSError(errno.EAGAIN, "the archive keeps changing while it is read")

    def _change(self, op: _Op, failed: str, own: _Batch | None = None,
                planned: Entry | Unchecked | None = ANY) -> Result[Entry | None]:
        """Apply ``op`` to the current batch, or as its own rewrite outside a batch.

        ``failed`` starts the error message ("cannot delete 'x' in zip:..."). Unless
        ``planned`` is ``ANY``, ``op.path`` must still hold it (see ``still_holds``).
        """
        with self._lock:
            batch = self._batch if own is None else own
            single = batch is None
            if batch is None:
                batch = _Batch()
            try:
                view = self._batch_view(batch)
                expect = view.look(op.path)
                if planned is not ANY and (expect[1] or not still_holds(expect[0], planned)):
                    return Err(changed_since_planned(op.path, self.display))
                expect_new = view.look(op.new) if op.new else (None, None)
                entry, problem = _apply(view, op)
                if problem:
                    return Err(f"{failed}: {problem}")
                batch.ops.append(_Op(op.kind, op.path, expect, op.item, op.new, expect_new))
                if single or own is not None:
                    committed = self._commit(batch)
                    if not committed.ok:
                        return committed
                    if op.path in batch.refused:
                        return Err(batch.refused[op.path])
                return Ok(entry)
            except FileNotFoundError:
                return self._missing()
            except zf.ZipFormatError as exc:
                return self._invalid(exc)
            except OSError as exc:
                return Err(f"{failed}: {exc.strerror or exc}")
            finally:
                if single:
                    batch.close()

    def write(self, path: str, source: Readable, mtime_ns: int,
              keep_old_as: str | None = None, expect: Entry | Unchecked | None = ANY,
              mode: int = 0) -> Result[Entry]:
        """Stage ``source`` as the new content of ``path``; it lands at ``end_batch``.

        With ``keep_old_as`` the member replaced is renamed there in the same rewrite, so
        the archive never holds neither (or a partial) version. ``mode`` 0 keeps the
        permissions of the member replaced (0o644 for a new one). With ``expect`` the
        member is re-checked against the archive as it is on disk when the write is
        staged, and again when the batch is written (see ``batch_refusals``).
        """
        problem = self.name_problem(path) or (
            self.name_problem(keep_old_as) if keep_old_as else None)
        if problem:
            return Err(f"cannot write {path!r} to {self.display}: {problem}")
        with self._lock:
            batch = self._batch
            own = None if batch is not None else _Batch()
            holder = batch if batch is not None else own
            assert holder is not None
            try:
                slot = (holder.free.pop() if holder.free
                        else _Slot(self.folder, self._live, self.owner))
            except OSError as exc:
                if own is not None:
                    own.close()
                return self._fail("write", path, exc)
            if slot not in holder.slots:
                holder.slots.append(slot)
        try:
            try:
                offset = slot.size
                method, crc, csize, usize = _stage(source, slot)
            finally:
                with self._lock:
                    holder.free.append(slot)
        except OSError as exc:
            if own is not None:
                own.close()
            return Err(f"cannot write {path!r} to {self.display}: {exc.strerror or exc}")
        except BaseException:
            if own is not None:
                own.close()
            raise
        if not mode:  # a source without permissions: keep those of the member replaced
            found = self._look_up([path])[path]
            mode = found.value.mode if found.ok and found.value is not None else 0
        central = zf.new_central(path, False, mtime_ns, method, crc, csize, usize, mode)
        item = _Item(path, False, central, zf.member_mtime_ns(central), None, None, False,
                     _Staged(slot, offset))
        with self._lock:
            if own is None and self._batch is not batch:
                return Err(f"cannot write {path!r} to {self.display}: the round ended before "
                           "the file was read; it will be copied again")
            try:
                result = self._change(_Op("put", path, (None, None), item, keep_old_as or ""),
                                      f"cannot write {path!r} to {self.display}", own, expect)
            finally:
                if own is not None:
                    own.close()
        if not result.ok:
            return result
        entry = result.value
        assert entry is not None
        return Ok(entry)

    def rename(self, old: str, new: str) -> Result[Entry]:
        """Give a member another name, reusing its compressed bytes as they are."""
        problem = self.name_problem(new)
        if problem:
            return Err(f"cannot move {old!r} to {new!r} in {self.display}: {problem}")
        result = self._change(_Op("move", old, (None, None), new=new),
                              f"cannot move {old!r} to {new!r} in {self.display}")
        if not result.ok:
            return result
        entry = result.value
        assert entry is not None
        return Ok(entry)

    def delete(self, path: str) -> Result[None]:
        """Remove a member (or a stale temporary file beside the archive)."""
        if "/" not in path and TEMP_NAME.match(path):
            return self._remove_temp(path)
        result = self._change(_Op("delete", path, (None, None)),
                              f"cannot delete {path!r} in {self.display}")
        return result if not result.ok else Ok(None)

    def _remove_temp(self, name: str) -> Result[None]:
        full = self.folder / name
        if name in self._live or _in_use(str(full)):
            return Err(f"temporary file {full} is in use by a running filesync; left alone")
        try:
            os.unlink(full)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return Err(f"cannot remove stale temporary file {full}: {exc.strerror or exc}")
        return Ok(None)

    def mkdir(self, path: str) -> Result[Entry]:
        """Add a folder member ``path/`` unless the folder exists already."""
        problem = self.name_problem(path)
        if problem:
            return Err(f"cannot create folder {path!r} in {self.display}: {problem}")
        result = self._change(_Op("mkdir", path, (None, None)),
                              f"cannot create folder {path!r} in {self.display}")
        if not result.ok:
            return result
        return Ok(Entry(path, True))

    def rmdir(self, path: str) -> Result[None]:
        """Remove an empty folder (its ``path/`` member)."""
        result = self._change(_Op("rmdir", path, (None, None)),
                              f"cannot delete folder {path!r} in {self.display}")
        return result if not result.ok else Ok(None)

    # ----- the rewrite ---------------------------------------------------------------------
    def _replay(self, batch: _Batch, directory: zf.Directory) -> _View:
        """Apply the batch again to a newer archive, keeping changes made by others.

        A change whose member (or target name) no longer looks as it did when the change
        was staged is dropped and recorded in ``batch.refused``: the other program's
        version stays, and the next round sees it as a change.
        """
        view = self._base_view(directory).copy()
        kept: list[_Op] = []
        for op in batch.ops:
            now = view.look(op.path)
            now_new = view.look(op.new) if op.new else (None, None)
            if now != op.expect or now_new != op.expect_new:
                log.warning("%s in %s was changed by another program while filesync updated "
                            "the archive; that version is kept", op.path, self.display)
                batch.refused[op.path] = changed_since_planned(op.path, self.display)
                continue
            _, problem = _apply(view, op)
            if problem:
                log.warning("cannot apply the change of %s to %s any more: %s", op.path,
                            self.display, problem)
                batch.refused[op.path] = (f"cannot change {op.path!r} in {self.display} any "
                                          f"more: {problem}; it will be looked at again")
                continue
            kept.append(op)
        batch.ops = kept
        return view

    def _commit(self, batch: _Batch) -> Result[None]:
        """Write the batch as one new archive and rename it over the old one."""
        for _attempt in range(_ATTEMPTS):
            try:
                src = self._open_archive()
            except FileNotFoundError:
                return self._missing()
            except OSError as exc:
                return self._fail("read", "", exc)
            try:
                info = os.fstat(src)
                directory = self._directory(src, info)
                view = batch.view
                if view is None or batch.key != _key(info):
                    view = self._replay(batch, directory)
                if not view.changed:
                    return Ok(None)
                view.ensure_not_empty()
                self._rewrite(src, info, directory, view.live())
                return Ok(None)
            except _Retry:
                continue
            except zf.ZipFormatError as exc:
                return self._invalid(exc)
            except OSError as exc:
                return Err(f"cannot update {self.path}: {exc.strerror or exc}; the archive is "
                           "unchanged and the changes will be tried again")
            finally:
                os.close(src)
        return Err(f"cannot update {self.path}: another program kept changing it; the changes "
                   "will be tried again")

    def _rewrite(self, src: int, info: os.stat_result, directory: zf.Directory,
                 items: list[_Item]) -> None:
        """Write ``items`` to a temporary archive, check it, and rename it into place."""
        temp = self.folder / temp_name("x", self.owner)
        dst = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _CLOEXEC,
                      st.S_IMODE(info.st_mode))
        self._live.add(temp.name)
        replaced = False
        try:
            _lock(dst)
            out = _Writer(dst)
            members = _write_archive(out, src, directory, items)
            os.fsync(dst)
            written = os.fstat(dst)
            try:
                new = _verified(dst, written.st_size, directory, members, items)
            except zf.ZipFormatError as exc:
                raise OSError(errno.EIO, f"the new archive did not read back as written ({exc})"
                              ) from exc
            if _key(os.fstat(src)) != _key(info) or _key(os.stat(self.path)) != _key(info):
                raise _Retry
            os.replace(temp, self.path)
            replaced = True
            _fsync_folder(self.folder)
            now = os.stat(self.path)
            cached = None
            if now.st_ino == written.st_ino:
                cached = _Cached(_key(now), new, _View.of_items(
                    [_moved_to(item, member) for item, member in zip(items, members,
                                                                     strict=True)]))
            with self._cache_lock:
                self._cache = cached
        finally:
            os.close(dst)
            self._live.discard(temp.name)
            if not replaced:
                try:
                    os.unlink(temp)
                except OSError as exc:
                    log.warning("cannot remove temporary file %s: %s", temp, exc.strerror or exc)
