"""Polling a local folder at a fraction of the cost of listing it in full.

What costs a poll is looking at every file (one ``stat`` each, mostly kernel time). Most
changes show in the folder holding them: a file created, deleted or renamed, and an editor's
save through a temporary file, all change the folder's mtime. So each poll looks at every
folder, lists again only the folders whose mtime moved, and looks at all the files there;
the files of unchanged folders are looked at in turns, ``SWEEP_FILES`` per poll, which
catches a file written in place (which leaves its folder's mtime alone) within a few polls.

Two rules keep that safe:

- A folder whose mtime is recent (within ``RACY_NS`` of the poll) is listed again at the
  next poll too: a file system's clock ticks coarsely, and a change made in the same tick as
  the listing would leave the mtime as it was (git's "racy" rule).
- A file seen changed is looked at again at the next poll, whatever its turn, so the
  watcher's rule (two polls must agree before a change is reported) still holds.
"""

from __future__ import annotations

import os
import stat as st
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from filesync.model import TEMP_NAME, Entry, Listing
from filesync.result import Ok, Result

#: Files of unchanged folders looked at per poll (the others keep their last entry).
SWEEP_FILES = 2000
#: A folder changed less than this long before a poll is listed again at the next poll.
RACY_NS = 2_000_000_000
#: Every folder is listed again this often anyway, in case a tool set a folder's mtime
#: back to what it was (``rsync -a``, ``tar x`` and ``cp -a`` restore them).
RELIST_NS = 300 * 1_000_000_000
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass
class _Folder:
    """What one folder held at the last poll: its mtime and its entries (by relative path)."""

    mtime_ns: int
    racy: bool
    files: dict[str, Entry] = field(default_factory=dict)
    subfolders: dict[str, Entry] = field(default_factory=dict)
    temps: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class PollMemory:
    """What one watcher's polls of a folder remember between polls (one thread uses it)."""

    def __init__(self, sweep: int = SWEEP_FILES) -> None:
        self.sweep = sweep
        self.folders: dict[str, _Folder] = {}
        #: Files changed at the last poll: looked at again at this one.
        self.hot: set[str] = set()
        self._turns: list[str] = []
        self._cursor = 0
        self._relist_at = time.monotonic_ns() + RELIST_NS

    def relist_due(self) -> bool:
        """True once in ``RELIST_NS``: this poll lists every folder again."""
        if time.monotonic_ns() < self._relist_at:
            return False
        self._relist_at = time.monotonic_ns() + RELIST_NS
        return True

    def due(self) -> set[str]:
        """The files of unchanged folders to look at in this poll (the next turn, and hot)."""
        if not self._turns:
            return set(self.hot)
        start, count = self._cursor, min(self.sweep, len(self._turns))
        self._cursor = (start + count) % len(self._turns)
        turn = self._turns[start:start + count]
        if start + count > len(self._turns):
            turn += self._turns[:start + count - len(self._turns)]
        return self.hot.union(turn)

    def set_turns(self, files: list[str]) -> None:
        """The files in the order they take turns (kept while no folder changes)."""
        self._turns = files
        self._cursor = self._cursor % len(files) if files else 0


def poll_scan(root_fd: int, memory: PollMemory,
              skip_dir: Callable[[str], bool]) -> Result[Listing]:
    """A listing like ``FolderLocation.scan``, built mostly from ``memory`` (see above).

    Takes over ``root_fd`` (the open root folder) and closes it; an ``OSError`` about the
    root itself is raised. Unchanged entries are the remembered objects themselves, so
    comparing this listing with the last one is cheap.
    """
    now = time.time_ns()
    due_in: dict[str, list[str]] = {}
    for rel in memory.due():
        head = rel.rpartition("/")[0]
        due_in.setdefault(head + "/" if head else "", []).append(rel)
    if memory.relist_due():
        memory.folders = {}
    listing = Listing()
    folders: dict[str, _Folder] = {}
    hot: set[str] = set()
    relisted = False
    pending: list[tuple[str, int]] = [("", root_fd)]
    try:
        while pending:
            prefix, fd = pending.pop()
            try:
                mtime = os.fstat(fd).st_mtime_ns
                known = memory.folders.get(prefix)
                if known is None or known.racy or known.mtime_ns != mtime:
                    fresh = _list_folder(fd, prefix, mtime, now, skip_dir)
                    _look_at(fd, prefix, fresh, list(fresh.files), known, hot, listing)
                    known, relisted = fresh, True
                else:
                    _look_at(fd, prefix, known, due_in.get(prefix, ()), known, hot, listing)
                for sub in known.subfolders:
                    try:
                        sub_fd = os.open(sub[len(prefix):], _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
                    except OSError as exc:
                        listing.skip(sub, _reason("cannot list the folder", exc))
                        continue
                    pending.append((sub + "/", sub_fd))
            except OSError as exc:
                if not prefix:
                    raise  # the location itself fails: the caller says which
                listing.skip(prefix[:-1], _reason("cannot list the folder", exc))
                continue  # not remembered: listed again at the next poll
            finally:
                os.close(fd)
            folders[prefix] = known
            listing.entries.update(known.subfolders)
            listing.entries.update(known.files)
            listing.temps += known.temps
            for path, reason in known.skipped.items():
                listing.skip(path, reason)
    finally:
        for _, fd in pending:
            os.close(fd)
    memory.folders, memory.hot = folders, hot
    if relisted:
        memory.set_turns([rel for folder in folders.values() for rel in folder.files])
    return Ok(listing)


def _reason(what: str, exc: OSError) -> str:
    return f"{what}: {exc.strerror or exc}"


def _list_folder(fd: int, prefix: str, mtime: int, now: int,
                 skip_dir: Callable[[str], bool]) -> _Folder:
    """List one folder's names and kinds (its files are looked at by ``_look_at``)."""
    folder = _Folder(mtime, now - mtime < RACY_NS)
    with os.scandir(fd) as items:
        for item in items:
            name = item.name
            rel = prefix + name
            try:
                if item.is_dir(follow_symlinks=False):
                    if not skip_dir(rel):
                        folder.subfolders[rel] = Entry(rel, True)
                elif item.is_file(follow_symlinks=False):
                    if name.startswith(".filesync-") and TEMP_NAME.match(name):
                        folder.temps.append(rel)
                    else:
                        folder.files[rel] = _UNSEEN
                elif item.is_symlink():
                    folder.skipped[rel] = "a symbolic link (links are not followed)"
                else:
                    folder.skipped[rel] = "not a regular file"
            except OSError as exc:
                folder.skipped[rel] = _reason("cannot read it", exc)
    return folder


#: A file listed but not looked at yet.
_UNSEEN = Entry("", False, -1)


def _look_at(fd: int, prefix: str, folder: _Folder, due: Iterable[str],
             before: _Folder | None, hot: set[str], listing: Listing) -> None:
    """Look at the ``due`` files of ``folder`` afresh; the others keep their entries.

    A changed (or new) file is ``hot``: looked at again at the next poll. A file that is
    gone or no longer a regular file although the folder's mtime did not move makes the
    folder racy: it is listed again at the next poll.
    """
    cut, files = len(prefix), folder.files
    remembered = before.files if before is not None else {}
    for rel in due:
        if rel not in files:
            continue  # gone since its turn was given out: the folder was listed again
        try:
            info = os.stat(rel[cut:], dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            del files[rel]
            if isinstance(exc, FileNotFoundError):
                folder.racy = True
            else:
                listing.skip(rel, _reason("cannot read it", exc))
            continue
        if not st.S_ISREG(info.st_mode):
            del files[rel]
            folder.racy = True
            continue
        old = remembered.get(rel)
        if (old is not None and old.size == info.st_size
                and old.mtime_ns == info.st_mtime_ns):
            files[rel] = old  # the same object: the watcher's comparison is quick
            continue
        files[rel] = Entry(rel, False, info.st_size, info.st_mtime_ns, info.st_mode & 0o7777)
        hot.add(rel)
