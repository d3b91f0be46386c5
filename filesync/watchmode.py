"""Watch mode: the watchers' events become rounds over the paths they name.

One watcher per location feeds one queue; the main thread groups what arrives into
rounds, and catches up on what a round could not settle.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

from filesync.eventwatch import make_watcher
from filesync.guards import adopt_markers
from filesync.model import Entry, Listing, entries_after
from filesync.result import Err, ErrorKind
from filesync.watcher import EventKind, WatchEvent

if TYPE_CHECKING:
    from filesync.engine import Engine, RoundReport

log = logging.getLogger("filesync")

#: After the first event of a batch, wait at most this long for more before planning.
BATCH_WINDOW = 0.2
#: A batch also ends when no event came for this long: watchers put a whole pass (both
#: names of a move included) into the queue at once.
BATCH_LULL = 0.03
#: The longest wait between tries of paths a location keeps failing to answer for.
RETRY_LIMIT = 60.0


class WatchLoop:
    """Runs an engine until its stop event is set; owns, starts and joins the watchers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.events: queue.Queue[WatchEvent] = queue.Queue()
        interval = engine.options.interval
        #: When unsettled paths are tried next, and how long the wait after a try that
        #: settled none of them is (it doubles each time, up to ``RETRY_LIMIT``).
        self._retry_at = 0.0
        self._retry_wait = interval
        self._missed_at = self._news_at = 0.0

    def run(self, first: RoundReport) -> None:
        """Watch and sync until stopped; the watchers are joined before returning."""
        engine, options = self.engine, self.engine.options
        watchers = [
            make_watcher(location, options.excludes, options.interval, self.events,
                         engine.stop, _baseline(first.listings.get(key),
                                                engine.own_writes.pop(key, {})),
                         poll=options.poll, rescan=options.rescan)
            for key, location in engine.locations.items()]
        engine.watchers = {watcher.location.key: watcher for watcher in watchers}
        for watcher in watchers:
            watcher.start()
        log.info("watching %d locations every %.1f s; press Ctrl+C to stop",
                 len(watchers), options.interval)
        try:
            while not engine.stop.is_set():
                batch = _drain(self.events, engine.stop)
                now = time.monotonic()
                if batch:
                    self.handle(batch)
                elif engine.hubs.missed_round and now >= self._missed_at:
                    # A hub sat a full round out (another engine held it): catch up.
                    self._missed_at = now + options.interval
                    engine.run_round()
                elif engine.unsettled and now >= self._retry_at:
                    self.retry_unsettled()
                if engine.hubs.journaled and time.monotonic() >= self._news_at:
                    self._news_at = time.monotonic() + options.interval
                    self._take_news()
        finally:
            engine.stop.set()
            for watcher in watchers:
                watcher.join()

    def _sync_paths(self, ordered: list[str]) -> None:
        """One round over ``ordered``, looked up afresh, under the hubs' leases."""
        engine = self.engine
        with engine.hubs.round(not engine.options.dry_run):
            engine.run_round(ordered, engine.stat_paths(ordered))

    def retry_unsettled(self) -> None:
        """Try again the paths a round could not settle: their watchers will not report them.

        A location that keeps failing is asked less and less often; one that recovers is
        caught up on anyway by the full round its watcher's "available again" starts.
        """
        engine = self.engine
        ordered = sorted(engine.unsettled)
        engine.unsettled.clear()
        log.debug("looking again at %d paths a round could not settle", len(ordered))
        self._sync_paths(ordered)
        if engine.unsettled.issuperset(ordered):
            self._retry_wait = min(self._retry_wait * 2, RETRY_LIMIT)
        else:
            self._retry_wait = engine.options.interval
        self._retry_at = time.monotonic() + self._retry_wait

    def _take_news(self) -> None:
        """Sync what other machines wrote to a hub in ways its listing may not show."""
        news = self.engine.hubs.news()
        if news is None:
            self.engine.run_round()
        elif news:
            log.debug("another machine wrote %d files to a hub", len(news))
            self._sync_paths(sorted(news))

    def handle(self, batch: list[WatchEvent]) -> None:
        """Turn one batch of events into a round (a full one after an outage)."""
        engine = self.engine
        paths: set[str] = set()
        full_round = False
        for event in batch:
            display = engine.locations[event.location].display
            if event.kind is EventKind.UNAVAILABLE:
                log.error("%s is unavailable (nothing is deleted because of it): %s",
                          display, event.message)
                engine.reachable(event.location, Err(event.message, ErrorKind.UNAVAILABLE))
            elif event.kind is EventKind.AVAILABLE:
                engine.activity.availability(event.location, True)
                log.info("%s is available again; syncing everything", display)
                full_round = True
                location = engine.locations[event.location]
                if location.marker is None:  # it was out of reach at start
                    adopt_markers([location], engine.store, engine.options.force,
                                  engine.options.dry_run)
            else:
                paths.add(event.path)
        if full_round or engine.hubs.missed_round:
            engine.run_round()
        elif paths:
            log.debug("looking at %d changed paths", len(paths))
            self._sync_paths(sorted(paths))
        if engine.unsettled and self._retry_at <= time.monotonic():
            self._retry_at = time.monotonic() + engine.options.interval


def _baseline(listing: Listing | None,
              own_writes: dict[str, Entry | None]) -> dict[str, Entry] | None:
    """What a watcher starts from: the first round's listing with our writes applied."""
    return None if listing is None else entries_after(listing.entries, own_writes)


def _drain(events: queue.Queue[WatchEvent], stop: threading.Event) -> list[WatchEvent]:
    """Wait for an event, then collect everything that arrives within the batch window."""
    try:
        first = events.get(timeout=0.25)
    except queue.Empty:
        return []
    batch = [first]
    deadline = time.monotonic() + BATCH_WINDOW
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            batch.append(events.get(timeout=min(remaining, BATCH_LULL)))
        except queue.Empty:
            break
    while True:
        try:
            batch.append(events.get_nowait())
        except queue.Empty:
            return batch
