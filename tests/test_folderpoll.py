"""Cheap polls of a folder see what a full listing sees, some changes a few polls later."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from conftest import write

from filesync.excludes import Excludes
from filesync.locations import folderpoll
from filesync.locations.folder import FolderLocation
from filesync.locations.folderpoll import PollMemory
from filesync.locations.spec import FolderSpec
from filesync.model import Listing
from filesync.watcher import Watcher

OLD = 1_600_000_000


def full(location: FolderLocation, excludes: Excludes | None = None) -> Listing:
    listed = location.list(excludes or Excludes())
    assert listed.ok, listed.message
    return listed.value


def poll(location: FolderLocation, memory: PollMemory,
         excludes: Excludes | None = None) -> Listing:
    listed = location.poll_list(excludes or Excludes(), memory)
    assert listed.ok, listed.message
    return listed.value


def same(one: Listing, other: Listing) -> bool:
    return (one.entries == other.entries and sorted(one.temps) == sorted(other.temps)
            and one.skipped == other.skipped and one.blind == other.blind)


def age(root: Path) -> None:
    """Make every folder look long unchanged (not racy): only the sweep looks inside."""
    for folder, _, _ in os.walk(root):
        os.utime(folder, (OLD, OLD))


def test_a_watcher_of_a_folder_gets_poll_memory_and_others_list_in_full(tmp_path):
    location = FolderLocation(FolderSpec(tmp_path))
    assert isinstance(location.new_poll_memory(), PollMemory)
    assert same(poll(location, None), full(location))  # type: ignore[arg-type]
    watcher = Watcher(location, Excludes(), 1.0, None, None, {})  # type: ignore[arg-type]
    assert isinstance(watcher._poll_memory, PollMemory)


def test_the_first_poll_is_a_full_listing_with_links_temps_and_excludes(tmp_path):
    write(tmp_path / "a" / "b" / "f.txt", "f")
    write(tmp_path / "top.txt", "t")
    write(tmp_path / "build" / "out.o", "o")
    write(tmp_path / "a" / ".filesync-0123abcd-0123456789ab.tmp", "temp")
    os.symlink("top.txt", tmp_path / "a" / "link")
    os.mkfifo(tmp_path / "a" / "fifo")
    location = FolderLocation(FolderSpec(tmp_path))
    excludes = Excludes(("build/",))
    memory = PollMemory()
    listing = poll(location, memory, excludes)
    assert same(listing, full(location, excludes))
    assert "build" not in listing.entries and "a/link" in listing.skipped
    assert listing.temps == ["a/.filesync-0123abcd-0123456789ab.tmp"]


def test_new_deleted_and_renamed_files_show_at_the_next_poll(tmp_path):
    for n in range(30):
        write(tmp_path / f"d{n % 3}" / f"f{n}.txt", f"{n}", mtime=OLD)
    age(tmp_path)
    location = FolderLocation(FolderSpec(tmp_path))
    memory = PollMemory(sweep=1)
    poll(location, memory)
    write(tmp_path / "d0" / "new.txt", "new")
    (tmp_path / "d1" / "f1.txt").unlink()
    (tmp_path / "d2" / "f2.txt").rename(tmp_path / "d2" / "renamed.txt")
    (tmp_path / "d0" / "sub").mkdir()
    listing = poll(location, memory)
    assert same(listing, full(location))
    assert "d0/new.txt" in listing.entries and "d1/f1.txt" not in listing.entries
    assert "d2/renamed.txt" in listing.entries and "d0/sub" in listing.entries


def test_a_file_written_in_place_shows_within_its_turn(tmp_path):
    for n in range(12):
        write(tmp_path / "d" / f"f{n:02}.txt", "same", mtime=OLD)
    age(tmp_path)
    location = FolderLocation(FolderSpec(tmp_path))
    memory = PollMemory(sweep=4)
    poll(location, memory)
    # In place: the folder's mtime does not move, so only the file's turn finds it.
    with open(tmp_path / "d" / "f07.txt", "r+b") as handle:
        handle.write(b"SAME and longer")
    os.utime(tmp_path / "d", (OLD, OLD))
    seen_at = None
    for attempt in range(1, 5):
        if poll(location, memory).entries["d/f07.txt"].size == 15:
            seen_at = attempt
            break
    assert seen_at is not None and seen_at <= 3  # 12 files, 4 a poll
    assert same(poll(location, memory), full(location))


def test_a_folder_changed_in_the_same_clock_tick_as_its_listing_is_listed_again(tmp_path):
    """A recent folder mtime may hide a later change in the same tick: look again."""
    write(tmp_path / "d" / "a.txt", "a")
    location = FolderLocation(FolderSpec(tmp_path))
    memory = PollMemory()
    poll(location, memory)
    tick = (tmp_path / "d").stat().st_mtime_ns
    write(tmp_path / "d" / "b.txt", "b")
    os.utime(tmp_path / "d", ns=(tick, tick))  # as a coarse clock would leave it
    assert "d/b.txt" in poll(location, memory).entries


def test_a_long_unchanged_folder_is_not_listed_again(tmp_path):
    """The reverse of the racy rule: an old folder's names are taken from memory."""
    write(tmp_path / "d" / "a.txt", "a", mtime=OLD)
    age(tmp_path)
    location = FolderLocation(FolderSpec(tmp_path))
    memory = PollMemory()
    poll(location, memory)
    write(tmp_path / "d" / "b.txt", "b")
    os.utime(tmp_path / "d", (OLD, OLD))  # a change the folder's mtime does not show
    assert "d/b.txt" not in poll(location, memory).entries


def test_a_changed_file_is_looked_at_again_at_the_next_poll(tmp_path):
    """The watcher's rule (two polls agree) needs a fresh look, whatever the file's turn."""
    for n in range(10):
        write(tmp_path / "d" / f"f{n}.txt", "x", mtime=OLD)
    age(tmp_path)
    location = FolderLocation(FolderSpec(tmp_path))
    memory = PollMemory(sweep=10)
    poll(location, memory)
    memory.sweep = 0  # from now on only changed files are looked at
    with open(tmp_path / "d" / "f3.txt", "ab") as handle:
        handle.write(b"1")
    memory.hot.add("d/f3.txt")  # as if its turn had come
    assert poll(location, memory).entries["d/f3.txt"].size == 2
    with open(tmp_path / "d" / "f3.txt", "ab") as handle:
        handle.write(b"2")
    assert poll(location, memory).entries["d/f3.txt"].size == 3  # still hot
    assert poll(location, memory).entries["d/f3.txt"].size == 3
    assert "d/f3.txt" not in memory.hot  # it settled


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_are_all_seen_within_a_full_turn(tmp_path, seed):
    rng = random.Random(seed)
    names = [f"d{rng.randrange(4)}/e{rng.randrange(3)}/f{n}.txt" for n in range(40)]
    for name in names:
        write(tmp_path / name, "x" * rng.randrange(5), mtime=OLD)
    age(tmp_path)
    location = FolderLocation(FolderSpec(tmp_path))
    memory = PollMemory(sweep=7)
    poll(location, memory)
    for _ in range(8):
        for _ in range(rng.randrange(1, 5)):
            files = sorted(p for p in tmp_path.rglob("*.txt"))
            target = rng.choice(files) if files else None
            action = rng.choice(["create", "delete", "rename", "edit", "rmdir", "mkdir"])
            if action == "create":
                write(tmp_path / f"d{rng.randrange(5)}" / f"n{rng.randrange(99)}.txt", "n")
            elif action == "delete" and target:
                target.unlink()
            elif action == "rename" and target:
                target.rename(target.with_name(f"r{rng.randrange(99)}.txt"))
            elif action == "edit" and target:
                with open(target, "ab") as handle:
                    handle.write(b"+")
            elif action == "mkdir":
                (tmp_path / f"m{rng.randrange(9)}").mkdir(exist_ok=True)
            elif action == "rmdir":
                for folder in sorted(tmp_path.glob("m*")):
                    folder.rmdir()
        expected = full(location)
        polls = [poll(location, memory) for _ in range(1 + -(-len(expected.entries) // 7))]
        got = polls[-1].entries
        assert got == expected.entries, (seed, {k: (got.get(k), expected.entries.get(k))
                                                for k in set(got) | set(expected.entries)
                                                if got.get(k) != expected.entries.get(k)})
        assert same(polls[-1], expected), seed
        if rng.random() < 0.5:
            age(tmp_path)  # old folders: the next changes must move their mtimes
            poll(location, memory)
        # Names appear and vanish at once (their folder changed); contents may take turns.
        assert set(polls[0].entries) == set(expected.entries)


def test_a_poll_of_an_unchanged_tree_looks_at_one_turn_of_files(tmp_path, monkeypatch):
    """What makes a poll cheap: one stat per folder (its mtime) and a turn of files."""
    for n in range(300):
        write(tmp_path / f"d{n % 30}" / f"f{n}.txt", "x", mtime=OLD)
    age(tmp_path)
    location = FolderLocation(FolderSpec(tmp_path))
    memory = PollMemory(sweep=25)
    poll(location, memory)
    poll(location, memory)  # every file was new at the first: looked at again
    looked_at: list[str] = []
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        looked_at.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    for _ in range(3):
        looked_at.clear()
        listing = poll(location, memory)
        assert len(looked_at) == 25
        assert sum(not entry.is_dir for entry in listing.entries.values()) == 300


def test_every_folder_is_listed_again_now_and_then(tmp_path, monkeypatch):
    """A tool that sets a folder's mtime back (rsync -a) hides a change only for a while."""
    write(tmp_path / "d" / "a.txt", "a", mtime=OLD)
    age(tmp_path)
    location = FolderLocation(FolderSpec(tmp_path))
    memory = PollMemory()
    poll(location, memory)
    write(tmp_path / "d" / "b.txt", "b")
    os.utime(tmp_path / "d", (OLD, OLD))
    assert "d/b.txt" not in poll(location, memory).entries
    monkeypatch.setattr(folderpoll, "RELIST_NS", 0)
    memory._relist_at = 0
    assert "d/b.txt" in poll(location, memory).entries
