"""FTP and FTPS servers as locations: the ``Location`` contract, delegated to helpers.

Paths in the location string are relative to the login directory (as in RFC 1738 URLs);
on the usual chrooted accounts that is the same as absolute. The work is shared out:
``Session`` (connections, paths, error messages), ``Tree`` (listings and look-ups),
``Folders`` (creating folders, what is known about them) and ``Transfers`` (uploads,
downloads). Every failure is an ``Err`` whose kind ``errors.ftp_kind`` decides.
"""

from __future__ import annotations

import ftplib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, BinaryIO

from filesync.locations.base import Location, Readable
from filesync.locations.capabilities import Capabilities
from filesync.locations.ftp.client import Client
from filesync.locations.ftp.errors import (
    FTP_ERRORS,
    FtpFailure,
    LoginRefused,
    ServerUnavailable,
    ftp_kind,
)
from filesync.locations.ftp.folders import Folders
from filesync.locations.ftp.listing import DIR, FILE, Features, RemoteItem
from filesync.locations.ftp.names import unsafe_command_argument, unsendable
from filesync.locations.ftp.pool import KEEPALIVE_SECONDS
from filesync.locations.ftp.session import Session
from filesync.locations.ftp.transfer import Transfers
from filesync.locations.ftp.tree import Tree
from filesync.locations.spec import FtpSpec
from filesync.model import ANY, Entry, Listing, Unchecked, parents_of, unsafe_reason
from filesync.result import Err, ErrorKind, Ok, Result

if TYPE_CHECKING:
    from filesync.locations import Settings

log = logging.getLogger("filesync")


class FtpLocation(Location):
    """A directory on an FTP or FTPS server; mtimes are whole seconds (1 s tolerance)."""

    kind = "ftp"
    # A replaced file is briefly absent between two renames (FTP has no atomic exchange).
    capabilities = Capabilities(mtime_precision_ns=1_000_000_000,
                                mtime_tolerance_ns=1_000_000_000, remote=True,
                                atomic_replace=False, atomic_claim=True)

    def __init__(self, spec: FtpSpec, settings: Settings,
                 keepalive: float = KEEPALIVE_SECONDS) -> None:
        super().__init__(spec.key, spec.display)
        self.spec = spec
        self.settings = settings
        self._session = Session(spec, settings, spec.display, keepalive)
        self._tree = Tree(self._session)
        self._folders = Folders(self._session, self._tree)
        self._transfers = Transfers(self._session, self._tree, self._folders)
        # Whether the root folder was made sure of: None before ``prepare`` (a dry run never
        # creates anything), False when the server was down during ``prepare`` (the first
        # listing that reaches it does it), True once done.
        self._root_ready: bool | None = None

    @property
    def server(self) -> str:
        """The server in messages, e.g. ``ftp server example.org:21``."""
        return self._session.server

    @property
    def features(self) -> Features:
        """The server's features (known after the first login)."""
        return self._session.features

    # ----- configuration ------------------------------------------------------------------
    def check(self) -> Result[None]:
        """Find the password (string, ~/.netrc, prompt); the server is not contacted."""
        return self._session.find_password()

    def prepare(self) -> Result[None]:
        """Log in and create the root folder.

        A server out of reach is ``UNAVAILABLE`` (the first listing that reaches it creates
        the root); a refused login ``REFUSED``.
        """
        checked = self.check()
        if not checked.ok:
            return checked
        if self.spec.tls and self.settings.insecure_tls:
            log.warning("%s: the server's certificate is NOT checked (--insecure); anyone on "
                        "the way could read the password and the files", self.display)
        self._root_ready = False
        try:
            self._session.run(self._folders.ensure_root)
        except FTP_ERRORS as exc:
            kind = ftp_kind(exc)
            if isinstance(exc, (LoginRefused, ServerUnavailable)):
                return Err(self._session.scrub(str(exc)), kind)  # names the server and why
            action = "reach" if kind is ErrorKind.UNAVAILABLE else "create the folder"
            return self._session.err(action, "", exc)
        self._root_ready = True
        return Ok(None)

    def close(self) -> None:
        """Log out of every idle connection."""
        self._session.close()

    def _begin_batch(self) -> Result[None]:
        """Start remembering the folders this batch creates."""
        self._folders.new_batch()
        return Ok(None)

    def _end_batch(self) -> Result[None]:
        """Forget them again: after the batch, others may have filled those folders."""
        self._folders.new_batch()
        return Ok(None)

    def probe(self) -> Result[None]:
        """One round trip: the marker when there is one (it proves the root), else CWD."""
        if self.marker is None:
            try:
                self._session.run(lambda client: client.voidcmd(
                    "CWD " + self._session.remote("")))
            except FTP_ERRORS as exc:
                return self._unreachable_root("reach", exc)
        return self.check_marker()

    def _unreachable_root(self, action: str, exc: BaseException) -> Err:
        """A root that cannot be entered: missing or out of reach is ``UNAVAILABLE``."""
        kind = ftp_kind(exc)
        keep = kind in (ErrorKind.REFUSED, ErrorKind.UNAVAILABLE)
        return self._session.err(action, "", exc, None if keep else ErrorKind.UNAVAILABLE)

    def name_problem(self, path: str) -> str | None:
        """Refuse names FTP servers drop, rename or refuse (see ``names``)."""
        problem = super().name_problem(path)
        return problem if problem is not None else unsendable(path)

    def _refused_name(self, action: str, path: str, temp_ok: bool = False) -> Err | None:
        """An ``INVALID`` Err when ``path`` cannot be written to the server as it is.

        ``temp_ok``: a temporary name may be the source of a move (one left by another
        engine is set aside into the versions that way).
        """
        bad = unsendable(path) if temp_ok else self.name_problem(path)
        if bad is None and temp_ok:
            reason = unsafe_reason(path)
            bad = None if reason is None else f"unsafe name ({reason})"
        return None if bad is None else Err(f"cannot {action} {path!r} in {self.display}: "
                                            f"{bad}", ErrorKind.INVALID)


    # ----- reading ------------------------------------------------------------------------
    def scan(self, skip_dir: Callable[[str], bool]) -> Result[Listing]:
        """List the tree, several directories at once; an unlistable subfolder is blind."""
        if self._root_ready is False:
            try:
                self._session.run(self._folders.ensure_root)
            except FTP_ERRORS as exc:
                return self._unreachable_root("reach", exc)
            self._root_ready = True
        walked = self._tree.walk(skip_dir)
        if not walked.ok:
            return walked
        walk = walked.value
        self._folders.learned(walk.dirs, walk.listed)
        return Ok(walk.listing)

    def stat(self, path: str) -> Result[Entry | None]:
        """The entry at ``path`` now (one round trip with MLST)."""
        bad = unsafe_command_argument(path)
        if bad:
            return Err(f"{path!r} cannot be used in {self.display}: {bad}", ErrorKind.INVALID)
        if self._folders.known_absent(path):
            return Ok(None)
        try:
            item = self._tree.stat_path(path)
        except FTP_ERRORS as exc:
            return self._session.err("read", path, exc)
        return self._tree.entry(path, item)

    def stat_many(self, paths: Iterable[str]) -> dict[str, Result[Entry | None]]:
        """Stat many paths: one listing per parent folder, folders in parallel."""
        wanted = list(dict.fromkeys(paths))
        results: dict[str, Result[Entry | None]] = {}
        groups: dict[str, list[str]] = {}
        for path in wanted:
            bad = unsafe_command_argument(path)
            if bad:
                results[path] = Err(f"{path!r} cannot be used in {self.display}: {bad}",
                                    ErrorKind.INVALID)
            elif self._folders.known_absent(path):
                results[path] = Ok(None)
            elif self._session.moved_reserved(path):
                results[path] = self.stat(path)
            else:
                groups.setdefault(path.rpartition("/")[0], []).append(path)
        results.update(self._tree.stat_groups(groups))
        return {path: results[path] for path in wanted}

    def open_read(self, path: str) -> Result[BinaryIO]:
        """Stream the file; a dropped connection resumes (REST) where it stopped."""
        bad = unsafe_command_argument(path)
        if bad:
            return Err(f"{path!r} cannot be read from {self.display}: {bad}",
                       ErrorKind.INVALID)
        return self._transfers.open_read(path)

    # ----- changes ------------------------------------------------------------------------
    def write(self, path: str, source: Readable, mtime_ns: int,
              keep_old_as: str | None = None, expect: Entry | Unchecked | None = ANY,
              mode: int = 0) -> Result[Entry]:
        """Upload to a temporary name, check the size, date it, rename it into place.

        With ``keep_old_as`` the file being replaced is first renamed there; between the
        two renames the real name is briefly absent (FTP has no atomic exchange).
        """
        for name in (path, keep_old_as or path):
            bad = self._refused_name("write", name)
            if bad is not None:
                return bad
        return self._transfers.write(path, source, mtime_ns, keep_old_as, expect, self.owner)

    def rename(self, old: str, new: str) -> Result[Entry]:
        """Move a file on the server (RNFR/RNTO); missing parents of ``new`` are created."""
        for path, temp_ok in ((old, True), (new, False)):
            bad = self._refused_name("move", path, temp_ok)
            if bad is not None:
                return bad
        self._folders.touch(old, new)
        session = self._session

        def work(client: Client) -> RemoteItem | None:
            self._folders.ensure(client, parents_of(new))
            try:
                reply = client.sendcmd("RNFR " + session.remote(old))
            except ftplib.error_perm as exc:
                if ftp_kind(exc) is not ErrorKind.NOT_FOUND and \
                        self._tree.stat_on(client, old) is not None:
                    raise
                raise FtpFailure(f"it is not there (the server answered "
                                 f"{str(exc).strip()!r})", ErrorKind.NOT_FOUND) from None
            if not reply.startswith("3"):
                raise FtpFailure(f"the server refused to rename: {reply!r}")
            client.voidcmd("RNTO " + session.remote(new))
            return self._tree.stat_on(client, new)

        try:
            item = session.run(work)
        except FTP_ERRORS as exc:
            return session.err(f"move {old!r} to", new, exc)
        if item is None or item.kind != FILE or item.mtime_ns is None:
            return Err(f"cannot move {old!r} to {new!r} in {self.display}: it is not there "
                       "after the rename", ErrorKind.FAILED)
        return Ok(Entry(new, False, item.size, item.mtime_ns))

    def delete(self, path: str) -> Result[None]:
        """Remove one file; a file that is already gone is fine."""
        bad = unsafe_command_argument(path)
        if bad:
            return Err(f"cannot delete {path!r} in {self.display}: {bad}", ErrorKind.INVALID)
        self._folders.touch(path)

        def work(client: Client) -> None:
            try:
                client.voidcmd("DELE " + self._session.remote(path))
            except ftplib.error_perm:
                if self._tree.stat_on(client, path) is not None:
                    raise
        try:
            self._session.run(work)
        except FTP_ERRORS as exc:
            return self._session.err("delete", path, exc)
        return Ok(None)

    def mkdir(self, path: str) -> Result[Entry]:
        """Create a folder and its missing parents."""
        bad = self._refused_name("create folder", path)
        if bad is not None:
            return bad
        self._folders.touch(path)
        try:
            self._session.run(lambda client: self._folders.ensure(
                client, [*parents_of(path), path]))
        except FTP_ERRORS as exc:
            return self._session.err("create folder", path, exc)
        return Ok(Entry(path, True))

    def claim_dir(self, path: str) -> Result[bool]:
        """Create a folder unless something has that name: ``MKD`` of an existing name fails."""
        bad = self._refused_name("create folder", path)
        if bad is not None:
            return bad
        self._folders.touch(path)

        def work(client: Client) -> bool:
            self._folders.ensure(client, parents_of(path))
            try:
                client.voidcmd("MKD " + self._session.remote(path))
            except ftplib.error_perm as exc:
                if self._tree.stat_on(client, path) is None:
                    raise FtpFailure(f"the server answered {str(exc).strip()!r}",
                                     ftp_kind(exc)) from None
                return False
            return True
        try:
            return Ok(self._session.run(work))
        except FTP_ERRORS as exc:
            return self._session.err("create folder", path, exc)

    def rmdir(self, path: str) -> Result[None]:
        """Remove an empty folder; a missing one is ``NOT_FOUND``, a non-empty one an error."""
        bad = unsafe_command_argument(path)
        if bad:
            return Err(f"cannot delete folder {path!r} in {self.display}: {bad}",
                       ErrorKind.INVALID)
        self._folders.forget(path)
        self._folders.touch(path)

        def work(client: Client) -> None:
            try:
                client.voidcmd("RMD " + self._session.remote(path))
            except ftplib.error_perm as exc:
                item = self._tree.stat_on(client, path)
                if item is None:
                    raise FtpFailure(f"it is not there (the server answered "
                                     f"{str(exc).strip()!r})", ErrorKind.NOT_FOUND) from None
                if item.kind == DIR:
                    raise FtpFailure(f"it is not empty or may not be removed (the server "
                                     f"answered {str(exc).strip()!r})", ftp_kind(exc)) from None
                raise
        try:
            self._session.run(work)
        except FTP_ERRORS as exc:
            return self._session.err("delete folder", path, exc)
        return Ok(None)
