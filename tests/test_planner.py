"""The pure planning step, fed listings and state directly."""

from __future__ import annotations

from filesync.model import Agreed, Entry, Listing, PathState, Record
from filesync.planner import Op, PlanInput, plan

A, B, C = "folder:/a", "folder:/b", "folder:/c"
TOL = {A: 0, B: 0, C: 0}


def listing(*entries: Entry, blind: tuple[str, ...] = ()) -> Listing:
    return Listing(entries={e.path: e for e in entries}, blind=set(blind))


def f(path: str, size: int = 1, mtime: int = 100) -> Entry:
    return Entry(path, False, size, mtime)


def synced(path: str, size: int = 1, mtime: int = 100, gen: int = 1,
           where: tuple[str, ...] = (A, B, C)) -> PathState:
    return PathState(Agreed(gen, False, False, size, mtime),
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
    state = {"x": PathState(Agreed(2, False, False, 5, 200),
                            {A: Record(2, False, 5, 200), B: Record(1, False, 1, 100)})}
    result = plan(PlanInput([A, B], {A: listing(f("x", 5, 200)), B: listing(f("x"))},
                            state, TOL))
    assert ops(result) == [("COPY", "x", B)]
    assert result.decisions[0].agreed.gen == 2


def test_an_older_edit_in_a_location_that_missed_the_newer_version_loses():
    state = {"x": PathState(Agreed(2, False, False, 5, 300),
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


def test_times_within_a_coarse_clock_tolerance_are_confirmed_by_hash():
    inputs = PlanInput([A, B], {A: listing(f("x", 4, 10_400_000_000)),
                                B: listing(f("x", 4, 10_000_000_000))},
                       {}, {A: 0, B: 2_000_000_000})
    assert plan(inputs).hash_requests == {(A, "x"), (B, "x")}
    inputs.hashes = {(A, "x"): "h", (B, "x"): "h"}
    assert ops(plan(inputs)) == []
    inputs.hashes = {(A, "x"): "h", (B, "x"): "g"}
    assert ops(plan(inputs)) == [("COPY", "x", B)]


def test_a_location_still_holding_its_recorded_version_never_holds_a_newer_one():
    # B (a coarse clock, 2 s) still holds generation 1 as recorded; A was edited again
    # with the same size 0.5 s later. B's clock cannot tell; its record can.
    old, new = 10_000_000_000, 10_500_000_000
    state = {"x": PathState(Agreed(1, False, False, 4, old, "h1"),
                            {A: Record(1, False, 4, old), B: Record(1, False, 4, old)})}
    inputs = PlanInput([A, B], {A: listing(f("x", 4, new)), B: listing(f("x", 4, old))},
                       state, {A: 0, B: 2_000_000_000})
    assert plan(inputs).hash_requests == {(A, "x")}  # B's content is known: h1
    inputs.hashes = {(A, "x"): "h2"}
    result = plan(inputs)
    assert ops(result) == [("COPY", "x", B)]
    assert result.decisions[0].agreed.gen == 2


def test_a_location_that_missed_a_version_is_not_taken_as_holding_it_by_its_clock():
    state = {"x": PathState(Agreed(2, False, False, 4, 1_000_000_000, "h2"),
                            {A: Record(2, False, 4, 1_000_000_000),
                             B: Record(1, False, 4, 900_000_000)})}
    inputs = PlanInput([A, B], {A: listing(f("x", 4, 1_000_000_000)),
                                B: listing(f("x", 4, 900_000_000))},
                       state, {A: 0, B: 2_000_000_000})
    assert plan(inputs).hash_requests == {(B, "x")}
    inputs.hashes = {(B, "x"): "h1"}
    assert ops(plan(inputs)) == [("COPY", "x", B)]


def test_a_name_a_location_cannot_hold_is_reported_and_never_a_deletion_there():
    def no_tabs(path: str) -> str | None:
        return "control character in name" if "\t" in path else None

    state = {"a\tb": synced("a\tb", where=(A, B))}
    inputs = PlanInput([A, B], {A: listing(f("a\tb"), f("new\tone")), B: listing()},
                       state, TOL, name_problems={B: no_tabs})
    result = plan(inputs)
    assert ops(result) == []
    assert (B, "new\tone") in result.unholdable and (B, "a\tb") in result.unholdable
    assert any("cannot be stored in" in p and "control character" in p
               for p in result.problems)


def test_a_file_replaced_by_a_folder_is_applied_in_one_round():
    state = {"x": synced("x", where=(A, B))}
    result = plan(PlanInput([A, B], {A: listing(Entry("x", True)), B: listing(f("x"))},
                            state, TOL))
    assert ops(result) == [("DELETE", "x", B), ("MKDIR", "x", B)]
    mkdir = next(a for a in result.actions() if a.op is Op.MKDIR)
    assert mkdir.expect is None  # after the delete before it, the target is empty


def test_a_file_against_a_folder_is_a_problem_not_a_guess():
    result = plan(PlanInput([A, B], {A: listing(f("x")), B: listing(Entry("x", True))}, {}, TOL))
    assert result.decisions == [] and "rename one of them" in result.problems[0]


def test_one_way_with_an_unavailable_source_does_nothing():
    result = plan(PlanInput([A, B], {A: None, B: listing(f("x"))}, {}, TOL, one_way=True))
    assert result.decisions == []


def test_actions_run_deletes_first_then_folders_then_copies():
    folder = PathState(Agreed(1, False, True), {A: Record(1, True), B: Record(1, True)})
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
