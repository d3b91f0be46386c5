"""Logging in to an FTP or FTPS server: the password (string, ~/.netrc, prompt) and the session.

Errors are sorted into the kinds of ``errors``: a refused login or certificate is
``LoginRefused`` (not retried in a storm), an unreachable or busy server
``ServerUnavailable``, a 421 at the door ``TooManyConnections``.
"""

from __future__ import annotations

import contextlib
import ftplib
import getpass
import logging
import netrc
import os
import ssl
import stat as st
from typing import TYPE_CHECKING

from filesync.locations.ftp.client import (
    TIMEOUT_SECONDS,
    Client,
    PlainClient,
    TlsClient,
    close_quietly,
)
from filesync.locations.ftp.errors import (
    LoginRefused,
    ServerUnavailable,
    TooManyConnections,
    reply_code,
)
from filesync.locations.spec import FtpSpec
from filesync.result import Err, ErrorKind, Ok, Result, kind_of

if TYPE_CHECKING:
    from filesync.locations import Settings

log = logging.getLogger("filesync")

#: User names that log in without a password (RFC 1635), as every FTP client does.
_ANONYMOUS = ("anonymous", "ftp")


def find_password(spec: FtpSpec, display: str, interactive: bool) -> Result[str]:
    """The password from ~/.netrc (or $NETRC), for anonymous users, or asked for."""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if os.path.isfile(path):
        try:
            entries = netrc.netrc(path)
        except netrc.NetrcParseError as exc:
            # The message of the parse error may quote a token of the file: leave it out.
            return Err(f"cannot read {path} (malformed near line {exc.lineno}); fix it or "
                       f"give the password of {display} another way", ErrorKind.INVALID)
        except OSError as exc:
            return Err(f"cannot read {path}: {exc.strerror or exc}", kind_of(exc))
        found = entries.authenticators(spec.host)
        if found is not None and found[0] in ("", spec.user) and found[2]:
            with contextlib.suppress(OSError):
                if os.stat(path).st_mode & (st.S_IRWXG | st.S_IRWXO):
                    log.warning("%s can be read by other users; protect it with "
                                "'chmod 600 %s'", path, path)
            return Ok(found[2])
    if spec.user.lower() in _ANONYMOUS:
        return Ok("anonymous@")
    if interactive:
        try:
            return Ok(getpass.getpass(f"Password for {display}: "))
        except (EOFError, KeyboardInterrupt, OSError):
            return Err(f"no password entered for {display}", ErrorKind.INVALID)
    return Err(f"no password for {display}: write it in the location "
               f"(ftp://{spec.user}:PASSWORD@{spec.host}/...), put 'machine {spec.host} "
               f"login {spec.user} password ...' in {path}, or run filesync in a terminal "
               "to be asked for it", ErrorKind.INVALID)


def _tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.insecure_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def open_session(spec: FtpSpec, settings: Settings, server: str, password: str) -> Client:
    """Connect and log in (TLS, PROT P, TYPE I); errors are sorted into ``errors``' kinds.

    ``server`` names the server in messages.
    """
    client: Client
    if spec.tls:
        try:
            context = _tls_context(settings)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise LoginRefused(f"cannot use CA file {settings.ca_file!r}: {reason}",
                               ErrorKind.INVALID) from None
        client = TlsClient(context=context, timeout=TIMEOUT_SECONDS)
    else:
        client = PlainClient(timeout=TIMEOUT_SECONDS)
    try:
        client.connect(spec.host, spec.port, timeout=TIMEOUT_SECONDS)
    except ftplib.error_temp as exc:
        close_quietly(client)
        if reply_code(exc) == "421":
            raise TooManyConnections(str(exc)) from None
        raise ServerUnavailable(f"{server} is busy: {exc}") from None
    except (OSError, EOFError, ftplib.Error) as exc:
        close_quietly(client)
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ServerUnavailable(f"cannot connect to {server}: {reason}") from None
    try:
        _log_in(client, spec, server, password)
    except BaseException:
        close_quietly(client)
        raise
    return client


def _log_in(client: Client, spec: FtpSpec, server: str, password: str) -> None:
    try:
        if isinstance(client, TlsClient):
            client.auth()
        try:
            client.login(spec.user, password)
        except ftplib.error_reply as exc:  # e.g. 332: the account needs more than this
            raise LoginRefused(f"{server} did not accept the login of {spec.user!r} "
                               f"({exc})") from None
        if isinstance(client, TlsClient):
            client.prot_p()
        client.voidcmd("TYPE I")
    except ssl.SSLCertVerificationError as exc:
        raise LoginRefused(
            f"the certificate of {server} cannot be trusted ({exc.verify_message}); "
            "give the CA that signed it with --ca-file FILE, or skip the check with "
            "--insecure (unsafe)") from None
    except ftplib.error_perm as exc:
        if reply_code(exc) == "530":
            raise LoginRefused(f"{server} refused the login of {spec.user!r} ({exc}); "
                               "check the user name and password") from None
        if not client.tls or isinstance(client.sock, ssl.SSLSocket):
            raise LoginRefused(f"{server} refused the login: {exc}") from None
        raise LoginRefused(f"{server} does not offer TLS ({exc}); use ftp:// if an "
                           "unencrypted connection is acceptable") from None
    except ftplib.error_temp as exc:
        if reply_code(exc) == "421":
            raise TooManyConnections(str(exc)) from None
        raise ServerUnavailable(f"{server} is busy: {exc}") from None
    except (OSError, EOFError, ftplib.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ServerUnavailable(f"connection to {server} failed while logging in: "
                                f"{reason}") from None
