"""The hub lease (``filesync.lease``) on a memory location and a local folder."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from filesync.lease import HOLDER, LEASE_DIR, Holder, acquire
from filesync.locations import open_location, parse_location
from filesync.locations.base import Location
from filesync.locations.memory import MemoryLocation
from filesync.result import ErrorKind


@pytest.fixture(params=["memory", "folder"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    if request.param == "memory":
        return MemoryLocation("hub")
    location = open_location(parse_location(f"folder:{tmp_path / 'hub'}").unwrap()).unwrap()
    assert location.prepare().ok
    return location


def holder_of(location: Location) -> Holder | None:
    opened = location.open_read(HOLDER)
    if not opened.ok:
        return None
    with opened.value as stream:
        return Holder.decode(stream.read())


def test_a_free_lease_is_taken_and_released(hub: Location):
    stop = threading.Event()
    lease = acquire(hub, "aaaa1111", ttl=30, wait=0, stop=stop).unwrap()
    held = holder_of(hub)
    assert held is not None and held.owner == "aaaa1111" and held.ttl == 30
    lease.release()
    assert hub.stat(LEASE_DIR).unwrap() is None


def test_a_held_lease_makes_another_run_wait_then_give_up_naming_the_holder(hub: Location):
    stop = threading.Event()
    lease = acquire(hub, "aaaa1111", ttl=30, wait=0, stop=stop).unwrap()
    try:
        started = time.monotonic()
        busy = acquire(hub, "bbbb2222", ttl=30, wait=0.5, stop=stop)
        assert not busy.ok and busy.kind is ErrorKind.UNAVAILABLE
        assert time.monotonic() - started >= 0.5
        assert "busy" in busy.message and "aaaa1111" in busy.message
    finally:
        lease.release()
    second = acquire(hub, "bbbb2222", ttl=30, wait=0, stop=stop).unwrap()
    assert holder_of(hub).owner == "bbbb2222"  # type: ignore[union-attr]
    second.release()


def test_a_waiting_run_gets_the_lease_once_it_is_released(hub: Location):
    stop = threading.Event()
    lease = acquire(hub, "aaaa1111", ttl=30, wait=0, stop=stop).unwrap()
    releaser = threading.Timer(0.4, lease.release)
    releaser.start()
    try:
        second = acquire(hub, "bbbb2222", ttl=30, wait=10, stop=stop).unwrap()
    finally:
        releaser.join()
    assert holder_of(hub).owner == "bbbb2222"  # type: ignore[union-attr]
    second.release()


def test_a_killed_runs_lease_is_taken_over_once_unrenewed_for_its_ttl(hub: Location):
    stop = threading.Event()
    dead = acquire(hub, "dead0000", ttl=0.6, wait=0, stop=stop).unwrap()
    dead._stop.set()  # the run was killed: nobody renews or releases
    dead._thread.join()
    started = time.monotonic()
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("filesync").addHandler(handler)
    try:
        lease = acquire(hub, "bbbb2222", ttl=30, wait=10, stop=stop).unwrap()
    finally:
        logging.getLogger("filesync").removeHandler(handler)
    lease.release()
    assert time.monotonic() - started >= 0.6
    assert any("taking over the lease of the filesync run dead0000" in text
               for text in messages)


def test_a_lease_renewed_by_a_live_run_is_never_taken_over(hub: Location):
    stop = threading.Event()
    live = acquire(hub, "aaaa1111", ttl=0.3, wait=0, stop=stop).unwrap()
    try:
        busy = acquire(hub, "bbbb2222", ttl=0.3, wait=1.5, stop=stop)
        assert not busy.ok and busy.kind is ErrorKind.UNAVAILABLE
        assert holder_of(hub).owner == "aaaa1111"  # type: ignore[union-attr]
        assert holder_of(hub).renewals >= 3  # type: ignore[union-attr]
        assert not live.lost
    finally:
        live.release()


def test_the_same_sync_set_takes_back_its_own_lease_at_once(hub: Location):
    stop = threading.Event()
    dead = acquire(hub, "aaaa1111", ttl=60, wait=0, stop=stop).unwrap()
    dead._stop.set()
    dead._thread.join()
    started = time.monotonic()
    again = acquire(hub, "aaaa1111", ttl=60, wait=0, stop=stop).unwrap()
    assert time.monotonic() - started < 5
    assert holder_of(hub).nonce == again.holder.nonce  # type: ignore[union-attr]
    again.release()


def test_a_claim_without_a_holder_file_is_taken_over_after_the_ttl(hub: Location):
    assert hub.claim_dir(LEASE_DIR).unwrap() is True  # killed right after claiming
    stop = threading.Event()
    lease = acquire(hub, "bbbb2222", ttl=0.4, wait=5, stop=stop).unwrap()
    assert holder_of(hub).owner == "bbbb2222"  # type: ignore[union-attr]
    lease.release()


def test_a_run_whose_lease_was_taken_over_does_not_release_the_new_holders(hub: Location):
    stop = threading.Event()
    slow = acquire(hub, "aaaa1111", ttl=0.3, wait=0, stop=stop).unwrap()
    slow._stop.set()  # stalled: stops renewing
    slow._thread.join()
    other = acquire(hub, "bbbb2222", ttl=30, wait=5, stop=stop).unwrap()
    slow.release()
    assert holder_of(hub).owner == "bbbb2222"  # type: ignore[union-attr]
    other.release()


def test_racing_runs_hold_the_lease_one_at_a_time(hub: Location):
    stop = threading.Event()
    inside: list[str] = []
    overlaps: list[str] = []
    errors: list[str] = []

    def run(owner: str) -> None:
        for _ in range(3):
            got = acquire(hub, owner, ttl=30, wait=20, stop=stop)
            if not got.ok:
                errors.append(got.message)
                return
            inside.append(owner)
            if len(inside) > 1:
                overlaps.append(",".join(inside))
            time.sleep(0.02)
            inside.remove(owner)
            got.value.release()

    threads = [threading.Thread(target=run, args=(f"run{n:05d}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and overlaps == []


def test_stop_ends_the_wait(hub: Location):
    stop = threading.Event()
    lease = acquire(hub, "aaaa1111", ttl=30, wait=0, stop=stop).unwrap()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    stopped = acquire(hub, "bbbb2222", ttl=30, wait=60, stop=stop)
    assert not stopped.ok and "stopped" in stopped.message
    assert time.monotonic() - started < 5
    lease.release()
