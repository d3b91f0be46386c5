"""FTP and FTPS servers as locations.

Paths in the location string are relative to the login directory (as in RFC 1738 URLs);
on the usual chrooted accounts that is the same as absolute. Listing uses MLSD when the
server offers it (one command per directory, exact UTC times), otherwise LIST plus MDTM
per file. Uploads go to a temporary name beside the target, are checked by size, dated
with MFMT (or SITE UTIME) and renamed into place, so a partial file never carries a real
name. Every thread borrows connections from one bounded pool (``ftppool``).
"""

from __future__ import annotations

import collections
import contextlib
import ftplib
import io
import logging
import posixpath
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, BinaryIO, TypeVar

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
)
from filesync.locations.capabilities import Capabilities
from filesync.locations.ftplisting import (
    DIR,
    FILE,
    LINK,
    Features,
    RemoteItem,
    format_ftp_time,
    name_problem,
    parse_ftp_time,
    parse_list_line,
    parse_mlsd_line,
    parse_mlst_reply,
    whole_seconds,
)
from filesync.locations.ftplogin import find_password, open_session
from filesync.locations.ftpnames import unsafe_command_argument, unsendable
from filesync.locations.ftppaths import folders_leading_to, resolve, server_path
from filesync.locations.ftppool import (
    KEEPALIVE_SECONDS,
    Client,
    FtpFailure,
    FtpPool,
    Lease,
    LoginRefused,
    ServerUnavailable,
    close_quietly,
    finish_data,
    is_broken,
    reply_code,
)
from filesync.locations.ftpretry import is_transient, retrying
from filesync.locations.ftptransfer import (
    MAX_RESUMES,
    RESUME_WINDOW,
    Counted,
    Download,
    SourceFailed,
    TargetChanged,
    Window,
    abort_upload,
    stale,
)
from filesync.locations.spec import FtpSpec
from filesync.result import Err, Ok, Result

if TYPE_CHECKING:
    from filesync.locations import Settings

log = logging.getLogger("filesync")

T = TypeVar("T")

#: Most threads one scan uses to list directories in parallel (each borrows a connection).
MAX_LIST_THREADS = 8
#: A scan lists on one connection until it has taken this long, then on several.
PARALLEL_AFTER_SECONDS = 0.05


class FtpLocation(Location):
    """A directory on an FTP or FTPS server; mtimes are whole seconds (1 s tolerance)."""

    kind = "ftp"
    # A replaced file is briefly absent between two renames (FTP has no atomic exchange).
    capabilities = Capabilities(mtime_precision_ns=1_000_000_000,
                                mtime_tolerance_ns=1_000_000_000, remote=True,
                                atomic_replace=False)

    def __init__(self, spec: FtpSpec, settings: Settings,
                 keepalive: float = KEEPALIVE_SECONDS) -> None:
        super().__init__(spec.key, spec.display)
        self.spec = spec
        self.settings = settings
        self.server = f"{'ftps' if spec.tls else 'ftp'} server {spec.host}:{spec.port}"
        self._password: str | None = spec.password
        self._lock = threading.Lock()
        self._features: Features | None = None
        self._root: str | None = None
        #: The server folder that holds ``.filesync/`` when ``?reserved=`` moved it.
        self._reserved_root: str | None = None
        self._home = "/"
        self._known_dirs: set[str] = set()
        # Folders this batch created (MKD succeeded, so they were new and empty) and the
        # paths it changed: anything else below such a folder is known to be absent, which
        # saves one round trip per file when a new folder is filled.
        self._fresh_dirs: set[str] = set()
        self._touched: set[str] = set()
        self._time_method: str | None = None
        self._time_checked = False
        self._list_dash_a = True
        # Whether the root folder was made sure of: None before ``prepare`` (a dry run never
        # creates anything), False when the server was down during ``prepare`` (the first
        # listing that reaches it does it), True once done.
        self._root_ready: bool | None = None
        self._pool = FtpPool(self._connect, settings.ftp_connections, spec.display, keepalive)

    # ----- configuration ------------------------------------------------------------------
    def check(self) -> Result[None]:
        """Find the password (string, ~/.netrc, prompt); the server is not contacted."""
        if self._password is not None:
            return Ok(None)
        found = find_password(self.spec, self.display, self.settings.interactive)
        if not found.ok:
            return found
        self._password = found.value
        return Ok(None)

    def prepare(self) -> Result[None]:
        """Log in and create the root folder; an unreachable server is only a warning."""
        checked = self.check()
        if not checked.ok:
            return checked
        if self.spec.tls and self.settings.insecure_tls:
            log.warning("%s: the server's certificate is NOT checked (--insecure); anyone on "
                        "the way could read the password and the files", self.display)
        self._root_ready = False
        try:
            self._run(self._ensure_root)
            self._root_ready = True
        except LoginRefused as exc:
            return Err(self._scrub(str(exc)))
        except ServerUnavailable as exc:
            log.warning("%s is not reachable now (%s); it is skipped until it answers",
                        self.display, self._scrub(str(exc)))
            return Ok(None)
        except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
            if is_broken(exc):
                log.warning("%s is not reachable now (%s); it is skipped until it answers",
                            self.display, self._scrub(str(exc)))
                return Ok(None)
            return Err(self._explain("create the folder", "", exc))
        return Ok(None)

    def close(self) -> None:
        """Log out of every idle connection."""
        self._pool.close()

    def begin_batch(self) -> Result[None]:
        """Start remembering the folders this batch creates."""
        with self._lock:
            self._fresh_dirs.clear()
            self._touched.clear()
        return Ok(None)

    def end_batch(self) -> Result[None]:
        """Forget them again: after the batch, others may have filled those folders."""
        return self.begin_batch()

    def _touch(self, *paths: str) -> None:
        with self._lock:
            self._touched.update(paths)

    def _known_absent(self, path: str) -> bool:
        with self._lock:
            return path.rpartition("/")[0] in self._fresh_dirs and path not in self._touched

    def probe(self) -> Result[None]:
        """One round trip: the marker when there is one (it proves the root), else CWD."""
        if self.marker is None:
            try:
                self._run(lambda client: client.voidcmd("CWD " + self._remote("")))
            except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
                return Err(self._explain("reach", "", exc))
        return self.check_marker()

    # ----- connections --------------------------------------------------------------------
    def _connect(self) -> Client:
        """Open and log in one connection (``ftplogin``); learn the server at the first."""
        client = open_session(self.spec, self.settings, self.server, self._password or "")
        try:
            if self._features is None or self._root is None:
                self._learn_server(client)
            elif self._features.utf8:
                with contextlib.suppress(ftplib.error_perm, ftplib.error_temp):
                    client.sendcmd("OPTS UTF8 ON")
        except BaseException:
            close_quietly(client)
            raise
        return client

    def _learn_server(self, client: Client) -> None:
        """FEAT and the login directory, once: every connection of a pool is alike."""
        try:
            features = Features.parse(client.sendcmd("FEAT"))
        except (ftplib.error_perm, ftplib.error_temp):
            features = Features.unknown()
        if features.utf8:
            with contextlib.suppress(ftplib.error_perm, ftplib.error_temp):
                client.sendcmd("OPTS UTF8 ON")
        try:
            home = ftplib.parse257(client.sendcmd("PWD"))
        except (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply):
            home = "/"
        if not home.startswith("/"):
            home = "/"
        with self._lock:
            self._features = features
            self._home = home
            self._root = resolve(home, self.spec.path)
            if self.spec.reserved is not None:
                self._reserved_root = resolve(home, self.spec.reserved)
        log.debug("%s: login folder %s, root %s, %s", self.display, home, self._root, features)

    @property
    def features(self) -> Features:
        """The server's features (known after the first login)."""
        return self._features or Features()

    def _remote(self, path: str) -> str:
        """The server path of the relative ``path`` (the root for ""; see ``ftppaths``)."""
        reserved = self.spec.reserved
        return server_path(self._root or resolve("/", self.spec.path),
                           None if reserved is None else self._reserved_root
                           or resolve("/", reserved), path)

    def _moved_reserved(self, path: str) -> bool:
        """True for ``.filesync`` itself when ``?reserved=`` put it outside the root."""
        return path == RESERVED_DIR and self.spec.reserved is not None

    def _run(self, work: Callable[[Client], T]) -> T:
        """``FtpPool.run`` that also waits out a server closing sessions (421) a few times."""
        def closed_again(exc: BaseException) -> bool:
            return is_transient(exc) and reply_code(exc) == "421"
        return retrying(lambda: self._pool.run(work), self.display, closed_again)

    # ----- errors -------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """Mask the password, should a server ever echo it."""
        secret = self._password
        if secret and len(secret) >= 3 and secret != "anonymous@":
            return text.replace(secret, "***")
        return text

    def _explain(self, action: str, path: str, exc: BaseException) -> str:
        where = f"{path!r} in {self.display}" if path else self.display
        if isinstance(exc, FtpFailure):
            message = f"cannot {action} {where}: {exc}"
        elif isinstance(exc, ftplib.Error) and not is_broken(exc):
            message = f"cannot {action} {where}: the server answered {str(exc).strip()!r}"
        else:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            message = (f"cannot {action} {where}: the connection to {self.server} failed "
                       f"({reason}); it will be retried")
        return self._scrub(message)

    @staticmethod
    def _bad_path(path: str) -> str | None:
        """Why ``path`` cannot even be named in a command (lookups, reads, deletes)."""
        return unsafe_command_argument(path)

    def name_problem(self, path: str) -> str | None:
        """Refuse names FTP servers drop, rename or refuse (see ``ftpnames``)."""
        problem = super().name_problem(path)
        return problem if problem is not None else unsendable(path)

    # ----- listing ------------------------------------------------------------------------
    def _read_data(self, client: Client, command: str) -> list[str]:
        """Run a listing command and return its lines (bytes that are not UTF-8 escaped).

        A 425, 426 or 450 reply is retried (``ftpretry``).
        """
        return retrying(lambda: self._read_data_once(client, command), self.display)

    def _read_data_once(self, client: Client, command: str) -> list[str]:
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

    def _list_dir(self, client: Client, path: str) -> tuple[list[RemoteItem], list[str]]:
        """The items of one directory, with times; plus warnings about items left out."""
        remote = self._remote(path)
        warnings: list[str] = []
        items: list[RemoteItem] = []
        if self.features.mlsd:
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
        if self.features.mdtm:
            dated = []
            for item in items:
                if item.kind != FILE or TEMP_NAME.match(item.name):
                    dated.append(item)
                    continue
                if not self.features.mdtm:
                    dated.append(item)
                    continue
                try:
                    reply = client.sendcmd(f"MDTM {remote.rstrip('/')}/{item.name}")
                except ftplib.error_perm as exc:
                    if reply_code(exc) in ("500", "502", "504") and self._features:
                        self._features.mdtm = False  # not implemented: stop asking
                    dated.append(item)  # keep the LIST time: better than nothing
                    continue
                mtime = parse_ftp_time(reply[4:].strip())
                dated.append(RemoteItem(item.name, FILE, item.size, mtime or item.mtime_ns))
            items = dated
        return items, warnings

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

    def scan(self, skip_dir: Callable[[str], bool]) -> Result[Listing]:
        """List the tree, several directories at once; an unlistable subfolder is blind."""
        if self._root_ready is False:
            try:
                self._run(self._ensure_root)
            except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
                return Err(self._explain("reach", "", exc))
            self._root_ready = True
        listing = Listing()
        dirs: set[str] = set()
        listed: set[str] = set()
        waiting: collections.deque[str] = collections.deque([""])
        running: dict[Future[tuple[list[RemoteItem], list[str]]], str] = {}
        threads = max(1, min(self._pool.limit, MAX_LIST_THREADS))
        executor: ThreadPoolExecutor | None = None
        started = time.monotonic()

        def absorb(folder: str, items: list[RemoteItem], warnings: list[str]) -> None:
            listed.add(folder)
            listing.warnings.extend(warnings)
            if not folder and self.spec.reserved is not None:
                # ``.filesync`` is the reserved folder elsewhere, not one in the root.
                items = [item for item in items if item.name != RESERVED_DIR]
                if not skip_dir(RESERVED_DIR) and self._stat_path(RESERVED_DIR) is not None:
                    items.append(RemoteItem(RESERVED_DIR, DIR))
            for item in items:
                path = f"{folder}/{item.name}" if folder else item.name
                if item.kind == DIR:
                    if not skip_dir(path):
                        dirs.add(path)
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

        def failed(folder: str, exc: BaseException) -> Err | None:
            refused = isinstance(exc, ftplib.Error) and not is_broken(exc)
            if folder and refused:
                # Only this folder is unreadable: nothing is concluded about it.
                listing.skip(folder, self._explain("list", folder, exc))
                return None
            if refused and is_transient(exc):
                return Err(self._scrub(f"cannot list {self.display}: the server kept "
                                       f"answering {str(exc).strip()!r}; it will be retried"))
            if refused:
                return Err(self._scrub(f"cannot list {self.display}: the server answered "
                                       f"{str(exc).strip()!r} (is the folder missing?)"))
            return Err(self._explain("list", folder, exc))

        try:
            while waiting or running:
                # A fast server is listed on one connection; one that keeps us waiting gets
                # several connections, so opening them is only paid where it pays off.
                if not running and (threads == 1 or
                                    time.monotonic() - started < PARALLEL_AFTER_SECONDS):
                    folder = waiting.popleft()
                    try:
                        absorb(folder, *self._list_path(folder))
                    except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
                        problem = failed(folder, exc)
                        if problem is not None:
                            return problem
                    continue
                if executor is None:
                    executor = ThreadPoolExecutor(threads,
                                                  thread_name_prefix="filesync-ftp-list")
                while waiting and len(running) < threads:
                    folder = waiting.popleft()
                    running[executor.submit(self._list_path, folder)] = folder
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    folder = running.pop(future)
                    try:
                        absorb(folder, *future.result())
                    except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
                        problem = failed(folder, exc)
                        if problem is not None:
                            return problem
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            # Folders this scan looked into are known exactly; others keep what we knew.
            self._known_dirs = dirs | {d for d in self._known_dirs
                                       if d.rpartition("/")[0] not in listed}
        return Ok(listing)

    def _list_path(self, path: str) -> tuple[list[RemoteItem], list[str]]:
        return self._run(lambda client: self._list_dir(client, path))

    # ----- stat ---------------------------------------------------------------------------
    def _stat_on(self, client: Client, path: str) -> RemoteItem | None:
        """The item at ``path`` (None when missing), with one MLST or a parent listing."""
        if self._moved_reserved(path) and not self.features.mlsd:
            try:
                client.voidcmd("CWD " + self._remote(path))
            except ftplib.error_perm:
                return None
            return RemoteItem(RESERVED_DIR, DIR)
        if self.features.mlsd:
            try:
                reply = client.sendcmd("MLST " + self._remote(path))
            except ftplib.error_perm:
                return None
            item = parse_mlst_reply(reply)
            if item is None:
                raise FtpFailure(f"unreadable MLST answer from {self.server}")
            return item
        parent, _, name = path.rpartition("/")
        found = self._items_of(client, parent, [name])
        return found[name]

    def _items_of(self, client: Client, parent: str,
                  names: list[str]) -> dict[str, RemoteItem | None]:
        """Look ``names`` up in one listing of ``parent`` (a missing parent: all None).

        A parent that exists but cannot be listed is an error, never "all absent": that
        would read as deletions.
        """
        try:
            items, _ = self._list_dir(client, parent)
        except ftplib.error_perm:
            if parent and self._stat_on(client, parent) is None:
                return dict.fromkeys(names)
            raise
        by_name = {item.name: item for item in items}
        return {name: by_name.get(name) for name in names}

    def _entry(self, path: str, item: RemoteItem | None) -> Result[Entry | None]:
        if item is None:
            return Ok(None)
        if item.kind == DIR:
            return Ok(Entry(path, True))
        if item.kind == FILE and item.mtime_ns is not None:
            return Ok(Entry(path, False, item.size, item.mtime_ns))
        if item.kind == FILE:
            return Err(f"{path!r} in {self.display}: the server gives no modification time")
        return Err(f"{path!r} in {self.display} is a link or special file; it is not synced")

    def stat(self, path: str) -> Result[Entry | None]:
        """The entry at ``path`` now (one round trip with MLST)."""
        bad = self._bad_path(path)
        if bad:
            return Err(f"{path!r} cannot be used in {self.display}: {bad}")
        if self._known_absent(path):
            return Ok(None)
        try:
            item = self._stat_path(path)
        except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
            return Err(self._explain("read", path, exc))
        return self._entry(path, item)

    def _stat_path(self, path: str) -> RemoteItem | None:
        return self._run(lambda client: self._stat_on(client, path))

    def stat_many(self, paths: Iterable[str]) -> dict[str, Result[Entry | None]]:
        """Stat many paths: one listing per parent folder, folders in parallel."""
        wanted = list(dict.fromkeys(paths))
        results: dict[str, Result[Entry | None]] = {}
        groups: dict[str, list[str]] = {}
        for path in wanted:
            bad = self._bad_path(path)
            if bad:
                results[path] = Err(f"{path!r} cannot be used in {self.display}: {bad}")
            elif self._known_absent(path):
                results[path] = Ok(None)
            elif self._moved_reserved(path):
                results[path] = self.stat(path)
            else:
                groups.setdefault(path.rpartition("/")[0], []).append(path)

        def one_group(parent: str, members: list[str]) -> dict[str, Result[Entry | None]]:
            try:
                if self.features.mlsd and len(members) <= 2:
                    items = {path: self._stat_path(path) for path in members}
                else:
                    names = [p.rpartition("/")[2] for p in members]
                    found = self._run(lambda c: self._items_of(c, parent, names))
                    items = {p: found[p.rpartition("/")[2]] for p in members}
            except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
                message = self._explain("read", parent, exc)
                return {p: Err(message) for p in members}
            return {p: self._entry(p, item) for p, item in items.items()}

        if len(groups) <= 1:
            for parent, members in groups.items():
                results.update(one_group(parent, members))
        else:
            threads = max(1, min(self._pool.limit, MAX_LIST_THREADS, len(groups)))
            with ThreadPoolExecutor(threads, thread_name_prefix="filesync-ftp-stat") as pool:
                for found in pool.map(lambda g: one_group(*g), groups.items()):
                    results.update(found)
        return {path: results[path] for path in wanted}

    # ----- reading ------------------------------------------------------------------------
    def open_read(self, path: str) -> Result[BinaryIO]:
        """Stream the file; a dropped connection resumes (REST) where it stopped."""
        bad = self._bad_path(path)
        if bad:
            return Err(f"{path!r} cannot be read from {self.display}: {bad}")
        try:
            lease = self._pool.acquire()
        except (FtpFailure, OSError) as exc:
            return Err(self._explain("read", path, exc))
        download = Download(lease, self._remote(path), self.display, self.features.rest,
                            lambda exc: self._explain("read", path, exc))
        try:
            try:
                download.start()
            except (ftplib.Error, OSError, EOFError) as exc:
                if not stale(exc):
                    raise
                lease.renew()  # an idle connection the server had dropped
                download.start()
        except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
            lease.broken = is_broken(exc)
            download.close()
            return Err(self._explain("read", path, exc))
        return Ok(io.BufferedReader(download, CHUNK_SIZE))  # type: ignore[return-value]

    # ----- writing ------------------------------------------------------------------------
    def _ensure_dirs(self, client: Client, dirs: list[str], trust_known: bool = True) -> None:
        """Create the missing folders of ``dirs`` (outermost first)."""
        for folder in dirs:
            with self._lock:
                if trust_known and folder in self._known_dirs:
                    continue
            if self._moved_reserved(folder):
                self._make_server_folder(client, self._remote(folder))
                with self._lock:
                    self._known_dirs.add(folder)
                continue
            try:
                client.voidcmd("MKD " + self._remote(folder))
            except ftplib.error_perm as exc:
                item = self._stat_on(client, folder)
                if item is None:
                    raise FtpFailure(f"cannot create folder {folder!r}: the server answered "
                                     f"{str(exc).strip()!r}") from None
                if item.kind != DIR:
                    raise FtpFailure(f"{folder!r} is a file where a folder is needed") from None
                new = False
            else:
                new = True
            with self._lock:
                self._known_dirs.add(folder)
                self._touched.add(folder)
                if new:
                    self._fresh_dirs.add(folder)

    def _forget_dirs(self, below: str | None = None) -> None:
        with self._lock:
            if below is None:
                self._known_dirs.clear()
            else:
                self._known_dirs = {d for d in self._known_dirs
                                    if d != below and not d.startswith(below + "/")}

    def _ensure_root(self, client: Client) -> None:
        """Create the root folder (and the folders leading to it) below the login folder."""
        self._make_server_folder(client, self._remote(""))

    def _make_server_folder(self, client: Client, target: str) -> None:
        """Create the server folder ``target`` and any missing folders leading to it."""
        try:
            client.voidcmd("CWD " + target)
            return
        except ftplib.error_perm:
            pass
        for folder in folders_leading_to(self._home, target):
            try:
                client.voidcmd("MKD " + folder)
            except ftplib.error_perm as exc:
                try:
                    client.voidcmd("CWD " + folder)
                except ftplib.error_perm:
                    raise FtpFailure(f"cannot create folder {folder!r} on {self.server}: "
                                     f"{str(exc).strip()}") from None

    def write(self, path: str, source: Readable, mtime_ns: int,
              keep_old_as: str | None = None, expect: Entry | Unchecked | None = ANY,
              mode: int = 0) -> Result[Entry]:
        """Upload to a temporary name, check the size, date it, rename it into place.

        With ``keep_old_as`` the file being replaced is first renamed there; between the
        two renames the real name is briefly absent (FTP has no atomic exchange).
        """
        for name in (path, keep_old_as or path):
            bad = unsendable(name)
            if bad:
                return Err(f"cannot write {name!r} to {self.display}: {bad}")
        temp = temp_name(path, self.owner)
        self._touch(path, keep_old_as or path)
        counted = Counted(source)

        def attempt() -> Entry:
            with self._pool.lease() as lease:
                return self._upload(lease, path, temp, counted, mtime_ns, keep_old_as, expect)

        def may_retry(exc: BaseException) -> bool:
            # A connection the server had dropped (or closed, 421) while nothing was sent.
            return counted.count == 0 and stale(exc)

        try:
            return Ok(retrying(attempt, self.display, may_retry))
        except SourceFailed as exc:
            self._discard_temp(temp)
            cause = exc.cause
            reason = (cause.strerror if isinstance(cause, OSError) else None) or str(cause)
            return Err(f"cannot write {path!r} to {self.display}: {reason}")
        except TargetChanged:
            return Err(changed_since_planned(path, self.display))
        except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
            self._discard_temp(temp)
            return Err(self._explain("write", path, exc))

    def _remove_temp(self, client: Client, temp: str) -> None:
        with contextlib.suppress(ftplib.error_perm, ftplib.error_temp):
            client.voidcmd("DELE " + self._remote(temp))

    def _discard_temp(self, temp: str) -> None:
        """Remove a temporary file on a fresh connection, if the server lets us now."""
        try:
            self._run(lambda client: self._remove_temp(client, temp))
        except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
            log.debug("cannot remove %s in %s yet (%s); the next full round will", temp,
                      self.display, exc)

    def _upload(self, lease: Lease, path: str, temp: str, source: Readable, mtime_ns: int,
                keep_old_as: str | None, expect: Entry | Unchecked | None) -> Entry:
        parents = parents_of(path)
        self._ensure_dirs(lease.ftp, parents)
        remote_temp = self._remote(temp)

        def store() -> socket.socket:
            return lease.ftp.transfercmd("STOR " + remote_temp)

        try:
            conn = retrying(store, self.display)
        except ftplib.error_perm:
            # A folder we believed in may have been removed since the last scan.
            self._forget_dirs()
            self._ensure_dirs(lease.ftp, parents, trust_known=False)
            conn = retrying(store, self.display)
        sent = self._send(lease, conn, remote_temp, source)
        client = lease.ftp
        size = self._remote_size(client, remote_temp)
        if size is not None and size != sent:
            raise FtpFailure(f"the upload is incomplete ({size} of {sent} bytes arrived)")
        reported = self._set_time(client, remote_temp, mtime_ns)
        if expect is not ANY:
            # Last look before replacing: a file saved there during the upload stays.
            found = self._entry(path, self._stat_now(client, path))
            if not found.ok or not still_holds(found.value, expect):
                self._remove_temp(client, temp)
                raise TargetChanged(path)
        if keep_old_as is not None:
            self._keep_old(client, path, keep_old_as)
        reply = client.sendcmd("RNFR " + remote_temp)
        if not reply.startswith("3"):
            raise FtpFailure(f"the server refused to rename the upload: {reply!r}")
        client.voidcmd("RNTO " + self._remote(path))
        if reported is None or not self._time_checked:
            told = self._file_time(client, path)
            if told is None:
                raise FtpFailure("the server gives no modification time for the upload")
            if reported is not None and abs(told - reported) >= 1_000_000_000:
                log.warning("%s reports other times than it was given (MFMT/SITE UTIME); "
                            "using the times it reports", self.display)
                self._time_method = "none"
            self._time_checked = True
            reported = told
        return Entry(path, False, sent, reported)

    def _stat_now(self, client: Client, path: str) -> RemoteItem | None:
        """``_stat_on`` without listing the parent folder where MDTM and SIZE can tell."""
        if not self.features.mlsd and self.features.mdtm and self.features.size:
            remote = self._remote(path)
            try:
                mtime = parse_ftp_time(client.sendcmd("MDTM " + remote)[4:].strip())
                size = int(client.sendcmd("SIZE " + remote)[4:].strip())
            except (ftplib.error_perm, ValueError):
                pass  # no file there (nothing, or a folder): the listing tells which
            else:
                if mtime is not None:
                    return RemoteItem(path.rpartition("/")[2], FILE, size, mtime)
        return self._stat_on(client, path)

    def _keep_old(self, client: Client, path: str, kept: str) -> None:
        """Move the file about to be replaced to ``kept`` (nothing there is fine)."""
        self._ensure_dirs(client, parents_of(kept))
        try:
            reply = client.sendcmd("RNFR " + self._remote(path))
        except ftplib.error_perm as exc:
            if self._stat_on(client, path) is None:
                return
            raise FtpFailure(f"cannot keep the old version as {kept!r}: the server answered "
                             f"{str(exc).strip()!r}") from None
        if not reply.startswith("3"):
            raise FtpFailure(f"cannot keep the old version: the server answered {reply!r}")
        client.voidcmd("RNTO " + self._remote(kept))

    def _file_time(self, client: Client, path: str) -> int | None:
        """The modification time the server reports for a file (MLST, MDTM or a listing)."""
        if not self.features.mlsd and self.features.mdtm:
            try:
                return parse_ftp_time(client.sendcmd("MDTM " + self._remote(path))[4:].strip())
            except ftplib.error_perm:
                return None
        item = self._stat_on(client, path)
        return item.mtime_ns if item is not None and item.kind == FILE else None

    def _send(self, lease: Lease, conn: socket.socket, remote: str, source: Readable) -> int:
        """Stream ``source`` into the open data connection; resume after a drop."""
        window = Window(RESUME_WINDOW)
        resumes = 0
        done_reading = False
        while True:
            try:
                while not done_reading:
                    try:
                        chunk = source.read(CHUNK_SIZE)
                    except Exception as exc:
                        raise SourceFailed(exc) from exc
                    if not chunk:
                        done_reading = True
                        break
                    window.add(chunk)
                    conn.sendall(chunk)
                finish_data(conn)
                lease.ftp.voidresp()
                return window.end
            except SourceFailed:
                abort_upload(lease, conn)
                raise
            except (OSError, EOFError, ftplib.error_temp, ftplib.error_reply,
                    ftplib.error_proto) as exc:
                with contextlib.suppress(OSError):
                    conn.close()
                resumes += 1
                if resumes > MAX_RESUMES or not self.features.rest:
                    raise
                log.info("upload of %s to %s interrupted (%s); resuming", remote,
                         self.display, self._scrub(str(exc) or type(exc).__name__))
                conn = self._resume_upload(lease, remote, window)

    def _resume_upload(self, lease: Lease, remote: str, window: Window) -> socket.socket:
        client = lease.renew()
        have = self._remote_size(client, remote)
        if have is None or not window.start <= have <= window.end:
            raise FtpFailure(f"the upload was interrupted and cannot resume (the server has "
                             f"{have} bytes, {window.end} were sent)")
        try:
            conn = retrying(lambda: client.transfercmd("STOR " + remote, rest=have),
                            self.display)
        except ftplib.error_perm:
            conn = retrying(lambda: client.transfercmd("APPE " + remote), self.display)
        conn.sendall(window.since(have))
        return conn

    def _remote_size(self, client: Client, remote: str) -> int | None:
        if self.features.size:
            try:
                return int(client.sendcmd("SIZE " + remote)[4:].strip())
            except (ftplib.error_perm, ValueError):
                pass
        if self.features.mlsd:
            try:
                item = parse_mlst_reply(client.sendcmd("MLST " + remote))
            except ftplib.error_perm:
                return None
            return item.size if item is not None and item.kind == FILE else None
        return None

    def _set_time(self, client: Client, remote: str, mtime_ns: int) -> int | None:
        """Date the file; the time the server will report, or None when it cannot be set."""
        stamp = format_ftp_time(mtime_ns)
        wanted = whole_seconds(mtime_ns)
        commands = {
            "MFMT": f"MFMT {stamp} {remote}",
            "UTIME5": f"SITE UTIME {remote} {stamp} {stamp} {stamp} UTC",
            "UTIME2": f"SITE UTIME {stamp} {remote}",
        }
        method = self._time_method
        if method == "none":
            return None
        order = [method] if method else (["MFMT"] if self.features.mfmt else []) + [
            "UTIME5", "UTIME2"]
        for name in order:
            try:
                reply = client.sendcmd(commands[name])
            except ftplib.error_perm:
                continue
            if not reply.startswith("2"):
                continue
            self._time_method = name
            marker = reply.find("Modify=")
            if marker >= 0:
                told = parse_ftp_time(reply[marker + 7:].split(";")[0])
                if told is not None:
                    return told
            return wanted
        if method is None:
            log.info("%s cannot set modification times (no MFMT or SITE UTIME); the times "
                     "it reports are remembered instead", self.display)
            self._time_method = "none"
        return None

    # ----- other changes ------------------------------------------------------------------
    def rename(self, old: str, new: str) -> Result[Entry]:
        """Move a file on the server (RNFR/RNTO); missing parents of ``new`` are created."""
        for path in (old, new):
            bad = unsendable(path)
            if bad:
                return Err(f"cannot move {path!r} in {self.display}: {bad}")
        self._touch(old, new)

        def work(client: Client) -> RemoteItem | None:
            self._ensure_dirs(client, parents_of(new))
            reply = client.sendcmd("RNFR " + self._remote(old))
            if not reply.startswith("3"):
                raise FtpFailure(f"the server refused to rename: {reply!r}")
            client.voidcmd("RNTO " + self._remote(new))
            return self._stat_on(client, new)

        try:
            item = self._run(work)
        except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
            return Err(self._explain(f"move {old!r} to", new, exc))
        if item is None or item.kind != FILE or item.mtime_ns is None:
            return Err(f"cannot move {old!r} to {new!r} in {self.display}: it is not there "
                       "after the rename")
        return Ok(Entry(new, False, item.size, item.mtime_ns))

    def delete(self, path: str) -> Result[None]:
        """Remove one file; a file that is already gone is fine."""
        bad = self._bad_path(path)
        if bad:
            return Err(f"cannot delete {path!r} in {self.display}: {bad}")
        self._touch(path)

        def work(client: Client) -> None:
            try:
                client.voidcmd("DELE " + self._remote(path))
            except ftplib.error_perm:
                if self._stat_on(client, path) is not None:
                    raise
        try:
            self._run(work)
        except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
            return Err(self._explain("delete", path, exc))
        return Ok(None)

    def mkdir(self, path: str) -> Result[Entry]:
        """Create a folder and its missing parents."""
        bad = unsendable(path)
        if bad:
            return Err(f"cannot create folder {path!r} in {self.display}: {bad}")
        self._touch(path)
        try:
            self._run(lambda client: self._ensure_dirs(client, [*parents_of(path), path]))
        except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
            return Err(self._explain("create folder", path, exc))
        return Ok(Entry(path, True))

    def rmdir(self, path: str) -> Result[None]:
        """Remove an empty folder; a missing one is fine, a non-empty one an error."""
        bad = self._bad_path(path)
        if bad:
            return Err(f"cannot delete folder {path!r} in {self.display}: {bad}")
        self._forget_dirs(path)
        self._touch(path)

        def work(client: Client) -> None:
            try:
                client.voidcmd("RMD " + self._remote(path))
            except ftplib.error_perm as exc:
                item = self._stat_on(client, path)
                if item is None:
                    return
                if item.kind == DIR:
                    raise FtpFailure(f"it is not empty or may not be removed (the server "
                                     f"answered {str(exc).strip()!r})") from None
                raise
        try:
            self._run(work)
        except (FtpFailure, ftplib.Error, OSError, EOFError) as exc:
            return Err(self._explain("delete folder", path, exc))
        return Ok(None)
