"""The speed-ups of the no-op round and of polling give the same answers as the slow paths."""

from __future__ import annotations

import gc
import itertools
import random
import resource

import pytest

from filesync.excludes import Excludes
from filesync.gcpause import gc_paused
from filesync.locations.folder import FolderLocation
from filesync.locations.spec import FolderSpec
from filesync.model import (
    MAYBE_UNSAFE,
    MAYBE_UNSAFE_POSIX,
    RESERVED_DIR,
    Agreed,
    Entry,
    Listing,
    PathState,
    Record,
    all_plain,
)
from filesync.planner import PlanInput, plan
from filesync.watcher import _differences

TRICKY = ["a", "a/b", "a/b.txt", ".", "..", "a/.", "a/..", "./a", "../a", "a/./b", "a/../b",
          "a//b", "/a", "a/", "", "a\x00b", "a\\b", "c:x", "C:/x", "x/c:y", ".a", "..a", "a..",
          "a/.b", "a/..b/c", ".filesync", ".filesync/x", "x/.filesync-1234abcd-0123456789ab.tmp",
          "...", "a/.../b", "ab:", "a b", "ä/ö"]


@pytest.mark.parametrize("posix", [True, False])
def test_all_plain_says_yes_only_when_no_path_needs_a_closer_look(posix):
    single = MAYBE_UNSAFE_POSIX if posix else MAYBE_UNSAFE
    for count in (1, 2, 3):
        for paths in itertools.permutations(TRICKY, count):
            slow = all(RESERVED_DIR not in path and not single.search(path) for path in paths)
            assert all_plain(list(paths), posix) == slow, paths
    assert all_plain(["a", "b/c", "d/e/f.txt"], posix)


def test_entries_compare_and_hash_without_their_mode():
    one, other = Entry("a", False, 3, 7, 0o644), Entry("a", False, 3, 7, 0o600)
    assert one == other and hash(one) == hash(other)
    assert one != Entry("a", False, 3, 8) and one != Entry("a", False, 4, 7)
    assert one != Entry("b", False, 3, 7) and Entry("a", True) != Entry("a", False)
    assert one != ("a", False, 3, 7, 0o644)
    assert repr(one) == "Entry(path='a', is_dir=False, size=3, mtime_ns=7, mode=420)"


def test_gc_pauses_nest_and_restore_the_collector():
    assert gc.isenabled()
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_a_wide_folder_is_listed_whole_with_few_file_descriptors(tmp_path):
    for number in range(300):
        (tmp_path / f"d{number:03}").mkdir()
        (tmp_path / f"d{number:03}" / "f").write_bytes(b"x")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        listed = FolderLocation(FolderSpec(tmp_path)).list(Excludes(()))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert listed.ok, listed
    assert not listed.value.blind and not listed.value.warnings
    assert len(listed.value.entries) == 600


def test_a_symlinked_sub_folder_is_skipped_and_a_symlinked_root_is_followed(tmp_path):
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "f").write_bytes(b"x")
    (real / "link").symlink_to(real / "sub")
    (tmp_path / "root-link").symlink_to(real)
    listed = FolderLocation(FolderSpec(tmp_path / "root-link")).list(Excludes(()))
    assert listed.ok
    assert sorted(listed.value.entries) == ["sub", "sub/f"]
    assert "link" in listed.value.skipped


def _random_case(rng: random.Random) -> tuple[dict[str, Listing], dict[str, PathState]]:
    """Two listings and a state in which most paths are in sync and some differ a little."""
    keys = ["A", "B"]
    listings = {key: Listing() for key in keys}
    state: dict[str, PathState] = {}
    for number in range(40):
        path = f"p{number}"
        is_dir = rng.random() < 0.2
        size, mtime = (0, 0) if is_dir else (rng.randint(0, 3), rng.randint(0, 3))
        gen = rng.randint(1, 2)
        agreed = Agreed(gen, rng.random() < 0.1, is_dir, size, mtime,
                        conflict=rng.random() < 0.05)
        records = {}
        for key in keys:
            entry = Entry(path, is_dir, size, mtime)
            record = Record(gen, is_dir, size, mtime)
            twist = rng.random()
            if twist < 0.05:
                entry = Entry(path, not is_dir, size, mtime)
            elif twist < 0.1:
                entry = Entry(path, is_dir, size + 1, mtime)
            elif twist < 0.15:
                entry = Entry(path, is_dir, size, mtime + rng.choice((1, 5)))
            elif twist < 0.2:
                record = Record(gen - 1, is_dir, size, mtime)
            elif twist < 0.25:
                entry = None  # type: ignore[assignment]
            if entry is not None:
                listings[key].entries[path] = entry
            if twist >= 0.3 or rng.random() < 0.5:
                records[key] = record
        state[path] = PathState(agreed if rng.random() < 0.9 else None, records)
    listings["A"].entries["new"] = Entry("new", False, 1, 1)
    return listings, state


def _summary(result) -> list[tuple]:
    return [(d.path, d.agreed, sorted(d.holders.items()), [(a.op, a.path, a.target)
             for a in d.actions], d.forget) for d in result.decisions]


@pytest.mark.parametrize("tolerance", [0, 2])
def test_the_no_op_fast_path_plans_exactly_what_the_full_path_plans(tolerance):
    rng = random.Random(11)
    for _ in range(300):
        listings, state = _random_case(rng)
        tolerances = {"A": tolerance, "B": tolerance}
        fast = plan(PlanInput(["A", "B"], listings, state, tolerances))
        # A blind path nobody has turns the fast path off and changes nothing else.
        listings["B"].blind.add("elsewhere")
        slow = plan(PlanInput(["A", "B"], listings, state, tolerances))
        assert _summary(fast) == _summary(slow)
        assert fast.problems == slow.problems and fast.hash_requests == slow.hash_requests


def test_differences_between_polls_are_those_entry_equality_sees():
    old = {"same": Entry("same", False, 1, 1, 0o644), "size": Entry("size", False, 1, 1),
           "time": Entry("time", False, 1, 1), "kind": Entry("kind", True),
           "gone": Entry("gone", False, 1, 1)}
    new = {"same": Entry("same", False, 1, 1, 0o600), "size": Entry("size", False, 2, 1),
           "time": Entry("time", False, 1, 2), "kind": Entry("kind", False),
           "born": Entry("born", False, 1, 1)}
    assert sorted(_differences(old, new)) == ["born", "gone", "kind", "size", "time"]
    assert sorted(_differences(old, new)) == sorted(
        [p for p in new if old.get(p) != new[p]] + [p for p in old if p not in new])
