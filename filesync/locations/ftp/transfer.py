"""File contents to and from an FTP server: uploads, their times, and downloads.

An upload goes to a temporary name beside the target, is checked by size, dated with
MFMT (or SITE UTIME) and renamed into place, so a partial file never carries a real name;
a dropped connection resumes (REST/APPE) from the bytes still held (``stream.Window``).
A download holds one pooled connection and resumes where it stopped (``stream.Download``).
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import logging
import socket
from typing import BinaryIO

from filesync.locations.base import CHUNK_SIZE, Readable, changed_since_planned
from filesync.locations.ftp.client import Client, finish_data
from filesync.locations.ftp.errors import FTP_ERRORS, FtpFailure, ftp_kind, is_broken
from filesync.locations.ftp.folders import Folders
from filesync.locations.ftp.listing import (
    FILE,
    RemoteItem,
    format_ftp_time,
    parse_ftp_time,
    parse_mlst_reply,
    whole_seconds,
)
from filesync.locations.ftp.pool import Lease
from filesync.locations.ftp.retry import retrying
from filesync.locations.ftp.session import Session
from filesync.locations.ftp.stream import (
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
from filesync.locations.ftp.tree import Tree
from filesync.model import ANY, Entry, Unchecked, parents_of, still_holds, temp_name
from filesync.result import Err, ErrorKind, Ok, Result, kind_of

log = logging.getLogger("filesync")


class Transfers:
    """Uploads and downloads of one FTP location."""

    def __init__(self, session: Session, tree: Tree, folders: Folders) -> None:
        self.session = session
        self.tree = tree
        self.folders = folders
        self.display = session.display
        self._time_method: str | None = None
        self._time_checked = False

    # ----- reading ------------------------------------------------------------------------
    def open_read(self, path: str) -> Result[BinaryIO]:
        """Stream the file; a dropped connection resumes (REST) where it stopped."""
        session = self.session
        try:
            lease = session.pool.acquire()
        except (FtpFailure, OSError) as exc:
            return session.err("read", path, exc)
        download = Download(lease, session.remote(path), self.display, session.features.rest,
                            lambda exc: session.explain("read", path, exc))
        try:
            try:
                download.start()
            except (ftplib.Error, OSError, EOFError) as exc:
                if not stale(exc):
                    raise
                lease.renew()  # an idle connection the server had dropped
                download.start()
        except FTP_ERRORS as exc:
            lease.broken = is_broken(exc)
            download.close()
            return session.err("read", path, exc, self._missing(path, exc))
        return Ok(io.BufferedReader(download, CHUNK_SIZE))  # type: ignore[return-value]

    def _missing(self, path: str, exc: BaseException) -> ErrorKind | None:
        """``NOT_FOUND`` when a refused command's ``path`` is not there (one look-up)."""
        if not isinstance(exc, ftplib.error_perm) or ftp_kind(exc) is ErrorKind.NOT_FOUND:
            return None
        try:
            absent = self.tree.stat_path(path) is None
        except FTP_ERRORS:
            return None
        return ErrorKind.NOT_FOUND if absent else None

    # ----- writing ------------------------------------------------------------------------
    def write(self, path: str, source: Readable, mtime_ns: int, keep_old_as: str | None,
              expect: Entry | Unchecked | None, owner: str) -> Result[Entry]:
        """Upload to a temporary name, check the size, date it, rename it into place.

        ``owner`` goes into the temporary name (``model.temp_name``).
        """
        temp = temp_name(path, owner)
        self.folders.touch(path, keep_old_as or path)
        counted = Counted(source)

        def attempt() -> Entry:
            with self.session.pool.lease() as lease:
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
            return Err(f"cannot write {path!r} to {self.display}: {reason}", kind_of(cause))
        except TargetChanged:
            return Err(changed_since_planned(path, self.display), ErrorKind.CHANGED)
        except FTP_ERRORS as exc:
            self._discard_temp(temp)
            return self.session.err("write", path, exc)

    def remove_temp(self, client: Client, temp: str) -> None:
        """Delete a temporary file; one that is not there (or not deletable) is left."""
        with contextlib.suppress(ftplib.error_perm, ftplib.error_temp):
            client.voidcmd("DELE " + self.session.remote(temp))

    def _discard_temp(self, temp: str) -> None:
        """Remove a temporary file on a fresh connection, if the server lets us now."""
        try:
            self.session.run(lambda client: self.remove_temp(client, temp))
        except FTP_ERRORS as exc:
            log.debug("cannot remove %s in %s yet (%s); the next full round will", temp,
                      self.display, exc)

    def _upload(self, lease: Lease, path: str, temp: str, source: Readable, mtime_ns: int,
                keep_old_as: str | None, expect: Entry | Unchecked | None) -> Entry:
        session = self.session
        parents = parents_of(path)
        self.folders.ensure(lease.ftp, parents)
        remote_temp = session.remote(temp)

        def store() -> socket.socket:
            return lease.ftp.transfercmd("STOR " + remote_temp)

        try:
            conn = retrying(store, self.display)
        except ftplib.error_perm:
            # A folder we believed in may have been removed since the last scan.
            self.folders.forget()
            self.folders.ensure(lease.ftp, parents, trust_known=False)
            conn = retrying(store, self.display)
        sent = self._send(lease, conn, remote_temp, source)
        client = lease.ftp
        size = self._remote_size(client, remote_temp)
        if size is not None and size != sent:
            raise FtpFailure(f"the upload is incomplete ({size} of {sent} bytes arrived)")
        reported = self._set_time(client, remote_temp, mtime_ns)
        if expect is not ANY:
            # Last look before replacing: a file saved there during the upload stays.
            found = self.tree.entry(path, self._stat_now(client, path))
            if not found.ok or not still_holds(found.value, expect):
                self.remove_temp(client, temp)
                raise TargetChanged(path)
        if keep_old_as is not None:
            self._keep_old(client, path, keep_old_as)
        reply = client.sendcmd("RNFR " + remote_temp)
        if not reply.startswith("3"):
            raise FtpFailure(f"the server refused to rename the upload: {reply!r}")
        client.voidcmd("RNTO " + session.remote(path))
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
        """``stat_on`` without listing the parent folder where MDTM and SIZE can tell."""
        features = self.session.features
        if not features.mlsd and features.mdtm and features.size:
            remote = self.session.remote(path)
            try:
                mtime = parse_ftp_time(client.sendcmd("MDTM " + remote)[4:].strip())
                size = int(client.sendcmd("SIZE " + remote)[4:].strip())
            except (ftplib.error_perm, ValueError):
                pass  # no file there (nothing, or a folder): the listing tells which
            else:
                if mtime is not None:
                    return RemoteItem(path.rpartition("/")[2], FILE, size, mtime)
        return self.tree.stat_on(client, path)

    def _keep_old(self, client: Client, path: str, kept: str) -> None:
        """Move the file about to be replaced to ``kept`` (nothing there is fine)."""
        self.folders.ensure(client, parents_of(kept))
        try:
            reply = client.sendcmd("RNFR " + self.session.remote(path))
        except ftplib.error_perm as exc:
            if self.tree.stat_on(client, path) is None:
                return
            raise FtpFailure(f"cannot keep the old version as {kept!r}: the server answered "
                             f"{str(exc).strip()!r}", ftp_kind(exc)) from None
        if not reply.startswith("3"):
            raise FtpFailure(f"cannot keep the old version: the server answered {reply!r}")
        client.voidcmd("RNTO " + self.session.remote(kept))

    def _file_time(self, client: Client, path: str) -> int | None:
        """The modification time the server reports for a file (MLST, MDTM or a listing)."""
        features = self.session.features
        if not features.mlsd and features.mdtm:
            try:
                return parse_ftp_time(
                    client.sendcmd("MDTM " + self.session.remote(path))[4:].strip())
            except ftplib.error_perm:
                return None
        item = self.tree.stat_on(client, path)
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
                if resumes > MAX_RESUMES or not self.session.features.rest:
                    raise
                log.info("upload of %s to %s interrupted (%s); resuming", remote,
                         self.display, self.session.scrub(str(exc) or type(exc).__name__))
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
        features = self.session.features
        if features.size:
            try:
                return int(client.sendcmd("SIZE " + remote)[4:].strip())
            except (ftplib.error_perm, ValueError):
                pass
        if features.mlsd:
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
        order = [method] if method else (["MFMT"] if self.session.features.mfmt else []) + [
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
