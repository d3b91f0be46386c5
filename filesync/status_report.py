"""``python main.py status``: what filesync is doing with a set of locations, and what it would do.

Works while a watcher runs on the set: the state is read without the sync lock, and the
watcher's own activity comes from its run file (``filesync.activity``). Changes nothing.
The same document, as JSON, is what ``--json`` prints and the dashboard's ``/api/status``
serves; its fields are documented in the README ("Status").
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from filesync.activity import (
    Activity,
    LocationView,
    action_view,
    compose,
    conflict_views,
    pid_alive,
    read_run_file,
)
from filesync.cli_input import open_each
from filesync.engine import Engine, Options
from filesync.excludes import build_excludes
from filesync.locations import Location, Settings
from filesync.profiles import given_locations
from filesync.report import counted, size
from filesync.result import Err, Ok, Result
from filesync.runner import lock_held
from filesync.state import StateStore, default_state_path

log = logging.getLogger("filesync")

#: How many pending actions the text output lists (``--json`` has them all).
SHOWN = 20


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``python main.py status``."""
    parser = argparse.ArgumentParser(
        prog="python main.py status",
        description="Show what filesync is doing with these locations: a running engine, "
                    "the last sync, each location's availability and kept versions, the "
                    "changes a sync would make now, conflicts and paused deletions. Works "
                    "while a watcher runs; changes nothing. Exit status 0 (2: bad input).")
    parser.add_argument("locations", nargs="*", metavar="LOCATION")
    parser.add_argument("--file", metavar="FILE", help="read locations from FILE")
    parser.add_argument("--state", metavar="PATH",
                        help="the state file of the set (default: the one its locations use); "
                             "alone, without locations, it shows what the state and the run "
                             "file know")
    parser.add_argument("--json", action="store_true",
                        help="print the status as one JSON document (fields: see README)")
    parser.add_argument("--exclude", action="append", default=None, metavar="PATTERN",
                        help="plan with these exclude patterns (default: those of the "
                             "engine that last ran on the set)")
    return parser


def run(argv: Sequence[str], settings: Settings, out: TextIO | None = None) -> int:
    """Run the status command; returns its exit status."""
    out = out or sys.stdout
    try:
        args = build_parser().parse_intermixed_args(argv)
    except SystemExit as exc:  # --help, or a bad argument (already explained)
        return exc.code if isinstance(exc.code, int) else 2
    listed = given_locations(args)
    if not listed.ok:
        log.error("%s", listed.message)
        return 2
    texts = listed.value
    if len(texts) == 1 or (not texts and not args.state):
        log.error("status needs the set's locations (two or more), or --state PATH")
        return 2
    opened = open_each(texts, settings)
    if not opened.ok:
        log.error("%s", opened.message)
        return 2
    locations = opened.value
    try:
        state_path = (Path(args.state).expanduser() if args.state
                      else default_state_path([loc.key for loc in locations]))
        gathered = gather(state_path, locations, args.exclude)
    finally:
        for location in locations:
            location.close()
    if not gathered.ok:
        log.error("%s", gathered.message)
        return 2
    if args.json:
        print(json.dumps(gathered.value, indent=2), file=out)
    else:
        print_text(gathered.value, out)
    return 0


def gather(state_path: Path, locations: Sequence[Location],
           excludes: list[str] | None = None) -> Result[dict[str, Any]]:
    """Build the status document of the set with this state file (and these locations)."""
    run_file = read_run_file(state_path) or {}
    snapshot: dict[str, Any] = {
        "engine": {"running": False, "pid": None, "since": None, "mode": None},
        "last_round": run_file.get("last_round"), "locations": [], "pending": None,
        "conflicts": [], "paused_deletions": [], "progress": None,
        "recent": run_file.get("recent", [])}
    engine = run_file.get("engine") or {}
    alive = pid_alive(engine.get("pid")) and lock_held(state_path) is not False
    if engine.get("running") and alive:
        snapshot["engine"] = engine
        snapshot["progress"] = run_file.get("progress")
        snapshot["paused_deletions"] = run_file.get("paused_deletions", [])
    opened = StateStore.open_readonly(state_path)
    if not opened.ok:
        return opened
    store = opened.value
    settings = dict(run_file.get("settings") or {})
    if excludes is not None:
        settings["excludes"] = excludes
    try:
        if store is not None:
            snapshot["conflicts"] = conflict_views(store.conflicts())
        snapshot["locations"] = run_file.get("locations", [])
        if locations:
            planned = _plan(locations, store, settings)
            if not planned.ok:
                return planned
            snapshot["locations"], snapshot["pending"] = planned.value
    except (sqlite3.Error, OSError) as exc:
        return Err(f"cannot read or plan from the state file {state_path}: {exc}")
    finally:
        if store is not None:
            store.close()
    return Ok(compose(state_path, snapshot))


def _plan(locations: Sequence[Location], store: StateStore | None, settings: Mapping[str, Any]
          ) -> Result[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Each location's view, and the actions a dry run would plan now."""
    patterns = settings.get("excludes") or []
    excludes = build_excludes([str(item) for item in patterns])
    if not excludes.ok:
        return excludes
    options = Options(dry_run=True, one_way=bool(settings.get("one_way")),
                      excludes=excludes.value, conflict=str(settings.get("conflict", "newest")))
    with _store_for_planning(store) as usable:
        views = [LocationView(loc.key, loc.display, loc.kind) for loc in locations]
        activity = Activity(usable.path, views, "once")
        engine = Engine(locations, usable, options, threading.Event(), activity)
        with _quiet():
            engine.start()
            report = engine.run_round()
            engine.count_versions(key for key, listing in report.listings.items()
                                  if listing is not None)
        snapshot = activity.snapshot()
    pending = [action_view(action) for action in report.plan.actions()]
    return Ok((snapshot["locations"], pending))


@contextlib.contextmanager
def _store_for_planning(store: StateStore | None) -> Iterator[StateStore]:
    """The set's state, or an empty one in a temporary folder when it never synced."""
    if store is not None:
        yield store
        return
    with tempfile.TemporaryDirectory(prefix="filesync-status-") as folder:
        opened = StateStore.open(Path(folder) / "state.sqlite", [])
        if not opened.ok:
            raise OSError(opened.message)
        empty, _ = opened.value
        try:
            yield empty
        finally:
            empty.close()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Planning logs what a sync would log (conflicts, outages); status reports them itself."""
    logger = logging.getLogger("filesync")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _when(text: str | None) -> str:
    if not text:
        return "-"
    moment = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def print_text(document: Mapping[str, Any], out: TextIO) -> None:
    """The status document for people."""
    state = document["state"]
    state_size = "none yet" if not state["bytes"] else size(state["bytes"])
    print(f"state: {state['path']} ({state_size})", file=out)
    engine = document["engine"]
    if engine["running"]:
        print(f"engine: running, pid {engine['pid']}, {engine['mode']} mode, since "
              f"{_when(engine['since'])}", file=out)
    else:
        print("engine: not running", file=out)
    last = document["last_round"]
    if last is None:
        print("last sync: never", file=out)
    else:
        print(f"last sync: {_when(last['finished_at'])}, {last['result']}: {last['summary']}",
              file=out)
    print("locations:", file=out)
    for view in document["locations"]:
        availability = "available" if view["available"] else f"UNAVAILABLE: {view['message']}"
        versions = view["versions"]
        kept = ("" if versions is None else
                f", {counted(versions['count'], 'old version')} kept ({size(versions['bytes'])})")
        print(f"  {view['display']}  {availability}{kept}", file=out)
    _print_list(out, "pending changes", document["pending"], _pending_line)
    _print_list(out, "unresolved conflicts", document["conflicts"],
                lambda item: f"{item['path']}  in {', '.join(item['locations'])}: "
                             f"{item['detail']}")
    _print_list(out, "paused deletions (apply with --once --force, or put the files back)",
                document["paused_deletions"],
                lambda item: f"{item['path']}  in {', '.join(item['locations'])}")
    progress = document["progress"]
    if progress:
        print(f"in progress: {progress['files_done']}/{progress['files_total']} files, "
              f"{size(progress['bytes_done'])} of {size(progress['bytes_total'])}", file=out)


def _pending_line(item: Mapping[str, Any]) -> str:
    if item["op"] == "copy":
        return f"copy {item['path']}  {item['source']} -> {item['target']}"
    if item["op"] == "rename":
        return f"rename {item['from_path']} -> {item['path']}  in {item['target']}"
    suffix = "/" if item["op"] == "rmdir" else ""
    verb = "delete" if item["op"] in ("delete", "rmdir") else item["op"]
    return f"{verb} {item['path']}{suffix}  in {item['target']}"


def _print_list(out: TextIO, title: str, items: Sequence[Mapping[str, Any]] | None,
                line: Any) -> None:
    if items is None:
        print(f"{title}: not computed", file=out)
        return
    print(f"{title}: {len(items) or 'none'}", file=out)
    for item in items[:SHOWN]:
        print(f"  {line(item)}", file=out)
    if len(items) > SHOWN:
        print(f"  ... and {len(items) - SHOWN} more (--json lists them all)", file=out)

