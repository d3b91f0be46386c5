"""Old versions kept inside each location under ``.filesync/versions/``.

A version of ``docs/a.txt`` superseded (overwritten or deleted) by the round that started at
2026-11-22 02:15:00.123456 UTC is ``.filesync/versions/docs/a.txt~20261122T021500.123456Z``.
All versions one round keeps share its timestamp, so "undo the last round" is well defined.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from filesync.locations.base import RESERVED_DIR, Location, parents_of
from filesync.result import Err, Ok, Result

log = logging.getLogger("filesync")

VERSIONS_DIR = f"{RESERVED_DIR}/versions"
_STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_VERSION_NAME = re.compile(r"^(?P<path>.+)~(?P<stamp>\d{8}T\d{6}\.\d{6}Z)$")


@dataclass(frozen=True, order=True)
class StoredVersion:
    """One kept version: the user path it belongs to and when it was superseded (UTC)."""

    path: str
    superseded: dt.datetime
    size: int
    stored_as: str


def stamp(moment: dt.datetime) -> str:
    """The file-name form of a UTC moment."""
    return moment.astimezone(dt.timezone.utc).strftime(_STAMP_FORMAT)


def version_path(path: str, moment: dt.datetime) -> str:
    """Where the version of ``path`` superseded at ``moment`` is kept."""
    return f"{VERSIONS_DIR}/{path}~{stamp(moment)}"


def conflict_path(path: str, moment: dt.datetime, label: str) -> str:
    """The visible name of a losing edit: ``name.conflict-YYYYMMDD-HHMMSS-<label>.ext``."""
    folder, slash, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension, or a dot file such as ".profile"
        stem, dot, ext = name, "", ""
    when = moment.astimezone(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{folder}{slash}{stem}.conflict-{when}-{label}{dot}{ext}"


def parse_version(stored_as: str, size: int) -> StoredVersion | None:
    """Read a stored version's name back; ``None`` for anything else in the folder."""
    if not stored_as.startswith(VERSIONS_DIR + "/"):
        return None
    match = _VERSION_NAME.match(stored_as[len(VERSIONS_DIR) + 1:])
    if match is None:
        return None
    moment = dt.datetime.strptime(match["stamp"], _STAMP_FORMAT).replace(tzinfo=dt.timezone.utc)
    return StoredVersion(match["path"], moment, size, stored_as)


def list_versions(location: Location) -> Result[list[StoredVersion]]:
    """Every version kept in ``location``, oldest first."""
    listed = location.list_reserved()
    if not listed.ok:
        return listed
    found = [parse_version(entry.path, entry.size)
             for entry in listed.value.entries.values() if not entry.is_dir]
    return Ok(sorted(v for v in found if v is not None))


def prune(location: Location, keep: int, keep_days: float, now: dt.datetime) -> Result[int]:
    """Delete versions beyond the ``keep`` newest of each file or older than ``keep_days``.

    Returns how many were deleted; failures are reported, the rest still pruned.
    """
    listed = list_versions(location)
    if not listed.ok:
        return listed
    by_path: dict[str, list[StoredVersion]] = {}
    for version in listed.value:
        by_path.setdefault(version.path, []).append(version)
    cutoff = now - dt.timedelta(days=keep_days)
    doomed = [version for versions in by_path.values()
              for rank, version in enumerate(reversed(versions))
              if rank >= keep or version.superseded < cutoff]
    errors: list[str] = []
    for version in doomed:
        removed = location.delete(version.stored_as)
        if not removed.ok:
            errors.append(removed.message)
    _remove_empty_folders(location, {v.stored_as for v in doomed})
    if errors:
        return Err(f"{len(errors)} old versions could not be deleted, e.g. {errors[0]}")
    if doomed:
        log.info("pruned %d old versions in %s", len(doomed), location.display)
    return Ok(len(doomed))


def _remove_empty_folders(location: Location, removed: Iterable[str]) -> None:
    """Remove folders under ``.filesync/versions`` that pruning left empty (best effort)."""
    listed = location.list_reserved()
    if not listed.ok:
        return
    entries = listed.value.entries
    busy = {parent for path, entry in entries.items() if not entry.is_dir
            for parent in parents_of(path)}
    candidates = {p for path in removed for p in parents_of(path)
                  if p.startswith(VERSIONS_DIR + "/")}
    for folder in sorted(candidates - busy, key=lambda p: -p.count("/")):
        if folder in entries:
            removed_folder = location.rmdir(folder)
            if not removed_folder.ok:
                log.debug("%s", removed_folder.message)
