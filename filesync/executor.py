"""Apply a plan: re-check, transfer, delete, and record each result in the state store."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from filesync.concurrency import Concurrency, parallel_map
from filesync.locations.base import Batch, Location
from filesync.model import Entry, Record, still_holds
from filesync.planner import Action, Decision, Op, Plan, record_of
from filesync.result import Err, ErrorKind, Ok, Result
from filesync.state import StateStore
from filesync.transfers import Progress, RateLimit
from filesync.versions import conflict_path, prune, version_path

log = logging.getLogger("filesync")


@dataclass
class Stats:
    """What a run did, for the closing summary."""

    copied: int = 0
    renamed: int = 0
    deleted: int = 0
    folders_made: int = 0
    folders_removed: int = 0
    conflicts: int = 0
    errors: int = 0
    bytes_moved: int = 0
    versions_kept: int = 0
    conflict_copies: int = 0
    #: Paths seen but not synced in the last full round (links, unsafe or unholdable names).
    skipped: int = 0
    #: Rounds the mass-delete guard refused (or, in watch mode, whose deletions it paused).
    refusals: int = 0
    #: Locations that were out of reach at some point of the run.
    unavailable: int = 0
    #: Paths left in conflict (``--conflict manual``) in the last full round.
    unresolved: int = 0


@dataclass
class Failure:
    """An action that did not happen, and why."""

    path: str
    location: str
    message: str
    kind: ErrorKind = ErrorKind.FAILED


@dataclass
class Outcome:
    """The result of applying one plan."""

    failures: list[Failure] = field(default_factory=list)
    interrupted: bool = False
    #: Paths to look at again at once: a rename carried an edit made meanwhile.
    revisit: set[str] = field(default_factory=set)


class SourceChangedError(OSError):
    """The source of a copy changed while it was read; the partial copy is discarded."""


class StoppedError(InterruptedError):
    """The user asked filesync to stop; the copy in flight is discarded."""


class _CheckedReader:
    """Wraps a source stream: counts, hashes, and stops on request or on a size mismatch.

    Backends read it to EOF before renaming their temporary file into place, so raising
    here keeps a changed or interrupted copy from ever appearing under its real name. At
    EOF, ``recheck`` (when given) looks at the source again: a file rewritten in place
    during the copy keeps its size but not its mtime, and its torn copy must not land.
    """

    def __init__(self, stream: BinaryIO, expected: int, stop: threading.Event,
                 recheck: Callable[[], bool] | None = None,
                 counted: Callable[[int], None] | None = None,
                 limit: RateLimit | None = None) -> None:
        self._stream = stream
        self._expected = expected
        self._stop = stop
        self._recheck = recheck
        #: Told every byte count read (the round's progress).
        self._counted = counted
        #: ``--bwlimit``: every read waits for its bytes, so every backend pair is limited.
        self._limit = limit
        self.count = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        if self._stop.is_set():
            raise StoppedError("stopped by the user")
        if self._limit is not None and size is not None and size > 0:
            size = min(size, self._limit.piece)  # small reads: no big burst at once
        data = self._stream.read(size)
        if self._limit is not None and not self._limit.consume(len(data), self._stop):
            raise StoppedError("stopped by the user")
        if self._counted is not None:
            self._counted(len(data))
        self.count += len(data)
        if self.count > self._expected or (not data and self.count != self._expected):
            raise SourceChangedError(
                f"the source changed while being copied ({self.count} bytes read, "
                f"{self._expected} expected); it will be copied again")
        if not data and self._recheck is not None:
            recheck, self._recheck = self._recheck, None
            if not recheck():
                raise SourceChangedError(
                    "the source changed while being copied; the copy was discarded and it "
                    "will be copied again once it stops changing")
        self.digest.update(data)
        return data

    def close(self) -> None:
        self._stream.close()


def _recheck(source: Location, path: str, expected: Entry,
             stream: BinaryIO) -> Callable[[], bool] | None:
    """How to tell, once a copy is read, that its source did not change meanwhile.

    A local file can be rewritten in place while it is read: the open file's own times
    tell (one ``fstat``); other local sources are looked up again. A remote source is not
    looked at again (that would need a second connection per transfer); its byte count
    is still checked.
    """
    if source.capabilities.remote:
        return None
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        def look_again() -> bool:
            found = source.stat(path)
            return found.ok and still_holds(found.value, expected)

        return look_again

    def same_file() -> bool:
        info = os.fstat(descriptor)
        return info.st_size == expected.size and info.st_mtime_ns == expected.mtime_ns

    return same_file


def _phase(action: Action) -> tuple[int, int]:
    """The phase of an action; actions of one phase never depend on each other.

    Phases: deletions; folders removed one depth at a time, deepest first; folders made,
    shallowest first; copies.
    """
    op, depth, _ = action.sort_key()
    return op, depth if action.op in (Op.RMDIR, Op.MKDIR) else 0


class Executor:
    """Runs plans against the locations and keeps the state store in step."""

    def __init__(self, locations: Mapping[str, Location], store: StateStore,
                 stop: threading.Event, stats: Stats,
                 concurrency: Concurrency | None = None,
                 keep_both: bool = False, labels: Mapping[str, str] | None = None,
                 retention: tuple[int, float] = (10, 30.0), *,
                 progress: Progress | None = None, limit: RateLimit | None = None) -> None:
        self.locations = locations
        self.store = store
        self.stop = stop
        self.stats = stats
        self.concurrency = concurrency or Concurrency()
        self.workers = self.concurrency.transfers
        #: ``--conflict keep-both``: a losing edit is kept under a visible conflict name.
        self.keep_both = keep_both
        self.labels = labels or {}
        #: ``--keep-versions`` and ``--keep-days``, applied where a round kept versions.
        self.retention = retention
        #: When the round being applied started: names the versions it keeps.
        self.moment = dt.datetime.now(dt.timezone.utc)
        #: Locations that got new versions in the last ``apply`` (they may need pruning).
        self.versioned: set[str] = set()
        #: What the last ``apply`` changed: location -> path -> entry now (None: removed).
        self.applied: dict[str, dict[str, Entry | None]] = {}
        #: Paths the last ``apply`` wants looked at again (see ``Outcome.revisit``).
        self.revisit: set[str] = set()
        self._digests: dict[tuple[str, str], str] = {}
        #: The round being applied, for progress displays and the status document.
        self.progress = progress or Progress()
        #: ``--bwlimit``, shared by every transfer.
        self.limit = limit
        #: Called with every applied action (the fields of its log line's ``event``).
        self.on_action: list[Callable[[dict[str, Any]], None]] = []

    # ----- hashes -------------------------------------------------------------------------
    def hashes(self, requests: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Compute the requested SHA-256 digests in parallel.

        A file that cannot be read gets a digest that matches nothing, so it is treated as
        different (copied), never as equal.
        """
        wanted = sorted(requests)
        found: dict[tuple[str, str], str] = {}

        def one(item: tuple[str, str]) -> Result[str]:
            return self.locations[item[0]].sha256(item[1])

        remote = [item for item in wanted if self.locations[item[0]].capabilities.remote]
        results = {item: one(item) for item in wanted
                   if not self.locations[item[0]].capabilities.remote}
        results.update(zip(remote, parallel_map(one, remote, self.workers, "hash"),
                           strict=True))
        for item, result in results.items():
            if result.ok:
                found[item] = result.value
            else:
                log.warning("%s", result.message)
                found[item] = f"unreadable:{item[0]}"
        return found

    # ----- applying -----------------------------------------------------------------------
    def apply(self, plan: Plan) -> Outcome:
        """Apply every decision of ``plan``; one failing action does not stop the others.

        Nothing is overwritten or deleted without keeping it: as a version under
        ``.filesync/versions/`` or, for a losing edit with keep-both, as a conflict copy.
        """
        outcome = Outcome()
        self.moment = dt.datetime.now(dt.timezone.utc)
        self.versioned = set()
        self.applied = {}
        self.revisit = set()
        decisions = {d.path: d for d in plan.decisions}
        with self.store.batch():
            for decision in plan.decisions:
                self._start_decision(decision)
        actions = plan.actions()
        self.progress.begin(len(actions), sum(a.source_entry.size for a in actions
                                              if a.op is Op.COPY and a.source_entry))
        try:
            self._apply_actions(actions, decisions, outcome)
        finally:
            self.progress.end()
        outcome.revisit = set(self.revisit)
        for failure in outcome.failures:
            self.stats.errors += 1
            log.error("failed: %s in %s: %s", failure.path, failure.location, failure.message)
        return outcome

    def _apply_actions(self, actions: list[Action], decisions: Mapping[str, Decision],
                       outcome: Outcome) -> None:
        involved = sorted({a.target for a in actions})
        pending_by_location: dict[str, list[tuple[Action, Entry | None]]] = {}
        batches: dict[str, Batch] = {}
        with self.store.batch():
            with contextlib.ExitStack() as stack:
                for key in involved:
                    batch = batches[key] = stack.enter_context(self.locations[key].batch())
                    if not batch.begun.ok:
                        log.error("%s", batch.begun.message)
                self._run(actions, decisions, outcome, pending_by_location)
                # Inside the round's batch, so a transactional backend (ZIP) rewrites once.
                self.prune(self.versioned)
            for key in involved:
                self._settle(key, batches[key], decisions, outcome,
                             pending_by_location.get(key, []))

    def prune(self, keys: Iterable[str]) -> None:
        """Apply the retention rules (--keep-versions, --keep-days) to these locations."""
        keep, days = self.retention
        now = dt.datetime.now(dt.timezone.utc)
        for key in sorted(keys):
            pruned = prune(self.locations[key], keep, days, now)
            if not pruned.ok:
                log.warning("pruning old versions in %s: %s", key, pruned.message)

    def _start_decision(self, decision: Decision) -> None:
        """Record the new version and the locations that already hold it."""
        self.store.set_agreed(decision.path, decision.agreed, decision.holders)
        for key in decision.forget:
            self.store.set_record(decision.path, key, None)
        if decision.agreed.deleted:
            self.store.forget_tombstone(decision.path)
        for loser in decision.conflicts:
            self.stats.conflicts += 1
            log.warning("conflict %s: the edit in %s loses to the newer one in %s",
                        decision.path, loser, decision.winner)

    def _remote(self, action: Action) -> bool:
        return self.locations[action.target].capabilities.remote or (
            action.source is not None and self.locations[action.source].capabilities.remote)

    def _run(self, actions: list[Action], decisions: Mapping[str, Decision], outcome: Outcome,
             pending: dict[str, list[tuple[Action, Entry | None]]]) -> None:
        """Run the actions phase by phase (see ``_phase``).

        Within a phase no action depends on another, so those touching a remote location
        run in parallel (round trips dominate there); local ones run on this thread.
        """
        with self.concurrency.transfer_pool("transfer") as pool:
            for _, grouped in itertools.groupby(actions, key=_phase):
                phase = list(grouped)
                for action in phase:
                    if self.stop.is_set():
                        outcome.interrupted = True
                        return
                    if not self._remote(action):
                        self._finish(action, self._apply_one(action), decisions, outcome,
                                     pending)
                remote = [action for action in phase if self._remote(action)]
                self._run_pooled(pool, remote, decisions, outcome, pending)
                if self.stop.is_set():
                    outcome.interrupted = True
                    return

    def _run_pooled(self, pool: ThreadPoolExecutor, actions: list[Action],
                    decisions: Mapping[str, Decision], outcome: Outcome,
                    pending: dict[str, list[tuple[Action, Entry | None]]]) -> None:
        """Run ``actions`` on the pool, a bounded number at a time; results land here."""
        queued = iter(actions)
        running: dict[Future[Result[Entry | None]], Action] = {}
        while True:
            while len(running) < self.workers * 2 and not self.stop.is_set():
                upcoming = next(queued, None)
                if upcoming is None:
                    break
                running[pool.submit(self._apply_one, upcoming)] = upcoming
            if not running:
                return
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                action = running.pop(future)
                self._finish(action, future.result(), decisions, outcome, pending)

    def _finish(self, action: Action, result: Result[Entry | None],
                decisions: Mapping[str, Decision], outcome: Outcome,
                pending: dict[str, list[tuple[Action, Entry | None]]]) -> None:
        self.progress.action_done()
        if not result.ok:
            if not self.stop.is_set():
                outcome.failures.append(Failure(action.path, action.target, result.message,
                                                result.kind))
            return
        if self.locations[action.target].capabilities.transactional:
            pending.setdefault(action.target, []).append((action, result.value))
        else:
            self._record(action, result.value, decisions[action.path])

    def _settle(self, key: str, batch: Batch, decisions: Mapping[str, Decision],
                outcome: Outcome, pending: list[tuple[Action, Entry | None]]) -> None:
        """Record what a transactional location's batch landed; the rest are failures."""
        ended = batch.ended
        if ended is not None and not ended.ok:
            for action, _ in pending:
                outcome.failures.append(Failure(action.path, key, ended.message, ended.kind))
            if not pending:
                log.error("%s", ended.message)
            return
        for action, entry in pending:
            if action.path in batch.refused:
                outcome.failures.append(Failure(action.path, key, batch.refused[action.path],
                                                ErrorKind.CHANGED))
            else:
                self._record(action, entry, decisions[action.path])

    def _record(self, action: Action, entry: Entry | None, decision: Decision) -> None:
        """Log the applied action and store what the target holds now."""
        gen = decision.agreed.gen
        target, path = action.target, action.path
        self.applied.setdefault(target, {})[path] = entry
        if action.op is Op.COPY:
            assert entry is not None and action.source_entry is not None
            self.stats.copied += 1
            self.stats.bytes_moved += action.source_entry.size
            self.store.set_record(path, target, record_of(entry, gen))
            if action.expect is not None and not action.expect.is_dir:
                self._count_kept(action)
            digest = self._digests.pop((target, path), None)
            if digest and decision.agreed.sha256 is None:
                decision.agreed.sha256 = digest
                self.store.set_sha(path, gen, digest)
            verb = "conflict" if action.conflict else "copy"
            self._announce(action, f"{verb} {path}  {action.source} -> {target}")
        elif action.op is Op.RENAME:
            assert entry is not None and action.from_path is not None
            self.stats.renamed += 1
            self.applied[target][action.from_path] = None
            self.store.set_record(action.from_path, target, None)
            self.store.forget_tombstone(action.from_path)
            if action.keeps_record:
                self.store.set_record(path, target, record_of(entry, gen))
            else:
                self.revisit.add(path)
            self._announce(action, f"rename {action.from_path} -> {path}  in {target}")
        elif action.op is Op.MKDIR:
            self.stats.folders_made += 1
            self.store.set_record(path, target, Record(gen, True))
            self._announce(action, f"mkdir {path}  in {target}")
        else:
            if action.op is Op.DELETE:
                self.stats.deleted += 1
                self._count_kept(action)
            else:
                self.stats.folders_removed += 1
            self.store.set_record(path, target, None)
            self.store.forget_tombstone(path)
            slash = "/" if action.op is Op.RMDIR else ""
            self._announce(action, f"delete {path}{slash}  in {target}")

    def _announce(self, action: Action, message: str) -> None:
        """Log an applied action and tell ``on_action``; both get the same fields."""
        event = {"action": action.op.name.lower(), "path": action.path,
                 "source": action.source, "target": action.target,
                 "from_path": action.from_path, "message": message}
        log.info("%s", message, extra={"event": event})
        for listener in self.on_action:
            listener(event)

    def _count_kept(self, action: Action) -> None:
        if self._as_conflict_copy(action):
            self.stats.conflict_copies += 1
            log.info("kept the losing edit of %s in %s as %s", action.path, action.target,
                     self._kept_name(action))
        else:
            self.stats.versions_kept += 1
            self.versioned.add(action.target)

    def _as_conflict_copy(self, action: Action) -> bool:
        return self.keep_both and action.conflict

    def _kept_name(self, action: Action) -> str:
        """Where the content an action overwrites or deletes is kept."""
        if self._as_conflict_copy(action):
            label = self.labels.get(action.target, "other")
            return conflict_path(action.path, self.moment, label)
        return version_path(action.path, self.moment)

    def _apply_one(self, action: Action) -> Result[Entry | None]:
        """Re-check the target (and source), then act; runs on worker threads for copies."""
        target = self.locations[action.target]
        found = target.stat(action.path)
        if not found.ok:
            return found
        if action.op is Op.MKDIR and found.value is not None and found.value.is_dir:
            return Ok(found.value)  # made meanwhile (a rename creates its folders): done
        if not still_holds(found.value, action.expect):
            return Err("changed since the plan was made; it will be looked at again",
                       ErrorKind.CHANGED)
        if action.op is Op.DELETE:
            kept = target.rename(action.path, self._kept_name(action))
            return kept if not kept.ok else Ok(None)
        if action.op is Op.RENAME:
            assert action.from_path is not None
            moving = target.stat(action.from_path)
            if not moving.ok:
                return moving
            if not still_holds(moving.value, action.source_entry):
                return Err(f"{action.from_path!r} changed since the plan was made; it will be "
                           "looked at again", ErrorKind.CHANGED)
            renamed = target.rename(action.from_path, action.path)
            return renamed if not renamed.ok else Ok(renamed.value)
        if action.op is Op.RMDIR:
            removed = target.rmdir(action.path)
            # A folder someone removed meanwhile is what this action wanted anyway.
            gone = not removed.ok and removed.kind is ErrorKind.NOT_FOUND
            return removed if not removed.ok and not gone else Ok(None)
        if action.op is Op.MKDIR:
            return target.mkdir(action.path)
        return self._copy(action, target)

    def _copy(self, action: Action, target: Location) -> Result[Entry | None]:
        assert action.source is not None and action.source_entry is not None
        source = self.locations[action.source]
        expected = action.source_entry
        opened = source.open_read(action.path)
        if not opened.ok:
            return opened
        recheck = _recheck(source, action.path, expected, opened.value)
        handle = self.progress.started(action.path, target.display, expected.size)
        reader = _CheckedReader(opened.value, expected.size, self.stop, recheck,
                                lambda count: self.progress.advance(handle, count), self.limit)
        try:
            keep = None
            if action.expect is not None and not action.expect.is_dir:
                keep = self._kept_name(action)
            written = target.write(action.path, reader, expected.mtime_ns, keep_old_as=keep,
                                   expect=action.expect, mode=expected.mode)
        finally:
            reader.close()
            self.progress.finished(handle)
        if not written.ok:
            return written
        self._digests[(action.target, action.path)] = reader.digest.hexdigest()
        return Ok(written.value)
