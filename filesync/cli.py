"""The command line: parse arguments and locations, then run the engine."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from filesync import __version__
from filesync.engine import Engine, Options
from filesync.excludes import build_excludes, read_list_file
from filesync.locations import Location, Settings, open_location, parse_location
from filesync.locations.spec import LocationSpec, mask_secrets
from filesync.logsetup import setup_logging
from filesync.result import Err, Ok, Result
from filesync.state import StateStore, default_state_path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROMPT = "Enter path (folder:/zip:/ftp: or [end]): "

log = logging.getLogger("filesync")

DESCRIPTION = """\
Keep any number of locations identical: sync once, then keep watching for changes.
Locations: folder:PATH, zip:PATH, ftp:USER:PASSWORD@HOST[:PORT]/PATH, ftp://..., ftps://...,
or a bare path (*.zip is an archive, anything else a folder). Without locations, filesync
asks for them one by one."""

EPILOG = """\
restore: python main.py restore LOCATION [PATH ...] [--at "YYYY-MM-DD[ HH:MM[:SS]]"] [--list]
brings back kept versions (see python main.py restore --help).

exit status (with --once): 0 every location ended identical; 1 some operations failed
(each is logged; everything else was synced); 2 bad arguments or locations (nothing changed)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``python main.py``."""
    parser = argparse.ArgumentParser(
        prog="python main.py", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("locations", nargs="*", metavar="LOCATION",
                        help="two or more locations to keep identical")
    parser.add_argument("--file", metavar="FILE",
                        help="read locations from FILE, one per line ('#' starts a comment)")
    parser.add_argument("--once", action="store_true", help="sync once and exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be done and change nothing (implies --once)")
    parser.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                        help="how often watch mode scans each location (default: 2)")
    parser.add_argument("--state", metavar="PATH",
                        help="state file (default: one per set of locations under "
                             "$XDG_STATE_HOME/filesync or ~/.local/state/filesync)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="leave out paths matching a gitignore-style PATTERN (repeatable)")
    parser.add_argument("--exclude-from", action="append", default=[], metavar="FILE",
                        help="read exclude patterns from FILE, one per line")
    parser.add_argument("--one-way", action="store_true",
                        help="the first location is the source; the others are made "
                             "identical to it and changes made in them are undone")
    parser.add_argument("--conflict", choices=("newest", "keep-both", "manual"),
                        default="newest",
                        help="when a path changed in several locations: the newest wins and "
                             "the others are kept as versions (newest, the default); also "
                             "as visible name.conflict-DATE-LOCATION.ext files (keep-both); "
                             "or leave the path alone until you resolve it (manual)")
    parser.add_argument("--keep-versions", type=int, default=10, metavar="N",
                        help="old versions kept per file in .filesync/versions (default: 10)")
    parser.add_argument("--keep-days", type=float, default=30.0, metavar="D",
                        help="delete kept versions older than D days (default: 30)")
    parser.add_argument("--max-delete", type=float, default=50.0, metavar="PERCENT",
                        help="refuse a round that would delete more than PERCENT of the "
                             "files of a location, if at least 10 (default: 50)")
    parser.add_argument("--force", action="store_true",
                        help="go ahead despite the mass-delete guard, and accept a location "
                             "that lost its marker as a new one")
    parser.add_argument("--workers", type=int, default=4, metavar="N",
                        help="parallel transfers (default: 4)")
    parser.add_argument("--ftp-connections", type=int, default=4, metavar="N",
                        help="most connections per FTP location (default: 4)")
    parser.add_argument("--ca-file", metavar="FILE",
                        help="verify FTPS servers against the CA certificates in FILE")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify FTPS server certificates (unsafe: anyone on the "
                             "way can read the password)")
    parser.add_argument("--log", metavar="FILE", help="also write the log to FILE")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="log only warnings and errors")
    parser.add_argument("--version", action="version", version=f"filesync {__version__}")
    return parser


def prompt_locations(ask: Callable[[str], str], out: IO[str]) -> list[LocationSpec]:
    """Ask for locations until ``end`` or end of input; invalid ones are explained."""
    specs: list[LocationSpec] = []
    while True:
        try:
            answer = ask(PROMPT).strip()
        except EOFError:
            out.write("\n")
            return specs
        if answer.lower() in ("end", "[end]"):
            return specs
        if not answer:
            continue
        parsed = parse_location(answer)
        if not parsed.ok:
            out.write(f"not a valid location: {parsed.message}\n")
            continue
        if any(spec.key == parsed.value.key for spec in specs):
            out.write(f"{parsed.value.display} was given already\n")
            continue
        specs.append(parsed.value)


def check_group(locations: Sequence[Location]) -> Result[None]:
    """Refuse the same location twice and one local location inside another."""
    seen: dict[str, Location] = {}
    for location in locations:
        if location.key in seen:
            return Err(f"{location.display} is given twice; list each location once")
        seen[location.key] = location
    local = [(loc, loc.local_path()) for loc in locations if loc.local_path() is not None]
    for outer, outer_path in local:
        for inner, inner_path in local:
            if outer is inner or outer.kind != "folder":
                continue
            assert outer_path is not None and inner_path is not None
            if inner_path == outer_path or outer_path in inner_path.parents:
                return Err(f"{inner.display} is inside {outer.display}; a location inside "
                           "another would be synced into itself; choose separate places")
    return Ok(None)


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
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield Err(f"another filesync run is syncing these locations (lock {lock_path}); "
                      "stop it first")
            return
        yield Ok(None)


def _install_signal_handlers(stop: threading.Event) -> None:
    """Ctrl+C or SIGTERM asks for a clean stop; a second Ctrl+C stops at once."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("stopping (signal %d): finishing the file in flight; press Ctrl+C "
                    "again to stop at once", signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _gather_specs(args: argparse.Namespace) -> Result[list[LocationSpec]]:
    texts: list[str] = list(args.locations)
    if args.file:
        from_file = read_list_file(args.file, "location")
        if not from_file.ok:
            return from_file
        texts += from_file.value
    if not texts:
        return Ok(prompt_locations(input, sys.stdout))
    specs: list[LocationSpec] = []
    for text in texts:
        parsed = parse_location(text)
        if not parsed.ok:
            return Err(f"invalid location {mask_secrets(text)!r}: {parsed.message}")
        specs.append(parsed.value)
    return Ok(specs)


def _options(args: argparse.Namespace) -> Result[Options]:
    if args.interval <= 0:
        return Err("--interval must be a positive number of seconds")
    if args.workers < 1:
        return Err("--workers must be at least 1")
    if args.keep_versions < 0 or args.keep_days < 0:
        return Err("--keep-versions and --keep-days cannot be negative")
    if not 0 <= args.max_delete <= 100:
        return Err("--max-delete is a percentage from 0 to 100")
    patterns: list[str] = list(args.exclude)
    for exclude_file in args.exclude_from:
        read = read_list_file(exclude_file, "exclude")
        if not read.ok:
            return read
        patterns += read.value
    excludes = build_excludes(patterns)
    if not excludes.ok:
        return excludes
    return Ok(Options(interval=args.interval, dry_run=args.dry_run, one_way=args.one_way,
                      excludes=excludes.value, workers=args.workers, conflict=args.conflict,
                      keep_versions=args.keep_versions, keep_days=args.keep_days,
                      max_delete=args.max_delete, force=args.force))


def _prepare(args: argparse.Namespace) -> Result[tuple[list[Location], Options]]:
    """Everything that can fail with exit 2; nothing anywhere is changed before it passes."""
    options = _options(args)
    if not options.ok:
        return options
    specs = _gather_specs(args)
    if not specs.ok:
        return specs
    if len(specs.value) < 2:
        return Err(f"at least two locations are needed, {len(specs.value)} given")
    if args.ftp_connections < 1:
        return Err("--ftp-connections must be at least 1")
    settings = Settings(ftp_connections=args.ftp_connections, ca_file=args.ca_file,
                        insecure_tls=args.insecure, interactive=sys.stdin.isatty())
    locations: list[Location] = []
    for spec in specs.value:
        opened = open_location(spec, settings)
        if not opened.ok:
            return opened
        locations.append(opened.value)
    grouped = check_group(locations)
    if not grouped.ok:
        return grouped
    for location in locations:
        checked = location.check()
        if not checked.ok:
            return checked
    return Ok((locations, options.value))


def main(argv: Sequence[str] | None = None) -> int:
    """Run filesync; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["restore"]:
        from filesync import restore  # noqa: PLC0415 - a sync run does not need it

        setup_logging(0, None)
        return restore.run(argv[1:], Settings(interactive=sys.stdin.isatty()))
    args = build_parser().parse_args(argv)
    try:
        setup_logging(1 if args.verbose else -1 if args.quiet else 0, args.log)
    except OSError as exc:
        print(f"filesync: cannot open log file {args.log!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_USAGE
    prepared = _prepare(args)
    if not prepared.ok:
        log.error("%s", prepared.message)
        return EXIT_USAGE
    locations, options = prepared.value
    keys = [loc.key for loc in locations]
    state_path = Path(os.path.expanduser(args.state)) if args.state else default_state_path(keys)
    try:
        with _state_lock(state_path) as locked:
            if not locked.ok:
                log.error("%s", locked.message)
                return EXIT_USAGE
            return _run(locations, options, state_path, once=args.once or args.dry_run)
    finally:
        for location in locations:
            location.close()


def _run(locations: list[Location], options: Options, state_path: Path, once: bool) -> int:
    opened = StateStore.open(state_path, [loc.key for loc in locations])
    if not opened.ok:
        log.error("cannot use state file %s: %s", state_path, opened.message)
        return EXIT_USAGE
    store, warning = opened.value
    if warning:
        log.warning("%s", warning)
    elif store.fresh:
        log.info("no earlier state for these locations: first run, the union is kept and "
                 "nothing is deleted")
    if not options.dry_run:
        for location in locations:
            prepared = location.prepare()
            if not prepared.ok:
                log.error("%s", prepared.message)
                store.close()
                return EXIT_USAGE
    stop = threading.Event()
    _install_signal_handlers(stop)
    engine = Engine(locations, store, options, stop)
    started = time.monotonic()
    try:
        engine.start()
        report = engine.run_round()
        if not once and not stop.is_set():
            engine.watch(report)
    finally:
        store.close()
        if not options.dry_run:
            log.info("summary: %s in %.1f s", engine.stats.summary(), time.monotonic() - started)
    if engine.refused or (once and not report.identical):
        return EXIT_FAILED
    return EXIT_OK
