"""Where an S3 location lives and who we are there, taken the way AWS tools take it.

Endpoint, region and credentials come from (in this order) an explicit endpoint URL, the
``AWS_*`` environment variables and the profile in ``~/.aws/config`` / ``~/.aws/credentials``
(``AWS_CONFIG_FILE`` / ``AWS_SHARED_CREDENTIALS_FILE`` override the paths).
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from filesync.result import Err, ErrorKind, Ok, Result

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Credentials:
    """An access key and its secret (never shown in ``repr``)."""

    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Endpoint:
    """The S3 service to talk to and how buckets are addressed there."""

    scheme: str  # "http" | "https"
    host: str
    port: int
    path_style: bool  # True: http://host/bucket/key ; False: http://bucket.host/key
    region: str

    @property
    def is_aws(self) -> bool:
        """True for Amazon's own endpoints."""
        return self.host.endswith(".amazonaws.com")

    def display(self) -> str:
        """The endpoint as a URL, for messages."""
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"


@dataclass(frozen=True)
class _Files:
    """The two AWS files and the profile chosen."""

    config: Path
    credentials: Path
    profile: str
    profile_named: bool  # True when AWS_PROFILE chose it (a missing one is then an error)


def parse_endpoint_url(url: str, region: str) -> Result[Endpoint]:
    """An ``Endpoint`` from ``http[s]://host[:port]`` (path style unless it is amazonaws.com)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Err(f"S3 endpoint {url!r} is not an http:// or https:// URL", ErrorKind.INVALID)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return Err(f"S3 endpoint {url!r} has an invalid port", ErrorKind.INVALID)
    if parts.username or parts.password:
        return Err("an S3 endpoint URL must not contain credentials", ErrorKind.INVALID)
    host = parts.hostname
    return Ok(Endpoint(parts.scheme, host, port, not host.endswith(".amazonaws.com"), region))


def aws_endpoint(region: str) -> Endpoint:
    """Amazon S3's regional endpoint, virtual-hosted style."""
    return Endpoint("https", f"s3.{region}.amazonaws.com", 443, False, region)


def _files(environ: Mapping[str, str], home: Path) -> _Files:
    """The config and credentials files and the profile, honouring the AWS variables."""
    config = environ.get("AWS_CONFIG_FILE") or str(home / ".aws" / "config")
    creds = environ.get("AWS_SHARED_CREDENTIALS_FILE") or str(home / ".aws" / "credentials")
    profile = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or ""
    return _Files(Path(config).expanduser(), Path(creds).expanduser(),
                  profile or "default", bool(profile))


def _read_ini(path: Path) -> Result[configparser.RawConfigParser | None]:
    """The parsed file, ``None`` when it does not exist."""
    parser = configparser.RawConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        return Ok(None)
    except (OSError, UnicodeDecodeError) as exc:
        return Err(f"cannot read {path}: {exc.__class__.__name__}: "
                   f"{getattr(exc, 'strerror', None) or exc}", ErrorKind.INVALID)
    except configparser.Error as exc:
        # configparser's messages quote the offending line, which may hold a secret.
        return Err(f"cannot parse {path}: {exc.__class__.__name__}"
                   f"{f' at line {exc.lineno}' if hasattr(exc, 'lineno') else ''}",
                   ErrorKind.INVALID)
    return Ok(parser)


def _section(parser: configparser.RawConfigParser | None, name: str) -> dict[str, str] | None:
    """A section's options (``None`` when absent)."""
    if parser is None or not parser.has_section(name):
        return None
    return {key.lower(): value.strip() for key, value in parser.items(name)}


def _nested(value: str) -> dict[str, str]:
    """The ``key = value`` lines of a nested block (``s3 =``, then ``endpoint_url = ...``)."""
    out: dict[str, str] = {}
    for line in value.splitlines():
        key, sep, val = line.partition("=")
        if sep:
            out[key.strip().lower()] = val.strip()
    return out


def resolve(endpoint_url: str | None, environ: Mapping[str, str], home: Path
            ) -> Result[tuple[Endpoint, Credentials]]:
    """The endpoint and credentials for an S3 location.

    ``endpoint_url`` (from an ``s3+http://HOST:PORT/...`` location) wins over the
    environment and the profile; it always uses path-style addressing.
    """
    files = _files(environ, home)
    config_read = _read_ini(files.config)
    if not config_read.ok:
        return config_read
    creds_read = _read_ini(files.credentials)
    if not creds_read.ok:
        return creds_read
    config, creds_file = config_read.value, creds_read.value
    section_name = "default" if files.profile == "default" else f"profile {files.profile}"
    profile = _section(config, section_name)
    if profile is None and files.profile == "default":
        profile = _section(config, "profile default")
    cred_section = _section(creds_file, files.profile)
    if files.profile_named and profile is None and cred_section is None:
        return Err(f"AWS profile {files.profile!r} (from AWS_PROFILE) is in neither "
                   f"{files.credentials} nor {files.config}", ErrorKind.INVALID)
    profile = profile or {}
    region = (environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
              or profile.get("region") or DEFAULT_REGION)
    endpoint = _endpoint(endpoint_url, environ, profile, region)
    if not endpoint.ok:
        return endpoint
    credentials = _credentials(environ, files, cred_section or {}, profile)
    if not credentials.ok:
        return credentials
    return Ok((endpoint.value, credentials.value))


def _endpoint(endpoint_url: str | None, environ: Mapping[str, str],
              profile: Mapping[str, str], region: str) -> Result[Endpoint]:
    """The endpoint: explicit, from the environment, from the profile, else Amazon's."""
    if endpoint_url:
        explicit = parse_endpoint_url(endpoint_url, region)
        if explicit.ok:
            return Ok(Endpoint(explicit.value.scheme, explicit.value.host, explicit.value.port,
                               True, region))
        return explicit
    nested = _nested(profile.get("s3", ""))
    for url in (environ.get("AWS_ENDPOINT_URL_S3"), environ.get("AWS_ENDPOINT_URL"),
                nested.get("endpoint_url"), profile.get("endpoint_url")):
        if url:
            return parse_endpoint_url(url, region)
    return Ok(aws_endpoint(region))


def _credentials(environ: Mapping[str, str], files: _Files, cred_section: Mapping[str, str],
                 profile: Mapping[str, str]) -> Result[Credentials]:
    """Credentials from the environment, else the credentials file, else the config file."""
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return Ok(Credentials(key, secret, environ.get("AWS_SESSION_TOKEN") or None))
    if key or secret:
        missing = "AWS_SECRET_ACCESS_KEY" if key else "AWS_ACCESS_KEY_ID"
        return Err(f"{missing} is not set (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                   "go together)", ErrorKind.REFUSED)
    for source, where in ((cred_section, files.credentials), (profile, files.config)):
        key, secret = source.get("aws_access_key_id"), source.get("aws_secret_access_key")
        if key and secret:
            return Ok(Credentials(key, secret, source.get("aws_session_token") or None))
        if key or secret:
            return Err(f"profile {files.profile!r} in {where} needs both aws_access_key_id "
                       "and aws_secret_access_key", ErrorKind.REFUSED)
    return Err("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
               f"(and AWS_SESSION_TOKEN for temporary ones), or put aws_access_key_id and "
               f"aws_secret_access_key under [{files.profile}] in {files.credentials} "
               "(AWS_PROFILE chooses the profile, AWS_SHARED_CREDENTIALS_FILE the file)",
               ErrorKind.REFUSED)
