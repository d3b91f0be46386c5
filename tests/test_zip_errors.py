"""Typed errors of the ZIP backend (issue 9): every ``Err`` carries the kind the engine acts on.

A missing archive is UNAVAILABLE (never an empty listing), a damaged one INVALID, a
missing member NOT_FOUND, a folder that refuses new files REFUSED, a full disk NO_SPACE.
"""

from __future__ import annotations

import errno
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from filesync.excludes import Excludes
from filesync.locations.zip import stage, writer
from filesync.result import ErrorKind
from tests.conftest import run_main
from tests.conftest import write as write_file
from tests.test_zip_support import WHEN_NS, assert_valid, location, read_all, write


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A fresh archive holding ``a.txt`` and the folder ``d``."""
    path = tmp_path / "b.zip"
    loc = location(path)
    assert loc.prepare().ok
    write(loc, "a.txt", b"a")
    assert loc.mkdir("d").ok
    return path


def test_a_missing_archive_is_unavailable_never_empty(archive):
    loc = location(archive)
    assert loc.list(Excludes()).ok
    archive.unlink()
    for result in (loc.scan(lambda _p: False), loc.list(Excludes()), loc.probe(),
                   loc.stat("a.txt"), loc.open_read("a.txt"), loc.delete("a.txt"),
                   loc.rename("a.txt", "b.txt"), loc.mkdir("e"), loc.rmdir("d"),
                   loc.write("c.txt", io.BytesIO(b"c"), WHEN_NS)):
        assert not result.ok and result.kind is ErrorKind.UNAVAILABLE, result
    with loc.batch() as batch:
        assert batch.begun.ok
        staged = loc.write("c.txt", io.BytesIO(b"c"), WHEN_NS)
    assert not staged.ok and staged.kind is ErrorKind.UNAVAILABLE, staged
    assert not archive.exists(), "a vanished archive is never made up again by a change"


def test_an_archive_damaged_after_start_is_invalid(archive):
    loc = location(archive)
    assert loc.list(Excludes()).ok
    data = bytearray(archive.read_bytes())
    cd = data.rindex(b"PK\x01\x02")
    data[cd:cd + 2] = b"XX"  # a directory record without its signature
    archive.write_bytes(bytes(data))
    for result in (loc.list(Excludes()), loc.probe(), loc.stat("a.txt"),
                   loc.open_read("a.txt"), loc.delete("a.txt"), loc.check()):
        assert not result.ok and result.kind is ErrorKind.INVALID, result
    assert archive.read_bytes() == bytes(data), "a damaged archive is left untouched"


def test_a_damaged_archive_at_start_is_exit_2(tmp_path):
    a = tmp_path / "a"
    write_file(a / "f.txt", "f")
    damaged = tmp_path / "b.zip"
    damaged.write_bytes(b"PK\x03\x04 not really an archive")
    assert run_main("--once", "--state", str(tmp_path / "s.db"), f"folder:{a}",
                    f"zip:{damaged}") == 2
    assert damaged.read_bytes() == b"PK\x03\x04 not really an archive"


def test_a_missing_member_is_not_found(archive):
    loc = location(archive)
    with loc.batch() as batch:
        assert batch.begun.ok
        for result in (loc.open_read("nothing.txt"), loc.rename("nothing.txt", "x.txt"),
                       loc.rmdir("no-folder"), loc.sha256("nothing.txt")):
            assert not result.ok and result.kind is ErrorKind.NOT_FOUND, result
        assert loc.stat("nothing.txt").ok and loc.stat("nothing.txt").value is None
        assert loc.delete("nothing.txt").ok  # already gone is fine
    assert batch.ended is not None and batch.ended.ok
    for result in (loc.open_read("nothing.txt"), loc.rename("nothing.txt", "x.txt"),
                   loc.rmdir("no-folder")):
        assert not result.ok and result.kind is ErrorKind.NOT_FOUND, result


def test_a_member_that_cannot_be_read_is_invalid(tmp_path):
    import zipfile

    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as made:
        made.writestr("locked.txt", b"secret")
    data = bytearray(path.read_bytes())
    for signature in (b"PK\x03\x04", b"PK\x01\x02"):  # set the "encrypted" flag
        at = data.index(signature) + (6 if signature == b"PK\x03\x04" else 8)
        data[at] |= 1
    path.write_bytes(bytes(data))
    loc = location(path)
    for result in (loc.stat("locked.txt"), loc.open_read("locked.txt"),
                   loc.delete("locked.txt"), loc.rename("locked.txt", "x.txt")):
        assert not result.ok and result.kind is ErrorKind.INVALID, result


def test_a_full_disk_is_no_space_and_changes_nothing(archive, monkeypatch):
    loc = location(archive)
    before = archive.read_bytes()

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:  # staging a new member
        patched.setattr(stage, "write_all", full)
        staged = loc.write("big.txt", io.BytesIO(b"x" * 5000), WHEN_NS)
    assert not staged.ok and staged.kind is ErrorKind.NO_SPACE, staged
    with monkeypatch.context() as patched:  # writing the new archive
        patched.setattr(writer, "write_all", full)
        deleted = loc.delete("a.txt")
    assert not deleted.ok and deleted.kind is ErrorKind.NO_SPACE, deleted
    assert archive.read_bytes() == before
    assert read_all(location(archive), "a.txt") == b"a"
    assert not list(archive.parent.glob(".filesync-*.tmp"))


def _immutable(folder: Path) -> bool:
    """Make ``folder`` refuse new files even to root (``chattr +i``), if this system can."""
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    return done.returncode == 0


def test_a_folder_that_refuses_new_files_is_refused(tmp_path):
    # Tests run as root, where permission bits refuse nothing: an immutable folder does.
    folder = tmp_path / "locked"
    folder.mkdir()
    path = folder / "b.zip"
    assert location(path).prepare().ok
    write(location(path), "a.txt", b"a")
    assert _immutable(folder), "chattr +i (e2fsprogs) is needed to refuse anything to root"
    try:
        loc = location(path)
        checked = loc.check()
        assert not checked.ok and checked.kind is ErrorKind.REFUSED, checked
        for result in (loc.write("b.txt", io.BytesIO(b"b"), WHEN_NS), loc.delete("a.txt"),
                       loc.mkdir("e")):
            assert not result.ok and result.kind is ErrorKind.REFUSED, result
        assert loc.list(Excludes()).ok, "reading still works"
        missing = location(folder / "new.zip")
        prepared = missing.prepare()
        assert not prepared.ok and prepared.kind is ErrorKind.REFUSED, prepared
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert_valid(path)
    assert read_all(location(path), "a.txt") == b"a"
