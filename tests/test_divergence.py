"""Issue 8, class 1 and the engine side of class 2: no stale replica is reported as success.

Each test here failed on the engine before the fix it covers (see the closing note).
"""

from __future__ import annotations

import io
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from filesync.engine import Engine, Options
from filesync.locations.base import Location
from filesync.locations.folder import FolderLocation
from filesync.locations.spec import FolderSpec
from filesync.model import Entry
from filesync.result import ErrorKind, Ok, Result
from filesync.state import StateStore
from filesync.watcher import EventKind, Watcher, WatchEvent
from filesync.watchmode import WatchLoop
from tests.conftest import tree, wait_for, write

T0 = 1_700_000_000


def zip_members(archive: Path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(archive) as opened:
        return {name: opened.read(name) for name in opened.namelist()
                if not name.startswith(".filesync")}


# ----- coarse clocks -------------------------------------------------------------------------
def test_a_same_size_edit_within_the_zip_clock_reaches_the_archive(tmp_path, sync):
    a = tmp_path / "a"
    write(a / "f.txt", "version 1", mtime=T0)
    archive = tmp_path / "b.zip"
    assert sync(f"folder:{a}", f"zip:{archive}") == 0
    assert zip_members(archive)["f.txt"] == b"version 1"
    write(a / "f.txt", "version 2", mtime=T0 + 0.5)  # same size, within 2 s
    assert sync(f"folder:{a}", f"zip:{archive}") == 0
    assert zip_members(archive)["f.txt"] == b"version 2"
    assert sync(f"folder:{a}", f"zip:{archive}") == 0  # and then nothing to do


def test_a_same_size_edit_within_the_ftp_clock_reaches_the_server(any_server, sync, tmp_path):
    a = tmp_path / "a"
    write(a / "f.txt", "version 1", mtime=T0)
    url = any_server.url("c")
    assert sync(f"folder:{a}", url) == 0
    write(a / "f.txt", "version 2", mtime=T0 + 0.4)  # same size, within 1 s
    assert sync(f"folder:{a}", url) == 0
    assert (any_server.root / "c" / "f.txt").read_bytes() == b"version 2"


def test_equal_looking_copies_on_a_first_run_are_compared_by_content(tmp_path, sync):
    a = tmp_path / "a"
    write(a / "f.txt", "from the folder", mtime=T0 + 1)
    archive = tmp_path / "b.zip"
    write(tmp_path / "seed" / "f.txt", "from the archiv", mtime=T0)  # same size, 1 s older
    assert sync(f"folder:{tmp_path / 'seed'}", f"zip:{archive}") == 0
    assert sync(f"folder:{a}", f"zip:{archive}") == 0
    assert zip_members(archive)["f.txt"] == b"from the folder"


# ----- a source that changes while it is copied ------------------------------------------------
class _Rewriting(FolderLocation):
    """A real folder whose file is rewritten in place (same size) while it is being read."""

    def __init__(self, root: Path, when_read: Callable[[], None]) -> None:
        super().__init__(FolderSpec(root))
        self.when_read = when_read

    def open_read(self, path: str) -> Result[BinaryIO]:
        opened = super().open_read(path)
        if not opened.ok or path.startswith(".filesync"):
            return opened
        stream, hook = opened.value, self.when_read

        class Stream(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, buffer) -> int:  # type: ignore[override]
                data = stream.read(len(buffer))
                hook()
                buffer[:len(data)] = data
                return len(data)

            def close(self) -> None:
                stream.close()
                super().close()

        return Ok(Stream())  # type: ignore[arg-type]


def _engine(tmp_path: Path, locations: list[Location], **options: object) -> Engine:
    store, _ = StateStore.open(tmp_path / "s.sqlite", [loc.key for loc in locations]).value
    engine = Engine(locations, store, Options(**options), threading.Event())  # type: ignore[arg-type]
    engine.start()
    return engine


def test_a_source_rewritten_during_its_copy_is_not_recorded_as_in_sync(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    source = write(a / "f.txt", "AAAAAAAA", mtime=T0)

    def rewrite() -> None:
        if source.read_text() == "AAAAAAAA":
            write(source, "BBBBBBBB", mtime=T0 + 0.3)

    engine = _engine(tmp_path, [_Rewriting(a, rewrite), FolderLocation(FolderSpec(b))])
    report = engine.run_round()
    assert not report.identical and report.failures == 1
    assert not (b / "f.txt").exists(), "a torn copy must never land"
    assert list(b.glob(".filesync-*.tmp")) == []
    engine.store.close()


def test_once_on_a_file_still_being_written_exits_1(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "steady.txt", "s")
    b.mkdir()
    growing = a / "growing.log"
    # The writer is a process of its own: a thread here would share the interpreter lock
    # with the engine and could be starved through the whole round (then nothing changes
    # while the engine looks, and exit 0 would be right).
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        f"out = open({str(growing)!r}, 'wb')\n"
        "while True:\n"
        "    out.write(b'x' * 65536); out.flush(); time.sleep(0.001)\n")])
    try:
        wait_for(lambda: growing.exists() and growing.stat().st_size > 1 << 20,
                 message="the writer to get going")
        code = sync(f"folder:{a}", f"folder:{b}")
    finally:
        writer.kill()
        writer.wait()
    assert code == 1
    assert (b / "steady.txt").read_text() == "s"


# ----- re-check right before replacing ---------------------------------------------------------
def test_a_save_into_the_target_during_a_copy_is_never_clobbered(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "new content from a", mtime=T0 + 10)
    target = write(b / "f.txt", "old", mtime=T0)
    saved = []

    def user_saves_into_target() -> None:
        if not saved:
            saved.append(True)
            write(target, "the user's own save", mtime=T0 + 20)

    engine = _engine(tmp_path, [_Rewriting(a, user_saves_into_target),
                                FolderLocation(FolderSpec(b))])
    report = engine.run_round()
    assert report.failures == 1 and not report.identical
    assert target.read_text() == "the user's own save"
    engine.store.close()


# ----- watch mode: only settled entries are used, everywhere -----------------------------------
def _watched_pair(tmp_path: Path, a: Path, b: Path
                  ) -> tuple[Engine, dict[str, Watcher], queue.Queue[WatchEvent]]:
    """An engine after its first round, with watchers the test scans by hand (no threads)."""
    locations: list[Location] = [FolderLocation(FolderSpec(a)), FolderLocation(FolderSpec(b))]
    engine = _engine(tmp_path, locations)
    first = engine.run_round()
    events: queue.Queue[WatchEvent] = queue.Queue()
    watchers = {loc.key: Watcher(loc, engine.options.excludes, 1.0, events, engine.stop,
                                 dict(first.listings[loc.key].entries))  # type: ignore[union-attr]
                for loc in locations}
    engine.watchers = watchers
    return engine, watchers, events


def _drain(events: queue.Queue[WatchEvent]) -> list[WatchEvent]:
    batch = []
    while not events.empty():
        batch.append(events.get_nowait())
    return batch


def test_watch_round_leaves_out_an_entry_still_changing_in_another_location(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    engine, watchers, events = _watched_pair(tmp_path, a, b)
    key_a, key_b = watchers
    # P is saved in a and settles there; in b an editor is still writing its own P.
    write(a / "p.txt", "settled in a", mtime=T0)
    watchers[key_a].scan_once()
    watchers[key_a].scan_once()
    write(b / "p.txt", "being written in b", mtime=T0 + 50)
    batch = [events.get_nowait()]
    assert batch == [WatchEvent(key_a, EventKind.CHANGED, "p.txt")]
    WatchLoop(engine).handle(batch)
    assert (a / "p.txt").read_text() == "settled in a", "an unsettled file must not spread"
    # The editor replaces its file with nothing (a temporary save): b's watcher sees it settle.
    (b / "p.txt").unlink()
    watchers[key_b].scan_once()
    watchers[key_b].scan_once()
    batch = _drain(events)
    assert WatchEvent(key_b, EventKind.CHANGED, "p.txt") in batch
    WatchLoop(engine).handle(batch)
    assert tree(a) == tree(b) == {"p.txt": "settled in a"}
    engine.store.close()


def test_a_holder_recorded_without_a_write_has_its_later_deletion_seen(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "same.txt", "equal", mtime=T0)
    b.mkdir()
    engine, watchers, events = _watched_pair(tmp_path, a, b)
    key_a, key_b = watchers
    # The same content appears in both; only a's watcher has reported it so far.
    write(a / "twin.txt", "twin", mtime=T0 + 5)
    write(b / "twin.txt", "twin", mtime=T0 + 5)
    for _ in range(2):
        watchers[key_a].scan_once()
    watchers[key_b].scan_once()  # b saw it once: settled for the engine's look-up
    WatchLoop(engine).handle([events.get_nowait()])  # recorded as held by both, nothing copied
    (b / "twin.txt").unlink()
    for _ in range(2):
        watchers[key_b].scan_once()
    batch = _drain(events)
    assert WatchEvent(key_b, EventKind.CHANGED, "twin.txt") in batch
    WatchLoop(engine).handle(batch)
    assert not (a / "twin.txt").exists(), "the deletion in b reaches a"
    engine.store.close()


# ----- differences left mean exit 1 ------------------------------------------------------------
def test_a_name_the_archive_cannot_hold_is_skipped_reported_and_exit_1(tmp_path, sync, capsys):
    a = tmp_path / "a"
    write(a / "ok.txt", "fine")
    odd = os.fsencode(a) + b"/caf\xe9.txt"
    with open(odd, "wb") as out:
        out.write(b"latin-1 name")
    archive = tmp_path / "b.zip"
    assert sync(f"folder:{a}", f"zip:{archive}") == 1
    assert zip_members(archive) == {"ok.txt": b"fine"}
    assert "cannot be stored in" in capsys.readouterr().err
    assert sync(f"folder:{a}", f"zip:{archive}") == 1
    assert os.path.exists(odd), "never read as deleted"


def test_backslash_and_drive_like_names_sync_between_folders(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "back\\slash.txt", "1")
    write(a / "c:colon.txt", "2")
    b.mkdir()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert tree(b) == {"back\\slash.txt": "1", "c:colon.txt": "2"}


# ----- type changes in one run -----------------------------------------------------------------
def test_a_file_replaced_by_a_folder_needs_one_run(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "x", "a file", mtime=T0)
    b.mkdir()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    (a / "x").unlink()
    write(a / "x" / "inner.txt", "inside")
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert tree(b) == {"x": None, "x/inner.txt": "inside"}
    for path in (a / "x" / "inner.txt", a / "x"):
        path.unlink() if path.is_file() else path.rmdir()
    write(a / "x", "a file again", mtime=T0 + 100)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert tree(b) == {"x": "a file again"}


# ----- one-way first runs ----------------------------------------------------------------------
def test_one_way_first_run_never_empties_a_small_target(tmp_path, sync):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        write(dst / name, name)
    assert sync("--one-way", f"folder:{src}", f"folder:{dst}") == 1
    assert sorted(p.name for p in dst.iterdir() if p.name != ".filesync") == [
        "a.txt", "b.txt", "c.txt"]


# ----- temporary files -------------------------------------------------------------------------
def test_temporary_files_are_told_apart_by_owner(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    b.mkdir()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    store, _ = StateStore.open(tmp_path / "state.sqlite", []).value
    own = store.owner_id()
    store.close()
    mine = write(a / f".filesync-{own}-0123456789ab.tmp", "left by my killed run")
    other = "ffffffff" if own != "ffffffff" else "eeeeeeee"
    theirs = write(a / f".filesync-{other}-0123456789ab.tmp", "another engine's upload")
    users = write(a / ".filesync-0123456789ab.tmp", "a user's own file in the old form")
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert not mine.exists()
    assert theirs.read_text() == "another engine's upload"
    assert users.exists() and (b / users.name).read_text() == users.read_text()


def test_an_entry_keeps_its_mode_out_of_equality():
    assert Entry("x", False, 1, 2, 0o755) == Entry("x", False, 1, 2, 0o644)


def test_a_zip_member_changed_before_the_rewrite_is_a_failure_not_a_record(tmp_path, sync):
    from filesync.locations.spec import ZipSpec
    from filesync.locations.zip import ZipLocation
    from tests.test_zip_hardening import zip_update

    a, archive = tmp_path / "a", tmp_path / "b.zip"
    write(a / "f.txt", "old!", mtime=T0)
    assert sync(f"folder:{a}", f"zip:{archive}") == 0
    write(a / "f.txt", "ours", mtime=T0 + 9)
    write(a / "g.txt", "g", mtime=T0)

    class ZipUpdatedMeanwhile(FolderLocation):
        """Opening g.txt (copied after f.txt was staged) runs ``zip -u f.txt`` first."""

        def open_read(self, path: str) -> Result[BinaryIO]:
            if path == "g.txt":
                zip_update(archive, tmp_path / "work", "f.txt", b"zip!", T0 + 1)
            return super().open_read(path)

    zip_key = f"zip:{archive}"
    engine = _engine(tmp_path, [ZipUpdatedMeanwhile(FolderSpec(a)), ZipLocation(ZipSpec(archive))])
    planned = engine.make_plan(engine.list_all())
    assert sorted(act.path for act in planned.actions()) == ["f.txt", "g.txt"]
    outcome = engine.executor.apply(planned)
    assert [(f.path, f.location, f.kind) for f in outcome.failures] == [
        ("f.txt", zip_key, ErrorKind.CHANGED)]
    assert zip_members(archive) == {"f.txt": b"zip!", "g.txt": b"g"}
    records = engine.store.load(["f.txt"])["f.txt"].records
    assert zip_key not in records, "the refused write is not recorded as held"
    engine.store.close()


def test_a_private_file_is_never_readable_by_others_while_it_is_copied(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    secret = write(a / "secret.txt", "s" * (3 << 20), mtime=T0)
    secret.chmod(0o600)
    seen: list[int] = []

    def look_at_temporaries() -> None:
        seen.extend(p.stat().st_mode & 0o777 for p in b.glob(".filesync-*.tmp"))

    engine = _engine(tmp_path, [_Rewriting(a, look_at_temporaries),
                                FolderLocation(FolderSpec(b))])
    assert engine.run_round().identical
    assert seen and all(mode & 0o077 == 0 for mode in seen), seen
    assert (b / "secret.txt").stat().st_mode & 0o777 == 0o600
    engine.store.close()


def test_a_path_under_a_folder_still_changing_elsewhere_is_tried_again(tmp_path):
    """A round that cannot see a path (its folder is unsettled in b) keeps it for later.

    a's watcher reports ``sub`` and ``sub/f.txt`` once; b's ``sub`` has not settled, which
    hides everything under it. Once b settles, b's watcher reports only ``sub``: the file
    is synced because the engine kept it as unsettled, not because anyone reports it again.
    """
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    engine, watchers, events = _watched_pair(tmp_path, a, b)
    key_a, key_b = watchers
    loop = WatchLoop(engine)
    write(a / "sub" / "f.txt", "new in a", mtime=T0)
    (b / "sub").mkdir()
    for _ in range(2):
        watchers[key_a].scan_once()
    batch = _drain(events)
    assert {event.path for event in batch} == {"sub", "sub/f.txt"}
    loop.handle(batch)
    assert not (b / "sub" / "f.txt").exists(), "b's unsettled folder must hide the file"
    assert engine.unsettled == {"sub", "sub/f.txt"}
    for _ in range(2):
        watchers[key_b].scan_once()
    loop.handle(_drain(events))
    assert not (b / "sub" / "f.txt").exists()  # b reported only its folder
    loop.retry_unsettled()
    assert tree(a) == tree(b) == {"sub": None, "sub/f.txt": "new in a"}
    assert not engine.unsettled
    engine.store.close()
