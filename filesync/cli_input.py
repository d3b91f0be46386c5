"""Where locations come from, checked as a group: the interactive prompt and nesting checks."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Sequence
from typing import IO

from filesync.locations import Location, Settings, open_location, parse_location
from filesync.locations.spec import FtpSpec, S3Spec, mask_secrets
from filesync.result import Err, Ok, Result

PROMPT = "Enter path (folder:/zip:/ftp: or [end]): "


def open_each(texts: Sequence[str], settings: Settings) -> Result[list[Location]]:
    """Parse and open location strings; after a failure, the ones opened are closed."""
    locations: list[Location] = []
    for text in texts:
        parsed = parse_location(text)
        opened = parsed if not parsed.ok else open_location(parsed.value, settings)
        if not opened.ok:
            for location in locations:
                location.close()
            if not parsed.ok:
                return Err(f"invalid location {mask_secrets(text)!r}: {parsed.message}")
            return opened
        locations.append(opened.value)
    return Ok(locations)


def _place(location: Location) -> tuple[tuple[object, ...], str, bool] | None:
    """Where a location keeps its files: (server or machine, path, may hold others).

    Two locations with the same first part share one namespace, so a path equal to or
    below another's is the same place or inside it. Local kinds compare their real paths
    (only a folder can hold another location); FTP locations compare (host, port, user)
    and the path below the login folder (FTP and FTPS reach the same files).
    """
    spec = getattr(location, "spec", None)
    if isinstance(spec, FtpSpec):
        path = posixpath.normpath("/" + spec.path.lstrip("/"))
        return ("ftp", spec.host.lower().rstrip("."), spec.port, spec.user), path, True
    local = location.local_path()
    if local is None:
        return None
    return ("local",), str(local), location.kind == "folder"


def _inside(inner: str, outer: str, separator: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip(separator) + separator)


def check_group(locations: Sequence[Location]) -> Result[None]:
    """Refuse the same location twice and one location inside another, of any kind."""
    seen: dict[str, Location] = {}
    for location in locations:
        if location.key in seen:
            return Err(f"{location.display} is given twice; list each location once")
        seen[location.key] = location
    places = [(location, _place(location)) for location in locations]
    for outer, outer_place in places:
        for inner, inner_place in places:
            if outer is inner or outer_place is None or inner_place is None:
                continue
            (outer_home, outer_path, holds), (inner_home, inner_path, _) = (outer_place,
                                                                            inner_place)
            if outer_home != inner_home:
                continue
            separator = "/" if outer_home[0] == "ftp" else os.sep
            if inner_path == outer_path:
                return Err(f"{inner.display} and {outer.display} are the same place; list "
                           "each location once")
            if holds and _inside(inner_path, outer_path, separator):
                return Err(f"{inner.display} is inside {outer.display}; a location inside "
                           "another would be synced into itself; choose separate places")
    # A server location's reserved folder (?reserved=) must not lie in another's tree; an
    # S3 prefix must not lie inside another of the same bucket.
    specs = [getattr(loc, "spec", None) for loc in locations]
    for kind in (FtpSpec, S3Spec):
        same_kind = [spec for spec in specs if isinstance(spec, kind)]
        for index, first in enumerate(same_kind):
            for second in same_kind[index + 1:]:
                problem = first.overlap(second)  # type: ignore[arg-type]
                if problem:
                    return Err(problem)
    return Ok(None)


def prompt_locations(ask: Callable[[str], str], out: IO[str],
                     settings: Settings) -> list[Location]:
    """Ask for locations until ``end`` or end of input, checking each one when it is typed.

    An entry that cannot be parsed, used or created, that was given already, or that lies
    inside another entry (or holds one) is explained and asked again; the valid entries are
    kept. Ctrl+C (``KeyboardInterrupt``) closes the opened locations and is raised again.
    """
    locations: list[Location] = []
    try:
        while True:
            try:
                answer = ask(PROMPT).strip()
            except EOFError:
                out.write("\n")
                return locations
            if answer.lower() in ("end", "[end]"):
                return locations
            if answer:
                problem = _add(answer, locations, settings)
                if problem:
                    out.write(problem + "\n")
    except BaseException:
        for location in locations:
            location.close()
        raise


def _add(answer: str, locations: list[Location], settings: Settings) -> str:
    """Open and check one typed location and add it to ``locations``; else say why not."""
    parsed = parse_location(answer)
    if not parsed.ok:
        return f"not a valid location: {parsed.message}"
    if any(location.key == parsed.value.key for location in locations):
        return f"{parsed.value.display} was given already"
    opened = open_location(parsed.value, settings)
    if not opened.ok:
        return f"cannot use {parsed.value.display}: {opened.message}"
    location = opened.value
    problem = check_group([*locations, location])
    if problem.ok:
        problem = location.check()
    if not problem.ok:
        location.close()
        return f"cannot use {location.display}: {problem.message}; try again"
    locations.append(location)
    return ""
