"""Old versions kept inside each location under ``.filesync/versions/``.

A version of ``docs/a.txt`` superseded (overwritten or deleted) by the round that started at
2026-11-22 02:15:00.123456 UTC is ``.filesync/versions/docs/a.txt~20261122T021500.123456Z``.
All versions one round keeps share its timestamp, so "undo the last round" is well defined.

Where ``<name>~<stamp>`` would not fit a file name (255 bytes), the version is kept as
``.filesync/versions/docs/~20261122T021500.123456Z/<name>`` instead; both forms are read.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from filesync.locations.base import Location
from filesync.model import RESERVED_DIR, parents_of
from filesync.result import Err, Ok, Result

log = logging.getLogger("filesync")

VERSIONS_DIR = f"{RESERVED_DIR}/versions"
_STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_STAMP = r"\d{8}T\d{6}\.\d{6}Z"
_VERSION_NAME = re.compile(rf"^(?P<path>.+)~(?P<stamp>{_STAMP})$")
#: The form for names too long for ``<name>~<stamp>``: ``<folder>/~<stamp>/<name>``.
_LONG_VERSION_NAME = re.compile(rf"^(?P<folder>(?:.+/)?)~(?P<stamp>{_STAMP})/(?P<name>[^/]+)$")
#: The longest file name (one path component) common file systems allow, in bytes.
NAME_MAX = 255


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


def _bytes(text: str) -> int:
    """The length of a name on disk (undecodable bytes held as surrogate escapes count 1)."""
    return len(text.encode("utf-8", "surrogateescape"))


def _fits(name: str) -> bool:
    return _bytes(name) <= NAME_MAX


def version_path(path: str, moment: dt.datetime) -> str:
    """Where the version of ``path`` superseded at ``moment`` is kept.

    ``<path>~<stamp>``, or ``<folder>/~<stamp>/<name>`` when the first form's last part
    would be longer than a file name may be.
    """
    when = stamp(moment)
    folder, slash, name = path.rpartition("/")
    if _fits(f"{name}~{when}"):
        return f"{VERSIONS_DIR}/{path}~{when}"
    return f"{VERSIONS_DIR}/{folder}{slash}~{when}/{name}"


def _cut(text: str, limit: int) -> str:
    """The longest start of ``text`` of at most ``limit`` bytes, in whole characters."""
    if _bytes(text) <= limit:
        return text
    used = 0
    for index, char in enumerate(text):
        used += _bytes(char)
        if used > limit:
            return text[:index]
    return text


def conflict_path(path: str, moment: dt.datetime, label: str) -> str:
    """The visible name of a losing edit: ``name.conflict-YYYYMMDD-HHMMSS-<label>.ext``.

    A name that would not fit a file name is shortened: the stem first, then the label;
    an extension longer than 32 bytes is treated as part of the stem.
    """
    folder, slash, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem or _bytes(ext) > 32:  # no extension, a dot file (".profile"), or no real one
        stem, dot, ext = name, "", ""
    when = moment.astimezone(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    marker = f".conflict-{when}-"
    label = _cut(label, NAME_MAX - _bytes(marker + dot + ext) - 1)
    stem = _cut(stem, NAME_MAX - _bytes(marker + label + dot + ext))
    return f"{folder}{slash}{stem}{marker}{label}{dot}{ext}"


def _moment(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, _STAMP_FORMAT).replace(tzinfo=dt.timezone.utc)


def parse_version(stored_as: str, size: int) -> StoredVersion | None:
    """Read a stored version's name back (either form); ``None`` for anything else."""
    if not stored_as.startswith(VERSIONS_DIR + "/"):
        return None
    rest = stored_as[len(VERSIONS_DIR) + 1:]
    long = _LONG_VERSION_NAME.match(rest)
    # The long form is only ever written for a name that does not fit the short one, so
    # a user's folder that happens to be called "~<stamp>" is not mistaken for it.
    if long is not None and not _fits(f"{long['name']}~{long['stamp']}"):
        return StoredVersion(long["folder"] + long["name"], _moment(long["stamp"]), size,
                             stored_as)
    match = _VERSION_NAME.match(rest)
    if match is None:
        return None
    return StoredVersion(match["path"], _moment(match["stamp"]), size, stored_as)


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
        log.info("pruned %d old %s in %s (--keep-versions %d, --keep-days %g)", len(doomed),
                 "version" if len(doomed) == 1 else "versions", location.display, keep,
                 keep_days)
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


def location_labels(locations: Sequence[Location]) -> dict[str, str]:
    """Short, file-name-safe names for locations (used in conflict copy names)."""
    labels: dict[str, str] = {}
    for location in locations:
        local = location.local_path()
        base = local.name if local is not None else location.kind
        label = re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or location.kind
        labels[location.key] = label
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    for index, (key, label) in enumerate(labels.items(), 1):
        if counts[label] > 1:
            labels[key] = f"{label}{index}"
    return labels
