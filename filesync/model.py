"""The data model every layer shares: entries, listings, path rules and the stored state.

Pure data and pure functions, standard library only: the planner works on these alone, so
planning loads no backend and no database.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

#: Top-level folder every location reserves for filesync's own data; never synced.
RESERVED_DIR = ".filesync"
#: Temporary files are written as ``.filesync-<owner>-<12 hex>.tmp`` beside their final
#: name; ``owner`` (8 hex) names the sync set that writes it (see ``Location.owner``), so a
#: run can tell its own leftovers from another engine's in-flight upload.
TEMP_NAME = re.compile(r"^\.filesync-(?P<owner>[0-9a-f]{8})-[0-9a-f]{12}\.tmp$")
#: Marker file that proves a location is the one filesync synced before (not an empty mount).
MARKER = f"{RESERVED_DIR}/marker"
#: The mark in the name of a visible conflict copy (``--conflict keep-both``).
CONFLICT_COPY = re.compile(r"\.conflict-\d{8}-\d{6}-")


class Entry:
    """One file or directory as a location reports it (``path`` is relative, ``/``-separated).

    ``mode`` holds the permission bits where the location knows them (0: unknown); it is
    carried to copies but is not part of an entry's identity (a chmod alone is no change).

    Immutable (the type checker enforces it through ``Final``); written by hand rather than
    as a frozen dataclass because listings build one per file, and a frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field) costs five times as much.
    """

    __slots__ = ("is_dir", "mode", "mtime_ns", "path", "size")

    def __init__(self, path: str, is_dir: bool, size: int = 0, mtime_ns: int = 0,
                 mode: int = 0) -> None:
        self.path: Final = path
        self.is_dir: Final = is_dir
        self.size: Final = size
        self.mtime_ns: Final = mtime_ns
        self.mode: Final = mode

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return (self.path == other.path and self.is_dir == other.is_dir
                and self.size == other.size and self.mtime_ns == other.mtime_ns)

    def __hash__(self) -> int:
        return hash((self.path, self.is_dir, self.size, self.mtime_ns))

    def __repr__(self) -> str:
        return (f"Entry(path={self.path!r}, is_dir={self.is_dir!r}, size={self.size!r}, "
                f"mtime_ns={self.mtime_ns!r}, mode={self.mode!r})")


class Unchecked(Enum):
    """``Location.write(expect=ANY)``: replace whatever the path holds (no re-check)."""

    ANY = "any"


ANY = Unchecked.ANY


def still_holds(found: Entry | None, expected: Entry | None) -> bool:
    """True when ``found`` is still the entry a plan saw (``None``: nothing there)."""
    if found is None or expected is None:
        return found is expected
    if found.is_dir or expected.is_dir:
        return found.is_dir == expected.is_dir
    return found.size == expected.size and found.mtime_ns == expected.mtime_ns


def temp_name(path: str, owner: str) -> str:
    """A fresh temporary name beside ``path`` (same folder), written by ``owner``."""
    parent = path.rpartition("/")[0]
    return (parent + "/" if parent else "") + f".filesync-{owner}-{secrets.token_hex(6)}.tmp"


def entries_after(entries: Mapping[str, Entry],
                  writes: Mapping[str, Entry | None]) -> dict[str, Entry]:
    """A copy of ``entries`` with ``writes`` applied (path -> entry now, ``None``: removed)."""
    after = dict(entries)
    for path, entry in writes.items():
        if entry is None:
            after.pop(path, None)
        else:
            after[path] = entry
    return after


@dataclass
class Listing:
    """What one scan of a location found.

    ``blind`` holds paths (files or whole subtrees) the scan could not see; nothing may be
    concluded about them, least of all that they were deleted.
    """

    entries: dict[str, Entry] = field(default_factory=dict)
    temps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blind: set[str] = field(default_factory=set)
    #: Paths the scan saw but could not sync (links, unreadable folders, unsafe names),
    #: with the reason; each is blind too. They keep the locations from being identical.
    skipped: dict[str, str] = field(default_factory=dict)

    def skip(self, path: str, reason: str) -> None:
        """Record ``path`` as seen but not synced: blind, and reported with ``reason``."""
        self.blind.add(path)
        self.skipped[path] = reason

    def sees(self, path: str) -> bool:
        """True when this listing can speak for ``path`` (neither it nor a parent is blind)."""
        if not self.blind:
            return True
        while path:
            if path in self.blind:
                return False
            path = path.rpartition("/")[0]
        return True


#: Matches every path ``unsafe_reason`` objects to (one search instead of several checks).
MAYBE_UNSAFE = re.compile(r"(?:^|/)\.{0,2}(?:/|$)|[\\\x00]|^[A-Za-z]:")
#: The same for names from a POSIX file system, where ``\\`` and ``a:`` are plain characters.
MAYBE_UNSAFE_POSIX = re.compile(r"(?:^|/)\.{0,2}(?:/|$)|\x00")
#: ``MAYBE_UNSAFE`` and ``MAYBE_UNSAFE_POSIX`` over many paths joined by NULs with a NUL
#: at each end (see ``all_plain``): a NUL stands for the start and the end of a path.
_MAYBE_UNSAFE_JOINED = re.compile(r"[\x00/]\.{0,2}[/\x00]|\\|\x00[A-Za-z]:")
_MAYBE_UNSAFE_POSIX_JOINED = re.compile(r"[\x00/]\.{0,2}[/\x00]")


def all_plain(paths: Collection[str], posix: bool) -> bool:
    """True when no path in ``paths`` can be unsafe or filesync's own (all C-speed work).

    One search over all the paths joined by NULs stands in for a search per path; the
    paths are joined by NULs because no real path holds one (which the count checks), so
    a NUL marks where a path starts and ends. False means only "look at each path".
    """
    joined = "\x00" + "\x00".join(paths) + "\x00"
    if joined.count("\x00") != len(paths) + 1 or RESERVED_DIR in joined:
        return False
    pattern = _MAYBE_UNSAFE_POSIX_JOINED if posix else _MAYBE_UNSAFE_JOINED
    return pattern.search(joined) is None


def unsafe_reason(path: str, posix: bool = False) -> str | None:
    """Why ``path`` may not be used as a relative name, or None when it is safe.

    Names from archives and servers (``posix=False``) may be written by other systems, so
    a backslash or a drive letter is refused there; in a POSIX file name both are legal.
    """
    if not path:
        return "empty name"
    if path.startswith("/"):
        return "absolute path"
    if not posix and re.match(r"^[A-Za-z]:", path):
        return "absolute path"
    if not posix and "\\" in path:
        return "backslash in name"
    if "\x00" in path:
        return "NUL byte in name"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "empty, '.' or '..' component"
    return None


def is_reserved(path: str) -> bool:
    """True for filesync's own names: the ``.filesync`` folder and temporary files."""
    if RESERVED_DIR not in path:
        return False
    return (path == RESERVED_DIR or path.startswith(RESERVED_DIR + "/")
            or TEMP_NAME.match(path.rpartition("/")[2]) is not None)


def parents_of(path: str) -> list[str]:
    """The parent directories of ``path``, outermost first (``a/b/c`` -> ``a``, ``a/b``)."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


@dataclass(slots=True)
class Agreed:
    """The content all locations last agreed on for one path (or its deletion).

    Each agreement has a generation number (``gen``); a kept old copy of a file is a
    *version* (``filesync.versions``), which is another thing.
    """

    gen: int
    deleted: bool
    is_dir: bool
    size: int = 0
    mtime_ns: int = 0
    sha256: str | None = None
    #: An unresolved conflict left alone by ``--conflict manual``.
    conflict: bool = False


#: The time of a record no listing can match: its content is in doubt (see the hub journal).
DOUBTED_MTIME_NS = -(1 << 62)


@dataclass(slots=True)
class Record:
    """What one location held of a path when it was last in sync, as that location reports it."""

    gen: int
    is_dir: bool
    size: int = 0
    mtime_ns: int = 0


@dataclass(slots=True)
class PathState:
    """The stored base of one path: its version and each location's record."""

    agreed: Agreed | None = None
    records: dict[str, Record] = field(default_factory=dict)
