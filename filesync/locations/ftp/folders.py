"""Folders on an FTP server: creating the missing ones, and remembering what is known.

Known folders save an MKD per upload. Within a batch, folders the batch created (MKD
succeeded, so they were new and empty) and the paths it changed are remembered too:
anything else below such a folder is known to be absent, which saves one round trip per
file when a new folder is filled.
"""

from __future__ import annotations

import ftplib

from filesync.locations.ftp.client import Client
from filesync.locations.ftp.errors import FtpFailure, ftp_kind
from filesync.locations.ftp.listing import DIR
from filesync.locations.ftp.paths import folders_leading_to
from filesync.locations.ftp.session import Session
from filesync.locations.ftp.tree import Tree


class Folders:
    """The folders of one FTP location that are known to exist, and how to make more."""

    def __init__(self, session: Session, tree: Tree) -> None:
        self.session = session
        self.tree = tree
        self._known: set[str] = set()
        self._fresh: set[str] = set()
        self._touched: set[str] = set()

    # ----- what is known ------------------------------------------------------------------
    def new_batch(self) -> None:
        """Forget what the last batch created: others may have filled those folders since."""
        with self.session.lock:
            self._fresh.clear()
            self._touched.clear()

    def touch(self, *paths: str) -> None:
        """Note that this batch changes ``paths`` (they are no longer known absent)."""
        with self.session.lock:
            self._touched.update(paths)

    def known_absent(self, path: str) -> bool:
        """True when ``path`` lies in a folder this batch created and was not touched."""
        with self.session.lock:
            return path.rpartition("/")[0] in self._fresh and path not in self._touched

    def learned(self, dirs: set[str], listed: set[str]) -> None:
        """A walk's result: folders it looked into are known exactly, others as before."""
        with self.session.lock:
            self._known = dirs | {d for d in self._known if d.rpartition("/")[0] not in listed}

    def forget(self, below: str | None = None) -> None:
        """Forget every known folder, or ``below`` and the folders inside it."""
        with self.session.lock:
            if below is None:
                self._known.clear()
            else:
                self._known = {d for d in self._known
                               if d != below and not d.startswith(below + "/")}

    # ----- making folders -----------------------------------------------------------------
    def ensure(self, client: Client, dirs: list[str], trust_known: bool = True) -> None:
        """Create the missing folders of ``dirs`` (outermost first)."""
        session = self.session
        for folder in dirs:
            with session.lock:
                if trust_known and folder in self._known:
                    continue
            if session.moved_reserved(folder):
                self.make_server_folder(client, session.remote(folder))
                with session.lock:
                    self._known.add(folder)
                continue
            try:
                client.voidcmd("MKD " + session.remote(folder))
            except ftplib.error_perm as exc:
                item = self.tree.stat_on(client, folder)
                if item is None:
                    raise FtpFailure(f"cannot create folder {folder!r}: the server answered "
                                     f"{str(exc).strip()!r}", ftp_kind(exc)) from None
                if item.kind != DIR:
                    raise FtpFailure(f"{folder!r} is a file where a folder is needed") from None
                new = False
            else:
                new = True
            with session.lock:
                self._known.add(folder)
                self._touched.add(folder)
                if new:
                    self._fresh.add(folder)

    def ensure_root(self, client: Client) -> None:
        """Create the root folder (and the folders leading to it) below the login folder."""
        self.make_server_folder(client, self.session.remote(""))

    def make_server_folder(self, client: Client, target: str) -> None:
        """Create the server folder ``target`` and any missing folders leading to it."""
        try:
            client.voidcmd("CWD " + target)
            return
        except ftplib.error_perm:
            pass
        for folder in folders_leading_to(self.session.home, target):
            try:
                client.voidcmd("MKD " + folder)
            except ftplib.error_perm as exc:
                try:
                    client.voidcmd("CWD " + folder)
                except ftplib.error_perm:
                    raise FtpFailure(f"cannot create folder {folder!r} on "
                                     f"{self.session.server}: {str(exc).strip()}",
                                     ftp_kind(exc)) from None
