"""Parse location strings (``folder:PATH``, ``ftp://…``, ``s3://…``, …) into typed specs."""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

from filesync.result import Err, Ok, Result

FORMS = ("folder:PATH", "zip:PATH", "ftp:USER:PASSWORD@HOST[:PORT]/PATH",
         "ftp://USER:PASSWORD@HOST[:PORT]/PATH[?reserved=PATH]",
         "ftps://USER:PASSWORD@HOST[:PORT]/PATH[?reserved=PATH]",
         "s3://BUCKET[/PREFIX]", "s3+http://HOST[:PORT]/BUCKET[/PREFIX]",
         "s3+https://HOST[:PORT]/BUCKET[/PREFIX]",
         "a bare path (*.zip is a ZIP archive, anything else a folder)")
_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class _LocalSpec:
    """A location backed by one local path; ``kind`` is the prefix of its string form."""

    path: Path
    kind: ClassVar[str]

    @property
    def key(self) -> str:
        """Identity of the location, used for state and duplicate checks."""
        return f"{self.kind}:{self.path}"

    @property
    def display(self) -> str:
        """How logs name the location."""
        return self.key


@dataclass(frozen=True)
class FolderSpec(_LocalSpec):
    """A local folder."""

    kind: ClassVar[str] = "folder"


@dataclass(frozen=True)
class ZipSpec(_LocalSpec):
    """A ZIP archive used as a location."""

    kind: ClassVar[str] = "zip"


@dataclass(frozen=True)
class FtpSpec:
    """An FTP or FTPS server directory; the password never appears in ``key`` or ``display``."""

    tls: bool
    user: str
    password: str | None
    host: str
    port: int
    path: str
    #: Where filesync keeps its own ``.filesync/`` data (marker, versions) on the server,
    #: relative to the login folder like ``path``; None: inside the synced folder.
    reserved: str | None = None

    @property
    def key(self) -> str:
        """Identity without the password (state files and logs may show it).

        ``reserved`` is not part of it: the key names the synced folder, whose state and
        duplicates it identifies; where filesync keeps its versions does not change that.
        """
        scheme = "ftps" if self.tls else "ftp"
        return f"{scheme}://{self.user}@{self.host}:{self.port}{self.path}"

    @property
    def display(self) -> str:
        """How logs name the location: the password is shown as ``***``."""
        scheme = "ftps" if self.tls else "ftp"
        secret = ":***" if self.password else ""
        return f"{scheme}://{self.user}{secret}@{self.host}:{self.port}{self.path}"

    def overlap(self, other: FtpSpec) -> str | None:
        """Why this location and ``other`` may not be synced together, or None.

        On one account (same user, host and port: same login folder) a synced folder must
        not contain the other's synced folder or reserved folder: one location would sync
        the other's files, versions or marker as its own.
        """
        if (self.user, self.host.lower(), self.port) != (other.user, other.host.lower(),
                                                         other.port):
            return None
        for first, second in ((self, other), (other, self)):
            if _contains(first.path, second.path):
                return (f"{second.display} is inside {first.display}; a location inside "
                        "another would sync its files twice")
            if second.reserved is not None and _contains(first.path, second.reserved):
                return (f"the reserved folder {second.reserved!r} of {second.display} is inside "
                        f"{first.display}, which would sync its versions as files; give a "
                        "reserved folder outside every synced folder")
        return None


def _contains(outer: str, inner: str) -> bool:
    """True when the server folder ``inner`` is ``outer`` or below it.

    Both are written as in location strings, relative to one login folder.
    """
    # Resolved below a deep stand-in for the login folder, so '..' stays comparable.
    home = "/login/folder/of/any/depth"
    outer = posixpath.normpath(posixpath.join(home, outer.lstrip("/")))
    inner = posixpath.normpath(posixpath.join(home, inner.lstrip("/")))
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


@dataclass(frozen=True)
class S3Spec:
    """A prefix in an S3 bucket (credentials come from the environment or ``~/.aws``).

    ``endpoint_url`` is None for ``s3://`` (endpoint from the environment or AWS itself),
    else the explicit endpoint of an ``s3+http(s)://`` form, addressed path style.
    """

    bucket: str
    prefix: str
    endpoint_url: str | None = None

    @property
    def key(self) -> str:
        """Identity of the location, e.g. ``s3+http://127.0.0.1:8333/bucket/prefix``."""
        where = (f"s3://{self.bucket}" if self.endpoint_url is None else
                 "s3+" + self.endpoint_url + "/" + self.bucket)
        return where + ("/" + self.prefix if self.prefix else "")

    @property
    def display(self) -> str:
        """How logs name the location (the same as ``key``: it holds no secret)."""
        return self.key

    def overlap(self, other: S3Spec) -> str | None:
        """Why this location and ``other`` may not be synced together, or None.

        In one bucket of one endpoint a prefix must not hold the other's: one location
        would sync the other's files (and its ``.filesync/``) as its own.
        """
        if (self.endpoint_url, self.bucket) != (other.endpoint_url, other.bucket):
            return None
        for outer, inner in ((self, other), (other, self)):
            if outer.prefix == inner.prefix:
                return (f"{inner.display} and {outer.display} are the same place; list each "
                        "location once")
            if not outer.prefix or inner.prefix.startswith(outer.prefix + "/"):
                return (f"{inner.display} is inside {outer.display}; a location inside "
                        "another would sync its files twice")
        return None


#: What S3 (and every S3-compatible store) accepts as a bucket name, the strict DNS form.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))"
                        r"(?::(?P<port>[0-9]*))?$")


def _bucket_and_prefix(path: str, text: str) -> Result[tuple[str, str]]:
    """Split ``BUCKET[/PREFIX]``, checking the bucket name and the prefix's parts."""
    bucket, _, prefix = path.partition("/")
    if not bucket:
        return Err(f"{text!r}: no bucket given; expected s3://BUCKET[/PREFIX] or "
                   "s3+http://HOST[:PORT]/BUCKET[/PREFIX]")
    if not _BUCKET.match(bucket) or ".." in bucket:
        return Err(f"{text!r}: {bucket!r} is not a valid bucket name (3 to 63 characters: "
                   "lowercase letters, digits, dots and hyphens, starting and ending with a "
                   "letter or digit)")
    prefix = prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        return Err(f"{text!r}: the prefix {prefix!r} has an empty, '.' or '..' part; write "
                   "it as folder names separated by single slashes")
    return Ok((bucket, prefix))


def _parse_s3(text: str) -> Result[S3Spec]:
    """Parse ``s3://BUCKET[/PREFIX]`` or ``s3+http(s)://HOST[:PORT]/BUCKET[/PREFIX]``."""
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme == "s3":
        parts = _bucket_and_prefix(rest, text)
        return Ok(S3Spec(*parts.value)) if parts.ok else parts
    authority, _, path = rest.partition("/")
    if "@" in authority:
        return Err(f"{scheme}://...@...: credentials cannot be given in an S3 location (it "
                   "would show them in the process list and in logs); set the environment "
                   "variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE "
                   "with ~/.aws/credentials) instead")
    match = _HOST_PORT.match(authority)
    if not match:
        return Err(f"{text!r}: {authority!r} is not a host[:port]; expected "
                   f"{scheme}://HOST[:PORT]/BUCKET[/PREFIX]")
    port = match.group("port")
    if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
        return Err(f"{text!r}: port {port!r} is not a number from 1 to 65535")
    host = match.group("host").lower() if match.group("host") else f"[{match.group('ipv6')}]"
    parts = _bucket_and_prefix(path, text)
    if not parts.ok:
        return parts
    endpoint = f"{scheme[3:]}://{host}" + (f":{int(port)}" if port else "")
    return Ok(S3Spec(*parts.value, endpoint_url=endpoint))


LocationSpec = FolderSpec | ZipSpec | FtpSpec | S3Spec


def _local_path(raw: str, what: str, base: str | None = None) -> Result[Path]:
    if not raw.strip():
        return Err(f"{what} needs a path, e.g. {what}:./backup")
    # A relative path is relative to ``base`` when given (a list file's folder), else to
    # the current directory; an absolute or ``~`` path stays what it is.
    expanded = os.path.join(base or "", os.path.expanduser(raw))
    # realpath, so one folder reached through a symlink is still recognised as the same one.
    return Ok(Path(os.path.realpath(os.path.abspath(expanded))))


#: Options an FTP location string accepts after ``?``, with what each means.
FTP_OPTIONS = {"reserved": "the folder for filesync's versions and marker "
                           "(relative to the login folder)"}


def _ftp_options(query: str, path: str, text: str) -> Result[str | None]:
    """Read ``?reserved=PATH``; anything else is an error listing the valid options."""
    valid = ", ".join(f"{name}=PATH ({meaning})" for name, meaning in FTP_OPTIONS.items())
    reserved: str | None = None
    for pair in filter(None, query.split("&")):
        name, _, value = (unquote(part) for part in pair.partition("="))
        if name not in FTP_OPTIONS:
            return Err(f"{_mask(text)!r}: unknown option {name!r}; valid options: {valid}")
        if reserved is not None:
            return Err(f"{_mask(text)!r}: the option {name!r} is given twice")
        if not value.strip("/"):
            return Err(f"{_mask(text)!r}: reserved= needs a folder, e.g. ?reserved=private/"
                       "filesync (relative to the login folder)")
        reserved = "/" + value.strip("/")
    if reserved is not None:
        if _contains(path, reserved):
            return Err(f"{_mask(text)!r}: the reserved folder {reserved!r} is inside the "
                       f"synced folder {path!r}; give a folder outside it, e.g. beside it")
        if _contains(reserved, path):
            return Err(f"{_mask(text)!r}: the synced folder {path!r} is inside the reserved "
                       f"folder {reserved!r}; give a folder outside it, e.g. beside it")
    return Ok(reserved)


def _parse_ftp(rest: str, tls: bool, text: str) -> Result[FtpSpec]:
    scheme = "ftps" if tls else "ftp"
    example = f"{scheme}://user:password@host[:port]/path[?reserved=path]"
    # The path starts at the first "/"; a "/" in a password must be written as %2F. The
    # options start at the first "?" after it (a "?" in a folder name is written %3F).
    authority, slash, path = rest.partition("/")
    query = ""
    if slash:
        path, _, query = path.partition("?")
    else:
        before, at, host_part = authority.rpartition("@")
        host_part, _, query = host_part.partition("?")
        authority = before + at + host_part
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        userinfo, hostport = "", authority
    if not hostport:
        return Err(f"{_mask(text)!r}: no host given; expected {example}")
    user, colon, password = userinfo.partition(":")
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        port_sep, port_text = after[:1], after[1:]
    elif hostport.count(":") == 1:
        host, port_sep, port_text = hostport.partition(":")
    else:
        host, port_sep, port_text = hostport, "", ""
    if not port_sep:
        port = 21
    elif not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return Err(f"{_mask(text)!r}: port {port_text!r} is not a number from 1 to 65535")
    else:
        port = int(port_text)
    folder = "/" + unquote(path).strip("/") if slash else "/"
    reserved = _ftp_options(query, folder, text)
    if not reserved.ok:
        return reserved
    return Ok(FtpSpec(
        tls=tls,
        user=unquote(user) or "anonymous",
        password=unquote(password) if colon else None,
        host=host,
        port=port,
        path=folder,
        reserved=reserved.value,
    ))


def _mask(text: str) -> str:
    """Hide the password of an FTP (or a misused S3) location string, for error messages."""
    return re.sub(r"^((?:ftps?://|ftp:|s3\+https?://)[^:@/]*:)[^@]*@", r"\1***@", text,
                  flags=re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """Mask passwords in a location string so it can be shown or logged."""
    return _mask(text)


def parse_location(text: str, base: str | None = None) -> Result[LocationSpec]:
    """Parse one location string; an ``Err`` says what is wrong and lists the valid forms.

    Relative local paths (``folder:``, ``zip:``, bare) are taken relative to the folder
    ``base`` when it is given, else to the current directory.
    """
    text = text.strip()
    if not text:
        return Err("empty location; valid forms: " + ", ".join(FORMS))
    lowered = text.lower()
    if lowered.startswith(("s3://", "s3+http://", "s3+https://")):
        return _parse_s3(text)
    if lowered.startswith(("ftp://", "ftps://")):
        tls = lowered.startswith("ftps://")
        return _parse_ftp(text.split("://", 1)[1], tls, text)
    match = _PREFIX.match(text)
    # One letter before a colon is a Windows drive letter, not a location kind.
    if match and len(match.group(1)) > 1:
        prefix, rest = match.group(1).lower(), text[match.end():]
        if prefix == "folder":
            path = _local_path(rest, "folder", base)
            return Ok(FolderSpec(path.value)) if path.ok else path
        if prefix == "zip":
            path = _local_path(rest, "zip", base)
            return Ok(ZipSpec(path.value)) if path.ok else path
        if prefix == "ftp":
            return _parse_ftp(rest, False, text)
        return Err(f"unknown location kind {prefix + ':'!r} in {_mask(text)!r}; valid forms: "
                   + ", ".join(FORMS) + " (write folder:PATH or ./PATH for a folder whose name "
                   "contains a colon)")
    path = _local_path(text, "folder", base)
    if not path.ok:
        return path
    if text.lower().endswith(".zip"):
        return Ok(ZipSpec(path.value))
    return Ok(FolderSpec(path.value))
