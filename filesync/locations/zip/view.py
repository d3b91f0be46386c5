"""The members an archive holds, as a pure in-memory model (no file is touched here).

A ``View`` is the list of members in central-directory order, indexed by name, with the
folders they imply; a batch changes a copy of it, and the rewrite writes what it holds.
A ``Snapshot`` is the listing of one archive version, computed once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from filesync.locations.zip import format as zf
from filesync.model import RESERVED_DIR, Entry, parents_of, unsafe_reason
from filesync.result import ErrorKind

if TYPE_CHECKING:
    from filesync.locations.zip.stage import Staged

#: Matches every name ``unsafe_reason`` rejects; a cheap first look for the common case.
_SUSPICIOUS = re.compile(r"(?:^|/)\.\.?(?:/|$)|^/|^[A-Za-z]:|\\|\x00|//|/$|^$")


def is_safe(path: str) -> bool:
    """True when the engine may use a member named ``path`` (see ``unsafe_reason``)."""
    return _SUSPICIOUS.search(path) is None or unsafe_reason(path) is None


@dataclass(frozen=True)
class Problem:
    """Why a change cannot be made to a view, and its kind for the engine."""

    why: str
    kind: ErrorKind = ErrorKind.FAILED


@dataclass(slots=True)
class Item:
    """One member of the archive being planned: an existing record, renamed, or new."""

    path: str
    is_dir: bool
    central: zf.Central
    mtime_ns: int
    problem: str | None = None
    member: zf.Member | None = None
    renamed: bool = False
    staged: Staged | None = None
    #: A name the engine may use; unsafe ones imply no folders and are never touched.
    safe: bool = True

    def entry(self) -> Entry:
        """The entry a scan reports for this member."""
        if self.is_dir:
            return Entry(self.path, True, mode=zf.member_mode(self.central))
        return Entry(self.path, False, self.central.usize, self.mtime_ns,
                     zf.member_mode(self.central))


def item_of(member: zf.Member) -> Item:
    """The item of a member read from an archive's directory."""
    name = member.name
    is_dir = name.endswith("/")
    central = member.central
    path = name[:-1] if is_dir else name
    return Item(path, is_dir, central, member.mtime_ns,
                None if is_dir else zf.member_problem(central), member, False, None,
                is_safe(path))


def dir_item(path: str) -> Item:
    """A new, explicit folder member."""
    central = zf.new_central(path, True, time.time_ns(), zf.STORED, 0, 0, 0)
    return Item(path, True, central, 0)


def parents(path: str) -> Iterable[str]:
    """The folders above ``path``, nearest first."""
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


Look = tuple[Entry | None, str | None]


class View:
    """The members an archive holds (or will hold), with the folders they imply.

    Folders exist as explicit ``name/`` members or implied by members below them; a
    folder only disappears through ``rmdir``, as in a real file system, so deleting the
    last file of a folder keeps the folder as an explicit member.
    """

    def __init__(self, directory: zf.Directory | None = None) -> None:
        self.items: list[Item | None] = []
        self.index: dict[str, list[int]] = {}
        self.below: dict[str, int] = {}
        self.changed = False
        if directory is not None:
            for member in directory.members:
                self._insert(item_of(member))

    @classmethod
    def of_items(cls, items: list[Item]) -> View:
        """A view holding ``items`` in this order."""
        view = cls()
        for item in items:
            view._insert(item)
        return view

    def copy(self) -> View:
        """An independent copy to change (items themselves are never changed in place)."""
        other = View()
        other.items = list(self.items)
        other.index = {path: list(slots) for path, slots in self.index.items()}
        other.below = dict(self.below)
        return other

    # ----- bookkeeping ---------------------------------------------------------------------
    def _insert(self, item: Item, at: int | None = None) -> None:
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
            for parent in parents(item.path):
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
            for parent in parents(item.path):
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
            self._insert(dir_item(parent))

    def live(self) -> list[Item]:
        """The members in central-directory order."""
        return [item for item in self.items if item is not None]

    # ----- questions -----------------------------------------------------------------------
    def file(self, path: str) -> Item | None:
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

    def _where_file_goes(self, path: str) -> Problem | None:
        for parent in parents_of(path):
            if self.file(parent) is not None:
                return Problem(f"{parent!r} is a file where a folder is needed")
        if self.is_dir(path):
            return Problem("a folder with that name exists")
        existing = self.file(path)
        if existing is not None and existing.problem:
            return Problem(f"the member there is kept as it is: {existing.problem}",
                           ErrorKind.INVALID)
        return None

    def _last_file_slot(self, path: str) -> int | None:
        for at in reversed(self.index.get(path, ())):
            item = self.items[at]
            if item is not None and not item.is_dir:
                return at
        return None

    # ----- changes (each returns why it cannot be done, or None) ---------------------------
    def put(self, item: Item, keep_old_as: str = "") -> Problem | None:
        """Add ``item``, replacing any file of that name (at the same place in the list).

        With ``keep_old_as``, the file replaced is first moved there (its raw bytes reused).
        """
        problem = self._where_file_goes(item.path)
        if problem:
            return problem
        at = self._last_file_slot(item.path)
        if keep_old_as and at is not None:
            _, problem = self.move(item.path, keep_old_as, keep_parent=False)
            if problem is not None:
                return Problem(f"cannot keep the old version as {keep_old_as!r}: "
                               f"{problem.why}", problem.kind)
        dropped = self._drop_files(item.path)
        self._insert(item, dropped if dropped is not None else at)
        self.changed = True
        return None

    def delete(self, path: str) -> Problem | None:
        """Remove the file ``path``; a missing one is fine."""
        found = self.file(path)
        if found is None:
            return Problem("it is a folder") if self.is_dir(path) else None
        if found.problem:
            return Problem(found.problem, ErrorKind.INVALID)
        self._drop_files(path)
        self._keep_parent(path)
        self.changed = True
        return None

    def move(self, old: str, new: str,
             keep_parent: bool = True) -> tuple[Item | None, Problem | None]:
        """Give the file ``old`` the name ``new``; its bytes are reused as they are."""
        source = self.file(old)
        if source is None:
            return None, Problem("it does not exist", ErrorKind.NOT_FOUND)
        if source.problem:
            return None, Problem(source.problem, ErrorKind.INVALID)
        if old == new:
            return source, None
        problem = self._where_file_goes(new)
        if problem:
            return None, problem
        moved = Item(new, False, zf.renamed_central(source.central, new), source.mtime_ns,
                     None, source.member, source.member is not None, source.staged)
        self._drop_files(old)
        self._insert(moved, self._drop_files(new))
        if keep_parent:
            self._keep_parent(old)
        self.changed = True
        return moved, None

    def mkdir(self, path: str) -> Problem | None:
        """Create the folder ``path`` unless it exists."""
        for parent in parents_of(path):
            if self.file(parent) is not None:
                return Problem(f"{parent!r} is a file where a folder is needed")
        if self.file(path) is not None:
            return Problem("a file with that name exists")
        if not self.is_dir(path):
            self._insert(dir_item(path))
            self.changed = True
        return None

    def rmdir(self, path: str) -> Problem | None:
        """Remove the empty folder ``path``."""
        if self.below.get(path):
            return Problem("it is not empty")
        slots = [at for at in self.index.get(path, ()) if self.items[at].is_dir]  # type: ignore[union-attr]
        if not slots:
            if self.file(path) is not None:
                return Problem("it is a file")
            return Problem("it does not exist", ErrorKind.NOT_FOUND)
        for at in slots:
            self._remove(at)
        self._keep_parent(path)
        self.changed = True
        return None

    def ensure_not_empty(self) -> None:
        """An archive with no member at all fails ``unzip -t``: keep the reserved folder."""
        if not self.index:
            self._insert(dir_item(RESERVED_DIR))


# ----- what scans report --------------------------------------------------------------------
@dataclass
class Snapshot:
    """The listing of one archive version, computed once and reused while it is unchanged."""

    view: View
    entries: dict[str, Entry]
    dirs: list[str]
    blind: dict[str, str]
    duplicates: list[str]

    @classmethod
    def of(cls, view: View) -> Snapshot:
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
