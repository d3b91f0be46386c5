"""A location held in memory: a reference backend for tests and for library users.

``MemoryLocation`` keeps a tree of files and folders in a dict, guarded by one lock, and
implements the whole required core of ``Location`` with exact (nanosecond) times and
permission bits. It is built from Python, not from the command line::

    from filesync.locations.memory import MemoryLocation

    location = MemoryLocation("scratch")          # key and display: "memory:scratch"

A file's content is kept as the pieces its writer delivered (no copy is joined), so a
write holds the file once, plus nothing but the piece in flight.

Fault injection, for tests of the layers above (all thread-safe, all documented here):

- ``available = False``: every operation answers ``ErrorKind.UNAVAILABLE``, as a server
  that went down would; set it back to ``True`` to bring the location back.
- ``read_only = True``: every change answers ``ErrorKind.REFUSED`` (permission denied).
- ``fail_next_write_after(n_bytes)``: the next ``write`` raises ``OSError(ENOSPC)`` once
  ``n_bytes`` have arrived, so it fails mid-stream with ``ErrorKind.NO_SPACE``.
- ``plant(path, data)``: put a file in place without any check, as another program (or a
  crashed run leaving a temporary file) would.
"""

from __future__ import annotations

import errno
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

from filesync.locations.base import CHUNK_SIZE, Location, Readable, changed_since_planned
from filesync.locations.capabilities import Capabilities
from filesync.model import ANY, TEMP_NAME, Entry, Listing, Unchecked, parents_of, still_holds
from filesync.result import Err, ErrorKind, Ok, Result, kind_of

#: Permission bits of a new file written without any (``mode=0``).
DEFAULT_MODE = 0o644


@dataclass(frozen=True)
class _File:
    """One file: its content as immutable pieces, its time and its permission bits."""

    pieces: tuple[bytes, ...]
    size: int
    mtime_ns: int
    mode: int

    def entry(self, path: str) -> Entry:
        """The entry this file is reported as under ``path``."""
        return Entry(path, False, self.size, self.mtime_ns, self.mode)


class _Reader(io.RawIOBase):
    """Streams a file's pieces; the pieces are never changed, so no lock is needed."""

    def __init__(self, pieces: tuple[bytes, ...]) -> None:
        super().__init__()
        self._pieces = pieces
        self._index = 0
        self._offset = 0

    def readable(self) -> bool:
        """Always true."""
        return True

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); ``b""`` at the end."""
        if self.closed:
            raise ValueError("read from a closed file")
        parts: list[bytes] = []
        wanted = size if size is not None and size >= 0 else -1
        while wanted and self._index < len(self._pieces):
            piece = self._pieces[self._index]
            end = len(piece) if wanted < 0 else min(len(piece), self._offset + wanted)
            parts.append(piece if self._offset == 0 and end == len(piece)
                         else piece[self._offset:end])
            if wanted > 0:
                wanted -= end - self._offset
            if end == len(piece):
                self._index += 1
                self._offset = 0
            else:
                self._offset = end
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` as far as the content goes; the number of bytes put there."""
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class MemoryLocation(Location):
    """A tree of files and folders in memory (see the module docstring)."""

    kind = "memory"
    capabilities = Capabilities(keeps_permissions=True, posix_names=True, atomic_claim=True)

    def __init__(self, name: str = "memory") -> None:
        super().__init__(f"memory:{name}", f"memory:{name}")
        self._lock = threading.RLock()
        self._files: dict[str, _File] = {}
        self._dirs: set[str] = set()
        #: False: every operation answers UNAVAILABLE (a server that is down).
        self.available = True
        #: True: every change answers REFUSED (permission denied).
        self.read_only = False
        self._fail_after: int | None = None

    # ----- fault injection ----------------------------------------------------------------
    def fail_next_write_after(self, n_bytes: int) -> None:
        """Make the next ``write`` fail with ENOSPC once ``n_bytes`` of it have arrived."""
        with self._lock:
            self._fail_after = n_bytes

    def plant(self, path: str, data: bytes, mtime_ns: int = 0, mode: int = DEFAULT_MODE) -> None:
        """Put a file at ``path`` without any check (parents included), as another program would."""
        with self._lock:
            self._dirs.update(parents_of(path))
            self._files[path] = _File((bytes(data),), len(data), mtime_ns, mode)

    # ----- errors -------------------------------------------------------------------------
    def _unavailable(self) -> Err | None:
        if self.available:
            return None
        return Err(f"{self.display} is not available (switched off)", ErrorKind.UNAVAILABLE)

    def _refused(self, action: str, path: str, new_name: bool = True) -> Err | None:
        """Why a change may not be made now (unavailable, read-only, a bad name), or None.

        Only a name being created (``new_name``) is checked: stray temporary files must
        stay removable.
        """
        down = self._unavailable()
        if down is not None:
            return down
        if self.read_only:
            return Err(f"cannot {action} {path!r} in {self.display}: it is read-only",
                       ErrorKind.REFUSED)
        problem = self.name_problem(path) if new_name else None
        if problem:
            return Err(f"cannot {action} {path!r} in {self.display}: {problem}",
                       ErrorKind.INVALID)
        return None

    def _err(self, action: str, path: str, why: str, kind: ErrorKind = ErrorKind.FAILED) -> Err:
        return Err(f"cannot {action} {path!r} in {self.display}: {why}", kind)

    # ----- lifecycle ----------------------------------------------------------------------
    def check(self) -> Result[None]:
        """A memory location is usable whenever it is available."""
        down = self._unavailable()
        return down if down is not None else Ok(None)

    def prepare(self) -> Result[None]:
        """Nothing to create: the root exists from the start."""
        return self.check()

    def probe(self) -> Result[None]:
        """Available, and still carrying its marker once one is expected."""
        down = self._unavailable()
        return down if down is not None else self.check_marker()

    # ----- listing ------------------------------------------------------------------------
    def scan(self, skip_dir: Callable[[str], bool]) -> Result[Listing]:
        """Every folder and file, leaving out skipped folders with everything below them."""
        with self._lock:
            down = self._unavailable()
            if down is not None:
                return down
            dirs = sorted(self._dirs)
            files = list(self._files.items())
        listing = Listing()
        hidden: set[str] = set()
        for path in dirs:  # sorted: a parent comes before its children
            parent = path.rpartition("/")[0]
            if parent in hidden or skip_dir(path):
                hidden.add(path)
            else:
                listing.entries[path] = Entry(path, True)
        for path, file in files:
            parent, _, name = path.rpartition("/")
            if parent in hidden:
                continue
            if TEMP_NAME.match(name):
                listing.temps.append(path)
            else:
                listing.entries[path] = file.entry(path)
        return Ok(listing)

    def _look(self, path: str) -> Entry | None:
        """The entry at ``path`` (the lock held)."""
        file = self._files.get(path)
        if file is not None:
            return file.entry(path)
        return Entry(path, True) if path in self._dirs else None

    def stat(self, path: str) -> Result[Entry | None]:
        """The entry at ``path``, ``None`` when nothing is there."""
        with self._lock:
            down = self._unavailable()
            return down if down is not None else Ok(self._look(path))

    # ----- reading and writing ------------------------------------------------------------
    def open_read(self, path: str) -> Result[BinaryIO]:
        """A stream over the file's content as it is now (later writes do not change it)."""
        with self._lock:
            down = self._unavailable()
            if down is not None:
                return down
            file = self._files.get(path)
            if file is None:
                why, kind = (("it is a folder", ErrorKind.INVALID) if path in self._dirs
                             else ("it does not exist", ErrorKind.NOT_FOUND))
                return self._err("read", path, why, kind)
        return Ok(cast(BinaryIO, _Reader(file.pieces)))

    def _take(self, source: Readable) -> tuple[tuple[bytes, ...], int]:
        """Read ``source`` to its end in bounded pieces (an injected fault may stop it)."""
        with self._lock:
            fail_after, self._fail_after = self._fail_after, None
        pieces: list[bytes] = []
        size = 0
        while chunk := source.read(CHUNK_SIZE):
            size += len(chunk)
            if fail_after is not None and size > fail_after:
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            pieces.append(bytes(chunk))
        return tuple(pieces), size

    def _make_parents(self, path: str) -> str | None:
        """Create the folders ``path`` needs (the lock held); why not, or None."""
        parents = parents_of(path)
        for parent in parents:
            if parent in self._files:
                return f"{parent!r} is a file where a folder is needed"
        self._dirs.update(parents)
        return None

    def write(self, path: str, source: Readable, mtime_ns: int,
              keep_old_as: str | None = None, expect: Entry | Unchecked | None = ANY,
              mode: int = 0) -> Result[Entry]:
        """Read ``source`` completely, then put it at ``path`` in one step.

        Nothing is visible under ``path`` until the content is complete; a source that
        fails leaves the old file as it was. ``mode`` 0 keeps the permissions of the file
        replaced (``DEFAULT_MODE`` for a new one).
        """
        refused = self._refused("write", path) or (
            self._refused("keep the old version as", keep_old_as) if keep_old_as else None)
        if refused is not None:
            return refused
        try:
            pieces, size = self._take(source)
        except OSError as exc:
            return self._err("write", path, exc.strerror or str(exc), kind_of(exc))
        with self._lock:
            refused = self._refused("write", path)
            if refused is not None:
                return refused
            found = self._look(path)
            if expect is not ANY and not still_holds(found, expect):
                return Err(changed_since_planned(path, self.display), ErrorKind.CHANGED)
            if found is not None and found.is_dir:
                return self._err("write", path, "a folder has that name")
            old = self._files.get(path)
            problem = self._make_parents(path)
            if problem is None and keep_old_as is not None and old is not None:
                problem = self._move(path, keep_old_as)
            if problem is not None:
                return self._err("write", path, problem)
            mode = (mode & 0o7777) or (old.mode if old is not None else DEFAULT_MODE)
            file = _File(pieces, size, mtime_ns, mode)
            self._files[path] = file
            return Ok(file.entry(path))

    def _move(self, old: str, new: str) -> str | None:
        """Move the file ``old`` to ``new`` (the lock held); why not, or None."""
        if new in self._dirs:
            return f"a folder is named {new!r}"
        problem = self._make_parents(new)
        if problem is not None:
            return problem
        self._files[new] = self._files.pop(old)
        return None

    def rename(self, old: str, new: str) -> Result[Entry]:
        """Move a file (parents of ``new`` created, an existing file ``new`` replaced)."""
        refused = self._refused(f"move {old!r} to", new)
        if refused is not None:
            return refused
        with self._lock:
            if old not in self._files:
                why, kind = (("it is a folder", ErrorKind.INVALID) if old in self._dirs
                             else ("it does not exist", ErrorKind.NOT_FOUND))
                return self._err("move", old, why, kind)
            problem = self._move(old, new)
            if problem is not None:
                return self._err(f"move {old!r} to", new, problem)
            return Ok(self._files[new].entry(new))

    def delete(self, path: str) -> Result[None]:
        """Remove a file; one that is already gone is fine."""
        with self._lock:
            refused = self._refused("delete", path, new_name=False)
            if refused is not None:
                return refused
            if path in self._dirs:
                return self._err("delete", path, "it is a folder")
            self._files.pop(path, None)
        return Ok(None)

    def mkdir(self, path: str) -> Result[Entry]:
        """Create a folder and its parents; an existing one is fine."""
        with self._lock:
            refused = self._refused("create folder", path)
            if refused is not None:
                return refused
            problem = ("a file has that name" if path in self._files
                       else self._make_parents(path + "/x"))
            if problem is not None:
                return self._err("create folder", path, problem)
        return Ok(Entry(path, True))

    def claim_dir(self, path: str) -> Result[bool]:
        """Create a folder unless something has that name (under the lock: atomic)."""
        with self._lock:
            if path in self._dirs or path in self._files:
                down = self._unavailable()
                return down if down is not None else Ok(False)
        made = self.mkdir(path)
        return made if not made.ok else Ok(True)

    def rmdir(self, path: str) -> Result[None]:
        """Remove an empty folder; a missing one is NOT_FOUND, a non-empty one FAILED."""
        with self._lock:
            refused = self._refused("delete folder", path, new_name=False)
            if refused is not None:
                return refused
            if path not in self._dirs:
                why, kind = (("it is a file", ErrorKind.INVALID) if path in self._files
                             else ("it does not exist", ErrorKind.NOT_FOUND))
                return self._err("delete folder", path, why, kind)
            below = path + "/"
            if any(p.startswith(below) for p in self._dirs) or any(
                    p.startswith(below) for p in self._files):
                return self._err("delete folder", path, "it is not empty")
            self._dirs.discard(path)
        return Ok(None)
