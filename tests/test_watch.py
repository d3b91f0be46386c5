"""Watch mode: watcher threads, settled changes, no echo of our own writes, clean stops."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import run_main, tree, wait_for, write


def _actions(log: str) -> list[str]:
    return re.findall(r"^\S+ (?:copy|delete|mkdir|conflict) .*$", log, re.MULTILINE)


def synced_pair(tmp_path: Path, watching, files: dict[str, str], *options: str):
    """Folders a (holding ``files``) and b, watched, once the first round made them agree."""
    a, b = tmp_path / "a", tmp_path / "b"
    for name, text in files.items():
        write(a / name, text)
    b.mkdir()
    run = watching(*options, f"folder:{a}", f"folder:{b}")
    wait_for(lambda: tree(a) == tree(b), message="first round")
    run.wait_output("watching")
    return a, b, run


def test_changes_anywhere_reach_every_location(tmp_path, watching):
    a, b, c = (tmp_path / n for n in "abc")
    write(a / "start.txt", "s")
    for root in (b, c):
        root.mkdir()
    run = watching(f"folder:{a}", f"folder:{b}", f"folder:{c}")
    wait_for(lambda: (c / "start.txt").exists(), message="first round")
    write(b / "new" / "from-b.txt", "b")
    wait_for(lambda: (a / "new" / "from-b.txt").exists() and (c / "new" / "from-b.txt").exists(),
             message="a new file from b")
    write(c / "start.txt", "changed in c")
    wait_for(lambda: (a / "start.txt").read_text() == "changed in c", message="an edit from c")
    (a / "new" / "from-b.txt").unlink()
    (a / "new").rmdir()
    wait_for(lambda: not (b / "new").exists() and not (c / "new").exists(),
             message="a deletion from a")
    assert run.stop() == 0
    assert tree(a) == tree(b) == tree(c) == {"start.txt": "changed in c"}


def test_agreeing_locations_stay_silent_and_untouched(tmp_path, watching):
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(20):
        write(a / f"d{i % 3}" / f"f{i}.txt", str(i))
    b.mkdir()
    run = watching(f"folder:{a}", f"folder:{b}")
    wait_for(lambda: tree(a) == tree(b), message="first round")
    run.wait_output("watching")
    time.sleep(0.5)  # let the watchers see our own writes once
    settled = len(_actions(run.output()))
    stamps = {p: p.stat().st_mtime_ns for p in b.rglob("*")}
    inodes = {p: p.stat().st_ino for p in b.rglob("*")}
    deadline = time.monotonic() + 2.0  # ten scan intervals
    while time.monotonic() < deadline:
        assert len(_actions(run.output())) == settled, run.output()
        time.sleep(0.1)
    assert {p: p.stat().st_mtime_ns for p in b.rglob("*")} == stamps
    assert {p: p.stat().st_ino for p in b.rglob("*")} == inodes
    assert run.stop() == 0
    total = sum(p.stat().st_size for p in a.rglob("*.txt"))
    assert f"{settled - 3} copied" in run.output()  # three folders made, the rest copied once
    assert f" {total} B moved" in run.output(), "bytes moved after the locations agreed"


def test_a_file_still_being_written_waits_until_stable(tmp_path, watching):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    run = watching(f"folder:{a}", f"folder:{b}", interval=0.3)
    run.wait_output("watching")
    growing = a / "growing.log"
    deadline = time.monotonic() + 2.5
    with growing.open("a") as handle:
        while time.monotonic() < deadline:
            handle.write("line\n")
            handle.flush()
            assert not (b / "growing.log").exists(), "copied while still being written"
            time.sleep(0.05)
    final = growing.read_text()
    wait_for(lambda: (b / "growing.log").exists() and (b / "growing.log").read_text() == final,
             message="the finished file")
    assert run.stop() == 0


def test_a_vanished_location_is_skipped_not_emptied(tmp_path, watching):
    a, b, c = (tmp_path / n for n in "abc")
    write(a / "keep.txt", "k")
    b.mkdir()
    c.mkdir()
    run = watching(f"folder:{a}", f"folder:{b}", f"folder:{c}")
    wait_for(lambda: (c / "keep.txt").exists(), message="first round")
    c.rename(tmp_path / "c-unmounted")
    run.wait_output("unavailable")
    write(a / "while-away.txt", "w")
    wait_for(lambda: (b / "while-away.txt").exists(), message="sync without c")
    time.sleep(0.6)
    assert (a / "keep.txt").exists() and (b / "keep.txt").exists()
    assert not c.exists(), "a vanished root must not be recreated"
    (tmp_path / "c-unmounted").rename(c)
    wait_for(lambda: (c / "while-away.txt").exists(), message="c catching up")
    assert run.stop() == 0
    assert tree(a) == tree(b) == tree(c)


def test_sigterm_stops_cleanly_with_a_summary(tmp_path, watching):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    b.mkdir()
    run = watching(f"folder:{a}", f"folder:{b}")
    run.wait_output("watching")
    assert run.stop() == 0
    log = run.output()
    assert "stopping" in log
    assert re.search(r"summary: 1 copied, 0 renamed, 0 deleted", log), log
    assert not list(Path(b).glob(".filesync-*.tmp"))


@pytest.mark.parametrize(("options", "reason"), [((), "was deleted"),
                                                 (("--poll",), "lost its marker")])
def test_an_emptied_mount_point_is_unavailable_in_watch_mode(tmp_path, watching, options,
                                                             reason):
    a, b, run = synced_pair(tmp_path, watching, {f"f{i}.txt": str(i) for i in range(3)},
                            *options)
    shutil.rmtree(b)  # the disk is unmounted: its mount point is an empty folder
    b.mkdir()
    run.wait_output("is unavailable")
    # File events see the folder go; a poll finds the empty one without its marker.
    assert reason in run.output()
    time.sleep(1.0)  # five more scans: still nothing may be deleted in a
    assert tree(a) == {f"f{i}.txt": str(i) for i in range(3)}
    assert run.stop() == 0


def test_a_mass_deletion_is_paused_while_watch_mode_keeps_syncing(tmp_path, watching):
    a, b, run = synced_pair(tmp_path, watching, {f"f{i:02}.txt": str(i) for i in range(12)})
    for i in range(12):
        (a / f"f{i:02}.txt").unlink()
    run.wait_output("deletion of 12 paths is paused")
    assert "refusing to delete 12 of 12 files" in run.output()
    write(a / "new.txt", "synced despite the pause")
    wait_for(lambda: (b / "new.txt").exists(), message="other changes to go on")
    assert len(tree(b)) == 13 and run.process.poll() is None
    write(a / "f00.txt", "0")  # put back: no longer a deletion
    run.wait_output("f00.txt is no longer a paused deletion")
    assert run.output().count("refusing to delete") == 1  # told once
    assert run.stop() == 0
    state = str(tmp_path / "watch-state.sqlite")
    assert run_main("--once", "--force", "--state", state, f"folder:{a}", f"folder:{b}") == 0
    assert tree(b) == tree(a) == {"f00.txt": "0", "new.txt": "synced despite the pause"}


def test_a_mass_deletion_in_several_batches_is_judged_as_one(tmp_path, watching):
    a, b, run = synced_pair(tmp_path, watching, {f"f{i:02}.txt": str(i) for i in range(12)})
    for i in range(6):  # fewer than ten: this batch alone passes the guard
        (a / f"f{i:02}.txt").unlink()
    wait_for(lambda: len(tree(b)) == 6, message="the first six deletions")
    for i in range(6, 12):
        (a / f"f{i:02}.txt").unlink()
    run.wait_output("is paused")
    assert "refusing to delete 12 of 12 files (100%, 6 of them in the last minute)" \
        in run.output()
    assert len(tree(b)) == 6
    assert run.stop() == 0


def test_our_own_writes_are_not_reported_back(tmp_path, watching):
    a, b, run = synced_pair(tmp_path, watching, {f"d/f{i}.txt": str(i) for i in range(5)},
                            "-v")
    time.sleep(1.0)  # five scans: the first round's copies must not come back as changes
    assert "looking at" not in run.output()
    write(a / "d" / "f0.txt", "edited")
    wait_for(lambda: (b / "d" / "f0.txt").read_text() == "edited", message="the edit")
    time.sleep(1.0)  # the copy into b must not come back either
    assert run.output().count("looking at") == 1, run.output()
    assert run.stop() == 0


@pytest.mark.parametrize("fault", ["probe", "stat"])
def test_a_change_a_location_failed_to_answer_for_is_synced_later(tmp_path, monkeypatch, fault):
    """A location that fails for one moment (no outage its watcher would see) loses nothing.

    The change was reported once, and the round that took it could not look at ``b``: it
    must be tried again soon, not only at the next full rescan minutes later.
    """
    import filesync
    from filesync.locations.folder import FolderLocation
    from filesync.result import Err, ErrorKind

    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "first.txt", "1")
    b.mkdir()
    failures = {"left": 0}
    real_probe, real_stat_many = FolderLocation.probe, FolderLocation.stat_many

    def failing(self: FolderLocation) -> bool:
        if Path(self.root) == b and failures["left"]:
            failures["left"] -= 1
            return True
        return False

    def probe(self: FolderLocation):  # type: ignore[no-untyped-def]
        if fault == "probe" and failing(self):
            return Err("injected: the server dropped the connection", ErrorKind.UNAVAILABLE)
        return real_probe(self)

    def stat_many(self: FolderLocation, paths):  # type: ignore[no-untyped-def]
        found = real_stat_many(self, paths)
        if fault == "stat" and failing(self):
            return {path: Err("injected: timed out", ErrorKind.UNAVAILABLE) for path in found}
        return found

    monkeypatch.setattr(FolderLocation, "probe", probe)
    monkeypatch.setattr(FolderLocation, "stat_many", stat_many)
    with filesync.watch([f"folder:{a}", f"folder:{b}"], state=tmp_path / "s.db",
                        interval=0.2) as run:
        wait_for(lambda: (b / "first.txt").exists(), message="the first round")
        failures["left"] = 1
        write(a / "second.txt", "2")
        wait_for(lambda: not failures["left"], message="the injected failure")
        wait_for(lambda: (b / "second.txt").exists(), 10, "the change, after the failure")
    assert run.stop().exit_status == 0
