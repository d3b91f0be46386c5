"""Transfers of a round: the bandwidth limit they share and the progress they make.

``RateLimit`` is one token bucket for every transfer of a run, so ``--bwlimit`` bounds
their total, however many run in parallel. ``Progress`` is what the live display, the
status document and the dashboard read about the round being applied.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from filesync.result import Err, ErrorKind, Ok, Result

_RATE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)(?:i?b)?(?:/s)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
RATE_FORMS = ("bytes per second as a number with an optional K, M or G (KiB, MiB, GiB "
              "per second), e.g. 800, 500K, 2M, 1.5M, 1G")

#: The most the bucket saves up while idle (seconds of the rate): a short window never
#: sees much more than the rate.
BURST_SECONDS = 0.25
#: How long one wait sleeps at most before looking at the stop flag again.
WAIT_SLICE = 0.05
#: How far back the progress rate looks (seconds).
RATE_WINDOW = 5.0


def parse_rate(text: str) -> Result[float]:
    """Bytes per second from ``800``, ``500K``, ``1.5M``, ``2MiB/s``, ``1g`` (K = 1024)."""
    match = _RATE.fullmatch(text)
    value = float(match[1]) * _UNITS[match[2].lower()] if match else math.nan
    if not math.isfinite(value) or value < 1:
        return Err(f"invalid rate {text!r}: give {RATE_FORMS}, at least 1 byte per second",
                   ErrorKind.INVALID)
    return Ok(value)


def format_rate(rate: float) -> str:
    """``1.5 MiB/s`` and the like."""
    return format_bytes(rate) + "/s"


def format_bytes(count: float) -> str:
    """``512 B``, ``1.0 KiB``, ``3.4 MiB``, ``1.2 GiB``: binary units, as ``--bwlimit``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class RateLimit:
    """A token bucket shared by all transfers of a run (``--bwlimit``), thread-safe.

    Each read takes its bytes from the bucket; when that leaves it in debt, the reader
    waits until the debt is paid at ``bytes_per_second``. Debts queue up, so parallel
    transfers share the rate instead of each getting it. The bucket starts empty and
    saves up at most ``BURST_SECONDS`` of the rate while idle.
    """

    def __init__(self, bytes_per_second: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not bytes_per_second > 0:
            raise ValueError(f"a rate limit must be positive, not {bytes_per_second!r}")
        self.rate = float(bytes_per_second)
        self.capacity = self.rate * BURST_SECONDS
        #: How much one read should ask for at most, so that one read is no big burst.
        self.piece = int(min(max(self.rate * WAIT_SLICE, 4096), 1 << 20))
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._updated = clock()

    def consume(self, count: int, stop: threading.Event) -> bool:
        """Take ``count`` bytes, waiting as long as the rate needs.

        Returns False at once when ``stop`` is set while waiting (the transfer is then
        abandoned), True once the bytes may go.
        """
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity,
                               self._tokens + (now - self._updated) * self.rate) - count
            self._updated = now
            ready_at = now + max(0.0, -self._tokens) / self.rate
        while True:
            left = ready_at - self._clock()
            if left <= 0:
                return True
            if stop.wait(min(left, WAIT_SLICE)):
                return False


@dataclass
class _Transfer:
    path: str
    target: str
    size: int
    done: int = 0


class Progress:
    """The round being applied: files and bytes done of total, the rate, what is in flight.

    Thread-safe: transfers report from worker threads, displays read ``snapshot()`` from
    theirs. Outside ``begin()`` ... ``end()`` the snapshot is None.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 window: float = RATE_WINDOW) -> None:
        self._clock = clock
        self._window = window
        self._lock = threading.Lock()
        self._handles = itertools.count(1)
        self._active = False
        self._files_total = self._files_done = 0
        self._bytes_total = self._bytes_done = 0
        self._in_flight: dict[int, _Transfer] = {}
        #: (time, bytes done then): the rate is measured over the last ``window`` of them.
        self._samples: deque[tuple[float, int]] = deque()

    def begin(self, files_total: int, bytes_total: int) -> None:
        """A round starts applying ``files_total`` actions that copy ``bytes_total``."""
        with self._lock:
            self._active = True
            self._files_total, self._bytes_total = files_total, bytes_total
            self._files_done = self._bytes_done = 0
            self._in_flight.clear()
            self._samples.clear()
            self._samples.append((self._clock(), 0))

    def end(self) -> None:
        """The round is applied (or stopped): nothing is in progress any more."""
        with self._lock:
            self._active = False
            self._in_flight.clear()
            self._samples.clear()

    def started(self, path: str, target: str, size: int) -> int:
        """A copy of ``path`` (``size`` bytes) to ``target`` starts; returns its handle."""
        handle = next(self._handles)
        with self._lock:
            self._in_flight[handle] = _Transfer(path, target, size)
        return handle

    def advance(self, handle: int, count: int) -> None:
        """The transfer ``handle`` moved ``count`` more bytes."""
        with self._lock:
            transfer = self._in_flight.get(handle)
            if transfer is None:
                return  # the round ended meanwhile (stopped)
            transfer.done += count
            self._bytes_done += count
            now = self._clock()
            self._samples.append((now, self._bytes_done))
            # Keep one sample older than the window: the rate is measured from it.
            while len(self._samples) > 2 and self._samples[1][0] <= now - self._window:
                self._samples.popleft()

    def finished(self, handle: int) -> None:
        """The transfer ``handle`` is over, done or failed (``action_done`` counts it)."""
        with self._lock:
            self._in_flight.pop(handle, None)

    def action_done(self) -> None:
        """One action of the round is over, whatever it was and however it went."""
        with self._lock:
            if self._active:
                self._files_done += 1

    def rate(self) -> float:
        """Recent bytes per second (over the last few seconds); 0.0 when not known yet."""
        with self._lock:
            return self._rate(self._clock())

    def _rate(self, now: float) -> float:
        if not self._samples:
            return 0.0
        while len(self._samples) > 1 and self._samples[1][0] <= now - self._window:
            self._samples.popleft()
        since, done_then = self._samples[0]
        elapsed = now - since
        return (self._bytes_done - done_then) / elapsed if elapsed >= 0.05 else 0.0

    def snapshot(self) -> dict[str, Any] | None:
        """The status document's "progress" object, or None when no round is applied."""
        with self._lock:
            if not self._active:
                return None
            rate = self._rate(self._clock())
            left = max(0, self._bytes_total - self._bytes_done)
            eta = 0.0 if left == 0 else left / rate if rate > 0 else None
            return {
                "files_done": self._files_done, "files_total": self._files_total,
                "bytes_done": self._bytes_done, "bytes_total": self._bytes_total,
                "rate": rate, "eta": eta,
                "in_flight": [{"path": t.path, "target": t.target, "bytes_done": t.done,
                               "bytes_total": t.size} for t in self._in_flight.values()],
            }
