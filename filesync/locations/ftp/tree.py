"""Reading an FTP server's tree: directory listings, the walk over them, and look-ups.

Listing uses MLSD when the server offers it (one command per directory, exact UTC times),
otherwise LIST plus MDTM per file. A walk lists on one connection while the server is
quick and spreads over several (at most ``MAX_LIST_THREADS``) once it keeps us waiting.
Single look-ups use MLST, or a listing of the parent folder; ``stat_many`` lists each
parent once for all its paths.
"""

from __future__ import annotations

import collections
import ftplib
import posixpath
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from filesync.locations.ftp.client import Client, finish_data
from filesync.locations.ftp.errors import FTP_ERRORS, FtpFailure, ftp_kind, is_broken, reply_code
from filesync.locations.ftp.listing import (
    DIR,
    FILE,
    LINK,
    RemoteItem,
    name_problem,
    parse_ftp_time,
    parse_list_line,
    parse_mlsd_line,
    parse_mlst_reply,
)
from filesync.locations.ftp.retry import is_transient, retrying
from filesync.locations.ftp.session import Session
from filesync.model import RESERVED_DIR, TEMP_NAME, Entry, Listing
from filesync.result import Err, ErrorKind, Ok, Result

#: Most threads one scan uses to list directories in parallel (each borrows a connection).
MAX_LIST_THREADS = 8
#: A scan lists on one connection until it has taken this long, then on several.
PARALLEL_AFTER_SECONDS = 0.05

Items = tuple[list[RemoteItem], list[str]]


@dataclass
class Walk:
    """What a walk found: the listing, and which folders exist and were looked into."""

    listing: Listing = field(default_factory=Listing)
    dirs: set[str] = field(default_factory=set)
    listed: set[str] = field(default_factory=set)


class Tree:
    """Listings and look-ups of one FTP location (``Session`` holds the connections)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.display = session.display
        self._list_dash_a = True

    # ----- one directory ------------------------------------------------------------------
    def _read_data(self, client: Client, command: str) -> list[str]:
        """Run a listing command and return its lines (bytes that are not UTF-8 escaped).

        A 425, 426 or 450 reply is retried (``retry``).
        """
        return retrying(lambda: self._read_data_once(client, command), self.display)

    @staticmethod
    def _read_data_once(client: Client, command: str) -> list[str]:
        conn, _ = client.ntransfercmd(command)
        try:
            chunks = []
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            finish_data(conn)
        client.voidresp()
        lines = []
        for raw in b"".join(chunks).split(b"\n"):
            line = raw.rstrip(b"\r")
            if line:
                lines.append(line.decode("utf-8", "surrogateescape"))
        return lines

    def list_dir(self, client: Client, path: str) -> Items:
        """The items of one directory, with times; plus warnings about items left out."""
        remote = self.session.remote(path)
        features = self.session.features
        warnings: list[str] = []
        items: list[RemoteItem] = []
        if features.mlsd:
            for line in self._read_data(client, "MLSD " + remote):
                item = parse_mlsd_line(line)
                if item is not None:
                    items.append(item)
            return self._checked_names(path, items, warnings), warnings
        client.voidcmd("CWD " + remote)
        lines: list[str] | None = None
        if self._list_dash_a:
            try:
                lines = self._read_data(client, "LIST -a")
            except ftplib.error_perm:
                self._list_dash_a = False
        if lines is None:
            lines = self._read_data(client, "LIST")
        for line in lines:
            item = parse_list_line(line)
            if item is None:
                if not line.lower().startswith("total"):
                    warnings.append(f"cannot read the listing line {line!r} of "
                                    f"{path or '/'} in {self.display}")
                continue
            items.append(item)
        items = self._checked_names(path, items, warnings)
        if features.mdtm:
            items = [self._dated(client, remote, item) for item in items]
        return items, warnings

    def _dated(self, client: Client, remote: str, item: RemoteItem) -> RemoteItem:
        """A LIST item with its exact time from MDTM (the LIST time when there is none)."""
        features = self.session.features
        if item.kind != FILE or TEMP_NAME.match(item.name) or not features.mdtm:
            return item
        try:
            reply = client.sendcmd(f"MDTM {remote.rstrip('/')}/{item.name}")
        except ftplib.error_perm as exc:
            if reply_code(exc) in ("500", "502", "504"):
                features.mdtm = False  # not implemented: stop asking
            return item  # keep the LIST time: better than nothing
        mtime = parse_ftp_time(reply[4:].strip())
        return RemoteItem(item.name, FILE, item.size, mtime or item.mtime_ns)

    def _checked_names(self, path: str, items: list[RemoteItem],
                       warnings: list[str]) -> list[RemoteItem]:
        kept = []
        for item in items:
            problem = name_problem(item.name)
            if problem is None:
                try:
                    item.name.encode("utf-8")
                except UnicodeEncodeError:
                    problem = "the name is not valid UTF-8"
            if problem is not None:
                shown = posixpath.join(path, item.name) if path else item.name
                warnings.append(f"skipping {shown!r} in {self.display}: the server listed a "
                                f"name that {problem}")
                continue
            kept.append(item)
        return kept

    def list_path(self, path: str) -> Items:
        """``list_dir`` on a pooled connection."""
        return self.session.run(lambda client: self.list_dir(client, path))

    # ----- the whole tree -----------------------------------------------------------------
    def walk(self, skip_dir: Callable[[str], bool]) -> Result[Walk]:
        """List the tree, several directories at once; an unlistable subfolder is blind."""
        walk = Walk()
        waiting: collections.deque[str] = collections.deque([""])
        running: dict[Future[Items], str] = {}
        threads = max(1, min(self.session.pool.limit, MAX_LIST_THREADS))
        executor: ThreadPoolExecutor | None = None
        started = time.monotonic()
        try:
            while waiting or running:
                # A fast server is listed on one connection; one that keeps us waiting gets
                # several connections, so opening them is only paid where it pays off.
                if not running and (threads == 1 or
                                    time.monotonic() - started < PARALLEL_AFTER_SECONDS):
                    folder = waiting.popleft()
                    try:
                        self._absorb(walk, skip_dir, waiting, folder, *self.list_path(folder))
                    except FTP_ERRORS as exc:
                        problem = self._failed(walk.listing, folder, exc)
                        if problem is not None:
                            return problem
                    continue
                if executor is None:
                    executor = ThreadPoolExecutor(threads,
                                                  thread_name_prefix="filesync-ftp-list")
                while waiting and len(running) < threads:
                    folder = waiting.popleft()
                    running[executor.submit(self.list_path, folder)] = folder
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    folder = running.pop(future)
                    try:
                        self._absorb(walk, skip_dir, waiting, folder, *future.result())
                    except FTP_ERRORS as exc:
                        problem = self._failed(walk.listing, folder, exc)
                        if problem is not None:
                            return problem
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        return Ok(walk)

    def _absorb(self, walk: Walk, skip_dir: Callable[[str], bool],
                waiting: collections.deque[str], folder: str, items: list[RemoteItem],
                warnings: list[str]) -> None:
        """Add one folder's items to the walk; its subfolders join ``waiting``."""
        listing = walk.listing
        walk.listed.add(folder)
        listing.warnings.extend(warnings)
        if not folder and self.session.spec.reserved is not None:
            # ``.filesync`` is the reserved folder elsewhere, not one in the root.
            items = [item for item in items if item.name != RESERVED_DIR]
            if not skip_dir(RESERVED_DIR) and self.stat_path(RESERVED_DIR) is not None:
                items.append(RemoteItem(RESERVED_DIR, DIR))
        for item in items:
            path = f"{folder}/{item.name}" if folder else item.name
            if item.kind == DIR:
                if not skip_dir(path):
                    walk.dirs.add(path)
                    listing.entries[path] = Entry(path, True)
                    waiting.append(path)
            elif item.kind == FILE:
                if TEMP_NAME.match(item.name):
                    listing.temps.append(path)
                elif item.mtime_ns is None:
                    listing.skip(path, "the server gives no modification time for it")
                else:
                    listing.entries[path] = Entry(path, False, item.size, item.mtime_ns)
            else:
                what = "a symbolic link" if item.kind == LINK else "a special file"
                listing.skip(path, f"{what} (only files and folders are synced)")

    def _failed(self, listing: Listing, folder: str, exc: BaseException) -> Err | None:
        """A folder that could not be listed: blind when below the root, else the Err.

        The root refused is ``UNAVAILABLE`` (missing, or gone since: never "empty"),
        unless the server said the listing is forbidden (``REFUSED``).
        """
        session = self.session
        refused = isinstance(exc, ftplib.Error) and not is_broken(exc)
        if folder and refused:
            # Only this folder is unreadable: nothing is concluded about it.
            listing.skip(folder, session.explain("list", folder, exc))
            return None
        if refused and is_transient(exc):
            return Err(session.scrub(f"cannot list {self.display}: the server kept "
                                     f"answering {str(exc).strip()!r}; it will be retried"),
                       ErrorKind.UNAVAILABLE)
        if refused:
            kind = ftp_kind(exc)
            return Err(session.scrub(f"cannot list {self.display}: the server answered "
                                     f"{str(exc).strip()!r} (is the folder missing?)"),
                       kind if kind is ErrorKind.REFUSED else ErrorKind.UNAVAILABLE)
        return session.err("list", folder, exc)

    # ----- look-ups -----------------------------------------------------------------------
    def stat_on(self, client: Client, path: str) -> RemoteItem | None:
        """The item at ``path`` (None when missing), with one MLST or a parent listing."""
        session = self.session
        if session.moved_reserved(path) and not session.features.mlsd:
            try:
                client.voidcmd("CWD " + session.remote(path))
            except ftplib.error_perm:
                return None
            return RemoteItem(RESERVED_DIR, DIR)
        if session.features.mlsd:
            try:
                reply = client.sendcmd("MLST " + session.remote(path))
            except ftplib.error_perm:
                return None
            item = parse_mlst_reply(reply)
            if item is None:
                raise FtpFailure(f"unreadable MLST answer from {session.server}")
            return item
        parent, _, name = path.rpartition("/")
        found = self.items_of(client, parent, [name])
        return found[name]

    def items_of(self, client: Client, parent: str,
                 names: list[str]) -> dict[str, RemoteItem | None]:
        """Look ``names`` up in one listing of ``parent`` (a missing parent: all None).

        A parent that exists but cannot be listed is an error, never "all absent": that
        would read as deletions.
        """
        try:
            items, _ = self.list_dir(client, parent)
        except ftplib.error_perm:
            if parent and self.stat_on(client, parent) is None:
                return dict.fromkeys(names)
            raise
        by_name = {item.name: item for item in items}
        return {name: by_name.get(name) for name in names}

    def stat_path(self, path: str) -> RemoteItem | None:
        """``stat_on`` on a pooled connection."""
        return self.session.run(lambda client: self.stat_on(client, path))

    def entry(self, path: str, item: RemoteItem | None) -> Result[Entry | None]:
        """The entry an item stands for (files without a time and links are errors)."""
        if item is None:
            return Ok(None)
        if item.kind == DIR:
            return Ok(Entry(path, True))
        if item.kind == FILE and item.mtime_ns is not None:
            return Ok(Entry(path, False, item.size, item.mtime_ns))
        if item.kind == FILE:
            return Err(f"{path!r} in {self.display}: the server gives no modification time",
                       ErrorKind.FAILED)
        return Err(f"{path!r} in {self.display} is a link or special file; it is not synced",
                   ErrorKind.FAILED)

    def stat_groups(self, groups: dict[str, list[str]]) -> dict[str, Result[Entry | None]]:
        """Look up paths grouped by parent folder: one listing per parent, in parallel."""
        results: dict[str, Result[Entry | None]] = {}
        if len(groups) <= 1:
            for parent, members in groups.items():
                results.update(self._one_group(parent, members))
            return results
        threads = max(1, min(self.session.pool.limit, MAX_LIST_THREADS, len(groups)))
        with ThreadPoolExecutor(threads, thread_name_prefix="filesync-ftp-stat") as pool:
            for found in pool.map(lambda group: self._one_group(*group), groups.items()):
                results.update(found)
        return results

    def _one_group(self, parent: str, members: Iterable[str]) -> dict[str, Result[Entry | None]]:
        members = list(members)
        try:
            if self.session.features.mlsd and len(members) <= 2:
                items = {path: self.stat_path(path) for path in members}
            else:
                names = [p.rpartition("/")[2] for p in members]
                found = self.session.run(lambda c: self.items_of(c, parent, names))
                items = {p: found[p.rpartition("/")[2]] for p in members}
        except FTP_ERRORS as exc:
            failure = self.session.err("read", parent, exc)
            return dict.fromkeys(members, failure)
        return {p: self.entry(p, item) for p, item in items.items()}
