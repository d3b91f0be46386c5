"""``python main.py restore``: bring files back from the versions kept in a location."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from collections.abc import Sequence

from filesync.locations import Location, Settings, open_location, parse_location
from filesync.locations.spec import mask_secrets
from filesync.result import Err, Ok, Result
from filesync.versions import StoredVersion, list_versions, version_path

log = logging.getLogger("filesync")

_AT_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``python main.py restore``."""
    parser = argparse.ArgumentParser(
        prog="python main.py restore",
        description="Bring files or folders of LOCATION back from the versions filesync kept "
                    "in its .filesync/versions folder. Without --at, the most recent "
                    "overwrite or delete is undone (for the given PATHs, or the whole last "
                    "round). The current content is kept as a version too, so a restore can "
                    "be undone; the next sync carries the restored files everywhere.")
    parser.add_argument("location", metavar="LOCATION")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="files or folders to restore (relative to the location)")
    parser.add_argument("--at", metavar='"YYYY-MM-DD[ HH:MM[:SS]]"',
                        help="restore things as they were at this local time")
    parser.add_argument("--list", action="store_true",
                        help="list the kept versions (of PATH, if given) and change nothing")
    return parser


def parse_moment(text: str) -> Result[dt.datetime]:
    """Read ``--at`` as a local time and return it in UTC."""
    for form in _AT_FORMATS:
        try:
            local = dt.datetime.strptime(text.strip(), form)
        except ValueError:
            continue
        return Ok(local.astimezone().astimezone(dt.timezone.utc))
    return Err(f"--at {text!r} is not a time like \"2026-11-22\", \"2026-11-22 14:30\" or "
               "\"2026-11-22 14:30:05\"")


def _selected(version: StoredVersion, paths: Sequence[str]) -> bool:
    return not paths or any(version.path == p or version.path.startswith(p + "/")
                            for p in paths)


def choose(versions: Sequence[StoredVersion], paths: Sequence[str],
           at: dt.datetime | None) -> list[StoredVersion]:
    """Which version of each path to bring back.

    With ``at``: the content that was live then, i.e. the first version superseded after
    ``at`` (paths not changed since are left as they are). Without: the newest version of
    each given path, or, with no paths, every version the most recent round kept.
    """
    chosen: dict[str, StoredVersion] = {}
    candidates = [v for v in versions if _selected(v, paths)]
    if at is not None:
        for version in sorted(candidates):
            if version.superseded > at:
                best = chosen.get(version.path)
                if best is None or version.superseded < best.superseded:
                    chosen[version.path] = version
    elif paths:
        for version in candidates:
            best = chosen.get(version.path)
            if best is None or version.superseded > best.superseded:
                chosen[version.path] = version
    elif candidates:
        latest = max(v.superseded for v in candidates)
        chosen = {v.path: v for v in candidates if v.superseded == latest}
    return [chosen[path] for path in sorted(chosen)]


def _local(moment: dt.datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _bring_back(location: Location, version: StoredVersion, now: dt.datetime) -> Result[str]:
    current = location.stat(version.path)
    if not current.ok:
        return current
    if current.value is not None and current.value.is_dir:
        return Err(f"{version.path!r} is a folder now in {location.display}; move it away first")
    opened = location.open_read(version.stored_as)
    if not opened.ok:
        return opened
    keep = version_path(version.path, now) if current.value is not None else None
    with opened.value as stream:
        # Dated now, so the restored content wins over older copies in other locations.
        written = location.write(version.path, stream, time.time_ns(), keep_old_as=keep)
    if not written.ok:
        return written
    return Ok(version.path)


def run(argv: Sequence[str], settings: Settings) -> int:
    """Run the restore command; returns the exit status (0, 1 some failed, 2 bad input).

    Options and paths may come in any order (``restore LOCATION --list PATH``).
    """
    try:
        args = build_parser().parse_intermixed_args(argv)
    except SystemExit as exc:  # --help, or a bad argument (already explained)
        return exc.code if isinstance(exc.code, int) else 2
    parsed = parse_location(args.location)
    if not parsed.ok:
        log.error("invalid location %r: %s", mask_secrets(args.location), parsed.message)
        return 2
    opened = open_location(parsed.value, settings)
    if not opened.ok:
        log.error("%s", opened.message)
        return 2
    location = opened.value
    try:
        return _run(location, args)
    finally:
        location.close()


def _run(location: Location, args: argparse.Namespace) -> int:
    at = None
    if args.at:
        moment = parse_moment(args.at)
        if not moment.ok:
            log.error("%s", moment.message)
            return 2
        at = moment.value
    paths = [p.strip("/") for p in args.paths]
    reachable = location.probe()
    if not reachable.ok:
        log.error("%s", reachable.message)
        return 2
    listed = list_versions(location)
    if not listed.ok:
        log.error("%s", listed.message)
        return 1
    if args.list:
        shown = [v for v in listed.value if _selected(v, paths)]
        if not shown:
            print(f"no versions kept in {location.display}"
                  + (f" for {', '.join(paths)}" if paths else ""))
        for version in shown:
            print(f"{_local(version.superseded)}  {version.size:>12,} B  {version.path}")
        return 0
    chosen = choose(listed.value, paths, at)
    if not chosen:
        log.error("nothing to restore in %s%s", location.display,
                  f" for {', '.join(paths)}" if paths else "")
        return 1
    now = dt.datetime.now(dt.timezone.utc)
    failures = 0
    with location.batch() as batch:
        if not batch.begun.ok:
            log.error("%s", batch.begun.message)
            return 1
        for version in chosen:
            result = _bring_back(location, version, now)
            if result.ok:
                log.info("restored %s as it was before %s", version.path,
                         _local(version.superseded))
            else:
                failures += 1
                log.error("cannot restore %s: %s", version.path, result.message)
    if batch.ended is not None and not batch.ended.ok:
        log.error("%s", batch.ended.message)
        return 1
    for path, why in batch.refused.items():
        failures += 1
        log.error("cannot restore %s: %s", path, why)
    return 1 if failures else 0
