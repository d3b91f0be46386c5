"""The engine's side of shared remote locations (hubs): leases and journals around rounds.

Any remote location that can be leased (``capabilities.atomic_claim``) may be a hub that
engines on other machines sync with too. Each round that may change it runs under its
lease (``filesync.lease``); on a hub with a coarse clock the round also takes in and
extends the hub journal (``filesync.journal``) so that no machine misses another's write.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping

from filesync.journal import Journal, read_journal, write_journal
from filesync.lease import Lease, acquire
from filesync.locations.base import Location
from filesync.model import Entry
from filesync.planner import Op, Plan
from filesync.result import ErrorKind
from filesync.state import StateStore

log = logging.getLogger("filesync")

#: Clocks coarser than this cannot tell two quick writes apart: such hubs keep a journal.
COARSE_CLOCK_NS = 1_000_000


class Hubs:
    """Leases and journals of the remote locations of one engine."""

    def __init__(self, locations: Mapping[str, Location], store: StateStore, owner: str,
                 ttl: float, stop: threading.Event) -> None:
        self.locations = locations
        self.store = store
        self.owner = owner
        self.ttl = ttl
        self.stop = stop
        self.keys = [key for key, location in locations.items()
                     if location.capabilities.atomic_claim and location.capabilities.remote]
        self.journaled = {key for key in self.keys
                          if locations[key].capabilities.mtime_precision_ns >= COARSE_CLOCK_NS}
        #: Hubs whose lease could not be taken this round (and why): they sit it out.
        self.unleased: dict[str, str] = {}
        self._leases: dict[str, Lease] = {}
        self._journals: dict[str, Journal] = {}
        self._depth = 0
        #: Paths whose hub records this round's journals put in doubt (None: all).
        self._doubted: set[str] | None = set()
        #: A round left a hub out: watch mode runs a full round again soon (which clears it).
        self.missed_round = False

    @contextlib.contextmanager
    def round(self, enabled: bool = True) -> Iterator[None]:
        """Hold every hub's lease (re-entrant) and take in their journals, for one round."""
        if not enabled or self._depth or not self.keys:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth += 1
        try:
            for key in self.keys:
                self._take(key)
            yield
        finally:
            # Kept until a full round clears it (the engine does): a later round over a few
            # paths does not make up for a full one that left a hub out.
            self.missed_round = self.missed_round or bool(self.unleased)
            for lease in self._leases.values():
                lease.release()
            self._leases.clear()
            self._journals.clear()
            self.unleased.clear()
            self._depth -= 1

    def _take(self, key: str) -> None:
        location = self.locations[key]
        taken = acquire(location, self.owner, self.ttl, wait=10 * self.ttl, stop=self.stop)
        if not taken.ok:
            # The round reports it as unavailable, as any location out of reach.
            self.unleased[key] = taken.message
            return
        self._leases[key] = taken.value
        if key in self.journaled:
            self._take_in_journal(key)

    def _take_in_journal(self, key: str) -> None:
        """Doubt our records of what other engines wrote to the hub since we last looked."""
        location = self.locations[key]
        seen = self.store.journal_seen(key)
        found = read_journal(location)
        if not found.ok and found.kind is not ErrorKind.INVALID:
            log.warning("%s: %s", location.display, found.message)
            return
        if not found.ok:
            log.warning("%s", found.message)
            # Start again past every number anyone may have seen: all of them doubt all.
            journal = Journal(seq=seen + 1, pruned_through=seen + 1)
            doubted: dict[str, str | None] | None = None
        else:
            journal = found.value
            doubted = journal.doubted(self.owner, seen)
        if doubted is None:
            log.info("%s: files other machines wrote there may not show by their size and "
                     "time; comparing them by content this round", location.display)
            self.store.doubt_records(key, None)
            self._doubted = None
        elif doubted:
            states = self.store.load(list(doubted))
            agreed_as = {path: state.agreed.sha256 for path, state in states.items()
                         if state.agreed is not None and not state.agreed.deleted}
            unsure = [path for path, sha in doubted.items()
                      if sha is None or agreed_as.get(path) != sha]
            if unsure:
                log.debug("%s: %d files written there by other machines are compared by "
                          "content", location.display, len(unsure))
                self.store.doubt_records(key, unsure)
                if self._doubted is not None:
                    self._doubted.update(unsure)
        self.store.set_journal_seen(key, journal.seq)
        self._journals[key] = journal

    def take_doubted(self) -> set[str] | None:
        """The paths put in doubt since last asked (None: every path); a round plans them."""
        doubted, self._doubted = self._doubted, set()
        return doubted

    def news(self) -> set[str] | None:
        """Paths other engines wrote to journaled hubs since this one last looked.

        For watch mode: such a write may not show in a listing at all (a coarse clock),
        so no watcher would report it. None: every path is in doubt (a full round).
        """
        paths: set[str] = set()
        for key in sorted(self.journaled):
            found = read_journal(self.locations[key])
            if not found.ok:
                continue  # out of reach: its watcher reports that
            doubted = found.value.doubted(self.owner, self.store.journal_seen(key))
            if doubted is None:
                return None
            paths.update(doubted)
        return paths

    def intend(self, plan: Plan) -> None:
        """Before applying: note the files the plan writes to journaled hubs.

        Written first, so another machine doubts them even when this engine is killed
        between the write and its record in the journal (a doubt costs one comparison).
        """
        writes: dict[str, dict[str, str | None]] = {}
        for action in plan.actions():
            if action.op is Op.COPY and action.target in self._journals:
                writes.setdefault(action.target, {})[action.path] = None
        for key, paths in writes.items():
            self._extend(key, paths)

    def wrote(self, plan: Plan, applied: Mapping[str, Mapping[str, Entry | None]]) -> None:
        """After applying: record what was written to journaled hubs, with its hash."""
        sha_of = {decision.path: decision.agreed.sha256 for decision in plan.decisions}
        for key in self._journals:
            writes = {path: sha_of.get(path) for path, entry in applied.get(key, {}).items()
                      if entry is not None and not entry.is_dir}
            if writes:
                self._extend(key, writes)

    def _extend(self, key: str, writes: dict[str, str | None]) -> None:
        journal = self._journals[key]
        journal.record(self.owner, writes, time.time())
        written = write_journal(self.locations[key], journal)
        if not written.ok:
            log.warning("cannot update the hub journal of %s: %s", self.locations[key].display,
                        written.message)
            return
        self.store.set_journal_seen(key, journal.seq)
