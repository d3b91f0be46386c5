"""Run a prepared set of locations: the sync lock, the state, the engine, the summary.

Shared by the command line and the Python API (``filesync.api``); everything that can
fail with exit status 2 was checked before (``filesync.cli``).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from filesync.activity import Activity, LocationView
from filesync.engine import Engine, Options
from filesync.locations import Location
from filesync.progress import ProgressDisplay
from filesync.report import print_plan, summary
from filesync.result import Err, ErrorKind, Ok, Result
from filesync.state import StateStore, cache_path, failure_message

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: How long a run waits for the sync lock before saying another run holds it (seconds).
LOCK_PATIENCE = 1.0

log = logging.getLogger("filesync")


def run_set(locations: Sequence[Location], options: Options, state_path: Path, once: bool,
            stop: threading.Event, on_engine: Callable[[Engine], None] | None = None,
            progress_line: bool = True, dashboard: tuple[str, int] | None = None) -> int:
    """Sync ``locations`` under the set's lock (once, or watching until ``stop``).

    Returns the exit status; ``on_engine`` is given the engine as soon as it exists. With
    ``progress_line`` a live progress line is drawn on stderr when it is a terminal;
    ``dashboard`` is the address the web dashboard serves at (watch mode).
    """
    activity = Activity(state_path, [LocationView(loc.key, loc.display, loc.kind)
                                     for loc in locations], "once" if once else "watch",
                        settings_of(options))
    with _state_lock(state_path) as locked, contextlib.ExitStack() as stack:
        if not locked.ok:
            log.error("%s", locked.message)
            return EXIT_USAGE
        if dashboard is not None:
            from filesync.dashboard import Dashboard  # noqa: PLC0415 - http.server on demand

            server = Dashboard(dashboard, activity.document)
            started = server.start()
            if not started.ok:
                log.error("%s", started.message)
                return EXIT_USAGE
            stack.callback(server.stop)
        return _run(locations, options, state_path, once, stop, on_engine, progress_line,
                    activity)


@contextlib.contextmanager
def _state_lock(state_path: Path) -> Iterator[Result[None]]:
    """Hold an exclusive lock so two runs never sync the same set of locations at once."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only, so imported where it is used
    except ImportError:  # not on POSIX: run without the lock
        yield Ok(None)
        return
    lock_path = state_path.with_name(state_path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        yield Err(f"cannot create lock file {lock_path}: {exc.strerror or exc}")
        return
    with handle:
        # A moment's patience: ``status`` peeks at the lock (see ``lock_held``).
        deadline = time.monotonic() + LOCK_PATIENCE
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    yield Err(f"another filesync run is syncing these locations (lock "
                              f"{lock_path}); stop it first")
                    return
                time.sleep(0.05)
        yield Ok(None)


def lock_held(state_path: Path) -> bool | None:
    """Whether a run holds the sync lock of this state file now (None: cannot tell)."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only, so imported where it is used
    except ImportError:
        return None
    try:
        with open(state_path.with_name(state_path.name + ".lock"), "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False
    except OSError:
        return None



def settings_of(options: Options) -> dict[str, object]:
    """The options ``status`` needs to plan as a running engine does (kept in its run file)."""
    return {"excludes": list(options.excludes.patterns), "one_way": options.one_way,
            "conflict": options.conflict}


def _run(locations: Sequence[Location], options: Options, state_path: Path, once: bool,
         stop: threading.Event, on_engine: Callable[[Engine], None] | None,
         progress_line: bool, activity: Activity) -> int:
    opened = StateStore.open(state_path, [loc.key for loc in locations])
    if not opened.ok:
        log.error("%s", opened.message)
        return EXIT_USAGE
    store, warning = opened.value
    if warning:
        log.warning("%s", warning)
    elif store.fresh:
        log.info("no earlier state for these locations: first run, the union is kept and "
                 "nothing is deleted")
    for location in locations:
        location.cache_path = cache_path(state_path, location.key)
    if not options.dry_run:
        # A one-way source is read only: never created or otherwise prepared.
        for location in locations[1:] if options.one_way else locations:
            prepared = location.prepare()
            if not prepared.ok and prepared.kind is ErrorKind.UNAVAILABLE:
                # Out of reach now is not a usage error: it is skipped until it answers.
                log.warning("%s is not reachable now (%s); it is skipped until it answers",
                            location.display, prepared.message)
            elif not prepared.ok:
                log.error("%s", prepared.message)
                store.close()
                return EXIT_USAGE
    started = time.monotonic()
    engine: Engine | None = None
    display: ProgressDisplay | None = None
    saving = contextlib.nullcontext() if options.dry_run else activity.saving()
    try:
        with saving:
            engine = Engine(locations, store, options, stop, activity)
            if on_engine is not None:
                on_engine(engine)
            display = ProgressDisplay(engine.progress, sys.stderr, enabled=progress_line)
            display.start()
            engine.start()
            report = engine.run_round()
            if options.dry_run:
                print_plan(report.plan)
            if not once and not stop.is_set():
                engine.watch(report)
    except sqlite3.Error as exc:
        # Watchers are joined by then (watch() stops them on the way out).
        log.error("%s", failure_message(state_path, exc))
        if engine is not None:
            engine.stats.errors += 1
        return EXIT_FAILED
    finally:
        if display is not None:
            display.stop()
        with contextlib.suppress(sqlite3.Error):
            store.close()
        if engine is not None and not options.dry_run:
            log.info("summary: %s in %.1f s", summary(engine.stats), time.monotonic() - started)
    if engine.refused or (once and not report.identical):
        return EXIT_FAILED
    return EXIT_OK
