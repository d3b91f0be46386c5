"""Guards against losing data to a missing disk or a runaway deletion."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from filesync.locations.base import Location
from filesync.model import MARKER
from filesync.planner import Decision, Op, Plan
from filesync.state import StateStore

log = logging.getLogger("filesync")

#: Fewer deletions than this in one location never trip the mass-delete guard.
MASS_DELETE_MINIMUM = 10


def adopt_markers(locations: Sequence[Location], store: StateStore, force: bool,
                  dry_run: bool) -> None:
    """Check every location's marker against the state; give new locations one.

    A location whose marker vanished or changed keeps the marker the state expects, so
    every listing of it fails (unavailable) until the marker is back. With ``force`` it
    gets a new marker and is treated as new: its files are merged, nothing is deleted.
    """
    for location in locations:
        expected = store.marker(location.key)
        found = location.read_marker()
        if not found.ok:
            log.warning("cannot check the marker of %s: %s", location.display, found.message)
            location.expect_marker(expected)
            continue
        if expected is not None and found.value == expected:
            location.expect_marker(expected)
            continue
        if expected is not None and not force:
            location.expect_marker(expected)
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
            written = location.write_marker()
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
        location.expect_marker(marker)


class DeleteGuard:
    """The mass-delete guard (``--max-delete``).

    It also remembers the deletions of the last ``WINDOW`` seconds, so a mass deletion that
    watch mode sees in several batches is judged as one.
    """

    WINDOW = 60.0

    def __init__(self, max_percent: float) -> None:
        self.max_percent = max_percent
        self._recent: list[tuple[float, str, int]] = []

    def _earlier(self, now: float) -> dict[str, int]:
        self._recent = [item for item in self._recent if now - item[0] < self.WINDOW]
        earlier: dict[str, int] = {}
        for _, key, count in self._recent:
            earlier[key] = earlier.get(key, 0) + count
        return earlier

    def problems(self, plan: Plan, file_counts: Mapping[str, int], now: float,
                 present: Mapping[str, int] | None = None) -> list[str]:
        """Locations where the plan (with the last minute's deletions) deletes too much.

        ``file_counts`` are the files each location held when last in sync; ``present``
        the files each holds now. A location with no such record (a one-way sync's target
        on its first run) is protected however few files it has: the deletions there were
        never seen in sync, so the minimum of ``MASS_DELETE_MINIMUM`` does not apply.
        """
        earlier = self._earlier(now)
        present = present or {}
        problems = []
        for key, planned in sorted(_deletions(plan).items()):
            before = earlier.get(key, 0)
            count = planned + before
            known = file_counts.get(key, 0)
            total = max(known + before, count)
            minimum = MASS_DELETE_MINIMUM
            if known == 0:
                total = max(present.get(key, 0), count)
                minimum = 1
            if count >= minimum and count * 100 > self.max_percent * total:
                recent = f", {before} of them in the last minute" if before else ""
                problems.append(
                    f"refusing to delete {count} of {total} files ({count * 100 // total}%"
                    f"{recent}) in {key}: more than --max-delete {self.max_percent:g}%. "
                    "Nothing more was deleted or overwritten. If this is intended, run again "
                    "with --force")
        return problems

    def record(self, plan: Plan, now: float) -> None:
        """Remember the deletions of a plan that was applied."""
        for key, count in _deletions(plan).items():
            self._recent.append((now, key, count))


def _deletions(plan: Plan) -> dict[str, int]:
    deletions: dict[str, int] = {}
    for action in plan.actions():
        if action.op is Op.DELETE:
            deletions[action.target] = deletions.get(action.target, 0) + 1
    return deletions


def deletes(plan: Plan) -> bool:
    """True when ``plan`` deletes a file or folder anywhere (the guard has work then)."""
    return any(_deletes(decision) for decision in plan.decisions)


def _deletes(decision: Decision) -> bool:
    return any(action.op in (Op.DELETE, Op.RMDIR) for action in decision.actions)


class PausedDeletions:
    """Watch mode's answer to the mass-delete guard: hold those deletions, sync the rest.

    The held paths stay everywhere they still are; a later run with ``--force`` applies
    them, and a path that stops being a deletion (its file is back) is released.
    """

    def __init__(self) -> None:
        self.paths: set[str] = set()
        #: Each held path and the locations it would be deleted in (for ``status``).
        self.where: dict[str, list[str]] = {}

    def hold(self, plan: Plan, scope: Iterable[str] | None) -> None:
        """Take the already paused deletions out of ``plan``; release what came back.

        ``scope``: the paths the round looked at (None: every path).
        """
        looked_at = self.paths if scope is None else self.paths & set(scope)
        deleting = {decision.path for decision in plan.decisions if _deletes(decision)}
        for path in sorted(looked_at - deleting):
            self.paths.discard(path)
            self.where.pop(path, None)
            log.info("%s is no longer a paused deletion (it is back, or was deleted "
                     "everywhere)", path)
        plan.decisions = [decision for decision in plan.decisions
                          if decision.path not in self.paths]

    def pause(self, plan: Plan) -> int:
        """Take every deletion out of ``plan`` and hold it; how many paths were held."""
        held = {decision.path for decision in plan.decisions if _deletes(decision)}
        self.paths |= held
        for decision in plan.decisions:
            if decision.path in held:
                self.where[decision.path] = sorted({action.target
                                                    for action in decision.actions})
        plan.decisions = [decision for decision in plan.decisions
                          if decision.path not in held]
        return len(held)
