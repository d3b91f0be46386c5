"""Local folders (issue 8): permissions, a source replaced by a FIFO, and 255-byte names
whose kept versions and conflict copies must still fit the file system's name limit."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import threading

import pytest

from filesync.engine import Engine, Options
from filesync.locations.folder import FolderLocation
from filesync.locations.spec import FolderSpec
from filesync.state import StateStore
from filesync.versions import conflict_path, parse_version, version_path
from tests.conftest import run_main, tree, write

T0 = 1_700_000_000
MOMENT = dt.datetime(2026, 11, 22, 2, 15, 0, 123456, tzinfo=dt.timezone.utc)
LONG = "n" * 251 + ".txt"  # 255 bytes, the most a Linux file name may have


def nbytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


# ----- permissions --------------------------------------------------------------------------
def test_executable_bit_and_mode_are_kept_between_folders(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "run.sh", "#!/bin/sh\n", mtime=T0)
    write(a / "secret.txt", "s", mtime=T0)
    (a / "run.sh").chmod(0o755)
    (a / "secret.txt").chmod(0o600)
    b.mkdir()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (b / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (b / "secret.txt").stat().st_mode & 0o7777 == 0o600


def test_folder_reports_and_writes_modes(tmp_path):
    loc = FolderLocation(FolderSpec(tmp_path))
    written = loc.write("x.sh", io.BytesIO(b"x"), T0 * 10**9, mode=0o751)
    assert written.ok and written.value.mode == 0o751
    assert (tmp_path / "x.sh").stat().st_mode & 0o7777 == 0o751
    found = loc.stat("x.sh")
    assert found.ok and found.value is not None and found.value.mode == 0o751
    moved = loc.rename("x.sh", "y.sh")
    assert moved.ok and moved.value.mode == 0o751


# ----- a source replaced by a FIFO ----------------------------------------------------------
def test_a_source_replaced_by_a_fifo_fails_alone_and_never_hangs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for name in ("f1.txt", "f2.txt", "f3.txt"):
        write(a / name, name, mtime=T0)
    b.mkdir()

    def plan_then_apply() -> object:
        # SQLite wants its connection used by the thread that opened it: all of it here.
        locations = [FolderLocation(FolderSpec(a)), FolderLocation(FolderSpec(b))]
        store, _ = StateStore.open(tmp_path / "s.sqlite", [loc.key for loc in locations]).value
        try:
            engine = Engine(locations, store, Options(), threading.Event())
            engine.start()
            planned = engine.make_plan(engine.list_all())
            (a / "f2.txt").unlink()
            os.mkfifo(a / "f2.txt")  # after the listing, before the copy
            return engine.executor.apply(planned)
        finally:
            store.close()

    box: list[object] = []
    worker = threading.Thread(target=lambda: box.append(plan_then_apply()))
    worker.start()
    worker.join(10)
    hung = worker.is_alive()
    while worker.is_alive():  # unblock a reader stuck in open() so the thread can end
        with contextlib.suppress(OSError):
            os.close(os.open(a / "f2.txt", os.O_WRONLY | os.O_NONBLOCK))
        worker.join(0.1)
    assert not hung, "filesync hung opening a FIFO"
    [outcome] = box
    failures = outcome.failures  # type: ignore[attr-defined]
    assert [f.path for f in failures] == ["f2.txt"]
    assert "not a regular file" in failures[0].message
    assert tree(b) == {"f1.txt": "f1.txt", "f3.txt": "f3.txt"}


def test_open_read_and_sha256_refuse_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    loc = FolderLocation(FolderSpec(tmp_path))
    for call in (loc.open_read, loc.sha256):
        box: list[object] = []
        worker = threading.Thread(target=lambda call=call, box=box: box.append(call("p")))
        worker.start()
        worker.join(5)
        hung = worker.is_alive()
        while worker.is_alive():
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            worker.join(0.1)
        assert not hung, "filesync hung opening a FIFO"
        [result] = box
        assert not result.ok  # type: ignore[attr-defined]
        assert "not a regular file (a FIFO)" in result.message  # type: ignore[attr-defined]


# ----- long names ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", [LONG, "dir/" + LONG, "é" * 127 + "x", "b\udcff" * 127 + "c",
                                  "short.txt", "sub/~20260101T000000.000000Z/x.txt"],
                         ids=["255", "dir-255", "utf8-255", "undecodable-255", "short", "odd"])
def test_version_names_fit_and_read_back(name):
    stored = version_path(name, MOMENT)
    assert all(nbytes(part) <= 255 for part in stored.split("/"))
    parsed = parse_version(stored, 7)
    assert parsed is not None and parsed.path == name and parsed.superseded == MOMENT


def test_old_version_names_are_still_read():
    parsed = parse_version(".filesync/versions/d/a.txt~20261122T021500.123456Z", 1)
    assert parsed is not None and (parsed.path, parsed.superseded) == ("d/a.txt", MOMENT)


@pytest.mark.parametrize("name", [LONG, "d/" + LONG, "n" * 255, "é" * 127 + ".md",
                                  "x." + "e" * 252, "a.txt"],
                         ids=["255", "dir-255", "no-ext", "utf8", "long-ext", "short"])
def test_conflict_copies_fit(name):
    copy = conflict_path(name, MOMENT, "laptop-" + "l" * 100)
    last = copy.rpartition("/")[2]
    assert nbytes(last) <= 255 and ".conflict-20261122-021500-" in last
    assert copy.rpartition("/")[0] == name.rpartition("/")[0]
    if name.endswith((".txt", ".md")):
        assert last.endswith(name[name.rindex("."):])
    last.encode("utf-8")  # whole characters only


def test_a_255_byte_name_is_overwritten_deleted_and_restored(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "d" / LONG, "v1", mtime=T0)
    b.mkdir()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    write(a / "d" / LONG, "v2", mtime=T0 + 10)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (b / "d" / LONG).read_text() == "v2"
    (a / "d" / LONG).unlink()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert not (b / "d" / LONG).exists()
    kept = sorted(p.read_text() for p in (b / ".filesync" / "versions").rglob("*")
                  if p.is_file())
    assert kept == ["v1", "v2"]
    assert run_main("restore", f"folder:{b}", f"d/{LONG}") == 0
    assert (b / "d" / LONG).read_text() == "v2"
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (a / "d" / LONG).read_text() == (b / "d" / LONG).read_text()


def test_a_255_byte_name_in_a_keep_both_conflict(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / LONG, "base", mtime=T0)
    b.mkdir()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    write(a / LONG, "edit a", mtime=T0 + 10)
    write(b / LONG, "edit b", mtime=T0 + 20)
    assert sync(f"folder:{a}", f"folder:{b}", "--conflict", "keep-both") == 0
    assert tree(a) == tree(b)
    assert sorted(tree(a).values()) == ["edit a", "edit b"]
