"""Location backends and the factory that turns a parsed spec into one."""

from __future__ import annotations

from dataclasses import dataclass

from filesync.locations.base import Location
from filesync.locations.folder import FolderLocation
from filesync.locations.memory import MemoryLocation
from filesync.locations.spec import (
    FolderSpec,
    FtpSpec,
    LocationSpec,
    S3Spec,
    ZipSpec,
    parse_location,
)
from filesync.model import Entry, Listing
from filesync.result import Err, Ok, Result

__all__ = ["Entry", "Listing", "Location", "MemoryLocation", "Settings", "open_location",
           "parse_location"]


@dataclass(frozen=True)
class Settings:
    """Backend options from the command line."""

    #: Most connections an FTP location opens at once (transfers and listings share them).
    ftp_connections: int = 4
    #: A CA bundle to verify FTPS servers against, instead of the system's trust store.
    ca_file: str | None = None
    #: Skip FTPS certificate verification (warned about at start).
    insecure_tls: bool = False
    #: May the user be asked for a missing password (a terminal is attached)?
    interactive: bool = False


def open_location(spec: LocationSpec, settings: Settings | None = None) -> Result[Location]:
    """Create the backend for ``spec``."""
    if isinstance(spec, FolderSpec):
        return Ok(FolderLocation(spec))
    # Backends other than folders are imported on first use, to keep start-up short.
    if isinstance(spec, ZipSpec):
        from filesync.locations.zip import ZipLocation  # noqa: PLC0415

        return Ok(ZipLocation(spec))
    if isinstance(spec, FtpSpec):
        from filesync.locations.ftp import FtpLocation  # noqa: PLC0415

        return Ok(FtpLocation(spec, settings or Settings()))
    if isinstance(spec, S3Spec):
        from filesync.locations.s3.location import S3Location  # noqa: PLC0415

        return Ok(S3Location(spec, settings or Settings()))
    return Err(f"unknown location {spec!r}")
