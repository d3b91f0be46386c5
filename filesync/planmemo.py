"""Remembering that a full round found nothing to do, so the same round can skip planning.

Planning is a pure function of the listings, the stored state and the settings. When a
full round's plan came out empty, the engine stores a digest of its listings and settings
beside the state (``StateStore.set_plan_memo``); any later write to the state removes it
(triggers in the database do that, whoever writes). A later round whose listings and
settings give the same digest would plan nothing again, so it neither loads the state nor
plans: for 100,000 unchanged files that is most of a no-op round.

A digest that differs only costs the normal round, so what goes in errs towards too much:
every entry's path, kind, size and mtime, the blind paths, and each setting that steers
the planner.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping, Sequence

from filesync.model import Entry, Listing, entries_after

#: Part of every digest: a change to what goes in (or to the planner) must not match old ones.
_FORMAT = "planmemo 1"


def listings_digest(order: Sequence[str], listings: Mapping[str, Listing | None],
                    settings: str) -> str | None:
    """A digest of ``listings`` (in ``order``) and ``settings``; None when none applies.

    ``settings`` describes everything else the planner looks at (see the module text).
    There is no digest when a location is unavailable: such a round decides nothing about
    it, and the next one must plan in full when it answers.
    """
    digest = hashlib.sha256(f"{_FORMAT}\x00{settings}\x00".encode("utf-8", "surrogatepass"))
    for key in order:
        listing = listings.get(key)
        if listing is None:
            return None
        # In name order: a listing predicted from a round's writes (``listings_after``)
        # holds its names in another order than a scan finds them.
        names = sorted(listing.entries)
        entries = [listing.entries[name] for name in names]
        try:
            sizes = array("q", [entry.size for entry in entries])
            times = array("q", [entry.mtime_ns for entry in entries])
        except (OverflowError, TypeError):  # a backend's odd value: plan as usual
            return None
        kinds = bytes([entry.is_dir for entry in entries])
        header = f"{key}\x00{len(listing.entries)}\x00{len(listing.blind)}\x00"
        digest.update(header.encode("utf-8", "surrogatepass"))
        digest.update("\x00".join(names).encode("utf-8", "surrogatepass"))
        digest.update(sizes.tobytes() + times.tobytes() + kinds)
        digest.update("\x00".join(sorted(listing.blind)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def listings_after(listings: Mapping[str, Listing | None],
                   applied: Mapping[str, Mapping[str, Entry | None]]
                   ) -> dict[str, Listing | None]:
    """``listings`` as a round's writes left them (``applied``: location -> path -> entry).

    What the next scan should find if nobody else changes anything; the engine plans the
    paths a round looked at again on these, and a plan with nothing to do is remembered.
    """
    after: dict[str, Listing | None] = {}
    for key, listing in listings.items():
        if listing is None:
            after[key] = None
            continue
        after[key] = Listing(entries_after(listing.entries, applied.get(key, {})),
                             list(listing.temps), [], set(listing.blind),
                             dict(listing.skipped))
    return after


def planner_settings(version: str, order: Sequence[str], kinds: Mapping[str, str],
                     tolerance_ns: Mapping[str, int], one_way: bool, conflict_policy: str,
                     exclude_patterns: Sequence[str]) -> str:
    """The text of everything besides the listings and the state that steers the planner.

    ``version`` is filesync's own: a newer planner may decide differently on the same data.
    """
    sides = ";".join(f"{key}|{kinds[key]}|{tolerance_ns[key]}" for key in order)
    return (f"{version}\x00{sides}\x00one_way={one_way}\x00conflict={conflict_policy}\x00"
            f"exclude={list(exclude_patterns)!r}")
