"""What a running engine is doing, for ``status``, the dashboard and the Python API.

The engine reports rounds, actions, outages and paused deletions here; other threads (the
dashboard's) read a snapshot. The snapshot is also saved beside the state file as the
run file (``STATE.run.json``), so ``python main.py status`` in another process can show
what a watcher is doing without taking its lock, and what the last run did after it ended.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from filesync.executor import Stats
from filesync.planner import Action

log = logging.getLogger("filesync")

#: The version of the status document (``status --json``, ``/api/status``).
VERSION = 1
#: How many of the latest actions the snapshot keeps.
RECENT = 50
#: At most this many pending actions are kept (a big round's whole plan would not fit the
#: run file rewritten every second).
PENDING_SHOWN = 1000
#: While a round is applied, the run file is saved this often (seconds).
SAVE_EVERY = 1.0

ProgressSource = Callable[[], "dict[str, Any] | None"]


def run_file_path(state_path: Path) -> Path:
    """Where the engine of the set with this state file saves its activity."""
    return state_path.with_name(state_path.name + ".run.json")


def iso(moment: dt.datetime | None) -> str | None:
    """A time as the status document writes it (ISO 8601, UTC, whole seconds)."""
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> dt.datetime:
    """The current time (UTC)."""
    return dt.datetime.now(dt.timezone.utc)


@dataclasses.dataclass
class LocationView:
    """One location as status shows it (the display never holds a secret)."""

    key: str
    display: str
    kind: str
    available: bool = True
    message: str | None = None
    #: Kept old versions: (count, bytes), or None while unknown.
    versions: tuple[int, int] | None = None

    def document(self) -> dict[str, Any]:
        """The location as the status document shows it."""
        versions = None if self.versions is None else {
            "count": self.versions[0], "bytes": self.versions[1]}
        return {"key": self.key, "display": self.display, "kind": self.kind,
                "available": self.available, "message": self.message, "versions": versions}


class Activity:
    """The live record of one engine run; every method is safe from any thread."""

    def __init__(self, state_path: Path, locations: Sequence[LocationView], mode: str,
                 settings: Mapping[str, Any] | None = None) -> None:
        self.state_path = state_path
        self.mode = mode
        self.started = now()
        #: The options a ``status`` run needs to plan as this engine does (excludes, ...).
        self.settings = dict(settings or {})
        self.progress: ProgressSource = lambda: None
        self._lock = threading.Lock()
        self._locations = {view.key: view for view in locations}
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)
        self._last_round: dict[str, Any] | None = None
        self._paused: dict[str, list[str]] = {}
        self._conflicts: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] | None = []
        self._running = True
        #: Set while ``saving``: a finished round is then saved at once.
        self._persist = False
        #: Bumped by every report; the saver skips writes while nothing changed.
        self._generation = 0
        self._saved_generation = -1

    # ----- reports from the engine --------------------------------------------------------
    def action(self, event: Mapping[str, Any]) -> None:
        """An action was applied (a dict with action, path, source, target, message)."""
        entry = {"time": iso(now()), **event}
        with self._lock:
            self._generation += 1
            self._recent.append(entry)

    def round_finished(self, result: str, stats: Stats, summary: str) -> None:
        """A round ended: ``ok``, ``failed``, ``refused`` or ``interrupted``."""
        with self._lock:
            self._generation += 1
            self._last_round = {"finished_at": iso(now()), "result": result,
                                "summary": summary, "stats": dataclasses.asdict(stats)}
        if self._persist:
            self.save()

    def availability(self, key: str, available: bool, message: str | None = None) -> None:
        """A location answered again, or stopped answering (and why)."""
        with self._lock:
            self._generation += 1
            view = self._locations.get(key)
            if view is not None:
                view.available, view.message = available, None if available else message

    def versions(self, key: str, count: int, size: int) -> None:
        """How many old versions a location keeps now, and their bytes."""
        with self._lock:
            self._generation += 1
            view = self._locations.get(key)
            if view is not None:
                view.versions = (count, size)

    def paused(self, where: Mapping[str, Sequence[str]]) -> None:
        """The deletions the mass-delete guard holds: path -> locations it would delete in."""
        with self._lock:
            self._generation += 1
            self._paused = {path: sorted(keys) for path, keys in where.items()}

    def conflicts(self, found: Sequence[Mapping[str, Any]]) -> None:
        """The unresolved conflicts (see ``StateStore.conflicts``)."""
        with self._lock:
            self._generation += 1
            self._conflicts = [dict(item) for item in found]

    def pending(self, actions: Sequence[Mapping[str, Any]] | None) -> None:
        """What is still to be applied (None: not known)."""
        with self._lock:
            self._generation += 1
            self._pending = None if actions is None else [dict(item) for item in actions]

    def stopped(self) -> None:
        """The engine ended; the run file keeps its last round for ``status``."""
        with self._lock:
            self._generation += 1
            self._running = False

    # ----- reading ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The engine's part of the status document (see ``filesync.status_report``)."""
        progress = self.progress() if self._running else None
        with self._lock:
            return {
                "engine": {"running": self._running,
                           "pid": os.getpid() if self._running else None,
                           "since": iso(self.started) if self._running else None,
                           "mode": self.mode if self._running else None},
                "last_round": self._last_round,
                "locations": [view.document() for view in self._locations.values()],
                "pending": self._pending,
                "conflicts": list(self._conflicts),
                "paused_deletions": [{"path": path, "locations": keys}
                                     for path, keys in sorted(self._paused.items())],
                "progress": progress,
                "recent": list(self._recent),
                "settings": dict(self.settings),
            }

    def document(self) -> dict[str, Any]:
        """The status document of this run (what the dashboard and the API serve)."""
        return compose(self.state_path, self.snapshot())

    def save(self) -> None:
        """Write the snapshot to the run file (atomically); a failure is only logged."""
        target = run_file_path(self.state_path)
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        generation = self._generation
        try:
            temp.write_text(json.dumps(self.snapshot(), ensure_ascii=True), encoding="ascii")
            os.replace(temp, target)
            self._saved_generation = generation
        except (OSError, ValueError) as exc:
            log.debug("cannot save %s: %s", target, exc)
            with contextlib.suppress(OSError):
                temp.unlink()

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """Save the run file every ``SAVE_EVERY`` seconds while inside (a thread it joins).

        On the way out the engine is marked as stopped and the run file saved once more.
        """
        done = threading.Event()

        def keep_saving() -> None:
            while not done.wait(SAVE_EVERY):
                if self._generation != self._saved_generation or self.progress() is not None:
                    self.save()

        thread = threading.Thread(target=keep_saving, name="run-file", daemon=True)
        self._persist = True
        self.save()
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self._persist = False
            self.stopped()
            self.save()


def read_run_file(state_path: Path) -> dict[str, Any] | None:
    """The last saved activity of the set with this state file (None: none readable)."""
    try:
        loaded = json.loads(run_file_path(state_path).read_text(encoding="ascii"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", run_file_path(state_path), exc)
        return None
    return loaded if isinstance(loaded, dict) else None


def pid_alive(pid: object) -> bool:
    """True when a process with this id exists (ours or another user's)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def conflict_views(found: Sequence[tuple[str, list[str], bool]]) -> list[dict[str, Any]]:
    """``StateStore.conflicts()`` as the status document lists them, with what to do."""
    return [{"path": path, "locations": keys,
             "detail": "changed in several locations; left alone until you change or delete "
                       "one of the copies" if manual else
                       "the losing edit, kept by --conflict keep-both; merge it, then delete it"}
            for path, keys, manual in found]


def action_view(action: Action) -> dict[str, Any]:
    """An action as the status document lists it (``pending``)."""
    return {"op": action.op.name.lower(), "path": action.path, "source": action.source,
            "target": action.target, "from_path": action.from_path}


def compose(state_path: Path, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The status document from an activity snapshot (the run's settings left out)."""
    try:
        state_bytes = sum(Path(str(state_path) + suffix).stat().st_size
                          for suffix in ("", "-wal") if Path(str(state_path) + suffix).exists())
    except OSError:
        state_bytes = None
    document: dict[str, Any] = {"version": VERSION, "generated_at": iso(now()),
                                "state": {"path": str(state_path.absolute()),
                                          "bytes": state_bytes}}
    document.update({key: value for key, value in snapshot.items() if key != "settings"})
    return document
