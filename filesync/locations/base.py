"""The abstract ``Location`` every backend implements (the data model is ``filesync.model``)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import secrets
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar, Protocol

from filesync.excludes import Excludes
from filesync.gcpause import gc_paused
from filesync.locations.capabilities import Capabilities
from filesync.model import (
    ANY,
    MARKER,
    MAYBE_UNSAFE,
    MAYBE_UNSAFE_POSIX,
    RESERVED_DIR,
    TEMP_NAME,
    Entry,
    Listing,
    Unchecked,
    all_plain,
    is_reserved,
    unsafe_reason,
)
from filesync.result import Err, ErrorKind, Ok, Result, kind_of

#: Copies move data in pieces of this size, so memory stays bounded for any file size.
CHUNK_SIZE = 1 << 20


class Readable(Protocol):
    """What ``Location.write`` reads from: anything with ``read(size)``."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end."""
        ...


def changed_since_planned(path: str, display: str) -> str:
    """The message of a write or delete refused because the target changed meanwhile."""
    return (f"{path!r} in {display} changed since the plan was made; it was left as it is "
            "and will be looked at again")


@dataclass
class Batch:
    """What ``Location.batch()`` reports: whether the group began, landed, and what it refused."""

    begun: Result[None]
    ended: Result[None] | None = None
    refused: dict[str, str] = field(default_factory=dict)


class Location(ABC):
    """A place files live in: a folder, a ZIP archive, an FTP server, ...

    Backends implement the small abstract core; listing filters, hashing and batch hooks
    are shared here. Every operation that can fail returns a ``Result``; backend
    exceptions are translated into ``Err`` at this boundary.
    """

    #: Short name of the backend, as in the location string (``folder``, ``zip``, ``ftp``).
    kind: ClassVar[str]
    #: What the backend can do beyond the core; the engine reads only this.
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, key: str, display: str) -> None:
        self.key = key
        self.display = display
        #: Written into temporary names (``TEMP_NAME``). The engine sets one id per sync set
        #: (kept in its state), so a later run recognises its own leftovers.
        self.owner = secrets.token_hex(4)
        #: Set once the location's marker is known (``expect_marker``): from then on a
        #: listing or probe that does not find it fails (an unmounted disk is not empty).
        self._marker: str | None = None
        #: A file this location may keep a cache in between runs (set by the engine, one
        #: per state file and location; None: keep nothing). S3 keeps the modification
        #: times its listings do not carry there, so a no-op round needs no look-ups.
        self.cache_path: Path | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.display}>"

    # ----- identity and lifecycle -------------------------------------------------------
    def local_path(self) -> Path | None:
        """The local file or folder backing this location, if any (for nesting checks)."""
        return None

    @abstractmethod
    def check(self) -> Result[None]:
        """Verify the location can be used, changing nothing (a missing root may be creatable)."""

    @abstractmethod
    def prepare(self) -> Result[None]:
        """Make the location ready (create a missing root); called once before syncing."""

    def will_be_created(self) -> bool:
        """True when the root is missing and ``prepare()`` would create it.

        A dry run, which prepares nothing, then plans against an empty location. Known for
        local locations only: a missing local path that ``check()`` accepts.
        """
        path = self.local_path()
        return path is not None and not path.exists() and self.check().ok

    def close(self) -> None:
        """Release connections or handles; the default has none."""

    @contextlib.contextmanager
    def batch(self) -> Iterator[Batch]:
        """One group of changes: the only way callers batch.

        Within it, what the backend caches about the location stays valid; a
        transactional backend (``capabilities.transactional``) applies the changes
        together when it closes. The yielded ``Batch`` says afterwards whether the group
        began and landed, and which staged changes were refused at the end.
        """
        outcome = Batch(self._begin_batch())
        try:
            yield outcome
        finally:
            outcome.ended = self._end_batch()
            outcome.refused = self._batch_refusals() if outcome.ended.ok else {}

    def _begin_batch(self) -> Result[None]:
        """Hook for backends, called by ``batch()``: start a group of changes."""
        return Ok(None)

    def _end_batch(self) -> Result[None]:
        """Hook for backends, called by ``batch()``: finish the group of changes."""
        return Ok(None)

    def _batch_refusals(self) -> dict[str, str]:
        """Hook for backends: changes of the last batch that did not land (path -> why).

        A transactional backend refuses a staged change whose target another program
        changed before the batch landed; the rest of the batch still lands.
        """
        return {}

    # ----- the marker -------------------------------------------------------------------
    @property
    def marker(self) -> str | None:
        """The marker id this location must carry, once known (see ``expect_marker``)."""
        return self._marker

    def expect_marker(self, marker: str | None) -> None:
        """From now on, fail listings and probes unless ``.filesync/marker`` holds ``marker``."""
        self._marker = marker

    def read_marker(self) -> Result[str | None]:
        """The id in this location's marker file, ``None`` when there is none."""
        found = self.stat(MARKER)
        if not found.ok:
            return found
        if found.value is None:
            return Ok(None)
        opened = self.open_read(MARKER)
        if not opened.ok:
            return opened
        try:
            with opened.value as stream:
                text = stream.read(200).decode("ascii", "replace").strip()
        except OSError as exc:
            return Err(f"cannot read {MARKER} in {self.display}: {exc}", kind_of(exc))
        return Ok(text or None)

    def write_marker(self) -> Result[str]:
        """Write a new marker id into this location (and expect it from now on)."""
        marker = uuid.uuid4().hex
        with self.batch() as batch:
            written = (self.write(MARKER, io.BytesIO(f"{marker}\n".encode()), time.time_ns())
                       if batch.begun.ok else batch.begun)
        if not written.ok:
            return written
        if batch.ended is not None and not batch.ended.ok:
            return batch.ended
        self._marker = marker
        return Ok(marker)

    def probe(self) -> Result[None]:
        """Check that the location is reachable and its root is there, right now.

        Used before trusting single-path lookups: under a vanished root every path looks
        absent, which must never read as "deleted". The default lists the top level only;
        backends override it with something cheaper.
        """
        result = self.scan(lambda _path: True)
        return self.check_marker() if result.ok else result

    def check_marker(self) -> Result[None]:
        """Fail when the marker this location had is gone (or cannot be looked at)."""
        if self._marker is None:
            return Ok(None)
        found = self.stat(MARKER)
        if not found.ok:
            return found
        if found.value is None or found.value.is_dir:
            return Err(f"{self.display} has lost its marker {MARKER}: is a disk not mounted, "
                       "or does the path point somewhere else? Nothing is deleted because of "
                       "it; if the location really was emptied, run again with --force",
                       ErrorKind.UNAVAILABLE)
        return Ok(None)

    def name_problem(self, path: str) -> str | None:
        """Why this location cannot hold a file or folder named ``path`` (None: it can).

        Asked before anything is written, so a name the location would drop, mangle or
        reject is refused and reported instead, and never read back as a deletion. The
        base refuses what ``list`` would skip as unsafe here, and temporary-file names.
        """
        posix = self.capabilities.posix_names
        # One search rules out almost every name before the full check.
        if (MAYBE_UNSAFE_POSIX if posix else MAYBE_UNSAFE).search(path):
            reason = unsafe_reason(path, posix)
            if reason:
                return f"unsafe name ({reason})"
        if ".filesync-" in path and TEMP_NAME.match(path.rpartition("/")[2]):
            return "the name has the form of filesync's temporary files"
        return None

    # ----- the core every backend implements --------------------------------------------
    @abstractmethod
    def scan(self, skip_dir: Callable[[str], bool]) -> Result[Listing]:
        """List every file and directory below the root, not descending where ``skip_dir``.

        ``skip_dir(path)`` is asked for every directory (``.filesync`` included); a skipped
        directory is left out with everything below it. Temporary files (``TEMP_NAME``) go
        to ``Listing.temps``, not to the entries. Paths are relative and ``/``-separated;
        names are passed through as found (the base class rejects unsafe ones). An
        unreachable root is an ``Err``, never an empty listing.
        """

    @abstractmethod
    def stat(self, path: str) -> Result[Entry | None]:
        """The entry at ``path`` now, ``None`` when nothing is there."""

    @abstractmethod
    def open_read(self, path: str) -> Result[BinaryIO]:
        """Open ``path`` for streaming reads; the caller closes the stream."""

    @abstractmethod
    def write(self, path: str, source: Readable, mtime_ns: int,
              keep_old_as: str | None = None, expect: Entry | Unchecked | None = ANY,
              mode: int = 0) -> Result[Entry]:
        """Atomically replace ``path`` with the bytes of ``source``, dated ``mtime_ns``.

        Missing parent directories are created. With ``keep_old_as``, the file the write
        replaces is moved there (a rename where the backend allows it) once the new
        content is complete and just before it takes the real name, so the old content
        stays recoverable. Unless ``expect`` is ``ANY``, the path is re-checked right
        before it is replaced: if it no longer holds ``expect`` (``None``: nothing), the
        new content is discarded and the result is an ``Err`` made by
        ``changed_since_planned``. ``mode`` (permission bits, 0: unknown) is applied where
        the backend keeps permissions. Returns the entry as the location now reports it,
        so the next scan does not mistake the write for a change.
        """

    @abstractmethod
    def rename(self, old: str, new: str) -> Result[Entry]:
        """Move the file ``old`` to ``new`` (parents created, an existing ``new`` replaced).

        Used to keep versions under ``.filesync/`` without copying; returns the entry now
        at ``new``.
        """

    @abstractmethod
    def delete(self, path: str) -> Result[None]:
        """Remove the file at ``path``; a file that is already gone is not an error."""

    @abstractmethod
    def mkdir(self, path: str) -> Result[Entry]:
        """Create the directory ``path`` (and its parents); an existing one is fine."""

    @abstractmethod
    def rmdir(self, path: str) -> Result[None]:
        """Remove the empty directory ``path`` (missing: NOT_FOUND; not empty: an error)."""

    def claim_dir(self, path: str) -> Result[bool]:
        """Create the directory ``path`` only if nothing is there, atomically.

        ``Ok(True)``: this call created it; ``Ok(False)``: something was already there
        (whoever made it). Parents are created. Only backends that declare
        ``capabilities.atomic_claim`` implement it; the engine's hub lease is built on it.
        """
        return Err(f"{self.display} cannot create a folder atomically (no lease possible)",
                   ErrorKind.INVALID)

    # ----- shared logic -----------------------------------------------------------------
    def list(self, excludes: Excludes) -> Result[Listing]:
        """Scan and drop excluded, reserved and unsafe names (each unsafe one is a warning)."""
        with gc_paused():
            return self._filtered_listing(excludes)

    def new_poll_memory(self) -> object | None:
        """What ``poll_list`` keeps between one watcher's polls (None: nothing, list in full)."""
        return None

    def poll_list(self, excludes: Excludes, memory: object | None) -> Result[Listing]:
        """``list``, for a polling watcher; a backend may make it cheaper with ``memory``."""
        return self.list(excludes)

    def _filtered_listing(self, excludes: Excludes,
                          scan: Callable[[Callable[[str], bool]], Result[Listing]] | None = None
                          ) -> Result[Listing]:
        has_excludes = bool(excludes)

        def skip(path: str) -> bool:
            return path == RESERVED_DIR or (has_excludes and excludes.dir_excluded(path))

        result = (scan or self.scan)(skip)
        if not result.ok:
            return result
        marked = self.check_marker()
        if not marked.ok:
            return marked
        listing = result.value
        entries = listing.entries
        posix = self.capabilities.posix_names
        maybe_unsafe = (MAYBE_UNSAFE_POSIX if posix else MAYBE_UNSAFE).search
        # Usually no name at all may be reserved or unsafe (one search over all of them
        # says so); else a pass finds the few that may, and only those get the full checks.
        suspects = [] if all_plain(entries, posix) else [
            path for path in entries if RESERVED_DIR in path or maybe_unsafe(path)]
        if has_excludes:
            excluded = excludes.excluded
            for path in [path for path, entry in entries.items()
                         if excluded(path, entry.is_dir)]:
                del entries[path]
        for path in suspects:
            if path not in entries:
                continue  # excluded
            if is_reserved(path):
                del entries[path]
                continue
            reason = unsafe_reason(path, posix) if maybe_unsafe(path) else None
            if reason:
                listing.skip(path, f"unsafe name ({reason})")
                del entries[path]
        for path, reason in sorted(listing.skipped.items()):
            if has_excludes and (excludes.excluded(path, False) or excludes.excluded(path, True)):
                del listing.skipped[path]
                listing.blind.discard(path)
                continue
            listing.warnings.append(f"skipping {path!r} in {self.display}: {reason}")
        return Ok(listing)

    def list_reserved(self) -> Result[Listing]:
        """Scan only filesync's own ``.filesync/`` folder (versions, marker)."""
        def skip(path: str) -> bool:
            return path != RESERVED_DIR and not path.startswith(RESERVED_DIR + "/")

        result = self.scan(skip)
        if result.ok:
            result.value.entries = {
                path: entry for path, entry in result.value.entries.items()
                if path.startswith(RESERVED_DIR + "/") or path == RESERVED_DIR}
        return result

    def stat_many(self, paths: Iterable[str]) -> dict[str, Result[Entry | None]]:
        """``stat`` several paths; backends with a cheaper bulk query override this."""
        return {path: self.stat(path) for path in paths}

    def sha256(self, path: str) -> Result[str]:
        """The SHA-256 hex digest of the file at ``path``, read as a stream."""
        opened = self.open_read(path)
        if not opened.ok:
            return opened
        digest = hashlib.sha256()
        try:
            with opened.value as stream:
                while chunk := stream.read(CHUNK_SIZE):
                    digest.update(chunk)
        except OSError as exc:
            return Err(f"cannot read {path!r} in {self.display}: {exc.strerror or exc}",
                       kind_of(exc))
        return Ok(digest.hexdigest())
