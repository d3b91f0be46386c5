"""The inotify watcher on real folders, and watch mode end to end with it."""

from __future__ import annotations

import os
import queue
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from filesync.eventwatch import QUIET, EventWatcher, make_watcher, on_remote_fs
from filesync.excludes import Excludes
from filesync.inotify import IN_Q_OVERFLOW, pack_event
from filesync.locations import open_location, parse_location
from filesync.watcher import EventKind, Watcher, WatchEvent
from tests.conftest import wait_for, write

TEMP = ".filesync-0123abcd-0123456789ab.tmp"


class Rig:
    """An ``EventWatcher`` on one folder, started, with its queue read by the test."""

    def __init__(self, root: Path, **options) -> None:
        root.mkdir(exist_ok=True)
        self.root = root
        self.location = open_location(parse_location(f"folder:{root}").unwrap()).unwrap()
        self.events: queue.Queue[WatchEvent] = queue.Queue()
        self.stop = threading.Event()
        baseline = self.location.list(Excludes()).unwrap().entries
        options.setdefault("interval", 0.1)
        self.watcher = EventWatcher(self.location, Excludes(), options.pop("interval"),
                                    self.events, self.stop, baseline, **options)
        self.watcher.start()
        assert self.watcher.ready.wait(5)

    def take(self, quiet: float = 0.8, timeout: float = 5.0) -> list[WatchEvent]:
        """Every event until none came for ``quiet`` seconds."""
        got: list[WatchEvent] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append(self.events.get(timeout=quiet))
            except queue.Empty:
                return got
        return got

    def paths(self, quiet: float = 0.8) -> list[str]:
        events = self.take(quiet)
        assert all(e.kind is EventKind.CHANGED for e in events), events
        return [e.path for e in events]

    def close(self) -> None:
        self.stop.set()
        self.watcher.join(5)
        assert not self.watcher.is_alive()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    started: list[Rig] = []

    def start(name: str = "root", **options) -> Rig:
        started.append(Rig(tmp_path / name, **options))
        return started[-1]

    yield start
    for one in started:
        one.close()


def test_make_watcher_uses_events_for_local_folders_only(tmp_path: Path):
    (tmp_path / "f").mkdir()
    args = (Excludes(), 2.0, queue.Queue(), threading.Event(), {})
    folder = open_location(parse_location(f"folder:{tmp_path / 'f'}").unwrap()).unwrap()
    archive = open_location(parse_location(f"zip:{tmp_path / 'a.zip'}").unwrap()).unwrap()
    assert type(make_watcher(folder, *args)) is EventWatcher
    assert type(make_watcher(folder, *args, poll=True)) is Watcher
    assert type(make_watcher(archive, *args)) is Watcher
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\nsrv:/x /mnt/my\\040nfs nfs4 rw 0 0\n")
    assert on_remote_fs(Path("/mnt/my nfs/sub"), str(mounts))
    assert not on_remote_fs(Path("/mnt/my"), str(mounts))
    assert not on_remote_fs(tmp_path, str(mounts))


def test_changes_are_reported_once_settled(rig):
    r = rig()
    write(r.root / "f.txt", "one")
    assert r.paths() == ["f.txt"]
    write(r.root / "f.txt", "two, longer")
    assert r.paths() == ["f.txt"]
    (r.root / "f.txt").unlink()
    assert r.paths() == ["f.txt"]
    assert r.watcher.settled("f.txt", None)


def test_files_made_before_their_folders_watch_exist_are_seen(rig):
    r = rig()
    expected = set()
    for i in range(15):
        deep = r.root / f"t{i}" / "b" / "c"
        os.makedirs(deep)  # mkdir -p, then files at once
        for name in ("x", "y"):
            (deep / name).write_text(name)
            expected.add(f"t{i}/b/c/{name}")
        (r.root / f"t{i}" / "top").write_text("t")
        expected |= {f"t{i}", f"t{i}/b", f"t{i}/b/c", f"t{i}/top"}
    seen = set(r.paths(1.0))
    assert seen == expected
    write(r.root / "t3" / "b" / "c" / "later", "l")  # the new folders are watched
    assert r.paths() == ["t3/b/c/later"]


def test_a_file_move_reports_both_names_together(rig):
    r = rig()
    write(r.root / "d" / "f.txt", "f")
    r.take()
    os.rename(r.root / "d" / "f.txt", r.root / "g.txt")
    assert sorted(r.paths()) == ["d/f.txt", "g.txt"]


def test_a_folder_move_inside_the_tree_keeps_watching_under_the_new_name(rig):
    r = rig()
    write(r.root / "p" / "q" / "f.txt", "f")
    r.take()
    os.rename(r.root / "p", r.root / "moved")
    assert set(r.paths()) == {"p", "p/q", "p/q/f.txt", "moved", "moved/q", "moved/q/f.txt"}
    write(r.root / "moved" / "q" / "new.txt", "n")
    assert r.paths() == ["moved/q/new.txt"]


def test_moves_out_of_and_into_the_tree(rig, tmp_path: Path):
    r = rig()
    write(r.root / "out" / "f.txt", "f")
    write(r.root / "gone.txt", "g")
    r.take()
    start = time.monotonic()
    os.rename(r.root / "out", tmp_path / "outside")
    os.rename(r.root / "gone.txt", tmp_path / "gone.txt")
    assert set(r.paths()) == {"out", "out/f.txt", "gone.txt"}
    assert time.monotonic() - start >= 0.5 + QUIET, "an unmatched move-from is held"
    write(tmp_path / "outside" / "after.txt", "a")  # no longer ours
    assert r.paths() == []
    write(tmp_path / "incoming" / "sub" / "in.txt", "i")
    os.rename(tmp_path / "incoming", r.root / "incoming")
    assert set(r.paths()) == {"incoming", "incoming/sub", "incoming/sub/in.txt"}


def test_overflow_forces_a_full_rescan(rig, log_records):
    r = rig()
    write(r.root / "sub" / "old.txt", "o")
    r.take()
    table = r.watcher.table
    with r.watcher._lock:  # lose the events of sub/ (as an overflow would)
        table.remove(table.unmap("sub"))
    write(r.root / "sub" / "missed.txt", "m")
    assert r.paths() == [], "events of sub/ were to be lost"
    table.inotify.inject(pack_event(-1, IN_Q_OVERFLOW))
    assert r.paths() == ["sub/missed.txt"]
    assert "overflowed" in log_records.text
    write(r.root / "sub" / "next.txt", "n")  # watched again, by events (rescan is 300 s)
    assert r.paths() == ["sub/next.txt"]


def test_a_full_watch_table_falls_back_to_polling(rig, log_records):
    r = rig(watch_limit=2)
    for name in ("a/x", "b/y", "c/z"):
        write(r.root / name, "1")
    wait_for(lambda: r.watcher.polling, message="polling")
    assert "fs.inotify.max_user_watches" in log_records.text
    assert r.watcher.table is None
    assert set(r.paths(1.0)) == {"a", "a/x", "b", "b/y", "c", "c/z"}


def test_a_file_written_in_pieces_is_reported_once_after_it_stops(rig):
    r = rig()
    growing = r.root / "growing.log"
    with growing.open("w") as handle:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            handle.write("line\n")
            handle.flush()
            entry = r.location.stat("growing.log").unwrap()
            assert not r.watcher.settled("growing.log", entry)
            assert r.events.empty(), "reported while still being written"
            time.sleep(0.05)
    stopped = time.monotonic()
    event = r.events.get(timeout=2)
    assert event.path == "growing.log" and time.monotonic() - stopped >= QUIET * 0.9
    assert r.paths() == []


def test_our_own_temporary_files_and_acknowledged_writes_stay_silent(rig):
    r = rig()
    write(r.root / TEMP, "content")
    os.rename(r.root / TEMP, r.root / "final.txt")
    r.watcher.acknowledge({"final.txt": r.location.stat("final.txt").unwrap()})
    write(r.root / "sub" / TEMP, "x")
    r.watcher.acknowledge({"sub": r.location.stat("sub").unwrap()})
    assert r.paths() == []


def test_a_vanished_root_is_unavailable_until_it_is_back(rig, tmp_path: Path):
    r = rig()
    write(r.root / "keep.txt", "k")
    r.take()
    os.rename(r.root, tmp_path / "away")
    kinds = [e.kind for e in r.take()]
    assert kinds == [EventKind.UNAVAILABLE]
    os.rename(tmp_path / "away", r.root)
    assert [e.kind for e in r.take()] == [EventKind.AVAILABLE]
    write(r.root / "again.txt", "a")
    assert r.paths() == ["again.txt"]
    shutil.rmtree(r.root)
    assert [e.kind for e in r.take()] == [EventKind.UNAVAILABLE]


def test_stop_ends_the_thread_quickly_and_closes_its_descriptor(tmp_path: Path):
    fds = set(os.listdir("/proc/self/fd"))
    r = Rig(tmp_path / "root")
    table = r.watcher.table
    assert table is not None and not table.inotify.closed
    start = time.monotonic()
    r.close()
    assert time.monotonic() - start < 0.6
    assert table.inotify.closed and set(os.listdir("/proc/self/fd")) <= fds


def _latency(a: Path, b: Path, name: str) -> float:
    start = time.monotonic()
    write(a / name, "payload " * 100)
    while not ((b / name).exists() and (b / name).stat().st_size == 800):
        assert time.monotonic() - start < 10, f"{name} never reached b"
        time.sleep(0.005)
    return time.monotonic() - start


def test_watch_mode_shows_a_change_within_half_a_second(tmp_path: Path, watching):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "start.txt", "s")
    b.mkdir()
    run = watching(f"folder:{a}", f"folder:{b}", interval=2.0)  # the default interval
    run.wait_output("watching")
    time.sleep(0.5)
    samples = []
    for i in range(3):
        samples.append(_latency(a, b, f"f{i}.txt"))
        time.sleep(0.3)
    assert statistics.median(samples) <= 0.5, samples
    assert run.stop() == 0


def test_poll_option_still_syncs(tmp_path: Path, watching):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "start.txt", "s")
    b.mkdir()
    run = watching("--poll", f"folder:{a}", f"folder:{b}", interval=0.3)
    run.wait_output("watching")
    assert _latency(a, b, "polled.txt") >= 0.3  # two scans at least
    (a / "polled.txt").unlink()
    wait_for(lambda: not (b / "polled.txt").exists(), message="a deletion by polling")
    assert run.stop() == 0

