"""The engine: full rounds (plan, then apply); ``filesync.watchmode`` runs it in watch mode."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from filesync import __version__, guards
from filesync.activity import (
    PENDING_SHOWN,
    Activity,
    LocationView,
    action_view,
    conflict_views,
)
from filesync.concurrency import Concurrency, parallel_map
from filesync.eventwatch import DEFAULT_RESCAN
from filesync.excludes import Excludes
from filesync.executor import Executor, Stats
from filesync.guards import DeleteGuard, PausedDeletions, adopt_markers
from filesync.hubs import Hubs
from filesync.lease import DEFAULT_TTL, LEASE_DIR
from filesync.locations.base import Location
from filesync.model import RESERVED_DIR, TEMP_NAME, Entry, Listing, PathState
from filesync.planmemo import listings_after, listings_digest, planner_settings
from filesync.planner import Plan, PlanInput, plan
from filesync.report import brief, difference
from filesync.result import Err, ErrorKind, Result
from filesync.state import StateStore
from filesync.transfers import Progress, RateLimit
from filesync.versions import list_versions, location_labels, version_path
from filesync.watcher import Watcher
from filesync.watchmode import WatchLoop

log = logging.getLogger("filesync")

#: Up to this many paths, the state of a few paths is read by name, else all of it.
LOAD_BY_NAME = 5000

#: Another engine's temporary file untouched this long (seconds) is taken as abandoned.
FOREIGN_TEMP_AGE = 24 * 3600.0


@dataclass
class Options:
    """How the engine runs (from the command line)."""

    interval: float = 2.0
    dry_run: bool = False
    one_way: bool = False
    excludes: Excludes = field(default_factory=Excludes)
    concurrency: Concurrency = field(default_factory=Concurrency)
    conflict: str = "newest"
    keep_versions: int = 10
    keep_days: float = 30.0
    max_delete: float = 50.0
    force: bool = False
    #: How long a hub lease lasts without renewal (seconds); see ``filesync.lease``.
    lease_ttl: float = DEFAULT_TTL
    #: The run goes on watching after its first round (the guard then pauses, not stops).
    watching: bool = False
    #: Watch folders by polling too, never by OS events (``--poll``).
    poll: bool = False
    #: With OS events, list every location in full this often anyway (seconds).
    rescan: float = DEFAULT_RESCAN
    #: ``--checksum``: decide equality by SHA-256, reading every file each round.
    checksum: bool = False
    #: ``--bwlimit``: bytes per second for all transfers together; None: unlimited.
    bwlimit: float | None = None


@dataclass
class RoundReport:
    """What one full round found and did."""

    listings: dict[str, Listing | None]
    plan: Plan
    failures: int = 0
    interrupted: bool = False
    #: The mass-delete guard refused the round: nothing was applied.
    refused: bool = False

    @property
    def identical(self) -> bool:
        """True when the locations are known to be identical.

        That is: every location was reachable and nothing failed, was skipped or stayed
        undecided.
        """
        return (all(v is not None for v in self.listings.values()) and not self.failures
                and not self.plan.problems and not self.interrupted and not self.refused
                and not any(v.skipped for v in self.listings.values() if v is not None))


class Engine:
    """Keeps a list of locations identical; owns the watcher threads it starts."""

    def __init__(self, locations: Sequence[Location], store: StateStore, options: Options,
                 stop: threading.Event, activity: Activity | None = None) -> None:
        self.locations = {loc.key: loc for loc in locations}
        self.order = [loc.key for loc in locations]
        owner = store.owner_id()
        for location in locations:
            location.owner = owner
        self.store = store
        self.options = options
        self.stop = stop
        self.stats = Stats()
        #: Set when the mass-delete guard stopped the run (the exit status is then 1).
        self.refused = False
        self.guard = DeleteGuard(options.max_delete)
        #: Deletions the guard held back in watch mode (see ``PausedDeletions``).
        self.paused = PausedDeletions()
        #: Watch mode's watchers by location, told about our own writes (no echo).
        self.watchers: dict[str, Watcher] = {}
        #: Our writes before the watchers started: folded into their first baseline.
        self.own_writes: dict[str, dict[str, Entry | None]] = {}
        #: The round being applied (the progress display and the status document read it).
        self.progress = Progress()
        self.executor = Executor(self.locations, store, stop, self.stats, options.concurrency,
                                 keep_both=options.conflict == "keep-both",
                                 labels=location_labels(locations),
                                 retention=(options.keep_versions, options.keep_days),
                                 progress=self.progress,
                                 limit=RateLimit(options.bwlimit) if options.bwlimit else None)
        self._tolerance = {loc.key: loc.capabilities.mtime_tolerance_ns for loc in locations}
        self._memo_settings = planner_settings(
            __version__, self.order, {loc.key: loc.kind for loc in locations}, self._tolerance,
            options.one_way, options.conflict, options.excludes.patterns)
        self.hubs = Hubs(self.locations, store, owner, options.lease_ttl, stop)
        #: What status, the dashboard and the API see of this run.
        self.activity = activity or Activity(
            store.path, [LocationView(loc.key, loc.display, loc.kind) for loc in locations],
            "watch" if options.watching else "once")
        self.activity.progress = self.progress.snapshot
        self.executor.on_action.append(self.activity.action)
        #: Locations found out of reach at some point, and the problems reported (counted
        #: once each in the summary, however many rounds meet them).
        self._unreachable: set[str] = set()
        self._problems: set[str] = set()
        self._depth = 0
        #: Paths a round over a few paths could not settle, because some location could not
        #: speak for them (a failed lookup, a hub held by another engine, a parent folder
        #: still changing). Their watchers reported them already: watch mode tries again.
        self.unsettled: set[str] = set()

    def start(self) -> None:
        """Check markers and prune old versions: the work before the first round."""
        # Under the hubs' leases: two machines starting at once must not both mark a hub.
        with self.hubs.round(not self.options.dry_run):
            adopt_markers([loc for key, loc in self.locations.items()
                           if key not in self.hubs.unleased],
                          self.store, self.options.force, self.options.dry_run)
            if not self.options.dry_run:
                kept = [key for key in self.order if key not in self.hubs.unleased]
                self.prune(kept)
                self._remove_reserved_temps(kept)
                self.count_versions(kept)

    def count_versions(self, keys: Iterable[str]) -> None:
        """Tell the activity how many old versions these locations keep (and their bytes)."""
        for key in keys:
            found = list_versions(self.locations[key])
            if found.ok:
                self.activity.versions(key, len(found.value),
                                       sum(version.size for version in found.value))
            else:
                log.debug("cannot count the kept versions of %s: %s",
                          self.locations[key].display, found.message)

    def _remove_reserved_temps(self, keys: Iterable[str]) -> None:
        """Delete our own temporary files a killed run left in ``.filesync/``.

        Round listings never look there; a run killed while writing the journal, the
        lease's holder file or the marker leaves its temporary file there.
        """
        for key in keys:
            location = self.locations[key]
            found = location.scan(lambda path: path not in (RESERVED_DIR, LEASE_DIR))
            if not found.ok:
                continue
            for temp in found.value.temps:
                match = TEMP_NAME.match(temp.rpartition("/")[2])
                if (temp.startswith(RESERVED_DIR + "/") and match is not None
                        and match["owner"] == location.owner):
                    removed = location.delete(temp)
                    if not removed.ok:
                        log.warning("%s", removed.message)

    def prune(self, keys: Iterable[str]) -> None:
        """Apply the retention rules to these locations, each in a batch of its own."""
        for key in keys:
            location = self.locations[key]
            if not location.probe().ok:
                continue
            with location.batch() as batch:
                if batch.begun.ok:
                    self.executor.prune([key])
            for result in (batch.begun, batch.ended):
                if result is not None and not result.ok:
                    log.warning("pruning old versions in %s: %s", location.display,
                                result.message)

    # ----- full rounds --------------------------------------------------------------------
    def list_all(self) -> dict[str, Listing | None]:
        """List every location (remote ones in parallel); a failed listing becomes ``None``."""
        def one(location: Location) -> Result[Listing]:
            return location.list(self.options.excludes)

        locations = list(self.locations.values())
        results = parallel_map(one, locations, self.options.concurrency.listing_threads(
            locations), "list")
        listings: dict[str, Listing | None] = {}
        for location, listed in zip(locations, results, strict=True):
            listings[location.key] = None
            result = listed
            if location.key in self.hubs.unleased:
                result = Err(self.hubs.unleased[location.key], ErrorKind.UNAVAILABLE)
            self.reachable(location.key, result)
            if result.ok:
                listings[location.key] = result.value
                for warning in result.value.warnings:
                    log.warning("%s", warning)
            elif (self.options.dry_run and location.marker is None
                    and location.will_be_created()):
                log.info("%s does not exist yet; it would be created", location.display)
                listings[location.key] = Listing()
            else:
                log.error("%s is unavailable this round (nothing is deleted because of "
                          "it): %s", location.display, result.message)
        return listings

    def reachable(self, key: str, result: Result[object]) -> None:
        """Record whether a location answered (for the summary and status)."""
        if result.ok:
            self.activity.availability(key, True)
            return
        self.activity.availability(key, False, result.message)
        if key not in self._unreachable:
            self._unreachable.add(key)
            self.stats.unavailable += 1

    def _remove_stale_temps(self, listings: dict[str, Listing | None]) -> None:
        """Clean up temporary files a killed run left behind (never user files).

        Our own (this sync set's id in the name) are deleted. Another engine's may be an
        upload in flight, so they are left alone until a day old, then kept as a version
        rather than deleted: a name is no proof of whose file it is.
        """
        for key, listing in listings.items():
            if listing is None or self.options.dry_run:
                continue
            location = self.locations[key]
            for temp in listing.temps:
                match = TEMP_NAME.match(temp.rpartition("/")[2])
                own = match is not None and match["owner"] == location.owner
                if own or location.capabilities.temps_locked:
                    removed = location.delete(temp)
                    if removed.ok:
                        log.info("removed stale temporary file %s in %s", temp, key)
                    else:
                        log.warning("%s", removed.message)
                    continue
                self._set_aside_foreign_temp(location, temp)

    def _set_aside_foreign_temp(self, location: Location, temp: str) -> None:
        found = location.stat(temp)
        if not found.ok or found.value is None or found.value.is_dir:
            return
        age = time.time() - found.value.mtime_ns / 1e9
        if age < FOREIGN_TEMP_AGE:
            log.debug("%s in %s belongs to another filesync run; left alone", temp,
                      location.display)
            return
        kept = location.rename(temp, version_path(temp, self.executor.moment))
        if kept.ok:
            log.info("kept the abandoned temporary file %s of another filesync run in %s as "
                     "%s", temp, location.display, kept.value.path)
        else:
            log.warning("%s", kept.message)

    def make_plan(self, listings: dict[str, Listing | None],
                  paths: Iterable[str] | None = None) -> Plan:
        """Plan, fetching the content hashes the planner asks for, then plan again.

        A full round that looks exactly like the last one that planned nothing plans
        nothing without loading the state (``filesync.planmemo``).
        """
        digest = None
        if paths is None and not self.options.checksum:
            digest = listings_digest(self.order, listings, self._memo_settings)
            if digest is not None and digest == self.store.plan_memo():
                log.debug("nothing changed since the last round, which had nothing to do")
                return Plan()
        wanted = None if paths is None else list(paths)
        inputs = self._plan_input(listings, self.store.load(wanted), wanted)
        result = plan(inputs)
        if result.hash_requests:
            log.debug("comparing content of %d files by SHA-256", len(result.hash_requests))
            inputs.hashes = self.executor.hashes(result.hash_requests)
            result = plan(inputs)
        left = set(result.unresolved.values())  # conflicts for the user: not errors
        for problem in result.problems:
            log.error("%s", problem)
            if problem not in left and problem not in self._problems:
                self._problems.add(problem)
                self.stats.errors += 1
        if digest is not None and not self.options.dry_run and result.empty():
            self.store.set_plan_memo(digest)
        return result

    def _plan_input(self, listings: dict[str, Listing | None], state: dict[str, PathState],
                    paths: list[str] | None) -> PlanInput:
        return PlanInput(self.order, listings, state, self._tolerance, {}, paths,
                         self.options.one_way,
                         self.options.excludes.excluded if self.options.excludes else None,
                         self.options.conflict,
                         {key: loc.name_problem for key, loc in self.locations.items()},
                         self.options.checksum)

    def _remember_quiet_after(self, listings: dict[str, Listing | None], done: Plan) -> None:
        """After a full round that did all it planned, remember that the next has nothing to do.

        That holds if nothing else changes (``filesync.planmemo``). Only the paths the
        round looked at one by one can have anything left: the others were in sync as
        recorded, and stay so. They are planned again on the listings the round's writes
        left, against the state as now stored.
        """
        if self.options.dry_run or self.options.checksum or not done.decisions:
            return  # a round that planned nothing stored its memo already
        after = listings_after(listings, self.executor.applied)
        digest = listings_digest(self.order, after, self._memo_settings)
        if digest is None:
            return
        looked_at = sorted(done.looked_at)
        # Many paths are read faster in one pass over the state than by name.
        state = self.store.load(None if len(looked_at) > LOAD_BY_NAME else looked_at)
        if plan(self._plan_input(after, state, looked_at)).empty():
            self.store.set_plan_memo(digest)

    def run_round(self, paths: Iterable[str] | None = None,
                  listings: dict[str, Listing | None] | None = None) -> RoundReport:
        """Plan and apply one round over every path (or over ``paths`` with fresh stats).

        Shared remote locations are held under their leases for the whole round.
        """
        before, started = dataclasses.replace(self.stats), time.monotonic()
        self._depth += 1
        try:
            with self.hubs.round(not self.options.dry_run):
                report = self._round(paths, listings)
        finally:
            self._depth -= 1
        if self._depth == 0 and not self.options.dry_run:
            self._round_done(report, difference(self.stats, before),
                             time.monotonic() - started)
        return report

    def _round_done(self, report: RoundReport, done: Stats, seconds: float) -> None:
        """Tell the activity (and, in watch mode, the log) what a round did."""
        conflicts = self.store.conflicts()
        self.stats.unresolved = done.unresolved = sum(manual for _, _, manual in conflicts)
        self.activity.conflicts(conflict_views(conflicts))
        if report.refused:
            result = "refused"
        elif report.interrupted:
            result = "interrupted"
        else:
            result = "ok" if report.identical else "failed"
        self.activity.round_finished(result, done, brief(done))
        if self.executor.versioned:
            self.count_versions(sorted(self.executor.versioned))
        if self.options.watching and brief(done) != "nothing to do":
            log.info("round: %s in %.1f s", brief(done), seconds)

    def _round(self, paths: Iterable[str] | None,
               listings: dict[str, Listing | None] | None) -> RoundReport:
        doubted = self.hubs.take_doubted()
        if paths is not None and doubted is None:
            paths = listings = None  # a hub's every file is in doubt: look at everything
        if listings is None:
            listings = self.list_all()
            self._remove_stale_temps(listings)
        elif paths is not None and doubted:
            paths = list(paths)
            self._add_paths(listings, sorted(doubted - set(paths)))
            paths += sorted(doubted - set(paths))
        if paths is None:  # this round looks at everything
            self.unsettled.clear()
            self.hubs.missed_round = False
        else:
            seen_by = [listing.sees if listing is not None else lambda _path: False
                       for listing in listings.values()]
            self.unsettled.update(path for path in paths
                                  if not all(sees(path) for sees in seen_by))
        current_plan = self.make_plan(listings, paths)
        report = RoundReport(listings, current_plan)
        skipped = {path for listing in listings.values() if listing is not None
                   for path in listing.skipped}
        skipped.update(path for _, path in current_plan.unholdable)
        if paths is None:
            self.stats.skipped = len(skipped)
        if self.options.dry_run:
            return report  # the command line prints the plan
        if not self.options.force:
            self.paused.hold(current_plan, paths)
            # Counting every location's files costs a pass over all paths: only when needed.
            refusals = self.guard.problems(current_plan, self.store.file_counts(),
                                           time.monotonic(), _file_counts(listings)
                                           ) if guards.deletes(current_plan) else []
            for refusal in refusals:
                log.error("%s", refusal)
            self.stats.refusals += bool(refusals)
            if refusals and self.options.watching:
                held = self.paused.pause(current_plan)
                log.warning("watch mode goes on: the deletion of %d paths is paused (they "
                            "are kept where they still are) and everything else is synced. "
                            "To apply it, stop watching and run once with --once --force; "
                            "putting the files back undoes it", held)
            elif refusals:
                report.refused = self.refused = True
                self.stop.set()
                return report
        self.activity.paused(self.paused.where)
        copies_before = self.stats.conflict_copies
        self.guard.record(current_plan, time.monotonic())
        self.hubs.intend(current_plan)
        actions = current_plan.actions()
        self.activity.pending([action_view(action) for action in actions[:PENDING_SHOWN]])
        outcome = self.executor.apply(current_plan)
        failed = {(failure.location, failure.path) for failure in outcome.failures}
        self.activity.pending([action_view(action) for action in actions
                               if (action.target, action.path) in failed][:PENDING_SHOWN])
        self.hubs.wrote(current_plan, self.executor.applied)
        self._acknowledge(self.executor.applied)
        self._acknowledge(_recorded_holders(current_plan, listings))
        report.failures = len(outcome.failures)
        report.interrupted = outcome.interrupted
        if paths is None and not (outcome.failures or outcome.interrupted or outcome.revisit):
            self._remember_quiet_after(listings, current_plan)
        if outcome.revisit and not outcome.interrupted:
            # A rename carried an edit made meanwhile: settle who wins now, not next time.
            ordered = sorted(outcome.revisit)
            self._round(ordered, self.stat_paths(ordered))
        if self.stats.conflict_copies > copies_before and not outcome.interrupted \
                and paths is None:
            # The conflict copies are new files in their own locations: spread them now.
            log.info("spreading the conflict copies to every location")
            return self.run_round()
        return report

    def _add_paths(self, listings: dict[str, Listing | None], paths: Sequence[str]) -> None:
        """Extend a round's fresh stats (``stat_paths``) with ``paths``."""
        if not paths:
            return
        more = self.stat_paths(paths)
        for key, listing in listings.items():
            extra = more.get(key)
            if listing is None:
                continue
            if extra is None:
                listing.blind.update(paths)
            else:
                listing.entries.update(extra.entries)
                listing.blind.update(extra.blind)

    def _acknowledge(self, applied: dict[str, dict[str, Entry | None]]) -> None:
        """Tell the watchers what we wrote, so our own writes never come back as events."""
        for key, entries in applied.items():
            watcher = self.watchers.get(key)
            if watcher is not None:
                watcher.acknowledge(entries)
            else:
                self.own_writes.setdefault(key, {}).update(entries)

    def stat_paths(self, paths: Sequence[str]) -> dict[str, Listing | None]:
        """Fresh entries for ``paths`` at every location; failures make those paths blind.

        So do entries a location's watcher has not seen settle yet (a file still being
        written there): they are left out of this round and revisited once stable.
        """
        listings: dict[str, Listing | None] = {}
        for key, location in self.locations.items():
            listings[key] = None
            if key in self.hubs.unleased or not location.probe().ok:
                continue  # blind: the round leaves these paths unsettled
            listing = Listing()
            watcher = self.watchers.get(key)
            for path, result in location.stat_many(paths).items():
                if not result.ok:
                    listing.blind.add(path)
                    log.debug("%s", result.message)
                elif watcher is not None and not watcher.settled(path, result.value):
                    listing.blind.add(path)
                    log.debug("%s is still changing in %s; waiting for it to settle", path,
                              location.display)
                elif result.value is not None:
                    listing.entries[path] = result.value
            # Probe again: a root that vanished during the lookups made every path look absent.
            if location.probe().ok and len(listing.blind) < len(paths):
                listings[key] = listing
        return listings

    # ----- watch mode ---------------------------------------------------------------------
    def watch(self, first: RoundReport) -> None:
        """Keep syncing until ``stop`` is set (``filesync.watchmode``); watchers are joined."""
        WatchLoop(self).run(first)

def _file_counts(listings: dict[str, Listing | None]) -> dict[str, int]:
    """How many files each listed location holds now."""
    return {key: sum(not entry.is_dir for entry in listing.entries.values())
            for key, listing in listings.items() if listing is not None}


def _recorded_holders(current: Plan, listings: dict[str, Listing | None]
                      ) -> dict[str, dict[str, Entry | None]]:
    """The entries the state now records as held without a write (for the watchers).

    A watcher that learns of them reports their next change, a deletion included, even
    if it never reported them itself.
    """
    held: dict[str, dict[str, Entry | None]] = {}
    for decision in current.decisions:
        for key in decision.holders:
            listing = listings.get(key)
            entry = listing.entries.get(decision.path) if listing is not None else None
            if entry is not None:
                held.setdefault(key, {})[decision.path] = entry
    return held
