"""Location backends and the factory that turns a parsed spec into one."""

from __future__ import annotations

from filesync.locations.base import Entry, Listing, Location
from filesync.locations.folder import FolderLocation
from filesync.locations.spec import FolderSpec, FtpSpec, LocationSpec, ZipSpec, parse_location
from filesync.result import Err, Ok, Result

__all__ = ["Entry", "Listing", "Location", "open_location", "parse_location"]


def open_location(spec: LocationSpec) -> Result[Location]:
    """Create the backend for ``spec``; kinds not built yet answer with a clear error."""
    if isinstance(spec, FolderSpec):
        return Ok(FolderLocation(spec))
    if isinstance(spec, ZipSpec):
        return Err(f"{spec.display}: ZIP archives are not supported yet in this version")
    if isinstance(spec, FtpSpec):
        return Err(f"{spec.display}: FTP servers are not supported yet in this version")
    return Err(f"unknown location {spec!r}")
