"""The command line: parse arguments and locations, then run the engine."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from filesync import __version__
from filesync.cli_input import check_group, open_each, prompt_locations
from filesync.concurrency import Concurrency
from filesync.engine import Options
from filesync.excludes import build_excludes, read_list_file
from filesync.locations import Location, Settings
from filesync.logsetup import LOG_FORMATS, setup_logging
from filesync.profiles import given_locations, profile_arguments
from filesync.result import Err, ErrorKind, Ok, Result
from filesync.runner import EXIT_USAGE, run_set
from filesync.state import default_state_path
from filesync.transfers import parse_rate

#: Ctrl+C at the location prompt, before anything was synced (128 + SIGINT, as shells do).
EXIT_INTERRUPTED = 130

log = logging.getLogger("filesync")

DESCRIPTION = """\
Keep any number of locations identical: sync once, then keep watching for changes.
Locations: folder:PATH, zip:PATH, ftp:USER:PASSWORD@HOST[:PORT]/PATH, ftp://..., ftps://...,
or a bare path (*.zip is an archive, anything else a folder). Without locations, filesync
asks for them one by one."""

EPILOG = """\
restore: python main.py restore LOCATION [PATH ...] [--at "YYYY-MM-DD[ HH:MM[:SS]]"] [--list]
brings back kept versions (see python main.py restore --help).

exit status (with --once): 0 every location ended identical; 1 some operations failed,
a location was unavailable, a conflict was left, the mass-delete guard refused the round, or
the state file failed (each is logged; everything else was synced); 2 bad arguments or
locations (nothing changed); 130 Ctrl+C at the location prompt (nothing changed)."""


def _number(low: float, high: float, whole: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number from ``low`` to ``high`` (a whole one if ``whole``)."""
    def parse(text: str) -> float:
        try:
            value: float = int(text) if whole else float(text)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: give a number from {low:g} to {high:g}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``python main.py``."""
    parser = argparse.ArgumentParser(
        prog="python main.py", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("locations", nargs="*", metavar="LOCATION",
                        help="two or more locations to keep identical")
    parser.add_argument("--file", metavar="FILE",
                        help="read locations from FILE, one per line ('#' at the start or "
                             "after a space starts a comment; relative paths are relative "
                             "to FILE's folder)")
    parser.add_argument("--profile", metavar="NAME|FILE",
                        help="take options and locations from a profile before the command "
                             "line's: NAME is $XDG_CONFIG_HOME/filesync/NAME.conf (default "
                             "~/.config/filesync/NAME.conf); a value with '/' or ending in "
                             ".conf is the file itself")
    parser.add_argument("--once", action="store_true", help="sync once and exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be done and change nothing (implies --once)")
    parser.add_argument("--interval", type=_number(0.05, 86400), default=2.0,
                        metavar="SECONDS",
                        help="how often watch mode scans each location, 0.05 to 86400 "
                             "(default: 2)")
    parser.add_argument("--poll", action="store_true",
                        help="watch folders by listing them every --interval too, never by "
                             "the system's file events (for network file systems that send "
                             "none)")
    parser.add_argument("--rescan", type=_number(1, 86400), default=300.0, metavar="SECONDS",
                        help="with file events, still list every location in full this "
                             "often, to catch what events missed, 1 to 86400 (default: 300)")
    parser.add_argument("--checksum", action="store_true",
                        help="compare files by SHA-256 content instead of size and time "
                             "(reads every file each round, like rsync -c)")
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
    parser.add_argument("--keep-versions", type=_number(0, 1_000_000, whole=True), default=10,
                        metavar="N",
                        help="old versions kept per file in .filesync/versions (default: 10)")
    parser.add_argument("--keep-days", type=_number(0, 36525), default=30.0, metavar="D",
                        help="delete kept versions older than D days, up to 36525 "
                             "(default: 30)")
    parser.add_argument("--max-delete", type=_number(0, 100), default=50.0, metavar="PERCENT",
                        help="refuse a round that would delete more than PERCENT of the "
                             "files of a location, if at least 10 (default: 50)")
    parser.add_argument("--force", action="store_true",
                        help="go ahead despite the mass-delete guard, and accept a location "
                             "that lost its marker as a new one")
    parser.add_argument("--lease-ttl", type=_number(1, 3600), default=60.0, metavar="SECONDS",
                        help="how long the lease of a shared FTP or S3 location (a hub) lasts "
                             "unrenewed: after a killed run, other machines wait this long "
                             "before taking it over, 1 to 3600 (default: 60)")
    parser.add_argument("--workers", type=_number(1, 64, whole=True), default=4, metavar="N",
                        help="parallel transfers, 1 to 64 (default: 4)")
    parser.add_argument("--ftp-connections", type=_number(1, 64, whole=True), default=4,
                        metavar="N", help="most connections per FTP location, 1 to 64 "
                                          "(default: 4)")
    parser.add_argument("--bwlimit", metavar="RATE",
                        help="total transfer rate across all parallel transfers, e.g. 500K, "
                             "2M; K/M/G = KiB/MiB/GiB per second (default: unlimited)")
    parser.add_argument("--dashboard", metavar="[HOST:]PORT",
                        help="in watch mode, serve a read-only status page at "
                             "http://HOST:PORT/ (HOST defaults to 127.0.0.1; port 0 picks a "
                             "free one)")
    parser.add_argument("--ca-file", metavar="FILE",
                        help="verify FTPS servers against the CA certificates in FILE")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify FTPS server certificates (unsafe: anyone on the "
                             "way can read the password)")
    parser.add_argument("--log", metavar="FILE", help="also write the log to FILE")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                        help="text lines (the default) or one JSON object per line, on the "
                             "console and in --log FILE")
    parser.add_argument("--json-log", dest="log_format", action="store_const", const="json",
                        help="the same as --log-format json")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="log only warnings and errors")
    parser.add_argument("--version", action="version", version=f"filesync {__version__}")
    return parser


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


def _options(args: argparse.Namespace) -> Result[Options]:
    """The engine's options; numbers were range-checked by the parser."""
    patterns: list[str] = list(args.exclude)
    for exclude_file in args.exclude_from:
        read = read_list_file(exclude_file, "exclude")
        if not read.ok:
            return read
        patterns += read.value
    excludes = build_excludes(patterns)
    if not excludes.ok:
        return excludes
    bwlimit = None if args.bwlimit is None else parse_rate(args.bwlimit)
    if bwlimit is not None and not bwlimit.ok:
        return Err(f"--bwlimit: {bwlimit.message}", bwlimit.kind)
    return Ok(Options(interval=args.interval, dry_run=args.dry_run, one_way=args.one_way,
                      excludes=excludes.value,
                      concurrency=Concurrency(args.workers, args.ftp_connections),
                      conflict=args.conflict,
                      keep_versions=args.keep_versions, keep_days=args.keep_days,
                      max_delete=args.max_delete, force=args.force,
                      lease_ttl=args.lease_ttl, poll=args.poll, rescan=args.rescan,
                      checksum=args.checksum,
                      watching=not (args.once or args.dry_run),
                      bwlimit=None if bwlimit is None else bwlimit.value))


def _open_all(texts: Sequence[str], settings: Settings) -> Result[list[Location]]:
    """Parse and open the given location strings (the prompt does it entry by entry)."""
    if not texts:
        return Ok(prompt_locations(input, sys.stdout, settings))
    return open_each(texts, settings)


def _check_all(locations: Sequence[Location], options: Options, once: bool) -> Result[None]:
    """At least two, none inside another, each usable; a one-way source must exist.

    A location out of reach (``UNAVAILABLE``) stops a ``--once`` run at start; watch mode
    starts anyway and retries it, as it would after an outage later on.
    """
    if len(locations) < 2:
        return Err(f"at least two locations are needed, {len(locations)} given")
    grouped = check_group(locations)
    if not grouped.ok:
        return grouped
    for location in locations:
        checked = location.check()
        if not checked.ok and checked.kind is ErrorKind.UNAVAILABLE and not once:
            log.warning("%s; watch mode retries it until it answers", checked.message)
        elif not checked.ok:
            return checked
    source = locations[0].local_path()
    if options.one_way and source is not None and not source.exists():
        return Err(f"the source of --one-way, {locations[0].display}, does not exist; a "
                   "source is never created (a misspelt one would empty the others): check "
                   "the path")
    return Ok(None)


def _prepare(args: argparse.Namespace, interactive: bool = True
             ) -> Result[tuple[list[Location], Options]]:
    """Everything that can fail with exit 2; nothing anywhere is changed before it passes.

    ``KeyboardInterrupt`` at the prompt is passed on, with nothing left open.
    """
    options = _options(args)
    if not options.ok:
        return options
    given = given_locations(args)
    if not given.ok:
        return given
    texts = given.value
    settings = Settings(ftp_connections=options.value.concurrency.connections,
                        ca_file=args.ca_file,
                        insecure_tls=args.insecure,
                        interactive=interactive and sys.stdin.isatty())
    if not texts and not interactive:
        return Err("no locations given: name two or more")
    opened = _open_all(texts, settings)
    if not opened.ok:
        return opened
    checked = _check_all(opened.value, options.value, args.once or args.dry_run)
    if not checked.ok:
        for location in opened.value:
            location.close()
        return checked
    return Ok((opened.value, options.value))


def _dashboard_address(args: argparse.Namespace) -> Result[tuple[str, int] | None]:
    """Where ``--dashboard`` serves (None: no dashboard); only watch mode has one."""
    if args.dashboard is None:
        return Ok(None)
    if args.once or args.dry_run:
        return Err("--dashboard shows a running watcher: leave out --once and --dry-run (for "
                   "a one-off look, python main.py status --json gives the same document)")
    from filesync.dashboard import parse_address  # noqa: PLC0415 - http.server on demand

    return parse_address(args.dashboard)


def main(argv: Sequence[str] | None = None) -> int:
    """Run filesync; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["restore"]:
        from filesync import restore  # noqa: PLC0415 - a sync run does not need it

        setup_logging(0, None)
        return restore.run(argv[1:], Settings(interactive=sys.stdin.isatty()))
    if argv[:1] == ["status"]:
        from filesync import status_report  # noqa: PLC0415 - a sync run does not need it

        setup_logging(-1, None)
        return status_report.run(argv[1:], Settings(interactive=sys.stdin.isatty()))
    if argv[:1] == ["check"]:
        from filesync import check  # noqa: PLC0415 - a sync run does not need it

        setup_logging(0, None)
        return check.run(argv[1:], Settings(interactive=sys.stdin.isatty()))
    try:
        args = build_parser().parse_intermixed_args(argv)
        # A profile's arguments go first, so the command line's override single values.
        profile = (Ok([]) if args.profile is None
                   else profile_arguments(args.profile, build_parser()))
        if profile.ok and profile.value:
            args = build_parser().parse_intermixed_args(profile.value + argv)
    except SystemExit as exc:  # --help, --version, or a bad argument (already explained)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        setup_logging(1 if args.verbose else -1 if args.quiet else 0, args.log,
                      args.log_format)
    except OSError as exc:
        print(f"filesync: cannot open log file {args.log!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_USAGE
    if not profile.ok:
        log.error("%s", profile.message)
        return EXIT_USAGE
    try:
        prepared = prepare_run(args)
    except KeyboardInterrupt:
        print(file=sys.stdout)
        log.error("stopped at the prompt (Ctrl+C); nothing was synced")
        return EXIT_INTERRUPTED
    if not prepared.ok:
        log.error("%s", prepared.message)
        return EXIT_USAGE
    run = prepared.value
    stop = threading.Event()
    _install_signal_handlers(stop)
    try:
        return run_set(run.locations, run.options, run.state_path, run.once, stop,
                       progress_line=not args.quiet, dashboard=run.dashboard)
    finally:
        for location in run.locations:
            location.close()


@dataclass
class PreparedRun:
    """A run whose every argument and location was checked (nothing changed yet)."""

    locations: list[Location]
    options: Options
    state_path: Path
    once: bool
    dashboard: tuple[str, int] | None


def prepare_run(args: argparse.Namespace, interactive: bool = True) -> Result[PreparedRun]:
    """Check everything that fails with exit status 2 and open the locations.

    The caller closes the locations. Without ``interactive`` nothing is asked for (the
    Python API): no location prompt, no password prompt.
    """
    dashboard = _dashboard_address(args)
    if not dashboard.ok:
        return dashboard
    prepared = _prepare(args, interactive)
    if not prepared.ok:
        return prepared
    locations, options = prepared.value
    keys = [loc.key for loc in locations]
    state_path = Path(os.path.expanduser(args.state)) if args.state else default_state_path(keys)
    if state_path.is_dir():
        for location in locations:
            location.close()
        return Err(f"--state {state_path} is a folder; give the path of a state file (it is "
                   f"created when missing), e.g. {state_path / 'filesync.sqlite'}")
    return Ok(PreparedRun(locations, options, state_path, args.once or args.dry_run,
                          dashboard.value))
