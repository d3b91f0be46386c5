"""Watcher threads: one per location, each diffing periodic listings into a shared queue."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from filesync.excludes import Excludes
from filesync.locations.base import Location
from filesync.model import Entry, Listing

log = logging.getLogger("filesync")


class EventKind(Enum):
    """What a watcher reports."""

    CHANGED = "changed"          # a path settled into a new state
    UNAVAILABLE = "unavailable"  # the listing failed; nothing may be concluded from it
    AVAILABLE = "available"      # listing works again after an outage


@dataclass(frozen=True)
class WatchEvent:
    """One report from a watcher; ``path`` is set for ``CHANGED`` events."""

    location: str
    kind: EventKind
    path: str = ""
    message: str = ""


class Watcher(threading.Thread):
    """Lists one location every ``interval`` seconds and reports settled changes.

    A path is reported once two scans in a row agree on its new state, so a file still
    being written (size or mtime moving) waits until it is stable.
    """

    def __init__(self, location: Location, excludes: Excludes, interval: float,
                 events: queue.Queue[WatchEvent], stop: threading.Event,
                 baseline: dict[str, Entry] | None) -> None:
        super().__init__(name=f"filesync-watch-{location.kind}", daemon=True)
        self.location = location
        self.excludes = excludes
        self.interval = interval
        self.events = events
        self.stop = stop
        self._previous: dict[str, Entry] = dict(baseline or {})
        self._reported: dict[str, Entry] = dict(baseline or {})
        self._available = baseline is not None
        self._warned: set[str] = set()
        #: What this watcher's polls remember, for a location that can poll cheaply.
        self._poll_memory = location.new_poll_memory()
        #: Paths the engine could not use yet because they were still changing here: they
        #: are reported once settled, even if they end as they were reported before.
        self._revisit: set[str] = set()
        # Guards the scan state, which the engine reads and updates (acknowledge, settled).
        self._lock = threading.Lock()

    def run(self) -> None:
        """Scan until stopped; every failure is reported, none ends the thread."""
        while not self.stop.wait(self.interval):
            try:
                self.scan_once()
            except Exception as exc:  # a bug must not silently kill the watcher
                log.exception("watcher of %s failed: %s", self.location.display, exc)

    def acknowledge(self, entries: Mapping[str, Entry | None]) -> None:
        """Take filesync's own writes here as known, so they are not reported back.

        ``entries`` maps paths to what the location now reports (``None``: removed).
        """
        with self._lock:
            for path, entry in entries.items():
                if entry is None:
                    self._reported.pop(path, None)
                    self._previous.pop(path, None)
                else:
                    self._reported[path] = entry
                    self._previous[path] = entry

    def settled(self, path: str, entry: Entry | None) -> bool:
        """True when the last scan saw ``path`` as ``entry`` (None: absent) already.

        A file that is new or still changing since that scan is not settled (rule: stable
        before propagating); it is then revisited, so it is reported once it settles.
        """
        with self._lock:
            if not self._available or self._previous.get(path) == entry:
                return True
            self._revisit.add(path)
            return False

    def _fresh_listing(self, poll: bool = False) -> Listing | None:
        """List the location, logging new warnings; None (an outage reported once) on failure.

        A ``poll`` may be built partly from what earlier polls saw (``Location.poll_list``).
        """
        if poll:
            listed = self.location.poll_list(self.excludes, self._poll_memory)
        else:
            listed = self.location.list(self.excludes)
        if not listed.ok:
            with self._lock:
                was, self._available = self._available, False
                self._forget_work()
            if was:
                self.events.put(WatchEvent(self.location.key, EventKind.UNAVAILABLE,
                                           message=listed.message))
            return None
        for warning in listed.value.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning("%s", warning)
        return listed.value

    def _came_back(self, current: dict[str, Entry]) -> bool:
        """Under the lock: after an outage, start again from ``current`` and report it."""
        if self._available:
            return False
        self._available = True
        self._previous, self._reported = dict(current), dict(current)
        self._forget_work()
        self.events.put(WatchEvent(self.location.key, EventKind.AVAILABLE))
        return True

    def _forget_work(self) -> None:
        """Under the lock: drop work in progress that an outage made stale (none here)."""

    def scan_once(self) -> None:
        """One scan: diff against the previous one and queue what has settled."""
        listing = self._fresh_listing(poll=True)
        if listing is None:
            return
        key = self.location.key
        current = listing.entries
        with self._lock:
            if self._came_back(current):
                return
            previous, reported = self._previous, self._reported
            for path in _differences(reported, current) + sorted(self._revisit):
                now = current.get(path)
                if previous.get(path) != now or not listing.sees(path):
                    continue  # still moving (or unseen): wait for the next scan
                self._revisit.discard(path)
                if now is None:
                    reported.pop(path, None)
                else:
                    reported[path] = now
                self.events.put(WatchEvent(key, EventKind.CHANGED, path))
            self._previous = current


def _differences(old: dict[str, Entry], new: dict[str, Entry]) -> list[str]:
    """Paths created, deleted or modified between two listings (set algebra, as in watchdog).

    Runs over every path at every poll: the comparison of ``Entry.__eq__`` is written out
    inline (no call per path), the cheapest and likeliest differences first; a poll that
    hands back the entries it remembers (``Location.poll_list``) passes the identity test.
    """
    get = old.get
    changed = [path for path, entry in new.items()
               if (was := get(path)) is not entry and (
                   was is None or was.mtime_ns != entry.mtime_ns
               or was.size != entry.size or was.is_dir != entry.is_dir
                   or was.path != entry.path)]
    changed += [path for path in old.keys() - new.keys()]
    return changed
