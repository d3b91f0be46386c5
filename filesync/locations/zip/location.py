"""ZIP archives as locations: members are files, and every batch of changes is one rewrite.

The archive at PATH is a valid ZIP at every moment. Changes are collected per batch (one
engine round); when the batch ends a complete new archive is written beside the old one,
fsynced, checked, and renamed over the old one (``changes.py``). Members that did not
change are copied as their raw compressed bytes, in as few large kernel-side copies as
possible, so replacing one small member of a large archive costs about one sequential copy
of the file.
"""

from __future__ import annotations

import logging
import os
import stat as st
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, cast

from filesync.locations.base import Location, Readable
from filesync.locations.capabilities import Capabilities
from filesync.locations.spec import ZipSpec
from filesync.locations.zip import format as zf
from filesync.locations.zip.archive import ATTEMPTS, Archive
from filesync.locations.zip.batch import Op
from filesync.locations.zip.changes import Changes
from filesync.locations.zip.errors import Errors, Retry
from filesync.locations.zip.names import zip_name_problem
from filesync.locations.zip.stage import write_all
from filesync.locations.zip.stream import MemberStream
from filesync.locations.zip.temps import CLOEXEC, Temps
from filesync.locations.zip.writer import empty_archive, fsync_folder
from filesync.model import ANY, TEMP_NAME, Entry, Listing, Unchecked, temp_name
from filesync.result import Err, ErrorKind, Ok, Result

log = logging.getLogger("filesync")


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
        self._errors = Errors(spec.path, spec.display)
        self._archive = Archive(spec.path)
        self._temps = Temps(self.folder)
        self._changes = Changes(self._archive, self._temps, self._errors, lambda: self.owner)

    def local_path(self) -> Path:
        """The archive file."""
        return self.path

    # ----- lifecycle -----------------------------------------------------------------------
    def probe(self) -> Result[None]:
        """The archive must be there and readable (from the cache while it is unchanged)."""
        try:
            self._archive.snapshot()
        except (OSError, zf.ZipFormatError, Retry) as exc:
            return self._errors.of(exc, "read")
        return self.check_marker()

    def check(self) -> Result[None]:
        """An existing archive must be a sound ZIP; a missing one needs an existing folder."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            if not self.folder.is_dir():
                return Err(f"neither the archive {self.path} nor its folder {self.folder} "
                           "exists; create the folder first or fix the path",
                           ErrorKind.NOT_FOUND)
            return self._check_folder()
        except OSError as exc:
            return self._errors.of(exc, "read")
        if st.S_ISDIR(info.st_mode):
            return Err(f"{self.path} is a folder, not a ZIP archive; write folder:{self.path} "
                       "to sync a folder", ErrorKind.INVALID)
        if not st.S_ISREG(info.st_mode):
            return Err(f"{self.path} is not a regular file, so it cannot be a ZIP archive",
                       ErrorKind.INVALID)
        try:
            fd = self._archive.open()
        except OSError as exc:
            return self._errors.of(exc, "read")
        try:
            self._archive.directory(fd, os.fstat(fd))
        except Retry:
            return Err(f"{self.path} changed while it was being checked; is another program "
                       "writing it? Try again when it is done", ErrorKind.FAILED)
        except (OSError, zf.ZipFormatError) as exc:
            return self._errors.of(exc, "read")
        finally:
            os.close(fd)
        return self._check_folder()

    def _check_folder(self) -> Result[None]:
        if not os.access(self.folder, os.W_OK | os.X_OK):
            return Err(f"cannot create files in {self.folder}: filesync writes the updated "
                       f"archive there before renaming it over {self.path.name}; check the "
                       "folder's permissions", ErrorKind.REFUSED)
        return Ok(None)

    def prepare(self) -> Result[None]:
        """Create a missing archive (holding only the reserved ``.filesync/`` folder)."""
        checked = self.check()
        if not checked.ok or self.path.exists():
            return checked
        temp = self.folder / temp_name("x", self.owner)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | CLOEXEC, 0o666)
            try:
                write_all(fd, empty_archive(time.time_ns()), 0)
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
            fsync_folder(self.folder)
        except OSError as exc:
            return self._errors.of(exc, "create archive")
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
        self._changes.close()

    def _begin_batch(self) -> Result[None]:
        """Collect the following changes for one rewrite at ``_end_batch``."""
        return self._changes.begin()

    def _end_batch(self) -> Result[None]:
        """Write every change of the batch in one new archive and rename it into place."""
        return self._changes.end()

    def _batch_refusals(self) -> dict[str, str]:
        """Changes of the last batch that did not land (path -> why), though staged fine.

        Another program changed those members between the staging and the rewrite, so
        their version was kept; the rest of the batch landed. The engine should count
        them as failed, not record them as written.
        """
        return self._changes.refusals()

    # ----- listing -------------------------------------------------------------------------
    def scan(self, skip_dir: Callable[[str], bool]) -> Result[Listing]:
        """Every member and the folders they imply; unreadable members become blind."""
        try:
            snapshot = self._archive.snapshot()
        except (OSError, zf.ZipFormatError, Retry) as exc:
            return self._errors.of(exc, "read")
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
        listing.temps = self._temps.stale()
        return Ok(listing)

    def stat(self, path: str) -> Result[Entry | None]:
        """The entry at ``path``; during a batch, what the archive will hold after it."""
        return self._changes.look_up([path])[path]

    def stat_many(self, paths: Iterable[str]) -> dict[str, Result[Entry | None]]:
        """``stat`` several paths from one look at the archive."""
        return self._changes.look_up(paths)

    # ----- reading -------------------------------------------------------------------------
    def open_read(self, path: str) -> Result[BinaryIO]:
        """Stream a member's content (decompressed, CRC-checked at the end)."""
        label = f"{path!r} in {self.display}"
        staged = self._changes.staged(path)
        if staged is not None and staged.staged is not None:
            try:
                fd = os.dup(staged.staged.slot.fd)
            except OSError as exc:
                return self._errors.os_error(exc, "read", path)
            return Ok(cast(BinaryIO, MemberStream(fd, staged.staged.offset, staged.central,
                                                   label)))
        for _attempt in range(ATTEMPTS):
            try:
                fd = self._archive.open()
            except OSError as exc:
                return self._errors.of(exc, "read", path)
            try:
                member = self._member(fd, path)
            except Retry:
                os.close(fd)
                continue
            except (OSError, zf.ZipFormatError) as exc:
                os.close(fd)
                return self._errors.of(exc, "read", path)
            if not member.ok:
                os.close(fd)
                return member
            return Ok(cast(BinaryIO, MemberStream(fd, member.value.data_offset,
                                                   member.value.central, label)))
        return self._errors.of(Retry(), "read", path)

    def _member(self, fd: int, path: str) -> Result[zf.Member]:
        """The member holding the file ``path`` in the archive open as ``fd``."""
        view = self._archive.base_view(self._archive.directory(fd, os.fstat(fd)))
        entry, problem = view.look(path)
        item = view.file(path)
        if problem:
            return Err(f"cannot read {path!r} in {self.display}: {problem}", ErrorKind.INVALID)
        if item is None or item.member is None:
            why, kind = (("it is a folder", ErrorKind.FAILED) if entry
                         else ("it does not exist", ErrorKind.NOT_FOUND))
            return Err(f"cannot read {path!r} in {self.display}: {why}", kind)
        return Ok(item.member)

    # ----- changes -------------------------------------------------------------------------
    def name_problem(self, path: str) -> str | None:
        """Why the archive cannot hold ``path`` (see ``zip_name_problem``), or None."""
        return super().name_problem(path) or zip_name_problem(path)

    def _refused_name(self, action: str, path: str, *names: str) -> Err | None:
        """An ``INVALID`` error when one of ``names`` cannot be held, else None."""
        for name in names:
            problem = self.name_problem(name)
            if problem:
                return Err(f"cannot {action} {self._errors.where(path)}: {problem}",
                           ErrorKind.INVALID)
        return None

    def write(self, path: str, source: Readable, mtime_ns: int,
              keep_old_as: str | None = None, expect: Entry | Unchecked | None = ANY,
              mode: int = 0) -> Result[Entry]:
        """Stage ``source`` as the new content of ``path``; it lands when the batch ends.

        With ``keep_old_as`` the member replaced is renamed there in the same rewrite, so
        the archive never holds neither (or a partial) version. ``mode`` 0 keeps the
        permissions of the member replaced (0o644 for a new one). With ``expect`` the
        member is re-checked against the archive as it is on disk when the write is
        staged, and again when the batch is written (see ``_batch_refusals``).
        """
        refused = self._refused_name("write", path, path, *([keep_old_as] if keep_old_as
                                                            else []))
        if refused:
            return refused
        return _entry(self._changes.write(path, source, mtime_ns, keep_old_as or "", expect,
                                          mode))

    def rename(self, old: str, new: str) -> Result[Entry]:
        """Give a member another name, reusing its compressed bytes as they are."""
        action = f"move {old!r} to"
        refused = self._refused_name(action, new, new)
        if refused:
            return refused
        return _entry(self._changes.change(Op("move", old, (None, None), new=new), action,
                                           new))

    def delete(self, path: str) -> Result[None]:
        """Remove a member (or a stale temporary file beside the archive)."""
        if "/" not in path and TEMP_NAME.match(path):
            try:
                if self._temps.remove(path):
                    return Ok(None)
            except OSError as exc:
                return self._errors.os_error(exc, "remove the stale temporary file", path)
            return Err(f"temporary file {self.folder / path} is in use by a running filesync; "
                       "left alone", ErrorKind.FAILED)
        result = self._changes.change(Op("delete", path, (None, None)), "delete", path)
        return result if not result.ok else Ok(None)

    def mkdir(self, path: str) -> Result[Entry]:
        """Add a folder member ``path/`` unless the folder exists already."""
        refused = self._refused_name("create folder", path, path)
        if refused:
            return refused
        result = self._changes.change(Op("mkdir", path, (None, None)), "create folder", path)
        return result if not result.ok else Ok(Entry(path, True))

    def rmdir(self, path: str) -> Result[None]:
        """Remove an empty folder (its ``path/`` member); a missing one is ``NOT_FOUND``."""
        result = self._changes.change(Op("rmdir", path, (None, None)), "delete folder", path)
        return result if not result.ok else Ok(None)


def _entry(result: Result[Entry | None]) -> Result[Entry]:
    """The entry a successful write or move reports (it always has one)."""
    if not result.ok:
        return result
    assert result.value is not None
    return Ok(result.value)
