"""A full round that looks like the last one that planned nothing skips loading the state.

The memo is only worth having if it can never hide a change: each test here fails if a
change slips past it, or if the memo is not used where it should be.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_main, tree, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import filesync
from filesync.engine import Engine
from filesync.model import Agreed, Entry, Listing, Record
from filesync.planmemo import listings_digest, planner_settings
from filesync.planner import Plan
from filesync.state import StateStore

SETTINGS = planner_settings("1", ["a", "b"], {"a": "folder", "b": "zip"}, {"a": 0, "b": 2},
                            False, "newest", [])


def listing(*entries: Entry, blind: tuple[str, ...] = ()) -> Listing:
    return Listing({entry.path: entry for entry in entries}, blind=set(blind))


BASE = [Entry("d", True), Entry("d/f", False, 3, 1000), Entry("g", False, 5, 2000)]


def test_the_digest_changes_with_every_field_that_steers_the_planner():
    digest = listings_digest(["a", "b"], {"a": listing(*BASE), "b": listing(*BASE)}, SETTINGS)
    assert digest is not None
    same = listings_digest(["a", "b"], {"a": listing(*BASE), "b": listing(*BASE)}, SETTINGS)
    assert same == digest
    changed = [
        [Entry("d", True), Entry("d/f", False, 4, 1000), BASE[2]],        # size
        [Entry("d", True), Entry("d/f", False, 3, 1001), BASE[2]],        # mtime
        [Entry("d", True), Entry("d/f", True), BASE[2]],                  # kind
        [Entry("d", True), Entry("d/F", False, 3, 1000), BASE[2]],        # name
        BASE[:2],                                                         # one gone
        [*BASE, Entry("h", False, 0, 0)],                                 # one more
        [Entry("d", True), Entry("d/f\udcff", False, 3, 1000), BASE[2]],  # undecodable
    ]
    for entries in changed:
        other = listings_digest(["a", "b"], {"a": listing(*BASE), "b": listing(*entries)},
                                SETTINGS)
        assert other not in (None, digest), entries
    blind = listings_digest(["a", "b"], {"a": listing(*BASE), "b": listing(*BASE, blind=("g",))},
                            SETTINGS)
    assert blind != digest
    # The same entries in the other location, or the locations in another order.
    swapped = listings_digest(["b", "a"], {"a": listing(*BASE), "b": listing(*BASE)}, SETTINGS)
    assert swapped != digest


def test_the_digest_changes_with_the_settings_and_is_absent_for_an_unavailable_location():
    listings = {"a": listing(*BASE), "b": listing(*BASE)}
    digest = listings_digest(["a", "b"], listings, SETTINGS)
    variants = [
        planner_settings("2", ["a", "b"], {"a": "folder", "b": "zip"}, {"a": 0, "b": 2},
                         False, "newest", []),
        planner_settings("1", ["a", "b"], {"a": "folder", "b": "ftp"}, {"a": 0, "b": 2},
                         False, "newest", []),
        planner_settings("1", ["a", "b"], {"a": "folder", "b": "zip"}, {"a": 0, "b": 1},
                         False, "newest", []),
        planner_settings("1", ["a", "b"], {"a": "folder", "b": "zip"}, {"a": 0, "b": 2},
                         True, "newest", []),
        planner_settings("1", ["a", "b"], {"a": "folder", "b": "zip"}, {"a": 0, "b": 2},
                         False, "manual", []),
        planner_settings("1", ["a", "b"], {"a": "folder", "b": "zip"}, {"a": 0, "b": 2},
                         False, "newest", ["*.tmp"]),
    ]
    digests = {listings_digest(["a", "b"], listings, text) for text in variants}
    assert len(digests) == len(variants) and digest not in digests
    assert listings_digest(["a", "b"], {"a": listing(*BASE), "b": None}, SETTINGS) is None


def open_store(path: Path) -> StateStore:
    opened = StateStore.open(path, ["a", "b"])
    assert opened.ok, opened.message
    return opened.value[0]


WRITES: dict[str, Callable[[StateStore], None]] = {
    "set_agreed": lambda s: s.set_agreed("n", Agreed(2, False, False, 1, 1), {}),
    "set_record": lambda s: s.set_record("p", "a", Record(1, False, 9, 9)),
    "forget_record": lambda s: s.set_record("p", "a", None),
    "set_sha": lambda s: s.set_sha("p", 1, "00" * 32),
    "forget_tombstone": lambda s: s.forget_tombstone("gone"),
    "doubt_records": lambda s: s.doubt_records("b", ["p"]),
    "doubt_all": lambda s: s.doubt_records("b", None),
    "forget_location": lambda s: s.forget_location("a"),
}


@pytest.mark.parametrize("write_state", list(WRITES.values()), ids=list(WRITES))
def test_every_write_to_the_state_forgets_the_memo(tmp_path, write_state):
    store = open_store(tmp_path / "s.db")
    store.set_agreed("p", Agreed(1, False, False, 3, 3), {"a": Record(1, False, 3, 3),
                                                          "b": Record(1, False, 3, 3)})
    store.set_agreed("gone", Agreed(1, True, False), {})
    store.set_plan_memo("x" * 64)
    assert store.plan_memo() == "x" * 64
    write_state(store)
    assert store.plan_memo() is None
    store.close()


def test_a_write_by_another_program_forgets_the_memo_and_old_files_get_the_triggers(tmp_path):
    path = tmp_path / "s.db"
    store = open_store(path)
    store.set_plan_memo("m")
    store.close()
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO records VALUES('q', 1, 1, 0, 1, 1)")
    raw.commit()
    assert raw.execute("SELECT COUNT(*) FROM meta WHERE key='plan_memo'").fetchone()[0] == 0
    # A state file from before the memo has no triggers: opening it adds them.
    names = [row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    assert len(names) == 6
    for name in names:
        raw.execute(f"DROP TRIGGER {name}")
    raw.commit()
    raw.close()
    store = open_store(path)
    store.set_plan_memo("m")
    store.set_record("q", "a", None)
    assert store.plan_memo() is None
    store.close()


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts full state loads, and checks each memo hit against a full plan.

    Whenever a full round takes the memo's word that nothing is to be done, the same round
    is planned again from the loaded state, which must come out empty too.
    """
    counted: list[int] = []
    real_load, real_make_plan = StateStore.load, Engine.make_plan

    def load(self: StateStore, paths=None):  # type: ignore[no-untyped-def]
        if paths is None:
            counted.append(1)
        return real_load(self, paths)

    def make_plan(self: Engine, listings, paths=None):  # type: ignore[no-untyped-def]
        before = len(counted)
        result = real_make_plan(self, listings, paths)
        if paths is None and len(counted) == before and not self.options.checksum:
            memo = self.store.plan_memo
            self.store.plan_memo = lambda: None  # type: ignore[method-assign]
            try:
                assert real_make_plan(self, listings, paths) == Plan()
            finally:
                self.store.plan_memo = memo  # type: ignore[method-assign]
            counted.pop()
        return result

    monkeypatch.setattr(StateStore, "load", load)
    monkeypatch.setattr(Engine, "make_plan", make_plan)
    return counted


def test_an_unchanged_set_is_not_planned_again_and_any_change_is(tmp_path, loads):
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "s.db"
    write(a / "x/one.txt", "one", mtime=1_600_000_000)
    write(b / "two.txt", "two")
    spec = [f"folder:{a}", f"folder:{b}"]
    assert filesync.sync(spec, state=state).identical
    assert len(loads) == 1  # the round that copied also stored the memo for what it left
    for _ in range(2):
        report = filesync.sync(spec, state=state)
        assert report.identical and not report.actions
    assert len(loads) == 1
    # Same size, another mtime: planned, and spread.
    write(b / "x/one.txt", "ONE", mtime=1_600_000_100)
    report = filesync.sync(spec, state=state)
    assert [action["action"] for action in report.actions] == ["copy"]
    assert tree(a) == tree(b) and (a / "x/one.txt").read_text() == "ONE"
    assert len(loads) == 2
    assert filesync.sync(spec, state=state).identical
    assert len(loads) == 2


def test_listings_back_as_they_were_are_planned_again_when_the_state_moved_on(tmp_path, loads):
    """The memo stands for listings *and* state: a state written since is planned in full."""
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "s.db"
    write(a / "f.txt", "same", mtime=1_600_000_000)
    spec = [f"folder:{a}", f"folder:{b}"]
    for _ in range(2):
        assert filesync.sync(spec, state=state).identical  # the second stores the memo
    os.utime(a / "f.txt", (1_600_000_500, 1_600_000_500))
    assert filesync.sync(spec, state=state).identical  # the touch spreads: the state moves on
    for root in (a, b):
        os.utime(root / "f.txt", (1_600_000_000, 1_600_000_000))
    counted = len(loads)
    assert filesync.sync(spec, state=state).identical
    assert len(loads) == counted + 1  # planned in full (and checked against the memo's word)


def test_a_dry_run_and_status_use_the_memo_but_never_write_it(tmp_path, loads):
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "s.db"
    write(a / "f.txt", "f")
    spec = [f"folder:{a}", f"folder:{b}"]
    assert filesync.sync(spec, state=state).identical
    raw = sqlite3.connect(state)
    raw.execute("DELETE FROM meta WHERE key='plan_memo'")
    raw.commit()
    raw.close()
    assert run_main("--once", "--dry-run", "--state", str(state), *spec) == 0
    assert filesync.status(spec, state=state)["pending"] == []
    store = StateStore.open_readonly(state).value
    assert store is not None and store.plan_memo() is None
    store.close()
    assert filesync.sync(spec, state=state).identical
    assert len(loads) == 4
    assert filesync.status(spec, state=state)["pending"] == []
    assert len(loads) == 4


def test_the_memo_does_not_outlive_a_change_of_settings(tmp_path, loads):
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "s.db"
    write(a / "keep.txt", "k")
    write(a / "skip.log", "s")
    spec = [f"folder:{a}", f"folder:{b}"]
    for _ in range(2):
        assert filesync.sync(spec, state=state).identical
    counted = len(loads)
    assert filesync.sync(spec, state=state, exclude=["*.log"]).identical
    assert filesync.sync(spec, state=state, one_way=True).identical
    assert filesync.sync(spec[::-1], state=state).identical
    assert len(loads) == counted + 3


def _apply(op: tuple[str, int, int], a: Path, b: Path) -> None:
    kind, which, number = op
    root = (a, b)[which]
    name = root / f"d{number % 2}" / f"f{number}.txt"
    files = sorted(p for p in root.rglob("*.txt") if ".filesync" not in p.parts)
    target = files[number % len(files)] if files else None
    if kind == "write":
        write(name, "x" * number, mtime=1_600_000_000 + number)
    elif kind == "touch" and target is not None:
        os.utime(target, (1_600_001_000 + number, 1_600_001_000 + number))
    elif kind == "delete" and target is not None:
        target.unlink()
    elif kind == "rename" and target is not None:
        target.rename(target.with_name(f"r{number}.txt"))
    elif kind == "rmtree" and (root / f"d{number % 2}").exists():
        shutil.rmtree(root / f"d{number % 2}")


OPS = st.tuples(st.sampled_from(["write", "touch", "delete", "rename", "rmtree", "none"]),
                st.integers(0, 1), st.integers(0, 7))


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(OPS, max_size=3), min_size=1, max_size=5))
def test_no_change_slips_past_the_memo(tmp_path_factory, loads, rounds):
    root = tmp_path_factory.mktemp("memo")
    a, b, state = root / "a", root / "b", root / "s.db"
    write(a / "d0/f0.txt", "zero", mtime=1_600_000_000)
    spec = [f"folder:{a}", f"folder:{b}"]
    assert filesync.sync(spec, state=state, max_delete=100).identical
    for ops in rounds:
        for op in ops:
            _apply(op, a, b)
        assert filesync.sync(spec, state=state, max_delete=100).identical
        assert tree(a) == tree(b)
        # The next round has nothing to do, whether or not the memo answers for it.
        report = filesync.sync(spec, state=state, max_delete=100)
        assert report.identical and not report.actions
