"""Local folders as locations."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat as st
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from filesync.excludes import Excludes
from filesync.gcpause import gc_paused
from filesync.locations.base import CHUNK_SIZE, Location, Readable, changed_since_planned
from filesync.locations.capabilities import Capabilities
from filesync.locations.folderpoll import PollMemory, poll_scan
from filesync.locations.localfile import NotRegularFileError, open_regular
from filesync.locations.spec import FolderSpec
from filesync.model import (
    ANY,
    TEMP_NAME,
    Entry,
    Listing,
    Unchecked,
    parents_of,
    still_holds,
    temp_name,
)
from filesync.result import Err, ErrorKind, Ok, Result, kind_of

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


#: Read once at start: a new file gets its mode less these bits.
_UMASK = _read_umask()


class FolderLocation(Location):
    """A directory tree on a local file system; mtimes are exact (nanoseconds)."""

    kind = "folder"
    capabilities = Capabilities(keeps_permissions=True, posix_names=os.name == "posix",
                                atomic_claim=True)

    def __init__(self, spec: FolderSpec) -> None:
        super().__init__(spec.key, spec.display)
        self.root = spec.path
        self._known_dirs: set[str] = set()
        self._prefix = os.path.join(self.root, "")

    def local_path(self) -> Path:
        """The folder itself."""
        return self.root

    def _full(self, path: str) -> str:
        # Paths are relative and checked by the engine, so plain concatenation is enough.
        return self._prefix + path

    def _fail(self, action: str, path: str, exc: OSError) -> Err:
        """An ``Err`` of the kind ``exc`` shows.

        A path missing because the root is missing means the whole folder is unavailable
        (deleted, or a disk not mounted), not that one path is absent.
        """
        reason = exc.strerror or str(exc)
        where = f"{path!r} in {self.display}" if path else self.display
        kind = kind_of(exc)
        if isinstance(exc, NotRegularFileError):
            kind = ErrorKind.INVALID
        elif kind is ErrorKind.NOT_FOUND and not os.path.isdir(self.root):
            kind = ErrorKind.UNAVAILABLE
        return Err(f"cannot {action} {where}: {reason}", kind)

    def _missing_root(self) -> Err:
        return Err(f"folder {self.root} is missing (deleted, or a disk not mounted?)",
                   ErrorKind.UNAVAILABLE)

    def _bad_name(self, action: str, *paths: str | None) -> Err | None:
        """An INVALID ``Err`` when one of ``paths`` is a name this folder may not take."""
        for path in paths:
            problem = self.name_problem(path) if path is not None else None
            if problem:
                return Err(f"cannot {action} {path!r} in {self.display}: {problem}",
                           ErrorKind.INVALID)
        return None

    # ----- lifecycle ----------------------------------------------------------------------
    def check(self) -> Result[None]:
        """The folder must exist, or its parent must, so that it can be created."""
        if self.root.is_dir():
            if not os.access(self.root, os.R_OK | os.X_OK):
                return Err(f"folder {self.root} is not readable; check its permissions",
                           ErrorKind.REFUSED)
            return Ok(None)
        if self.root.exists():
            return Err(f"{self.root} exists but is not a folder; give the path of a folder",
                       ErrorKind.INVALID)
        if not self.root.parent.is_dir():
            return Err(f"folder {self.root} does not exist, and neither does its parent "
                       f"{self.root.parent}; create it first or fix the path",
                       ErrorKind.NOT_FOUND)
        return Ok(None)

    def prepare(self) -> Result[None]:
        """Create the folder when only it (not its parent) is missing."""
        checked = self.check()
        if not checked.ok or self.root.is_dir():
            return checked
        try:
            self.root.mkdir()
        except OSError as exc:
            return self._fail("create folder", "", exc)
        return Ok(None)

    def probe(self) -> Result[None]:
        """The folder must still exist (an unmounted disk or a deleted root is unavailable)."""
        if not os.path.isdir(self.root):
            return self._missing_root()
        return self.check_marker()

    def _begin_batch(self) -> Result[None]:
        """Forget which directories were verified: the user may have changed them since."""
        self._known_dirs.clear()
        return Ok(None)

    # ----- listing ------------------------------------------------------------------------
    def scan(self, skip_dir: Callable[[str], bool]) -> Result[Listing]:
        """Walk the tree without following symlinks; unreadable subtrees become blind.

        One folder is open at a time (a wide tree cannot run out of file descriptors),
        and files are looked at relative to their folder's descriptor where the system
        allows it, so the kernel resolves one name per file, not its whole path.
        """
        listing = Listing()
        try:
            opened = _open_dir(str(self.root), follow=True)
        except (FileNotFoundError, NotADirectoryError):
            return self._missing_root()
        except OSError as exc:
            return self._fail("list", "", exc)
        pending: list[str] = []
        prefix = ""
        while True:
            _scan_dir(opened, prefix, skip_dir, listing, pending)
            while pending:
                prefix = pending.pop()
                try:
                    opened = _open_dir(self._prefix + prefix, follow=False)
                    break
                except OSError as exc:
                    listing.skip(prefix[:-1], _reason("cannot list the folder", exc))
            else:
                break
        return Ok(listing)

    def new_poll_memory(self) -> object | None:
        """What polls remember (``filesync.locations.folderpoll``), where the system allows."""
        return PollMemory() if _SCANDIR_FD and os.stat in os.supports_dir_fd else None

    def poll_list(self, excludes: Excludes, memory: object | None) -> Result[Listing]:
        """``list``, much of it from what earlier polls saw (``locations.folderpoll``).

        Folders that did not change are not listed again, and their files are looked at
        in turns.
        """
        if not isinstance(memory, PollMemory):
            return self.list(excludes)

        def scan(skip_dir: Callable[[str], bool]) -> Result[Listing]:
            try:
                return poll_scan(os.open(self.root, _DIR_FLAGS), memory, skip_dir)
            except (FileNotFoundError, NotADirectoryError):
                return self._missing_root()
            except OSError as exc:
                return self._fail("list", "", exc)

        with gc_paused():
            return self._filtered_listing(excludes, scan)

    def stat(self, path: str) -> Result[Entry | None]:
        """The entry at ``path``; a symlink or special file is an error (never followed)."""
        try:
            info = os.lstat(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            return Ok(None)
        except OSError as exc:
            return self._fail("read", path, exc)
        if st.S_ISDIR(info.st_mode):
            return Ok(Entry(path, True))
        if st.S_ISREG(info.st_mode):
            return Ok(Entry(path, False, info.st_size, info.st_mtime_ns,
                            st.S_IMODE(info.st_mode)))
        return Err(f"{path!r} in {self.display} is a link or special file; it is not synced",
                   ErrorKind.INVALID)

    # ----- reading and writing ------------------------------------------------------------
    def open_read(self, path: str) -> Result[BinaryIO]:
        """Open the file without following a symlink at its name; only a regular file."""
        try:
            fd = open_regular(self._full(path))
        except OSError as exc:
            return self._fail("read", path, exc)
        return Ok(os.fdopen(fd, "rb", buffering=0))

    def _ensure_parents(self, path: str) -> Result[None]:
        """Create missing parent directories; refuse to go through a symlink."""
        for parent in parents_of(path):
            if parent in self._known_dirs:
                continue
            full = self._full(parent)
            try:
                info = os.lstat(full)
            except FileNotFoundError:
                try:
                    os.mkdir(full)
                except FileExistsError:
                    pass
                except OSError as exc:
                    return self._fail("create folder", parent, exc)
            except OSError as exc:
                return self._fail("read", parent, exc)
            else:
                if st.S_ISLNK(info.st_mode):
                    return Err(f"{parent!r} in {self.display} is a symbolic link; filesync does "
                               "not write through links", ErrorKind.REFUSED)
                if not st.S_ISDIR(info.st_mode):
                    return Err(f"{parent!r} in {self.display} is a file where a folder is needed")
            self._known_dirs.add(parent)
        return Ok(None)

    def write(self, path: str, source: Readable, mtime_ns: int,
              keep_old_as: str | None = None, expect: Entry | Unchecked | None = ANY,
              mode: int = 0) -> Result[Entry]:
        """Copy ``source`` into a temporary file beside ``path``, date it, rename it over.

        The replaced file is kept as ``keep_old_as`` by a hard link, so the real name never
        disappears, even for a moment. With ``expect`` the path is re-checked just before
        the rename; a new file takes its name by a hard link, which fails rather than
        replace a file that appeared meanwhile.
        """
        refused = self._bad_name("write", path, keep_old_as)
        if refused is not None:
            return refused
        if keep_old_as is not None:
            kept_parents = self._ensure_parents(keep_old_as)
            if not kept_parents.ok:
                return kept_parents
        parents = self._ensure_parents(path)
        if not parents.ok:
            return parents
        full = self._full(path)
        temp = self._full(temp_name(path, self.owner))
        if mode == 0 and keep_old_as is not None:  # source without permissions: keep these
            with contextlib.suppress(OSError):
                mode = st.S_IMODE(os.lstat(full).st_mode)
        # Never more open than the source while the data is written (a private file stays
        # private); the exact bits are set once the content is complete.
        create_mode = mode & 0o777 if mode else 0o666
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, create_mode)
        except OSError as exc:
            self._known_dirs.clear()
            return self._fail("write", path, exc)
        try:
            try:
                _copy_to_fd(source, fd)
                if mode and mode & 0o7777 != create_mode & ~_UMASK:
                    os.fchmod(fd, mode & 0o7777)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
                info = os.fstat(fd)
            finally:
                os.close(fd)
            # A new file takes its name by a hard link below, which fails if one appeared.
            if expect is not ANY and expect is not None and not self._still(path, expect):
                os.unlink(temp)
                return Err(changed_since_planned(path, self.display), ErrorKind.CHANGED)
            if keep_old_as is not None:
                self._keep(full, self._full(keep_old_as))
            if expect is None:
                try:
                    os.link(temp, full, follow_symlinks=False)
                except FileExistsError:
                    os.unlink(temp)
                    return Err(changed_since_planned(path, self.display), ErrorKind.CHANGED)
                except OSError:  # no hard links here: a look right before has to do
                    if os.path.lexists(full):
                        os.unlink(temp)
                        return Err(changed_since_planned(path, self.display),
                                   ErrorKind.CHANGED)
                    os.replace(temp, full)
                else:
                    os.unlink(temp)
            else:
                os.replace(temp, full)
        except BaseException as exc:
            # Never leave a partial file behind, whatever stopped the copy.
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if isinstance(exc, OSError):
                return self._fail("write", path, exc)
            raise
        return Ok(Entry(path, False, info.st_size, info.st_mtime_ns, st.S_IMODE(info.st_mode)))

    def _still(self, path: str, expect: Entry | None) -> bool:
        found = self.stat(path)
        return found.ok and still_holds(found.value, expect)

    @staticmethod
    def _keep(full: str, kept: str) -> None:
        """Hard-link the file at ``full`` to ``kept``; copy where links are not allowed."""
        try:
            os.link(full, kept, follow_symlinks=False)
        except FileNotFoundError:
            return  # nothing to keep: the file is gone already
        except OSError:
            shutil.copy2(full, kept, follow_symlinks=False)

    def rename(self, old: str, new: str) -> Result[Entry]:
        """Move a file within the folder (one rename; parents of ``new`` are created)."""
        refused = self._bad_name(f"move {old!r} to", new)
        if refused is not None:
            return refused
        parents = self._ensure_parents(new)
        if not parents.ok:
            return parents
        try:
            os.replace(self._full(old), self._full(new))
            info = os.lstat(self._full(new))
        except OSError as exc:
            return self._fail(f"move {old!r} to", new, exc)
        return Ok(Entry(new, False, info.st_size, info.st_mtime_ns, st.S_IMODE(info.st_mode)))

    def delete(self, path: str) -> Result[None]:
        """Remove one file (a missing one is fine)."""
        try:
            os.unlink(self._full(path))
        except FileNotFoundError:
            pass
        except OSError as exc:
            return self._fail("delete", path, exc)
        return Ok(None)

    def mkdir(self, path: str) -> Result[Entry]:
        """Create a directory and any missing parents."""
        refused = self._bad_name("create folder", path)
        if refused is not None:
            return refused
        made = self._ensure_parents(path + "/x")
        if not made.ok:
            return made
        return Ok(Entry(path, True))

    def claim_dir(self, path: str) -> Result[bool]:
        """Create the directory ``path`` unless something is there (one ``mkdir``)."""
        refused = self._bad_name("create folder", path)
        if refused is not None:
            return refused
        made = self._ensure_parents(path)
        if not made.ok:
            return made
        try:
            os.mkdir(self._full(path))
        except FileExistsError:
            return Ok(False)
        except OSError as exc:
            return self._fail("create folder", path, exc)
        return Ok(True)

    def rmdir(self, path: str) -> Result[None]:
        """Remove an empty directory; a missing one is NOT_FOUND, a non-empty one FAILED."""
        self._known_dirs.clear()
        try:
            os.rmdir(self._full(path))
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return Err(f"cannot delete folder {path!r} in {self.display}: it is not empty")
            return self._fail("delete folder", path, exc)
        return Ok(None)


#: Folders are opened as descriptors (``os.scandir(fd)``) where the system allows it.
_SCANDIR_FD = os.scandir in os.supports_fd
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_dir(path: str, follow: bool) -> tuple[int | None, Iterator[os.DirEntry[str]]]:
    """Open the folder ``path`` for listing: its descriptor (if any) and an iterator.

    Only the root may be reached through a symlink (``follow``); a sub-folder replaced by
    a link since it was seen fails to open instead of being listed through the link.
    """
    if not _SCANDIR_FD:
        return None, os.scandir(path)
    fd = os.open(path, _DIR_FLAGS | (0 if follow else _NOFOLLOW))
    try:
        return fd, os.scandir(fd)
    except BaseException:
        os.close(fd)
        raise


def _scan_dir(opened: tuple[int | None, Iterator[os.DirEntry[str]]], prefix: str,
              skip_dir: Callable[[str], bool], listing: Listing, pending: list[str]) -> None:
    """List one open folder into ``listing`` (closing it); sub-folders go to ``pending``.

    Runs once per file: names are looked up locally, the temporary-name pattern only tried
    on names that start like one, and the permission bits taken with a mask (what
    ``stat.S_IMODE`` does) instead of a call.
    """
    fd, iterator = opened
    entries, temps, make_entry, temp_match = listing.entries, listing.temps, Entry, TEMP_NAME.match
    try:
        with iterator:  # type: ignore[attr-defined]  # a ScandirIterator
            for item in iterator:
                name = item.name
                rel = prefix + name
                try:
                    if item.is_dir(follow_symlinks=False):
                        if not skip_dir(rel):
                            entries[rel] = make_entry(rel, True)
                            pending.append(rel + "/")
                        continue
                    if item.is_file(follow_symlinks=False):
                        if name.startswith(".filesync-") and temp_match(name):
                            temps.append(rel)
                            continue
                        info = item.stat(follow_symlinks=False)
                        entries[rel] = make_entry(rel, False, info.st_size, info.st_mtime_ns,
                                                  info.st_mode & 0o7777)
                    elif item.is_symlink():
                        listing.skip(rel, "a symbolic link (links are not followed)")
                    else:
                        listing.skip(rel, "not a regular file")
                except OSError as exc:
                    listing.skip(rel, _reason("cannot read it", exc))
    finally:
        if fd is not None:
            os.close(fd)


def _reason(what: str, exc: OSError) -> str:
    return f"{what}: {exc.strerror or exc}"


def _copy_to_fd(source: Readable, fd: int) -> None:
    """Stream ``source`` into ``fd`` in bounded pieces."""
    while True:
        chunk = source.read(CHUNK_SIZE)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]
