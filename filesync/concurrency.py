"""How many things run at once: decided here, from the command line's two knobs.

Local locations (folders, archives) are driven from the calling thread: on them threads only
fight over the interpreter lock. Remote ones (``capabilities.remote``) are round-trip bound,
so their listings, hashes and transfers run in parallel threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from filesync.locations.base import Location

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Concurrency:
    """The limits of one run."""

    #: Transfers (and content hashes) in flight at once across the round (``--workers``).
    transfers: int = 4
    #: Connections one server location may open (``--ftp-connections``); its own tree
    #: walks and look-ups use at most this many threads.
    connections: int = 4

    def listing_threads(self, locations: Sequence[Location]) -> int:
        """Threads for listing ``locations`` side by side: one per remote one, else none."""
        return len(locations) if any(loc.capabilities.remote for loc in locations) else 1

    def transfer_pool(self, name: str) -> ThreadPoolExecutor:
        """The pool remote transfers run on."""
        return ThreadPoolExecutor(self.transfers, thread_name_prefix=f"filesync-{name}")


def parallel_map(function: Callable[[T], R], items: Iterable[T], threads: int,
                 name: str) -> list[R]:
    """``function`` over ``items`` in order; on ``threads`` threads when more than one."""
    work = list(items)
    if threads <= 1 or len(work) <= 1:
        return [function(item) for item in work]
    with ThreadPoolExecutor(min(threads, len(work)),
                            thread_name_prefix=f"filesync-{name}") as pool:
        return list(pool.map(function, work))
