"""Finding moves: a file gone from one path and the same file new at another (pure).

A location where a recorded file vanished and a file nobody has yet appeared, with the
same size and exactly the same modification time, had that file moved (renamed). Other
locations then rename their copy too, instead of copying the bytes again and keeping the
old copy as a deleted version. When several vanished and new files share a size and time,
the base name pairs them; anything still ambiguous is left to the ordinary copy and delete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from filesync.model import Listing, PathState


@dataclass(frozen=True)
class Move:
    """``old`` was moved to ``new`` in the location ``where``."""

    where: str
    old: str
    new: str


def find_moves(order: Sequence[str], listings: Mapping[str, Listing], paths: set[str],
               state: Mapping[str, PathState]) -> list[Move]:
    """The moves made in each available location, among ``paths`` (files only)."""
    stored = paths & state.keys()
    moves: list[Move] = []
    for key in order:
        listing = listings.get(key)
        if listing is None:
            continue
        # Set algebra first: a no-op round has nothing gone and costs almost nothing here.
        gone = stored - listing.entries.keys()
        vanished: dict[tuple[int, int], list[str]] = {}
        for path in sorted(gone):
            path_state = state[path]
            agreed, record = path_state.agreed, path_state.records.get(key)
            if (agreed is not None and not agreed.deleted and not agreed.conflict
                    and record is not None and not record.is_dir
                    and record.gen == agreed.gen and listing.sees(path)):
                vanished.setdefault((record.size, record.mtime_ns), []).append(path)
        if not vanished:
            continue
        appeared: dict[tuple[int, int], list[str]] = {}
        for path in sorted(paths & listing.entries.keys()):
            entry = listing.entries[path]
            known = state.get(path)
            live = known is not None and known.agreed is not None and not known.agreed.deleted
            if (not entry.is_dir and not live
                    and (known is None or key not in known.records)
                    and (entry.size, entry.mtime_ns) in vanished
                    and _only_here(key, path, listings)):
                appeared.setdefault((entry.size, entry.mtime_ns), []).append(path)
        for identity in sorted(vanished.keys() & appeared.keys()):
            moves += [Move(key, old, new)
                      for old, new in _pairs(vanished[identity], appeared[identity])]
    return _one_move_per_path(moves)


def _only_here(key: str, path: str, listings: Mapping[str, Listing]) -> bool:
    """True when no other location has something at ``path`` (a new path, not a copy)."""
    return all(other == key or path not in listing.entries
               for other, listing in listings.items())


def _pairs(olds: list[str], news: list[str]) -> list[tuple[str, str]]:
    """Unambiguous (old, new) pairs: the only candidates, or the only ones with a name."""
    if len(olds) == 1 and len(news) == 1:
        return [(olds[0], news[0])]
    by_name_old: dict[str, list[str]] = {}
    by_name_new: dict[str, list[str]] = {}
    for path in olds:
        by_name_old.setdefault(path.rpartition("/")[2], []).append(path)
    for path in news:
        by_name_new.setdefault(path.rpartition("/")[2], []).append(path)
    return [(by_name_old[name][0], by_name_new[name][0])
            for name in sorted(by_name_old.keys() & by_name_new.keys())
            if len(by_name_old[name]) == 1 and len(by_name_new[name]) == 1]


def _one_move_per_path(moves: list[Move]) -> list[Move]:
    """Drop moves that claim a path another move claims (two locations moved one file)."""
    claims: dict[str, int] = {}
    for move in moves:
        for path in (move.old, move.new):
            claims[path] = claims.get(path, 0) + 1
    return [move for move in moves if claims[move.old] == 1 and claims[move.new] == 1]
