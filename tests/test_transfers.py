"""The bandwidth limit's parts: rates as typed, the shared token bucket, progress numbers."""

from __future__ import annotations

import threading
import time

import pytest

from filesync.progress import format_eta, shorten, status_text
from filesync.transfers import Progress, RateLimit, parse_rate


@pytest.mark.parametrize(("text", "expected"), [
    ("800", 800.0), ("500K", 500 * 1024.0), ("500k", 500 * 1024.0), ("2M", 2 * 1024.0**2),
    ("1.5M", 1.5 * 1024.0**2), ("1G", 1024.0**3), ("2MB", 2 * 1024.0**2),
    ("2MiB/s", 2 * 1024.0**2), ("64kb/s", 64 * 1024.0), (" 3m ", 3 * 1024.0**2),
    (".5K", 512.0), ("100B", 100.0),
])
def test_rates_in_every_accepted_form(text, expected):
    parsed = parse_rate(text)
    assert parsed.ok, parsed
    assert parsed.value == expected


@pytest.mark.parametrize("text", ["0", "0K", "-5M", "", "fast", "2T", "M", "1.2.3M", "0.5",
                                  "nanM", "1e3", "2 M B x"])
def test_nonsense_rates_are_refused_with_the_accepted_forms(text):
    parsed = parse_rate(text)
    assert not parsed.ok
    assert repr(text) in parsed.message
    assert "500K" in parsed.message and "KiB" in parsed.message


def test_a_rate_limit_must_be_positive():
    with pytest.raises(ValueError):
        RateLimit(0)


def test_four_threads_together_stay_within_the_rate():
    rate = 400_000.0
    limit = RateLimit(rate)
    stop = threading.Event()
    per_thread, piece = 200_000, 16_384
    moved: list[int] = []
    lock = threading.Lock()

    def transfer() -> None:
        left = per_thread
        while left > 0:
            count = min(piece, left)
            assert limit.consume(count, stop)
            left -= count
            with lock:
                moved.append(count)

    threads = [threading.Thread(target=transfer) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    total = sum(moved)
    assert total == 4 * per_thread
    # Each thread alone would get the whole rate: together they share it.
    assert elapsed >= total / rate * 0.9, elapsed
    assert elapsed < total / rate * 1.5 + 0.5, elapsed


def test_a_short_window_never_sees_much_more_than_the_rate():
    rate = 200_000.0
    limit = RateLimit(rate)
    stop = threading.Event()
    time.sleep(0.5)  # idle: the bucket saves up its small burst, no more
    started = time.monotonic()
    taken = 0
    while time.monotonic() - started < 0.3:
        assert limit.consume(1000, stop)
        taken += 1000
    assert taken <= rate * (0.3 + 0.25) + 1000, taken


def test_stop_ends_a_wait_promptly():
    limit = RateLimit(1000.0)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert limit.consume(1_000_000, stop) is False  # would take 1000 s
    assert time.monotonic() - started < 1.0


class FakeClock:
    """A clock the test moves by hand, so rates and ETAs are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_snapshot_numbers():
    clock = FakeClock()
    progress = Progress(clock=clock, window=5.0)
    assert progress.snapshot() is None
    progress.begin(files_total=4, bytes_total=3000)
    first = progress.started("a.bin", "ftp://u@host/x", 1000)
    second = progress.started("b.bin", "folder:/b", 2000)
    clock.now += 1.0
    progress.advance(first, 600)
    progress.advance(second, 400)
    snap = progress.snapshot()
    assert snap is not None
    assert snap["files_done"] == 0 and snap["files_total"] == 4
    assert snap["bytes_done"] == 1000 and snap["bytes_total"] == 3000
    assert snap["rate"] == pytest.approx(1000.0)
    assert snap["eta"] == pytest.approx(2.0)
    assert snap["in_flight"] == [
        {"path": "a.bin", "target": "ftp://u@host/x", "bytes_done": 600, "bytes_total": 1000},
        {"path": "b.bin", "target": "folder:/b", "bytes_done": 400, "bytes_total": 2000}]
    progress.advance(first, 400)
    progress.finished(first)
    progress.action_done()
    progress.action_done()  # a deletion counts as a file done too
    snap = progress.snapshot()
    assert snap is not None
    assert snap["files_done"] == 2
    assert [item["path"] for item in snap["in_flight"]] == ["b.bin"]
    # A stall: the rate falls over the window, and to nothing once it has passed.
    clock.now += 3.0
    snap = progress.snapshot()
    assert snap is not None and snap["rate"] == pytest.approx(1400.0 / 4.0)
    clock.now += 10.0
    snap = progress.snapshot()
    assert snap is not None and snap["rate"] == 0.0 and snap["eta"] is None
    progress.end()
    assert progress.snapshot() is None


def test_the_rate_looks_at_the_last_seconds_only():
    clock = FakeClock()
    progress = Progress(clock=clock, window=2.0)
    progress.begin(1, 100_000)
    handle = progress.started("x", "t", 100_000)
    for _ in range(10):  # 1000 B/s for 10 s ...
        clock.now += 1.0
        progress.advance(handle, 1000)
    for _ in range(4):  # ... then 5000 B/s
        clock.now += 0.5
        progress.advance(handle, 2500)
    snap = progress.snapshot()
    assert snap is not None
    assert snap["rate"] == pytest.approx(5000.0)
    assert snap["eta"] == pytest.approx((100_000 - 20_000) / 5000.0)


def test_the_status_line_fits_the_width():
    snap = {"files_done": 3, "files_total": 10, "bytes_done": 1048576,
            "bytes_total": 10485760, "rate": 524288.0, "eta": 17.5,
            "in_flight": [{"path": "photos/2024/" + "x" * 80 + ".jpg", "target": "t",
                           "bytes_done": 1, "bytes_total": 2},
                          {"path": "bad\nname", "target": "t", "bytes_done": 1,
                           "bytes_total": 2}]}
    line = status_text(snap, 80)
    assert len(line) <= 79
    assert line.startswith("3/10 files  1.0 MiB/10.0 MiB  512.0 KiB/s  ETA 0:18")
    assert "\n" not in line and "..." in line
    assert format_eta(None) == "?" and format_eta(3725) == "1:02:05"
    assert shorten("abcdefghij", 7) == "ab...ij"
