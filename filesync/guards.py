"""Guards against losing data to a missing disk or a runaway deletion."""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Mapping, Sequence

from filesync.locations.base import MARKER, Location
from filesync.planner import Op, Plan
from filesync.result import Err, Ok, Result
from filesync.state import StateStore

log = logging.getLogger("filesync")

#: Fewer deletions than this in one location never trip the mass-delete guard.
MASS_DELETE_MINIMUM = 10


def read_marker(location: Location) -> Result[str | None]:
    """The id in the location's marker file, ``None`` when there is none."""
    found = location.stat(MARKER)
    if not found.ok:
        return found
    if found.value is None:
        return Ok(None)
    opened = location.open_read(MARKER)
    if not opened.ok:
        return opened
    try:
        with opened.value as stream:
            text = stream.read(200).decode("ascii", "replace").strip()
    except OSError as exc:
        return Err(f"cannot read {MARKER} in {location.display}: {exc}")
    return Ok(text or None)


def write_marker(location: Location) -> Result[str]:
    """Write a new marker id into the location."""
    marker = uuid.uuid4().hex
    begun = location.begin_batch()
    if not begun.ok:
        return begun
    written = location.write(MARKER, io.BytesIO(f"{marker}\n".encode()), time.time_ns())
    ended = location.end_batch()
    if not written.ok:
        return written
    if not ended.ok:
        return ended
    return Ok(marker)


def adopt_markers(locations: Sequence[Location], store: StateStore, force: bool,
                  dry_run: bool) -> None:
    """Check every location's marker against the state; give new locations one.

    A location whose marker vanished or changed keeps the marker the state expects, so
    every listing of it fails (unavailable) until the marker is back. With ``force`` it
    gets a new marker and is treated as new: its files are merged, nothing is deleted.
    """
    for location in locations:
        expected = store.marker(location.key)
        found = read_marker(location)
        if not found.ok:
            log.warning("cannot check the marker of %s: %s", location.display, found.message)
            location.marker_id = expected
            continue
        if expected is not None and found.value == expected:
            location.marker_id = expected
            continue
        if expected is not None and not force:
            location.marker_id = expected
            what = "lost its marker" if found.value is None else "has another location's marker"
            log.error("%s %s (%s): is a disk not mounted, or does the path point somewhere "
                      "else? It is left alone and nothing is deleted because of it; if it "
                      "really is the right place, run again with --force",
                      location.display, what, MARKER)
            continue
        if dry_run:
            continue
        marker = found.value
        if marker is None:
            written = write_marker(location)
            if not written.ok:
                log.error("cannot write the marker of %s: %s", location.display,
                          written.message)
                continue
            marker = written.value
        if expected is not None:
            log.warning("%s: --force: taking it as a new location (its files are merged, "
                        "nothing is deleted because of what it lacks)", location.display)
            store.forget_location(location.key)
        store.set_marker(location.key, marker)
        location.marker_id = marker


def mass_delete_problems(plan: Plan, file_counts: Mapping[str, int],
                         max_percent: float) -> list[str]:
    """Locations where the plan deletes more than ``max_percent`` of the files."""
    deletions: dict[str, int] = {}
    for action in plan.actions():
        if action.op is Op.DELETE:
            deletions[action.target] = deletions.get(action.target, 0) + 1
    problems = []
    for key, count in sorted(deletions.items()):
        total = max(file_counts.get(key, 0), count)
        if count >= MASS_DELETE_MINIMUM and count * 100 > max_percent * total:
            problems.append(
                f"refusing to delete {count} of {total} files ({count * 100 // total}%) in "
                f"{key}: more than --max-delete {max_percent:g}%. Nothing was deleted or "
                "overwritten. If this is intended, run again with --force")
    return problems
