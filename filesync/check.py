"""``python main.py check``: are the locations identical by content? It changes nothing.

Every path seen in any location is compared: missing somewhere, a folder in one and a file
in another, or files whose SHA-256 differ (sizes that differ need no reading). Like
``rclone check``, and an integrity check of a backup: the state is not consulted, so a copy
damaged behind filesync's back is found too.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from filesync.cli_input import open_each
from filesync.concurrency import parallel_map
from filesync.excludes import build_excludes
from filesync.locations import Location, Settings
from filesync.model import Entry
from filesync.profiles import given_locations
from filesync.result import Result

log = logging.getLogger("filesync")

#: Threads hashing files of remote locations at once.
HASH_THREADS = 4


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``python main.py check``."""
    parser = argparse.ArgumentParser(
        prog="python main.py check",
        description="Compare every location's files by SHA-256 and list the paths that "
                    "differ or are missing somewhere. Changes nothing. Exit status: 0 all "
                    "identical, 1 differences found, 2 bad input or a location out of reach.")
    parser.add_argument("locations", nargs="*", metavar="LOCATION")
    parser.add_argument("--file", metavar="FILE", help="read locations from FILE")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="leave out matching paths (repeatable; as for syncing)")
    return parser


@dataclass
class Findings:
    """What a check found: one line per path that is not the same everywhere."""

    compared: int = 0
    problems: list[str] = field(default_factory=list)


def run(argv: Sequence[str], settings: Settings, out: TextIO | None = None) -> int:
    """Run the check command; returns its exit status."""
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
    excludes = build_excludes(args.exclude)
    if not excludes.ok:
        log.error("%s", excludes.message)
        return 2
    if len(texts) < 2:
        log.error("check needs at least two locations, %d given", len(texts))
        return 2
    opened = open_each(texts, settings)
    if not opened.ok:
        log.error("%s", opened.message)
        return 2
    locations = opened.value
    try:
        listings: dict[str, dict[str, Entry]] = {}
        for location in locations:
            scanned = location.list(excludes.value)
            if not scanned.ok:
                log.error("cannot check %s: %s", location.display, scanned.message)
                return 2
            for warning in scanned.value.warnings:
                log.warning("%s", warning)
            listings[location.key] = scanned.value.entries
        findings = compare(locations, listings)
    finally:
        for location in locations:
            location.close()
    for line in findings.problems:
        print(line, file=out)
    if findings.problems:
        print(f"{len(findings.problems)} of {findings.compared} paths differ", file=out)
        return 1
    print(f"identical: {findings.compared} paths in {len(locations)} locations", file=out)
    return 0


def compare(locations: Sequence[Location], listings: dict[str, dict[str, Entry]]) -> Findings:
    """Compare the listed entries of every location, reading files where sizes agree."""
    findings = Findings()
    paths = sorted(set().union(*(entries.keys() for entries in listings.values())))
    findings.compared = len(paths)
    to_hash: list[tuple[Location, str]] = []
    candidates: list[str] = []
    for path in paths:
        found = {loc.display: listings[loc.key].get(path) for loc in locations}
        missing = [name for name, entry in found.items() if entry is None]
        if missing:
            findings.problems.append(f"missing: {path}  in {', '.join(missing)}")
            continue
        kinds = {entry.is_dir for entry in found.values() if entry is not None}
        if len(kinds) > 1:
            findings.problems.append(f"differs: {path}  (a folder in one location, a file "
                                     "in another)")
            continue
        if kinds == {True}:
            continue
        sizes = {entry.size for entry in found.values() if entry is not None}
        if len(sizes) > 1:
            findings.problems.append(f"differs: {path}  (sizes " + ", ".join(
                f"{name}: {entry.size}" for name, entry in found.items()
                if entry is not None) + ")")
            continue
        candidates.append(path)
        to_hash += [(location, path) for location in locations]

    def digest(item: tuple[Location, str]) -> Result[str]:
        return item[0].sha256(item[1])

    threads = HASH_THREADS if any(loc.capabilities.remote for loc in locations) else 1
    digests = dict(zip(to_hash, parallel_map(digest, to_hash, threads, "check"), strict=True))
    for path in candidates:
        results = {location.display: digests[(location, path)] for location in locations}
        failed = [f"{name}: {result.message}" for name, result in results.items()
                  if not result.ok]
        if failed:
            findings.problems.append(f"unreadable: {path}  ({'; '.join(failed)})")
            continue
        hexes = {name: result.unwrap() for name, result in results.items()}
        if len(set(hexes.values())) > 1:
            findings.problems.append(f"differs: {path}  (content: " + ", ".join(
                f"{name}: {value[:12]}" for name, value in hexes.items()) + ")")
    return findings
