"""What every part of one FTP location shares: the pool, the server's features, its paths.

A ``Session`` logs connections in (``login``), learns the server once (FEAT, the login
folder), maps relative paths to server paths (``paths``), runs work on pooled
connections, and turns failures into ``Err`` values with the right kind (``errors``)
and the password masked.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from filesync.locations.ftp.client import Client, close_quietly
from filesync.locations.ftp.errors import FtpFailure, ftp_kind, is_broken, reply_code
from filesync.locations.ftp.listing import Features
from filesync.locations.ftp.login import find_password, open_session
from filesync.locations.ftp.paths import resolve, server_path
from filesync.locations.ftp.pool import KEEPALIVE_SECONDS, FtpPool
from filesync.locations.ftp.retry import is_transient, retrying
from filesync.locations.spec import FtpSpec
from filesync.model import RESERVED_DIR
from filesync.result import Err, ErrorKind, Ok, Result

if TYPE_CHECKING:
    from filesync.locations import Settings

log = logging.getLogger("filesync")

T = TypeVar("T")


class Session:
    """The connections of one FTP location and what they found out about the server."""

    def __init__(self, spec: FtpSpec, settings: Settings, display: str,
                 keepalive: float = KEEPALIVE_SECONDS) -> None:
        self.spec = spec
        self.settings = settings
        self.display = display
        #: The server in messages (never with the password).
        self.server = f"{'ftps' if spec.tls else 'ftp'} server {spec.host}:{spec.port}"
        #: Guards what threads share here and in the helpers (``Folders``, ``Tree``).
        self.lock = threading.Lock()
        self._password: str | None = spec.password
        self._features: Features | None = None
        self._root: str | None = None
        #: The server folder that holds ``.filesync/`` when ``?reserved=`` moved it.
        self._reserved_root: str | None = None
        #: The login folder (known after the first login).
        self.home = "/"
        self.pool = FtpPool(self._connect, settings.ftp_connections, display, keepalive)

    # ----- the password and connections ---------------------------------------------------
    def find_password(self) -> Result[None]:
        """Find the password (string, ~/.netrc, prompt); the server is not contacted."""
        if self._password is not None:
            return Ok(None)
        found = find_password(self.spec, self.display, self.settings.interactive)
        if not found.ok:
            return found
        self._password = found.value
        return Ok(None)

    def _connect(self) -> Client:
        """Open and log in one connection (``login``); learn the server at the first."""
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
        with self.lock:
            self._features = features
            self.home = home
            self._root = resolve(home, self.spec.path)
            if self.spec.reserved is not None:
                self._reserved_root = resolve(home, self.spec.reserved)
        log.debug("%s: login folder %s, root %s, %s", self.display, home, self._root, features)

    @property
    def features(self) -> Features:
        """The server's features (known after the first login)."""
        return self._features or Features()

    def run(self, work: Callable[[Client], T]) -> T:
        """``FtpPool.run`` that also waits out a server closing sessions (421) a few times."""
        def closed_again(exc: BaseException) -> bool:
            return is_transient(exc) and reply_code(exc) == "421"
        return retrying(lambda: self.pool.run(work), self.display, closed_again)

    def close(self) -> None:
        """Log out of every idle connection."""
        self.pool.close()

    # ----- paths --------------------------------------------------------------------------
    def remote(self, path: str) -> str:
        """The server path of the relative ``path`` (the root for ""; see ``paths``)."""
        reserved = self.spec.reserved
        return server_path(self._root or resolve("/", self.spec.path),
                           None if reserved is None else self._reserved_root
                           or resolve("/", reserved), path)

    def moved_reserved(self, path: str) -> bool:
        """True for ``.filesync`` itself when ``?reserved=`` put it outside the root."""
        return path == RESERVED_DIR and self.spec.reserved is not None

    # ----- errors -------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        """Mask the password, should a server ever echo it."""
        secret = self._password
        if secret and len(secret) >= 3 and secret != "anonymous@":
            return text.replace(secret, "***")
        return text

    def explain(self, action: str, path: str, exc: BaseException) -> str:
        """The message of a failed ``action`` on ``path``, password masked."""
        where = f"{path!r} in {self.display}" if path else self.display
        if isinstance(exc, FtpFailure):
            message = f"cannot {action} {where}: {exc}"
        elif isinstance(exc, ftplib.Error) and not is_broken(exc):
            message = f"cannot {action} {where}: the server answered {str(exc).strip()!r}"
        else:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            message = (f"cannot {action} {where}: the connection to {self.server} failed "
                       f"({reason}); it will be retried")
        return self.scrub(message)

    def err(self, action: str, path: str, exc: BaseException,
            kind: ErrorKind | None = None) -> Err:
        """``explain`` as an ``Err`` of the exception's kind (``errors.ftp_kind``)."""
        return Err(self.explain(action, path, exc), kind or ftp_kind(exc))
