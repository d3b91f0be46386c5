"""The pure planning step, fed listings and state directly."""

from __future__ import annotations

from filesync.locations.base import Entry, Listing
from filesync.planner import Op, PlanInput, plan
from filesync.state import PathState, Record, Version

A, B, C = "folder:/a", "folder:/b", "folder:/c"
TOL = {A: 0, B: 0, C: 0}


def listing(*entries: Entry, blind: tuple[str, ...] = ()) -> Listing:
    return Listing(entries={e.path: e for e in entries}, blind=set(blind))


def f(path: str, size: int = 1, mtime: int = 100) -> Entry:
    return Entry(path, False, size, mtime)


def synced(path: str, size: int = 1, mtime: int = 100, gen: int = 1,
           where: tuple[str, ...] = (A, B, C)) -> PathState:
    return PathState(Version(gen, False, False, size, mtime),
                     {k: Record(gen, False, size, mtime) for k in where})


def ops(result) -> list[tuple[str, str, str]]:
    return [(a.op.name, a.path, a.target) for a in result.actions()]


def test_an_unavailable_location_is_never_read_as_empty():
    state = {"x": synced("x")}
    result = plan(PlanInput([A, B, C], {A: listing(f("x")), B: listing(f("x")), C: None},
                            state, TOL))
    assert result.decisions == []


def test_a_blind_path_is_left_alone_there():
    state = {"x": synced("x")}
    result = plan(PlanInput([A, B], {A: listing(f("x")), B: listing(blind=("x",))}, state, TOL))
    assert result.decisions == []


def test_a_missing_file_with_a_record_is_a_deletion():
    state = {"x": synced("x", where=(A, B))}
    result = plan(PlanInput([A, B], {A: listing(f("x")), B: listing()}, state, TOL))
    assert ops(result) == [("DELETE", "x", A)]


def test_a_location_that_missed_a_version_is_brought_up_to_date():
    state = {"x": PathState(Version(2, False, False, 5, 200),
                            {A: Record(2, False, 5, 200), B: Record(1, False, 1, 100)})}
    result = plan(PlanInput([A, B], {A: listing(f("x", 5, 200)), B: listing(f("x"))},
                            state, TOL))
    assert ops(result) == [("COPY", "x", B)]
    assert result.decisions[0].version.gen == 2


def test_an_older_edit_in_a_location_that_missed_the_newer_version_loses():
    state = {"x": PathState(Version(2, False, False, 5, 300),
                            {A: Record(2, False, 5, 300), B: Record(1, False, 1, 100)})}
    result = plan(PlanInput([A, B], {A: listing(f("x", 5, 300)), B: listing(f("x", 7, 200))},
                            state, TOL))
    assert ops(result) == [("COPY", "x", B)]
    assert result.decisions[0].conflicts == [B]


def test_same_size_other_mtime_asks_for_hashes_first():
    result = plan(PlanInput([A, B], {A: listing(f("x", 4, 100)), B: listing(f("x", 4, 900))},
                            {}, TOL))
    assert result.hash_requests == {(A, "x"), (B, "x")}
    assert result.decisions == []
    equal = plan(PlanInput([A, B], {A: listing(f("x", 4, 100)), B: listing(f("x", 4, 900))},
                           {}, TOL, hashes={(A, "x"): "h", (B, "x"): "h"}))
    assert ops(equal) == [] and len(equal.decisions) == 1  # recorded, not copied
    other = plan(PlanInput([A, B], {A: listing(f("x", 4, 100)), B: listing(f("x", 4, 900))},
                           {}, TOL, hashes={(A, "x"): "h", (B, "x"): "g"}))
    assert ops(other) == [("COPY", "x", A)]


def test_tolerance_makes_coarse_clocks_equal():
    result = plan(PlanInput([A, B], {A: listing(f("x", 4, 10_400_000_000)),
                                     B: listing(f("x", 4, 10_000_000_000))},
                            {}, {A: 0, B: 2_000_000_000}))
    assert ops(result) == [] and result.hash_requests == set()


def test_a_file_against_a_folder_is_a_problem_not_a_guess():
    result = plan(PlanInput([A, B], {A: listing(f("x")), B: listing(Entry("x", True))}, {}, TOL))
    assert result.decisions == [] and "rename one of them" in result.problems[0]


def test_one_way_with_an_unavailable_source_does_nothing():
    result = plan(PlanInput([A, B], {A: None, B: listing(f("x"))}, {}, TOL, one_way=True))
    assert result.decisions == []


def test_actions_run_deletes_first_then_folders_then_copies():
    folder = PathState(Version(1, False, True), {A: Record(1, True), B: Record(1, True)})
    state = {"old": folder, "old/deep": folder}
    result = plan(PlanInput([A, B], {A: listing(f("new/file"), Entry("new", True)),
                                     B: listing(Entry("old", True), Entry("old/deep", True))},
                            state, TOL))
    assert [(op, path) for op, path, _ in ops(result)] == [
        ("RMDIR", "old/deep"), ("RMDIR", "old"), ("MKDIR", "new"), ("COPY", "new/file")]
    assert all(a.op in Op for a in result.actions())


def test_nothing_to_do_when_everything_agrees():
    state = {"x": synced("x", where=(A, B))}
    result = plan(PlanInput([A, B], {A: listing(f("x")), B: listing(f("x"))}, state, TOL))
    assert result.decisions == [] and result.hash_requests == set()
