"""ZIP locations through the command line: three-way sync, bad input, watch mode, SIGKILL."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import MAIN, run_main, tree, wait_for, write
from tests.test_zip_support import (
    assert_valid,
    location,
    make_zip,
    raw_record,
    read_all,
    zip_cmd,
)

T0 = 1_700_000_000


def members(archive: Path) -> dict[str, bytes | None]:
    """User members of an archive (``.filesync`` left out), read by Python's zipfile."""
    with zipfile.ZipFile(archive) as other:
        return {info.filename.rstrip("/"): None if info.is_dir() else other.read(info)
                for info in other.infolist() if not info.filename.startswith(".filesync")}


def files_of(archive: Path) -> dict[str, str]:
    return {k: v.decode() for k, v in members(archive).items() if v is not None}


def files_in(root: Path) -> dict[str, str]:
    return {k: v for k, v in tree(root).items() if v is not None}


def actions(text: str) -> list[str]:
    return re.findall(r"^\S+ (?:copy|delete|mkdir|conflict) .*$", text, re.MULTILINE)


def test_three_way_folder_zip_folder(tmp_path, sync, capsys):
    a, c = tmp_path / "a", tmp_path / "c"
    b = tmp_path / "b.zip"
    write(a / "one.txt", "one", mtime=T0)
    write(a / "sub" / "two.txt", "two", mtime=T0)
    (a / "empty").mkdir()
    c.mkdir()
    where = (f"folder:{a}", f"zip:{b}", f"folder:{c}")
    assert sync(*where) == 0
    assert_valid(b)
    assert files_of(b) == files_in(c) == files_in(a) == {"one.txt": "one", "sub/two.txt": "two"}
    assert members(b)["empty"] is None and (c / "empty").is_dir()
    capsys.readouterr()
    # Nothing changed: nothing is done, the archive is not rewritten (no ping-pong).
    before = b.read_bytes()
    assert sync(*where) == 0
    assert actions(capsys.readouterr().err) == []
    assert b.read_bytes() == before
    # A change in each location reaches the other two.
    write(a / "one.txt", "one from a", mtime=T0 + 10)
    write(c / "sub" / "three.txt", "three from c", mtime=T0 + 10)
    src = tmp_path / "outside"
    write(src / "sub" / "four.txt", "four from zip", mtime=T0 + 10)
    zip_cmd(src, str(b), "sub/four.txt")
    assert sync(*where) == 0
    expected = {"one.txt": "one from a", "sub/two.txt": "two", "sub/three.txt": "three from c",
                "sub/four.txt": "four from zip"}
    assert files_in(a) == files_of(b) == files_in(c) == expected
    # Deletions in any one of them, propagated on the next run.
    (a / "sub" / "two.txt").unlink()
    subprocess.run(["/usr/bin/zip", "-q", "-d", str(b), "sub/three.txt"], check=True)
    (c / "one.txt").unlink()
    assert sync(*where) == 0
    expected = {"sub/four.txt": "four from zip"}
    assert files_in(a) == files_of(b) == files_in(c) == expected
    assert_valid(b)
    # What was deleted or overwritten is kept inside the archive, under .filesync/versions.
    with zipfile.ZipFile(b) as other:
        kept = [n for n in other.namelist() if n.startswith(".filesync/versions/")]
    assert {re.sub(r"~.*", "", n) for n in kept} >= {
        ".filesync/versions/one.txt", ".filesync/versions/sub/two.txt"}
    capsys.readouterr()
    assert sync(*where) == 0
    assert actions(capsys.readouterr().err) == []


def test_times_never_ping_pong(tmp_path, sync, capsys):
    a = tmp_path / "a"
    write(a / "ns.txt", "x")
    os.utime(a / "ns.txt", ns=(T0 * 10**9 + 987_654_321,) * 2)
    dos = make_zip(tmp_path / "dos.zip", [("odd-second.txt", b"y")])  # DOS time only
    for archive in (tmp_path / "b.zip", dos):
        assert sync(f"folder:{a}", f"zip:{archive}") == 0
        capsys.readouterr()
        for _ in range(2):
            assert sync(f"folder:{a}", f"zip:{archive}") == 0
            assert actions(capsys.readouterr().err) == []
    assert (a / "ns.txt").stat().st_mtime_ns == T0 * 10**9 + 987_654_321


def test_bad_archives_exit_2_byte_identical(tmp_path, sync, capsys):
    a = tmp_path / "a"
    write(a / "x.txt", "x")
    good = make_zip(tmp_path / "good.zip", [("a.txt", b"a" * 3000), ("b.txt", b"b")])
    data = good.read_bytes()
    cases = {
        "notes.zip": b"these are notes\n",
        "empty.zip": b"",
        "truncated.zip": data[:len(data) - 30],
        "corrupt.zip": data.replace(b"PK\x01\x02", b"PK\x01\x09"),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert sync(f"folder:{a}", f"zip:{path}") == 2, name
        err = capsys.readouterr().err
        assert str(path) in err and "not a valid ZIP archive" in err, err
        assert path.read_bytes() == content, name
    assert sync(f"folder:{a}", f"zip:{tmp_path}/missing-folder/b.zip") == 2
    assert "missing-folder" in capsys.readouterr().err
    assert files_in(a) == {"x.txt": "x"}
    assert not list(tmp_path.glob(".filesync-*.tmp"))


def test_archive_inside_a_synced_folder_is_refused(tmp_path, sync, capsys):
    a = tmp_path / "a"
    a.mkdir()
    assert sync(f"folder:{a}", f"zip:{a}/inside.zip") == 2
    assert "inside" in capsys.readouterr().err
    assert not (a / "inside.zip").exists()


def test_dry_run_changes_no_archive(tmp_path, sync, capsys):
    a = tmp_path / "a"
    write(a / "x.txt", "x")
    archive = make_zip(tmp_path / "b.zip", [("y.txt", b"y")])
    before = archive.read_bytes()
    assert run_main("--dry-run", "--state", str(tmp_path / "s.sqlite"), f"folder:{a}",
                    f"zip:{archive}") == 0
    assert "copy x.txt" in capsys.readouterr().out
    assert archive.read_bytes() == before
    assert not (a / "y.txt").exists()


def test_unsafe_encrypted_and_duplicate_members_through_the_cli(tmp_path, sync, capsys):
    a = tmp_path / "inner" / "a"
    a.mkdir(parents=True)
    with pytest.warns(UserWarning, match="Duplicate"):
        archive = make_zip(tmp_path / "b.zip", [
            ("../escape.txt", b"evil"), ("/abs.txt", b"evil"), ("dir\\x.txt", b"evil"),
            ("ok.txt", b"ok"), ("dup.txt", b"first"), ("dup.txt", b"last")])
    src = tmp_path / "src"
    write(src / "secret.txt", "secret")
    zip_cmd(src, "-P", "pw", str(archive), "secret.txt")
    raw = raw_record(archive, "secret.txt")
    # Skipped members keep the two from being identical: exit 1, everything else synced.
    assert sync(f"folder:{a}", f"zip:{archive}") == 1
    err = capsys.readouterr().err
    assert err.count("unsafe name") == 3 and "encrypted" in err and "more than once" in err
    assert files_in(a) == {"ok.txt": "ok", "dup.txt": "last"}
    assert not (tmp_path / "inner" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()
    write(a / "new.txt", "new")
    assert sync(f"folder:{a}", f"zip:{archive}") == 1
    assert raw_record(archive, "secret.txt") == raw
    with zipfile.ZipFile(archive) as other:
        assert {"../escape.txt", "/abs.txt", "dir\\x.txt", "new.txt"} <= set(other.namelist())


def test_restore_from_versions_inside_the_archive(tmp_path, sync):
    a = tmp_path / "a"
    archive = tmp_path / "b.zip"
    write(a / "doc.txt", "first", mtime=T0)
    assert sync(f"folder:{a}", f"zip:{archive}") == 0
    write(a / "doc.txt", "second", mtime=T0 + 10)
    assert sync(f"folder:{a}", f"zip:{archive}") == 0
    assert files_of(archive) == {"doc.txt": "second"}
    assert run_main("restore", f"zip:{archive}", "doc.txt") == 0
    assert files_of(archive) == {"doc.txt": "first"}
    assert_valid(archive)


# ----- watch mode ---------------------------------------------------------------------------
def test_watch_notices_zip_u_and_a_replaced_archive(tmp_path, watching):
    a = tmp_path / "a"
    archive = tmp_path / "b.zip"
    write(a / "start.txt", "s")
    run = watching(f"folder:{a}", f"zip:{archive}")
    run.wait_output("watching")
    wait_for(lambda: archive.exists() and "start.txt" in files_of(archive),
             message="first round")
    outside = tmp_path / "outside"
    write(outside / "added.txt", "added by zip -u")
    zip_cmd(outside, "-u", str(archive), "added.txt")
    wait_for(lambda: (a / "added.txt").exists()
             and (a / "added.txt").read_text() == "added by zip -u", message="zip -u noticed")
    write(a / "start.txt", "edited in the folder")
    wait_for(lambda: files_of(archive).get("start.txt") == "edited in the folder",
             message="a folder edit reaching the archive")
    # Replaced by a copy made elsewhere (another inode, as cp to a new name and mv).
    other = tmp_path / "copy.zip"
    shutil.copy(archive, other)
    write(outside / "from-copy.txt", "from the copy")
    zip_cmd(outside, str(other), "from-copy.txt")
    os.replace(other, archive)
    wait_for(lambda: (a / "from-copy.txt").exists(), message="a replaced archive noticed")
    assert run.stop() == 0
    assert_valid(archive)
    assert files_of(archive) == files_in(a)


def test_watch_stays_silent_once_folder_and_archive_agree(tmp_path, watching):
    a = tmp_path / "a"
    archive = tmp_path / "b.zip"
    for i in range(10):
        write(a / f"d{i % 3}" / f"f{i}.txt", f"file {i}")
        os.utime(a / f"d{i % 3}" / f"f{i}.txt", ns=(T0 * 10**9 + i * 123_456_789,) * 2)
    (a / "empty" / "nested").mkdir(parents=True)
    run = watching(f"folder:{a}", f"zip:{archive}")
    run.wait_output("watching")
    wait_for(lambda: archive.exists() and len(files_of(archive)) == 10, message="first round")
    time.sleep(0.6)  # the watchers see the first round's own writes once
    settled = actions(run.output())
    before = archive.read_bytes()
    deadline = time.monotonic() + 2.0  # ten scan intervals
    while time.monotonic() < deadline:
        assert actions(run.output()) == settled, run.output()
        time.sleep(0.1)
    assert archive.read_bytes() == before, "no rewrite while nothing changes"
    assert run.stop() == 0
    assert members(archive)["empty/nested"] is None


def test_watch_marks_a_corrupted_archive_unavailable(tmp_path, watching):
    a = tmp_path / "a"
    archive = tmp_path / "b.zip"
    write(a / "keep.txt", "keep")
    run = watching(f"folder:{a}", f"zip:{archive}")
    run.wait_output("watching")
    wait_for(lambda: archive.exists() and "keep.txt" in files_of(archive), message="first round")
    good = archive.read_bytes()
    garbage = b"overwritten by something else " * 10
    archive.write_bytes(garbage)
    run.wait_output("is unavailable")
    write(a / "later.txt", "later")  # a change elsewhere must not touch the bad archive
    time.sleep(1.0)  # five scan intervals: long enough for a wrong write to happen
    assert archive.read_bytes() == garbage
    assert (a / "keep.txt").exists(), "nothing is deleted because of an unreadable archive"
    archive.write_bytes(good)
    wait_for(lambda: "later.txt" in files_of(archive), message="the archive back in use")
    assert run.stop() == 0
    assert_valid(archive)


# ----- crash safety -------------------------------------------------------------------------
_REWRITER = r"""
import io, os, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from filesync.locations.spec import ZipSpec
from filesync.locations.zip import ZipLocation

loc = ZipLocation(ZipSpec(Path(sys.argv[2])))
block = os.urandom(1 << 20)
with loc.batch() as batch:
    assert batch.begun.ok
    for i in range(int(sys.argv[3])):
        assert loc.write(f"new/{i}.bin", io.BytesIO(block[i:] + block[:i]), 0).ok
    print("staged", flush=True)
    sys.stdin.readline()
print("done", flush=True)
"""


def _temps(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.glob(".filesync-*.tmp")}


def test_sigkill_during_a_rewrite_then_the_next_run_completes(tmp_path, sync):
    a = tmp_path / "a"
    archive = tmp_path / "b.zip"
    for i in range(3):
        write(a / f"keep{i}.txt", f"keep {i}", mtime=T0)
    assert sync(f"folder:{a}", f"zip:{archive}") == 0
    before = archive.read_bytes()
    process = subprocess.Popen(
        [sys.executable, "-c", _REWRITER, str(MAIN.parent), str(archive), "300"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == "staged"
        staging = set(_temps(tmp_path))
        process.stdin.write("\n")
        process.stdin.flush()
        wait_for(lambda: any(size > 0 for name, size in _temps(tmp_path).items()
                             if name not in staging), timeout=30, message="a rewrite in flight")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert archive.read_bytes() == before, "killed before the rename: the old archive"
    assert_valid(archive)
    assert set(_temps(tmp_path)) > staging, "the kill should leave the temporary archive"
    assert sync(f"folder:{a}", f"zip:{archive}") == 0
    assert _temps(tmp_path) == {}, "stale temporary files must be removed"
    assert files_of(archive) == files_in(a)
    assert_valid(archive)


def test_sigkill_at_any_moment_leaves_a_valid_archive(tmp_path):
    a = tmp_path / "a"
    archive = tmp_path / "b.zip"
    block = os.urandom(1 << 20)
    for i in range(40):
        (a / "d").mkdir(parents=True, exist_ok=True)
        (a / "d" / f"{i}.bin").write_bytes(block[i:] + block[:i] + b"%d" % i)
    state = tmp_path / "state.sqlite"
    command = [sys.executable, str(MAIN), "--once", "-q", "--state", str(state),
               f"folder:{a}", f"zip:{archive}"]
    for delay in (0.3, 0.6, 0.9, 1.2, 1.6, 2.0):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(delay)  # a moment chosen blindly, on purpose
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if archive.exists():
            assert_valid(archive)
        for i in (0, 7):  # a changed file makes the next run rewrite again
            (a / "d" / f"{i}.bin").write_bytes(os.urandom(100_000))
    assert run_main("--once", "--state", str(state), f"folder:{a}", f"zip:{archive}") == 0
    assert _temps(tmp_path) == {}
    assert_valid(archive)
    loc = location(archive)
    for i in range(40):
        assert read_all(loc, f"d/{i}.bin") == (a / "d" / f"{i}.bin").read_bytes()
