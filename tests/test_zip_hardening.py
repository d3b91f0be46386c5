"""ZIP archives (issue 8): exact member times, names a ZIP cannot hold, re-checks before a
member is replaced, Unix permissions, and an archive replaced by a FIFO.

Real archives throughout, changed behind filesync's back by Info-ZIP ``zip``.
"""

from __future__ import annotations

import io
import os
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from filesync.locations.zip import format as zf
from filesync.model import ANY, Entry
from filesync.result import ErrorKind
from tests.conftest import run_main, tree
from tests.conftest import write as write_file
from tests.test_zip_support import (
    UNZIP,
    assert_valid,
    listing,
    location,
    read_all,
    write,
    zip_cmd,
)

SECOND = 1_000_000_000
T0 = 1_700_000_000  # an even second: T0 and T0 + 1 share one DOS time


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A fresh archive created by ``prepare`` (as the CLI does)."""
    path = tmp_path / "b.zip"
    loc = location(path)
    assert loc.prepare().ok
    return path


def zip_update(archive: Path, work: Path, name: str, data: bytes, mtime: int) -> None:
    """``zip -u`` a member from a scratch folder holding ``name`` with ``data``."""
    write_file(work / name, data, mtime=mtime)
    zip_cmd(work, "-u", str(archive), name)


def actions(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if any(f" {word} " in line for word in ("copy", "delete", "mkdir", "conflict"))]


# ----- 1. member times ----------------------------------------------------------------------
def test_zip_u_within_two_seconds_with_the_same_size_is_a_change(tmp_path):
    a, work = tmp_path / "a", tmp_path / "work"
    archive = tmp_path / "b.zip"
    write_file(a / "f.txt", "old!", mtime=T0)
    assert run_main("--once", f"folder:{a}", f"zip:{archive}") == 0
    before = listing(location(archive))["f.txt"]
    zip_update(archive, work, "f.txt", b"new!", T0 + 1)
    after = listing(location(archive))["f.txt"]
    assert (before.size, after.size) == (4, 4) and after.mtime_ns == before.mtime_ns + SECOND
    assert run_main("--once", f"folder:{a}", f"zip:{archive}") == 0
    assert (a / "f.txt").read_bytes() == b"new!"


def test_the_location_compares_its_own_times_exactly():
    assert location(Path("/nowhere/x.zip")).capabilities.mtime_tolerance_ns == 0


@pytest.mark.parametrize("mtime_ns", [
    T0 * SECOND, T0 * SECOND + 999_999_999, (T0 + 1) * SECOND + 1, 0, -5 * SECOND,
    0x7FFFFFFF * SECOND + 1, 0x80000000 * SECOND, 315_532_801 * SECOND])
def test_written_entry_equals_every_later_scan(archive, mtime_ns):
    loc = location(archive)
    written = write(loc, "f.txt", b"data", mtime_ns)
    assert listing(loc)["f.txt"] == written
    assert listing(location(archive))["f.txt"] == written  # a fresh process reads the same
    again = write(location(archive), "g.txt", b"data", mtime_ns)
    assert again.mtime_ns == written.mtime_ns  # the same input gives the same entry


def test_second_round_with_zip_does_nothing(tmp_path, capsys):
    a = tmp_path / "a"
    archive = tmp_path / "b.zip"
    for i, frac in enumerate((0, 1, 999_999_999, 500_000_000)):
        write_file(a / f"f{i}.txt", f"content {i}")
        os.utime(a / f"f{i}.txt", ns=((T0 + i) * SECOND + frac,) * 2)
    write_file(a / "sub" / "x.bin", os.urandom(3000), mtime=T0 + 7)
    assert run_main("--once", "-v", f"folder:{a}", f"zip:{archive}") == 0
    capsys.readouterr()
    assert run_main("--once", "-v", f"folder:{a}", f"zip:{archive}") == 0
    assert actions(capsys.readouterr().err) == []


# ----- 2. names -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a\\b.txt", "C:/x.txt", "c:x.txt", "bad\udcff.txt",
                                  "dir/.filesync-0123abcd-0123456789ab.tmp"])
def test_names_a_zip_cannot_hold_are_refused(archive, name):
    loc = location(archive)
    assert loc.name_problem(name)
    before = archive.read_bytes()
    written = loc.write(name, io.BytesIO(b"x"), T0 * SECOND)
    made = loc.mkdir(name)
    write(loc, "ok.txt", b"ok")
    ok_bytes = archive.read_bytes()
    moved = loc.rename("ok.txt", name)
    assert not written.ok and not made.ok and not moved.ok
    for result in (written, made, moved):
        assert result.kind is ErrorKind.INVALID, result
        assert loc.name_problem(name) in result.message, result.message
    assert archive.read_bytes() == ok_bytes != before
    assert set(listing(loc)) == {"ok.txt"}


@pytest.mark.parametrize("name", ["ok/名前.txt", "a b/c.txt", "ab:c", ".profile"])
def test_names_a_zip_can_hold_are_accepted(archive, name):
    loc = location(archive)
    assert loc.name_problem(name) is None
    write(loc, name, b"x")
    assert read_all(location(archive), name) == b"x"


def test_there_is_one_name_check():
    from filesync.locations import zip as zipmodule

    assert not hasattr(zipmodule.ZipLocation, "_name_problem")


# ----- 3. re-check before a member is replaced ----------------------------------------------
def test_write_refuses_a_member_changed_after_the_plan(archive, tmp_path):
    loc = location(archive)
    planned = write(loc, "f.txt", b"old!", T0 * SECOND)
    write(loc, "g.txt", b"g0", T0 * SECOND)
    with loc.batch() as batch:
        assert batch.begun.ok
        write(loc, "g.txt", b"g1", (T0 + 5) * SECOND)  # the batch has seen the archive
        zip_update(archive, tmp_path / "work", "f.txt", b"zip!", T0 + 1)
        refused = loc.write("f.txt", io.BytesIO(b"ours"), (T0 + 9) * SECOND, expect=planned)
        assert not refused.ok and refused.kind is ErrorKind.CHANGED, refused
    assert batch.ended is not None and batch.ended.ok
    assert_valid(archive, unzip=())
    with zipfile.ZipFile(archive) as z:
        assert z.read("f.txt") == b"zip!" and z.read("g.txt") == b"g1"


def test_expect_none_refuses_a_member_that_appeared(archive, tmp_path):
    loc = location(archive)
    with loc.batch() as batch:
        assert batch.begun.ok
        write(loc, "g.txt", b"g")
        zip_update(archive, tmp_path / "work", "new.txt", b"theirs", T0)
        refused = loc.write("new.txt", io.BytesIO(b"ours"), T0 * SECOND, expect=None)
        assert not refused.ok and refused.kind is ErrorKind.CHANGED, refused
    assert batch.ended is not None and batch.ended.ok
    with zipfile.ZipFile(archive) as z:
        assert z.read("new.txt") == b"theirs" and z.read("g.txt") == b"g"


def test_write_with_the_expected_entry_lands(archive):
    loc = location(archive)
    planned = write(loc, "f.txt", b"old!", T0 * SECOND)
    assert loc.write("f.txt", io.BytesIO(b"new"), T0 * SECOND, expect=planned).ok
    assert loc.write("n.txt", io.BytesIO(b"n"), T0 * SECOND, expect=None).ok
    assert loc.write("f.txt", io.BytesIO(b"any"), T0 * SECOND, expect=ANY).ok
    assert read_all(loc, "f.txt") == b"any" and read_all(loc, "n.txt") == b"n"


def test_zip_u_during_the_rewrite_window_keeps_theirs_and_lands_the_rest(archive, tmp_path):
    loc = location(archive)
    planned = write(loc, "f.txt", b"old!", T0 * SECOND)
    with loc.batch() as batch:
        assert batch.begun.ok
        assert loc.write("f.txt", io.BytesIO(b"ours"), (T0 + 9) * SECOND, expect=planned).ok
        write(loc, "g.txt", b"g")
        zip_update(archive, tmp_path / "work", "f.txt", b"zip!", T0 + 1)  # after staging
    assert batch.ended is not None and batch.ended.ok
    with zipfile.ZipFile(archive) as z:
        assert z.read("f.txt") == b"zip!" and z.read("g.txt") == b"g"
    assert set(batch.refused) == {"f.txt"}
    assert "changed since the plan was made" in batch.refused["f.txt"]


def test_stat_in_a_batch_sees_changes_made_by_another_program(archive, tmp_path):
    loc = location(archive)
    write(loc, "f.txt", b"old!", T0 * SECOND)
    with loc.batch() as batch:
        assert batch.begun.ok
        write(loc, "g.txt", b"g")
        zip_update(archive, tmp_path / "work", "f.txt", b"zip!", T0 + 1)
        found = loc.stat("f.txt")
        assert found.ok and found.value == Entry("f.txt", False, 4, (T0 + 1) * SECOND)
        assert loc.stat("g.txt").value is not None  # the batch's own change is still seen
    assert batch.ended is not None and batch.ended.ok


def test_delete_of_a_member_changed_before_the_rewrite_keeps_it(archive, tmp_path):
    loc = location(archive)
    write(loc, "f.txt", b"old!", T0 * SECOND)
    with loc.batch() as batch:
        assert batch.begun.ok
        assert loc.rename("f.txt", ".filesync/versions/f.txt~20260101T000000.000000Z").ok
        zip_update(archive, tmp_path / "work", "f.txt", b"zip!", T0 + 1)
    assert batch.ended is not None and batch.ended.ok
    with zipfile.ZipFile(archive) as z:
        assert z.read("f.txt") == b"zip!"
    assert set(batch.refused) == {"f.txt"}


# ----- 4. permissions -----------------------------------------------------------------------
def zipinfo(archive: Path) -> dict[str, str]:
    out = subprocess.run([UNZIP, "-Z", str(archive)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1]: line.split()[0] for line in out.splitlines()
            if line[:1] in "-d" and len(line.split()) >= 9}


def test_written_mode_shows_in_zipinfo_and_reads_back(archive):
    loc = location(archive)
    assert loc.write("run.sh", io.BytesIO(b"#!/bin/sh\n"), T0 * SECOND, mode=0o755).ok
    assert loc.write("plain.txt", io.BytesIO(b"x"), T0 * SECOND, mode=0o640).ok
    assert loc.write("unknown.txt", io.BytesIO(b"x"), T0 * SECOND).ok
    assert loc.mkdir("dir").ok
    shown = zipinfo(archive)
    assert shown["run.sh"] == "-rwxr-xr-x"
    assert shown["plain.txt"] == "-rw-r-----"
    assert shown["unknown.txt"] == "-rw-r--r--"
    assert shown["dir/"].startswith("d")
    found = listing(location(archive))
    assert (found["run.sh"].mode, found["plain.txt"].mode) == (0o755, 0o640)
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("run.sh")
        assert info.create_system == 3 and info.external_attr >> 16 == 0o100755


def test_mode_of_members_made_by_info_zip_is_read(tmp_path):
    work = tmp_path / "w"
    write_file(work / "tool", "#!/bin/sh\n", mtime=T0)
    write_file(work / "data.txt", "d", mtime=T0)
    (work / "tool").chmod(0o750)
    (work / "data.txt").chmod(0o604)
    archive = tmp_path / "i.zip"
    zip_cmd(work, str(archive), "tool", "data.txt")
    found = listing(location(archive))
    assert (found["tool"].mode, found["data.txt"].mode) == (0o750, 0o604)


def test_members_not_made_on_unix_report_no_mode(tmp_path):
    work = tmp_path / "w"
    write_file(work / "tool", "#!/bin/sh\n", mtime=T0)
    (work / "tool").chmod(0o755)
    archive = tmp_path / "i.zip"
    zip_cmd(work, str(archive), "tool")
    assert listing(location(archive))["tool"].mode == 0o755
    raw = bytearray(archive.read_bytes())
    cd = raw.rfind(zf.SIG_CENTRAL)
    raw[cd + 5] = 0  # "made by" MS-DOS: the external attributes hold no Unix mode
    archive.write_bytes(bytes(raw))
    assert listing(location(archive))["tool"].mode == 0


def test_a_write_without_mode_keeps_the_mode_of_the_member_replaced(archive):
    loc = location(archive)
    assert loc.write("run.sh", io.BytesIO(b"v1"), T0 * SECOND, mode=0o755).ok
    assert loc.write("run.sh", io.BytesIO(b"v2"), T0 * SECOND).ok
    assert zipinfo(archive)["run.sh"] == "-rwxr-xr-x"
    assert loc.write("run.sh", io.BytesIO(b"v3"), T0 * SECOND, mode=0o700).ok
    assert listing(location(archive))["run.sh"].mode == 0o700


def test_renamed_member_keeps_its_mode(archive):
    loc = location(archive)
    assert loc.write("run.sh", io.BytesIO(b"x"), T0 * SECOND, mode=0o700).ok
    assert loc.rename("run.sh", "bin/run.sh").ok
    assert listing(location(archive))["bin/run.sh"].mode == 0o700


def test_executable_bit_survives_folder_zip_folder(tmp_path):
    a, c = tmp_path / "a", tmp_path / "c"
    archive = tmp_path / "b.zip"
    write_file(a / "run.sh", "#!/bin/sh\necho hi\n", mtime=T0)
    (a / "run.sh").chmod(0o755)
    c.mkdir()
    assert run_main("--once", f"folder:{a}", f"zip:{archive}") == 0
    assert zipinfo(archive)["run.sh"] == "-rwxr-xr-x"
    assert run_main("--once", f"zip:{archive}", f"folder:{c}") == 0
    assert tree(c) == tree(a)
    assert (c / "run.sh").stat().st_mode & 0o777 == 0o755


# ----- 5. an archive replaced by a FIFO -----------------------------------------------------
def _within(seconds: float, work, *args):
    """Run ``work(*args)`` in a thread; fail (and unblock it) if it does not return in time."""
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(work(*args)), daemon=True)
    thread.start()
    thread.join(seconds)
    return thread, box


def _unblock(fifo: Path, thread: threading.Thread) -> None:
    while thread.is_alive():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            thread.join(0.05)
            continue
        os.close(fd)
        thread.join(1)


def test_an_archive_replaced_by_a_fifo_never_hangs(archive):
    loc = location(archive)
    write(loc, "f.txt", b"f")
    assert listing(loc)
    archive.unlink()
    os.mkfifo(archive)
    try:
        for call in (lambda: loc.scan(lambda _p: False), lambda: loc.open_read("f.txt"),
                     loc.check, lambda: location(archive).probe(),
                     lambda: loc.write("g.txt", io.BytesIO(b"g"), T0 * SECOND)):
            thread, box = _within(5, call)
            alive = thread.is_alive()
            _unblock(archive, thread)
            assert not alive, "filesync hung on a FIFO"
            [result] = box
            assert not result.ok, result  # type: ignore[attr-defined]
            assert result.kind is ErrorKind.INVALID, result  # type: ignore[attr-defined]
    finally:
        archive.unlink()
