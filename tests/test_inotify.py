"""The inotify binding on real tmp folders: events, names, move cookies, errors, closing."""

from __future__ import annotations

import ctypes
import errno
import os
import time
from pathlib import Path

import pytest

from filesync import inotify
from filesync.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    Inotify,
    InotifyError,
    RawEvent,
    WatchAccessError,
    WatchGoneError,
    WatchLimitError,
    pack_event,
    parse_events,
)


def read_until(ino: Inotify, wanted, timeout: float = 3.0) -> list[RawEvent]:
    """Read events until ``wanted(events)`` holds; fail at the deadline."""
    seen: list[RawEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += ino.read(0.1)
        if wanted(seen):
            return seen
    raise AssertionError(f"events not seen in {timeout} s: {seen}")


def has(events: list[RawEvent], mask: int, name: str) -> bool:
    return any(e.mask & mask and e.name == name for e in events)


def test_available_on_linux():
    assert inotify.available()


def test_creation_writes_and_deletion_are_seen(tmp_path: Path):
    with Inotify() as ino:
        wd = ino.add_watch(str(tmp_path))
        (tmp_path / "f.txt").write_text("hello")
        (tmp_path / "d").mkdir()
        events = read_until(ino, lambda ev: has(ev, IN_CLOSE_WRITE, "f.txt")
                            and has(ev, IN_CREATE, "d"))
        assert all(e.wd == wd for e in events)
        assert has(events, IN_CREATE, "f.txt") and has(events, IN_MODIFY, "f.txt")
        assert [e.is_dir for e in events if e.name == "d"] == [True]
        (tmp_path / "f.txt").unlink()
        events = read_until(ino, lambda ev: has(ev, IN_DELETE, "f.txt"))
        assert not any(e.is_dir for e in events if e.name == "f.txt")


def test_non_utf8_names_survive_as_surrogate_escapes(tmp_path: Path):
    raw = b"caf\xe9 \xff.txt"
    with Inotify() as ino:
        ino.add_watch(str(tmp_path))
        fd = os.open(os.path.join(os.fsencode(tmp_path), raw), os.O_CREAT | os.O_WRONLY)
        os.close(fd)
        name = os.fsdecode(raw)
        events = read_until(ino, lambda ev: has(ev, IN_CLOSE_WRITE, name))
        assert os.fsencode(next(e.name for e in events if e.mask & IN_CREATE)) == raw
        assert name in os.listdir(tmp_path)


def test_a_move_is_a_cookie_pair_even_across_folders(tmp_path: Path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "f").write_text("f")
    with Inotify() as ino:
        wx = ino.add_watch(str(tmp_path / "x"))
        wy = ino.add_watch(str(tmp_path / "y"))
        os.rename(tmp_path / "x" / "f", tmp_path / "y" / "g")
        events = read_until(ino, lambda ev: has(ev, IN_MOVED_TO, "g"))
        source = next(e for e in events if e.mask & IN_MOVED_FROM)
        target = next(e for e in events if e.mask & IN_MOVED_TO)
        assert (source.wd, source.name, target.wd, target.name) == (wx, "f", wy, "g")
        assert source.cookie == target.cookie != 0


def test_watching_one_folder_twice_gives_the_same_descriptor(tmp_path: Path):
    with Inotify() as ino:
        assert ino.add_watch(str(tmp_path)) == ino.add_watch(str(tmp_path))
        (tmp_path / "d").mkdir()
        first = ino.add_watch(str(tmp_path / "d"))
        os.rename(tmp_path / "d", tmp_path / "e")
        assert ino.add_watch(str(tmp_path / "e")) == first, "a watch follows its folder"


def test_errors_can_be_told_apart(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with Inotify() as ino:
        with pytest.raises(WatchGoneError) as gone:
            ino.add_watch(str(tmp_path / "missing"))
        assert gone.value.errno == errno.ENOENT
        assert str(tmp_path / "missing") in str(gone.value)
        with pytest.raises(WatchGoneError) as not_dir:
            ino.add_watch(str(tmp_path / "file"))  # folders only (IN_ONLYDIR)
        assert not_dir.value.errno == errno.ENOTDIR
    # EACCES cannot be provoked as root: the errno translation is checked directly.
    for code, kind in ((errno.EACCES, WatchAccessError), (errno.ENOSPC, WatchLimitError),
                       (errno.EINVAL, InotifyError)):
        ctypes.set_errno(code)
        error = inotify._error("inotify_add_watch", "p")
        assert type(error) is kind and error.errno == code and isinstance(error, OSError)


def test_the_watch_limit_hook_fails_like_enospc(tmp_path: Path):
    for name in "abc":
        (tmp_path / name).mkdir()
    with Inotify(watch_limit=2) as ino:
        ino.add_watch(str(tmp_path / "a"))
        ino.add_watch(str(tmp_path / "b"))
        with pytest.raises(WatchLimitError) as full:
            ino.add_watch(str(tmp_path / "c"))
        assert full.value.errno == errno.ENOSPC


def test_idle_read_waits_for_its_timeout_then_returns_nothing(tmp_path: Path):
    with Inotify() as ino:
        ino.add_watch(str(tmp_path))
        start = time.monotonic()
        assert ino.read(0.2) == []
        assert 0.15 <= time.monotonic() - start < 1.0


def test_close_is_idempotent_and_ends_the_descriptor(tmp_path: Path):
    ino = Inotify()
    fd = ino.fileno()
    ino.add_watch(str(tmp_path))
    ino.close()
    ino.close()
    assert ino.closed
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(ValueError):
        ino.read(0)


def test_parser_round_trip_padding_and_truncation():
    data = (pack_event(1, IN_CREATE | IN_ISDIR, 0, "dir")
            + pack_event(-1, IN_Q_OVERFLOW)
            + pack_event(2, IN_MOVED_TO, 7, "x" * 16))
    assert len(pack_event(1, IN_CREATE, 0, "dir")) == 16 + 16
    assert parse_events(data) == [RawEvent(1, IN_CREATE | IN_ISDIR, 0, "dir"),
                                  RawEvent(-1, IN_Q_OVERFLOW, 0, ""),
                                  RawEvent(2, IN_MOVED_TO, 7, "x" * 16)]
    for cut in (5, len(data) - 3):
        with pytest.raises(ValueError):
            parse_events(data[:cut])


def test_injected_bytes_come_out_of_the_next_read(tmp_path: Path):
    with Inotify() as ino:
        ino.add_watch(str(tmp_path))
        ino.inject(pack_event(-1, IN_Q_OVERFLOW))
        start = time.monotonic()
        events = ino.read(5.0)
        assert time.monotonic() - start < 1.0
        assert [e.mask for e in events] == [IN_Q_OVERFLOW]
