"""Choosing how a location is watched: OS events where the system has them, else polling."""

from __future__ import annotations

import queue
import threading

from filesync.excludes import Excludes
from filesync.locations.base import Location
from filesync.model import Entry
from filesync.watcher import Watcher, WatchEvent

#: Watch mode lists every location in full this often (seconds) even when events arrive,
#: to catch anything the events missed.
DEFAULT_RESCAN = 300.0


def make_watcher(location: Location, excludes: Excludes, interval: float,
                 events: queue.Queue[WatchEvent], stop: threading.Event,
                 baseline: dict[str, Entry] | None, poll: bool = False,
                 rescan: float = DEFAULT_RESCAN) -> Watcher:
    """The watcher for ``location``: event-driven where possible, else polling."""
    del poll, rescan  # polling only, until the event watcher exists
    return Watcher(location, excludes, interval, events, stop, baseline)
