"""Parse what FTP servers say about files: MLSD/MLST facts, LIST lines and time stamps.

Everything here is pure (no sockets), so every server dialect can be tested from text.
MLSD, MLST and MDTM times are UTC (RFC 3659); LIST times are in the server's time zone
and only minute-accurate, so they are a last resort.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass

#: Kinds of directory items.
FILE, DIR, LINK, OTHER = "file", "dir", "link", "other"

_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_FTP_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?$")
_UNIX_LINE = re.compile(
    r"^(?P<kind>[-dlbcpsD])[-rwxsStTlL]{9}\S*\s+\d+\s+"    # mode (+ ACL mark), link count
    r"(?:\S+\s+){1,2}?"                                  # owner, and group when shown
    r"(?P<size>\d+)\s+"
    r"(?P<month>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+(?P<when>\d{1,2}:\d{2}|\d{4})\s"
    r"(?P<name>.+)$")
_DOS_LINE = re.compile(
    r"^(?P<date>\d{2})-(?P<day>\d{2})-(?P<year>\d{2}|\d{4})\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?P<ampm>[AaPp][Mm])?\s+"
    r"(?P<size><DIR>|\d+)\s+(?P<name>.+)$")


@dataclass(frozen=True, slots=True)
class RemoteItem:
    """One item of a server directory; ``mtime_ns`` is None when the listing had no time."""

    name: str
    kind: str
    size: int = 0
    mtime_ns: int | None = None


def parse_ftp_time(text: str) -> int | None:
    """``YYYYMMDDHHMMSS[.sss]`` (UTC) as nanoseconds since the epoch, None if malformed."""
    match = _FTP_TIME.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0))
    fraction = match.group(7) or ""
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def format_ftp_time(mtime_ns: int) -> str:
    """Nanoseconds as ``YYYYMMDDHHMMSS`` (UTC, whole seconds, rounded down)."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime_ns // 1_000_000_000))


def whole_seconds(mtime_ns: int) -> int:
    """``mtime_ns`` rounded down to a whole second, as a server given it will report it."""
    return (mtime_ns // 1_000_000_000) * 1_000_000_000


def parse_facts(text: str) -> dict[str, str]:
    """``type=file;size=3;modify=…;`` as a dict with lower-case fact names."""
    facts: dict[str, str] = {}
    for fact in text.split(";"):
        name, equals, value = fact.partition("=")
        if equals:
            facts[name.strip().lower()] = value
    return facts


def item_from_facts(name: str, facts: dict[str, str]) -> RemoteItem | None:
    """The item an MLSD/MLST line describes; None for ``.``/``..`` (cdir, pdir)."""
    kind = facts.get("type", "").lower()
    if kind in ("cdir", "pdir"):
        return None
    if kind == "dir":
        return RemoteItem(name, DIR)
    if kind.startswith("os.unix=slink") or kind.startswith("os.unix=symlink"):
        return RemoteItem(name, LINK)
    if kind != "file":
        return RemoteItem(name, OTHER)
    size_text = facts.get("size", "")
    size = int(size_text) if size_text.isdigit() else 0
    modify = facts.get("modify")
    return RemoteItem(name, FILE, size, parse_ftp_time(modify) if modify else None)


def parse_mlsd_line(line: str) -> RemoteItem | None:
    """One MLSD line (``facts; name``); None for ``.``/``..`` and malformed lines."""
    facts_text, space, name = line.partition(" ")
    if not space or not name:
        return None
    return item_from_facts(name, parse_facts(facts_text))


def parse_mlst_reply(reply: str) -> RemoteItem | None:
    """The item an ``MLST path`` reply describes (its name is not used), None if unreadable."""
    for line in reply.splitlines():
        if line.startswith(" "):
            facts_text, _, name = line[1:].partition(" ")
            return item_from_facts(name, parse_facts(facts_text))
    return None


def parse_list_line(line: str, now: float | None = None) -> RemoteItem | None:
    """One LIST line in Unix (``ls -l``) or DOS/IIS style; None when it is not an item.

    The time is read as UTC with minute precision (callers ask MDTM for the real one).
    """
    match = _UNIX_LINE.match(line)
    if match:
        name = match.group("name")
        kind = {"-": FILE, "d": DIR, "D": DIR, "l": LINK}.get(match.group("kind"), OTHER)
        if kind == LINK:
            name = name.split(" -> ", 1)[0]
        if name in (".", ".."):
            return None
        if kind != FILE:
            return RemoteItem(name, kind)
        mtime = _unix_list_time(match.group("month"), match.group("day"), match.group("when"),
                                now)
        return RemoteItem(name, FILE, int(match.group("size")), mtime)
    match = _DOS_LINE.match(line)
    if match:
        name = match.group("name")
        if name in (".", ".."):
            return None
        year = int(match.group("year"))
        year += 0 if year >= 100 else (2000 if year < 70 else 1900)
        hour = int(match.group("hour")) % 12 if match.group("ampm") else int(match.group("hour"))
        if (match.group("ampm") or "").lower() == "pm":
            hour += 12
        try:
            seconds = calendar.timegm((year, int(match.group("date")), int(match.group("day")),
                                       hour, int(match.group("minute")), 0, 0, 0, 0))
        except (ValueError, OverflowError):
            return None
        if match.group("size") == "<DIR>":
            return RemoteItem(name, DIR)
        return RemoteItem(name, FILE, int(match.group("size")), seconds * 1_000_000_000)
    return None


def _unix_list_time(month: str, day: str, when: str, now: float | None) -> int | None:
    month_number = _MONTHS.get(month.lower())
    if month_number is None:
        return None
    current = time.gmtime(time.time() if now is None else now)
    if ":" in when:
        hour, minute = (int(part) for part in when.split(":"))
        year = current.tm_year
        # "Mon DD HH:MM" means within the last six months: a date ahead is last year's.
        if (month_number, int(day)) > (current.tm_mon, current.tm_mday + 1):
            year -= 1
    else:
        hour = minute = 0
        year = int(when)
    try:
        return calendar.timegm((year, month_number, int(day), hour, minute, 0, 0, 0, 0)) \
            * 1_000_000_000
    except (ValueError, OverflowError):
        return None


def name_problem(name: str) -> str | None:
    """Why a name a server listed may not be used inside the root, or None when it may."""
    if name in ("", ".", ".."):
        return "empty, '.' or '..'"
    if "/" in name:
        return "contains '/' (would reach outside its folder)"
    if "\\" in name:
        return "contains a backslash"
    if any(ord(char) < 32 for char in name):
        return "contains control characters"
    return None


@dataclass
class Features:
    """What the server offers, from FEAT (learnt at the first login)."""

    mlsd: bool = False
    mdtm: bool = False
    size: bool = False
    rest: bool = False
    mfmt: bool = False
    utf8: bool = False
    #: False when the server has no FEAT: then MDTM, SIZE and REST are simply tried.
    listed: bool = True

    @classmethod
    def parse(cls, reply: str) -> Features:
        """Read a FEAT reply (``211-…`` lines, one feature per line)."""
        names = {line.strip().split(" ")[0].upper() for line in reply.splitlines()[1:-1]}
        rest = any(line.strip().upper().startswith("REST STREAM")
                   for line in reply.splitlines())
        return cls(mlsd="MLST" in names or "MLSD" in names, mdtm="MDTM" in names,
                   size="SIZE" in names, rest=rest, mfmt="MFMT" in names, utf8="UTF8" in names)

    @classmethod
    def unknown(cls) -> Features:
        """A server without FEAT (RFC 959 only): the common extensions may still work."""
        return cls(mdtm=True, size=True, rest=True, listed=False)
