"""Renames and moves are replayed as renames: no bytes copied, no versions, no mass delete."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from filesync.guards import DeleteGuard
from filesync.model import Agreed, Entry, Listing, PathState, Record
from filesync.planner import Op, PlanInput, plan
from tests.conftest import Watching, run_main, tree, wait_for, write
from tests.ftp_servers import PyftpdServer

A, B = "folder:/a", "folder:/b"
TOL = {A: 0, B: 0}


def listing(*entries: Entry) -> Listing:
    return Listing(entries={e.path: e for e in entries})


def f(path: str, size: int = 10, mtime: int = 1_000) -> Entry:
    return Entry(path, False, size, mtime)


def synced(size: int = 10, mtime: int = 1_000) -> PathState:
    return PathState(Agreed(1, False, False, size, mtime, "ab" * 32),
                     {k: Record(1, False, size, mtime) for k in (A, B)})


def ops(result) -> list[tuple[str, str | None, str, str]]:
    return [(a.op.name, a.from_path, a.path, a.target) for a in result.actions()]


# ----- planning ----------------------------------------------------------------------------
def test_a_moved_file_is_renamed_in_the_other_location():
    state = {"old/x.txt": synced()}
    result = plan(PlanInput([A, B], {A: listing(f("new/x.txt")), B: listing(f("old/x.txt"))},
                            state, TOL))
    assert ops(result) == [("RENAME", "old/x.txt", "new/x.txt", B)]
    decisions = {d.path: d for d in result.decisions}
    assert decisions["old/x.txt"].agreed.deleted
    assert decisions["new/x.txt"].agreed.sha256 == "ab" * 32  # the same content


def test_a_folder_moved_whole_is_renames_and_no_deletion_for_the_guard():
    names = [f"photos/2023/{n:02}.jpg" for n in range(20)]
    state = {name: synced(1000 + n, 5_000 + n) for n, name in enumerate(names)}
    state["photos/keep.jpg"] = synced()
    moved = [f(name.replace("photos/", "photos/archive/"), 1000 + n, 5_000 + n)
             for n, name in enumerate(names)]
    result = plan(PlanInput([A, B], {A: listing(f("photos/keep.jpg"), *moved),
                                     B: listing(f("photos/keep.jpg"),
                                                *[f(name, 1000 + n, 5_000 + n)
                                                  for n, name in enumerate(names)])},
                            state, TOL))
    assert sorted(op for op, *_ in ops(result)) == ["RENAME"] * 20
    assert DeleteGuard(50).problems(result, {A: 21, B: 21}, 0.0, {A: 21, B: 21}) == []


def test_files_of_one_size_and_time_are_paired_by_name_or_not_at_all():
    state = {"a/1.txt": synced(), "a/2.txt": synced()}
    named = plan(PlanInput([A, B], {A: listing(f("b/1.txt"), f("b/2.txt")),
                                    B: listing(f("a/1.txt"), f("a/2.txt"))}, state, TOL))
    assert ops(named) == [("RENAME", "a/1.txt", "b/1.txt", B), ("RENAME", "a/2.txt", "b/2.txt", B)]
    ambiguous = plan(PlanInput([A, B], {A: listing(f("b/x.txt"), f("b/y.txt")),
                                        B: listing(f("a/1.txt"), f("a/2.txt"))}, state, TOL))
    assert "RENAME" not in {op for op, *_ in ops(ambiguous)}


def test_a_new_file_of_another_size_or_time_is_no_rename():
    state = {"old.txt": synced()}
    for other in (f("new.txt", size=11), f("new.txt", mtime=1_001)):
        result = plan(PlanInput([A, B], {A: listing(other), B: listing(f("old.txt"))},
                                state, TOL))
        assert "RENAME" not in {op for op, *_ in ops(result)}


def test_a_copy_edited_meanwhile_is_renamed_with_its_edit_and_looked_at_again():
    state = {"old.txt": synced()}
    result = plan(PlanInput([A, B], {A: listing(f("new.txt")),
                                     B: listing(f("old.txt", 12, 2_000))}, state, TOL))
    (action,) = result.actions()
    assert (action.op, action.from_path, action.path) == (Op.RENAME, "old.txt", "new.txt")
    assert action.keeps_record is False


def test_a_target_name_already_taken_elsewhere_is_no_rename():
    state = {"old.txt": synced()}
    result = plan(PlanInput([A, B], {A: listing(f("new.txt")),
                                     B: listing(f("old.txt"), f("new.txt", 3, 3))}, state, TOL))
    assert "RENAME" not in {op for op, *_ in ops(result)}


# ----- end to end ------------------------------------------------------------------------
def _album(root: Path, count: int = 20) -> None:
    for n in range(count):
        write(root / "photos" / "2023" / f"{n:02}.jpg", os.urandom(50_000), 1_600_000_000 + n)
    write(root / "photos" / "cover.jpg", b"cover", 1_600_000_000)


def _inodes(root: Path) -> dict[str, int]:
    return {path.name: path.stat().st_ino for path in root.rglob("*.jpg")}


def test_moving_a_folder_renames_it_everywhere_keeping_inodes(tmp_path: Path, capfd):
    a, b = tmp_path / "a", tmp_path / "b"
    _album(a)
    state = str(tmp_path / "state.sqlite")
    assert run_main("--once", "--state", state, f"folder:{a}", f"folder:{b}") == 0
    before = _inodes(b)
    (a / "photos" / "archive").mkdir()
    (a / "photos" / "2023").rename(a / "photos" / "archive" / "2023")
    capfd.readouterr()
    assert run_main("--once", "--state", state, f"folder:{a}", f"folder:{b}") == 0
    err = capfd.readouterr().err
    assert tree(a) == tree(b)
    assert not (b / "photos" / "2023").exists()
    assert _inodes(b) == before  # renamed, not copied
    assert "20 renamed" in err and "0 deleted" in err and "0 B moved" in err
    assert "0 old versions kept" in err and "refusing" not in err
    assert not (b / ".filesync" / "versions").exists()


def test_a_rename_on_an_ftp_server_is_rnfr_rnto(tmp_path: Path, capfd):
    served = tmp_path / "served"
    served.mkdir()
    server = PyftpdServer(served).start()
    try:
        a = tmp_path / "a"
        _album(a, 5)
        state = str(tmp_path / "state.sqlite")
        url = server.url("site")
        assert run_main("--once", "--state", state, f"folder:{a}", url) == 0
        before = _inodes(served / "site")
        (a / "photos" / "2023").rename(a / "photos" / "2024")
        capfd.readouterr()
        assert run_main("--once", "--state", state, f"folder:{a}", url) == 0
        err = capfd.readouterr().err
        assert tree(served / "site") == tree(a)
        assert _inodes(served / "site") == before
        assert "5 renamed" in err and "0 B moved" in err
    finally:
        server.stop()


def test_a_rename_in_an_archive(tmp_path: Path, capfd):
    a, archive = tmp_path / "a", tmp_path / "b.zip"
    _album(a, 3)
    state = str(tmp_path / "state.sqlite")
    assert run_main("--once", "--state", state, f"folder:{a}", f"zip:{archive}") == 0
    (a / "photos" / "2023" / "00.jpg").rename(a / "photos" / "first.jpg")
    capfd.readouterr()
    assert run_main("--once", "--state", state, f"folder:{a}", f"zip:{archive}") == 0
    assert "1 renamed" in capfd.readouterr().err
    with zipfile.ZipFile(archive) as opened:
        names = opened.namelist()
        assert "photos/first.jpg" in names and "photos/2023/00.jpg" not in names
        assert opened.read("photos/first.jpg") == (a / "photos" / "first.jpg").read_bytes()


def test_a_rename_concurrent_with_an_edit_keeps_the_edit_under_the_new_name(
        tmp_path: Path, capfd):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "draft.txt", "original", 1_600_000_000)
    state = str(tmp_path / "state.sqlite")
    assert run_main("--once", "--state", state, f"folder:{a}", f"folder:{b}") == 0
    (a / "draft.txt").rename(a / "final.txt")
    write(b / "draft.txt", "edited in b meanwhile", 1_600_000_100)
    assert run_main("--once", "--state", state, f"folder:{a}", f"folder:{b}") == 0
    assert tree(a) == tree(b) == {"final.txt": "edited in b meanwhile"}
    kept = [path.read_text() for path in (a / ".filesync" / "versions").rglob("*")
            if path.is_file()]
    assert kept == ["original"]  # nothing lost


@pytest.mark.parametrize("options", [(), ("--poll",)], ids=["file events", "polling"])
def test_watch_mode_replays_a_move_as_a_rename(tmp_path: Path, options: tuple[str, ...]):
    a, b = tmp_path / "a", tmp_path / "b"
    _album(a, 6)
    state = str(tmp_path / "watch-state.sqlite")
    assert run_main("--once", "--state", state, f"folder:{a}", f"folder:{b}") == 0
    before = _inodes(b)
    watching = Watching(tmp_path, *options, f"folder:{a}", f"folder:{b}", interval=0.2)
    try:
        watching.wait_output("watching")
        (a / "photos" / "2023").rename(a / "photos" / "moved")
        wait_for(lambda: tree(a) == tree(b), 20, "the move to reach b")
    finally:
        assert watching.stop() == 0
    assert _inodes(b) == before
    assert "rename photos/2023/00.jpg -> photos/moved/00.jpg" in watching.output()
    assert "refusing" not in watching.output()
