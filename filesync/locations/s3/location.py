"""A prefix in an S3 bucket as a location, in a layout every S3 tool reads.

A file is the object ``PREFIX/rel/path``; an empty folder the zero-byte object
``PREFIX/rel/path/``; folders implied by deeper keys are folders too. The modification
time is the user metadata ``x-amz-meta-mtime`` (decimal seconds, rclone's convention);
objects written by other tools without it are dated by their LastModified. A scan is one
ListObjectsV2 walk; times it cannot take from ``MtimeCache`` cost one HEAD each.

Writes need no temporary names (a PUT is atomic). Re-checks are conditional requests
(``If-Match`` with the ETag the plan saw, ``If-None-Match: *`` for new keys) where the
server honours them, else a HEAD right before the write (said once at debug level).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from filesync.locations.base import Location, Readable, changed_since_planned
from filesync.locations.capabilities import Capabilities
from filesync.locations.s3.client import ObjectInfo, S3Client, S3Error
from filesync.locations.s3.config import Endpoint, resolve
from filesync.locations.s3.folders import NOT_THERE, Folders
from filesync.locations.s3.housekeeping import abort_stale_uploads, keeps_backslashes
from filesync.locations.s3.mtimes import MTIME_META, MtimeCache, Seen, format_mtime, mtime_of
from filesync.locations.s3.scan import CLAIM_NAME, LOOKUP_THREADS, date_files, walk
from filesync.locations.s3.upload import Spooled, planned, spool, upload
from filesync.locations.spec import S3Spec
from filesync.model import ANY, Entry, Listing, Unchecked, unsafe_reason
from filesync.result import Err, ErrorKind, Ok, Result, kind_of

if TYPE_CHECKING:
    from filesync.locations import Settings

log = logging.getLogger("filesync")
T = TypeVar("T")

#: Connections kept per location (transfers, look-ups and listings share them).
CONNECTIONS = 8
#: S3's longest key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024


class S3Location(Location):
    """A prefix (or a whole bucket) on S3 or an S3-compatible store."""

    kind = "s3"
    capabilities = Capabilities(mtime_precision_ns=1, remote=True, native_rename=False,
                                server_copy=True, atomic_replace=True, posix_names=True,
                                atomic_claim=True)

    def __init__(self, spec: S3Spec, settings: Settings | None = None,
                 environ: Mapping[str, str] | None = None, home: Path | None = None) -> None:
        super().__init__(spec.key, spec.display)
        self.spec = spec
        self.settings = settings
        #: Where credentials come from (the process's environment and home by default).
        self._environ = environ
        self._home = home
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._client: S3Client | None = None
        self.endpoint: Endpoint | None = None
        #: Whether the server honours If-Match / If-None-Match (probed once, when needed).
        self._conditional: bool | None = None
        self._cache: MtimeCache | None = None
        self._base = spec.prefix + "/" if spec.prefix else ""
        self._folders = Folders(self.object_key, self.display, self._supports_conditional)

    # ----- keys, errors, the client -------------------------------------------------------
    def object_key(self, path: str) -> str:
        """The key of the file ``path`` (a folder's key adds ``/``)."""
        return self._base + path

    def _err(self, action: str, path: str, exc: S3Error, kind: ErrorKind | None = None) -> Err:
        where = f" {path!r} in" if path else ""
        return Err(f"cannot {action}{where} {self.display}: {exc.explain()}", kind or exc.kind)

    def _connect(self) -> Result[S3Client]:
        """The client, made on first use from the configuration (errors name the location)."""
        with self._lock:
            if self._client is not None:
                return Ok(self._client)
            resolved = resolve(self.spec.endpoint_url,
                               os.environ if self._environ is None else self._environ,
                               Path.home() if self._home is None else self._home)
            if not resolved.ok:
                return Err(f"{self.display}: {resolved.message}", resolved.kind)
            self.endpoint, credentials = resolved.value
            self._client = S3Client(self.endpoint, credentials, self.spec.bucket,
                                    connections=CONNECTIONS)
            return Ok(self._client)

    def _run(self, action: str, path: str, work: Callable[[S3Client], T]) -> Result[T]:
        """``work`` with the client; an ``S3Error`` becomes an ``Err`` naming ``path``."""
        client = self._connect()
        if not client.ok:
            return client
        try:
            return Ok(work(client.value))
        except S3Error as exc:
            return self._err(action, path, exc)

    @property
    def mtimes(self) -> MtimeCache:
        """The cache of modification times (loaded from ``cache_path`` on first use)."""
        with self._lock:
            if self._cache is None:
                self._cache = MtimeCache(self.cache_path)
            return self._cache

    def _supports_conditional(self, client: S3Client) -> bool:
        """Probe once whether the server honours conditional writes (raises ``S3Error``)."""
        with self._probe_lock:
            if self._conditional is None:
                supported = client.probe_conditional(self._base + ".filesync/conditional-probe")
                if not supported:
                    log.debug("%s: the server ignores conditional requests (If-Match, "
                              "If-None-Match); changes are re-checked with a look-up right "
                              "before each write instead, which leaves a short window",
                              self.display)
                self._conditional = supported
            return self._conditional

    def _entry(self, path: str, info: ObjectInfo) -> Entry:
        """The entry of a HEAD answer, remembered in the cache."""
        mtime = mtime_of(info)
        self.mtimes.remember(info.key, Seen(info.etag, info.size, info.last_modified_ns, mtime))
        return Entry(path, False, info.size, mtime)

    def name_problem(self, path: str) -> str | None:
        """Refuse what the base refuses, names that are not UTF-8 and overlong keys."""
        problem = super().name_problem(path)
        if problem is not None:
            return problem
        if path.rpartition("/")[2] == CLAIM_NAME:
            return "the name is the one filesync gives its claims of folders"
        try:
            size = len(self.object_key(path).encode("utf-8")) + 1
        except UnicodeEncodeError:
            return "the name is not valid UTF-8, which S3 keys must be"
        return (f"the key would be longer than S3's {MAX_KEY_BYTES} bytes"
                if size > MAX_KEY_BYTES else None)

    def _refused(self, action: str, path: str, temp_ok: bool = False) -> Err | None:
        """An ``INVALID`` Err when ``path`` may not be used, else None.

        With ``temp_ok`` a temporary name is fine (it may be read, moved or deleted).
        """
        if temp_ok:
            reason = unsafe_reason(path, posix=True)
            problem = None if reason is None else f"unsafe name ({reason})"
        else:
            problem = self.name_problem(path)
        if problem is None:
            return None
        return Err(f"cannot {action} {path!r} in {self.display}: {problem}", ErrorKind.INVALID)

    # ----- lifecycle ----------------------------------------------------------------------
    def check(self) -> Result[None]:
        """Resolve the configuration and look at the bucket; nothing is changed."""
        client = self._connect()
        if not client.ok:
            return client
        try:
            client.value.head_bucket()
        except S3Error as exc:
            return self._bucket_problem(client.value, exc)
        return Ok(None)

    def _bucket_problem(self, client: S3Client, exc: S3Error) -> Err:
        """Explain a failed look at the bucket (a missing one is named with the endpoint)."""
        endpoint = self.endpoint.display() if self.endpoint else "the endpoint"
        if exc.status == 404 or exc.code == "NoSuchBucket":
            return Err(f"{self.display}: bucket {self.spec.bucket!r} does not exist at "
                       f"{endpoint}; create it first (filesync never creates buckets)",
                       ErrorKind.INVALID)
        return Err(f"cannot use {self.display}: {exc.explain()}", exc.kind)

    def prepare(self) -> Result[None]:
        """Check, abort stale multipart uploads, learn whether keys keep backslashes.

        Where they do not, this location takes names the way archives and FTP servers do
        (``posix_names`` off: a backslash or a drive letter is refused, never mangled).
        """
        checked = self.check()
        if not checked.ok:
            return checked
        client = self._connect().unwrap()
        try:
            abort_stale_uploads(client, self._base, self.mtimes, self.display)
        except S3Error as exc:
            log.warning("%s: cannot clean up unfinished uploads now: %s", self.display,
                        exc.explain())
        self.mtimes.save()
        try:
            kept = keeps_backslashes(client, self._base, self.owner)
        except S3Error as exc:
            return self._err("try a name with a backslash in", "", exc)
        if not kept:
            log.debug("%s: the server turns '\\' in keys into '/': names with a backslash "
                      "are refused", self.display)
            # An instance attribute shadows the class's declaration for this server only.
            vars(self)["capabilities"] = replace(self.capabilities, posix_names=False)
        return Ok(None)

    def close(self) -> None:
        """Close the connections and save the cache."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._cache is not None:
            self._cache.save()

    def probe(self) -> Result[None]:
        """One small listing (the bucket answers), then the marker if one is expected."""
        client = self._connect()
        if not client.ok:
            return client
        try:
            next(iter(client.value.list_objects(self._base)), None)
        except S3Error as exc:
            return self._unreachable(exc)
        return self.check_marker()

    def _unreachable(self, exc: S3Error) -> Err:
        """A listing that failed: a vanished bucket is like a vanished root (unavailable)."""
        kind = ErrorKind.UNAVAILABLE if exc.code == "NoSuchBucket" else exc.kind
        return self._err("list", "", exc, kind)

    # ----- reading ------------------------------------------------------------------------
    def scan(self, skip_dir: Callable[[str], bool]) -> Result[Listing]:
        """One listing of the prefix; times from the cache, the rest looked up in parallel."""
        client = self._connect()
        if not client.ok:
            return client
        try:
            walked = walk(client.value, self._base, skip_dir)
        except S3Error as exc:
            return self._unreachable(exc)
        self._folders.explicit = walked.explicit
        self.mtimes.keep_only(walked.keys, self._base)
        failed = date_files(client.value, walked, self.mtimes)
        if failed is not None:
            return self._err("look at", *failed)
        self.mtimes.save()
        return Ok(walked.listing)

    def stat(self, path: str) -> Result[Entry | None]:
        """A HEAD of the file, else one listing call.

        A folder is its ``path/`` object or anything below it.
        """
        bad = self._refused("look at", path, temp_ok=True)
        if bad is not None:
            return bad

        def work(client: S3Client) -> Entry | None:
            info = client.head(self.object_key(path))
            if info is not None:
                return self._entry(path, info)
            below = next(iter(client.list_objects(self.object_key(path) + "/")), None)
            return None if below is None else Entry(path, True)

        return self._run("look at", path, work)

    def stat_many(self, paths: Iterable[str]) -> dict[str, Result[Entry | None]]:
        """``stat`` in parallel."""
        wanted = list(dict.fromkeys(paths))
        with ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="s3-stat") as pool:
            return dict(zip(wanted, pool.map(self.stat, wanted), strict=True))

    def open_read(self, path: str) -> Result[BinaryIO]:
        """A streaming GET; the caller closes the stream."""
        bad = self._refused("read", path, temp_ok=True)
        return bad if bad is not None else self._run(
            "read", path, lambda client: client.get(self.object_key(path)))

    # ----- changes ------------------------------------------------------------------------
    def write(self, path: str, source: Readable, mtime_ns: int,
              keep_old_as: str | None = None, expect: Entry | Unchecked | None = ANY,
              mode: int = 0) -> Result[Entry]:
        """Spool the source, re-check the target, keep the old object, then upload.

        One PUT (or a multipart upload) carries the time as metadata; ``mode`` is not kept.
        """
        for name in (path, keep_old_as or path):
            bad = self._refused("write", name)
            if bad is not None:
                return bad
        client = self._connect()
        if not client.ok:
            return client
        try:
            spooled = spool(source)
        except OSError as exc:
            return Err(f"cannot write {path!r} in {self.display}: reading the source failed: "
                       f"{exc.strerror or exc}", kind_of(exc))
        try:
            return self._store(client.value, path, spooled, mtime_ns, keep_old_as, expect)
        except S3Error as exc:
            if exc.kind is ErrorKind.CHANGED:
                self.mtimes.forget(self.object_key(path))
                return Err(changed_since_planned(path, self.display), ErrorKind.CHANGED)
            return self._err("write", path, exc)
        finally:
            spooled.close()

    def _store(self, client: S3Client, path: str, spooled: Spooled, mtime_ns: int,
               keep_old_as: str | None, expect: Entry | Unchecked | None) -> Result[Entry]:
        """Write the spooled bytes under ``path`` as ``write`` describes."""
        key = self.object_key(path)
        changed = Err(changed_since_planned(path, self.display), ErrorKind.CHANGED)
        if_match: str | None = None
        if_none_match = False
        current: Seen | None = None  # what the key holds now, when we know it
        if expect is not ANY:
            conditional = self._supports_conditional(client)
            if expect is None:
                if not conditional and client.head(key) is not None:
                    return changed
                if_none_match = conditional
            else:
                assert isinstance(expect, Entry)
                current = planned(client, key, expect, self.mtimes, fresh=not conditional)
                if current is None:
                    return changed
                if_match = current.etag if conditional else None
        if keep_old_as is not None:
            if current is None:
                found = client.head(key)
                current = None if found is None else Seen(
                    found.etag, found.size, found.last_modified_ns, mtime_of(found))
            if current is not None:
                kept_key = self.object_key(keep_old_as)
                etag = client.copy(key, kept_key, {MTIME_META: format_mtime(current.mtime_ns)},
                                   if_match=current.etag)
                self.mtimes.remember(kept_key, Seen(etag, current.size, None, current.mtime_ns))
        etag = upload(client, key, spooled, {MTIME_META: format_mtime(mtime_ns)}, self.mtimes,
                      if_match=if_match, if_none_match=if_none_match)
        self.mtimes.remember(key, Seen(etag, spooled.size, None, mtime_ns))
        return Ok(Entry(path, False, spooled.size, mtime_ns))

    def rename(self, old: str, new: str) -> Result[Entry]:
        """A server-side copy to ``new``, then the delete of ``old`` (both on its ETag)."""
        bad = self._refused("move", old, temp_ok=True) or self._refused("move to", new)
        if bad is not None:
            return bad
        old_key, new_key = self.object_key(old), self.object_key(new)

        def work(client: S3Client) -> Entry | None:
            info = client.head(old_key)
            if info is None:
                return None
            mtime = mtime_of(info)
            # Without our time in its metadata, the copy would be dated by the copy.
            metadata = None if MTIME_META in info.metadata else {MTIME_META: format_mtime(mtime)}
            etag = client.copy(old_key, new_key, metadata, if_match=info.etag)
            self.mtimes.remember(new_key, Seen(etag, info.size, None, mtime))
            lone = self._folders.lone_parent(client, old)
            client.delete(old_key, if_match=info.etag)
            self.mtimes.forget(old_key)
            self._folders.keep(client, lone)
            return Entry(new, False, info.size, mtime)

        moved = self._run(f"move {old!r} to", new, work)
        if moved.ok and moved.value is None:
            return Err(f"cannot move {old!r} in {self.display}: it is not there",
                       ErrorKind.NOT_FOUND)
        return moved  # type: ignore[return-value]

    def delete(self, path: str) -> Result[None]:
        """Remove one object; one that is already gone is fine."""
        bad = self._refused("delete", path, temp_ok=True)
        if bad is not None:
            return bad

        def work(client: S3Client) -> None:
            lone = self._folders.lone_parent(client, path)
            client.delete(self.object_key(path))
            self.mtimes.forget(self.object_key(path))
            self._folders.keep(client, lone)

        return self._run("delete", path, work)

    def mkdir(self, path: str) -> Result[Entry]:
        """Put the zero-byte ``path/`` object (its parents are implied by it)."""
        bad = self._refused("create folder", path)
        if bad is not None:
            return bad
        made = self._run("create folder", path, lambda client: self._folders.make(client, path))
        return Ok(Entry(path, True)) if made.ok else made

    def rmdir(self, path: str) -> Result[None]:
        """Remove an empty folder's ``path/`` object (and its claim, see ``claim_dir``).

        A missing folder is NOT_FOUND; one with anything else below it FAILED.
        """
        bad = self._refused("delete folder", path, temp_ok=True)
        if bad is not None:
            return bad
        removed = self._run("delete folder", path,
                            lambda client: self._folders.remove(client, path))
        if not removed.ok:
            return removed
        if removed.value is not None:
            kind = ErrorKind.NOT_FOUND if removed.value == NOT_THERE else ErrorKind.FAILED
            return Err(f"cannot delete folder {path!r} in {self.display}: {removed.value}", kind)
        return Ok(None)

    def claim_dir(self, path: str) -> Result[bool]:
        """Create the folder ``path`` only if nothing is there, atomically.

        An ``If-None-Match: *`` PUT of ``path/CLAIM_NAME`` (see ``Folders.claim``).
        """
        bad = self._refused("create folder", path)
        if bad is not None:
            return bad
        return self._run("create folder", path, lambda client: self._folders.claim(client, path))
