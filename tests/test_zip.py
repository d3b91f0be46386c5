"""ZIP archives as locations, through the ``Location`` API (issue 4).

Real archives throughout: written by filesync itself, by Python's ``zipfile`` and by
Info-ZIP ``zip``; every archive filesync rewrote must pass ``zipfile -t`` and ``unzip -t``.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import threading
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from filesync.locations.zip import format as zf
from filesync.model import MARKER, Entry
from filesync.result import ErrorKind
from tests.test_zip_support import (
    UNZIP,
    WHEN_NS,
    Chunks,
    assert_valid,
    listing,
    location,
    make_zip,
    raw_record,
    read_all,
    write,
    zip_cmd,
)

SECOND = 1_000_000_000


def text(size: int, seed: int = 0) -> bytes:
    """Compressible but not trivial data (a random walk through a vocabulary)."""
    rng = random.Random(seed)
    words = [hashlib.sha256(f"w{i}".encode()).hexdigest()[:2 + i % 7] for i in range(2000)]
    out = bytearray()
    while len(out) < size:
        out += " ".join(rng.choices(words, k=1000)).encode() + b"\n"
    return bytes(out[:size])


def deflate6(data: bytes) -> bytes:
    """Raw deflate at level 6, what filesync would write (3.10's compress has no wbits)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A fresh archive created by ``prepare`` (as the CLI does)."""
    path = tmp_path / "b.zip"
    loc = location(path)
    assert loc.check().ok
    assert loc.prepare().ok
    return path


# ----- creating and basic use ---------------------------------------------------------------
def test_missing_archive_is_created_valid_when_its_folder_exists(tmp_path):
    path = tmp_path / "new.zip"
    loc = location(path)
    assert loc.check().ok
    assert not path.exists(), "check() must change nothing"
    assert loc.prepare().ok
    assert_valid(path)
    assert listing(loc) == {}


def test_missing_folder_is_refused(tmp_path):
    loc = location(tmp_path / "nowhere" / "b.zip")
    checked = loc.check()
    assert not checked.ok and checked.kind is ErrorKind.NOT_FOUND
    assert "nowhere" in checked.message
    assert not loc.prepare().ok
    assert not (tmp_path / "nowhere").exists()


def test_write_read_scan_round_trip(archive):
    loc = location(archive)
    contents = {
        "empty.txt": b"",
        "small.txt": b"hello\n",
        "dir/sub/text.txt": text(300_000),
        "dir/noise.bin": os.urandom(200_000),
        "ünïcödé/naïve.txt": "grüße".encode(),
    }
    with loc.batch() as batch:
        assert batch.begun.ok
        returned = {path: write(loc, path, data) for path, data in contents.items()}
    assert batch.ended is not None and batch.ended.ok
    assert_valid(archive)
    found = listing(loc)
    for path, data in contents.items():
        assert read_all(loc, path) == data
        assert found[path] == returned[path] == Entry(path, False, len(data),
                                                      WHEN_NS // SECOND * SECOND)
    assert found["dir"] == Entry("dir", True) and found["dir/sub"] == Entry("dir/sub", True)
    assert found["ünïcödé"].is_dir
    with zipfile.ZipFile(archive) as other:  # another reader agrees on names and content
        for path, data in contents.items():
            assert other.read(path) == data
        infos = {info.filename: info for info in other.infolist()}
    assert infos["dir/noise.bin"].compress_type == zipfile.ZIP_STORED  # incompressible
    assert infos["dir/sub/text.txt"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["ünïcödé/naïve.txt"].flag_bits & 0x800  # UTF-8 flag for non-ASCII names


def test_entry_of_write_equals_the_next_scan_even_on_a_fresh_location(archive):
    written = write(location(archive), "a.txt", b"abc", WHEN_NS + 999_999_999)
    assert listing(location(archive))["a.txt"] == written
    assert written.mtime_ns == (WHEN_NS + 999_999_999) // SECOND * SECOND


def test_stat_during_a_batch_reports_the_staged_state(archive):
    loc = location(archive)
    write(loc, "old.txt", b"old")
    before = archive.read_bytes()
    with loc.batch() as batch:
        assert batch.begun.ok
        write(loc, "new.txt", b"new")
        assert loc.delete("old.txt").ok
        assert loc.stat("new.txt").value == Entry("new.txt", False, 3, WHEN_NS // SECOND * SECOND)
        assert loc.stat("old.txt").value is None
        assert archive.read_bytes() == before, "nothing lands before the batch ends"
        assert location(archive).stat("old.txt").value is not None  # others see the old archive
    assert batch.ended is not None and batch.ended.ok
    assert set(listing(location(archive))) == {"new.txt"}


def test_one_batch_is_one_rewrite(archive):
    loc = location(archive)
    inode = archive.stat().st_ino
    with loc.batch() as batch:
        assert batch.begun.ok
        for i in range(20):
            write(loc, f"f{i}.txt", b"x" * i)
        assert archive.stat().st_ino == inode
    assert batch.ended is not None and batch.ended.ok
    assert archive.stat().st_ino != inode
    assert len(listing(location(archive))) == 20


def test_outside_a_batch_every_change_is_its_own_rewrite(archive):
    loc = location(archive)
    states = [archive.read_bytes()]
    write(loc, "a.txt", b"a")
    states.append(archive.read_bytes())
    assert loc.mkdir("d").ok
    states.append(archive.read_bytes())
    assert loc.rename("a.txt", "d/a.txt").ok
    states.append(archive.read_bytes())
    assert listing(location(archive))["d/a.txt"].size == 1
    assert loc.delete("d/a.txt").ok
    states.append(archive.read_bytes())
    assert len(set(states)) == 5, "each change lands at once"
    assert set(listing(location(archive))) == {"d"}
    assert_valid(archive)


def test_concurrent_writes_in_one_batch(archive):
    loc = location(archive)
    with loc.batch() as batch:
        assert batch.begun.ok
        errors: list[str] = []

        def worker(n: int) -> None:
            for i in range(25):
                result = loc.write(f"t{n}/f{i}.txt", io.BytesIO(text(5000 + i, n)), WHEN_NS)
                if not result.ok:
                    errors.append(result.message)
                if not loc.stat(f"t{n}/f{i}.txt").ok:
                    errors.append("stat failed")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
    assert batch.ended is not None and batch.ended.ok
    assert_valid(archive)
    fresh = location(archive)
    for n in range(6):
        for i in range(25):
            assert read_all(fresh, f"t{n}/f{i}.txt") == text(5000 + i, n)
    assert not list(archive.parent.glob(".filesync-*.tmp")), "staging files are removed"


def test_a_source_failing_mid_stream_drops_only_that_member(archive):
    loc = location(archive)
    write(loc, "keep.txt", b"keep")
    with loc.batch() as batch:
        assert batch.begun.ok
        write(loc, "first.txt", b"1" * 5000)
        failed = loc.write("broken.bin", Chunks(os.urandom(1 << 20), 10, fail_after=3), WHEN_NS)
        assert not failed.ok and failed.kind is ErrorKind.FAILED
        assert "changed" in failed.message  # the source's own reason is passed on
        write(loc, "last.txt", b"3" * 5000)
        assert loc.stat("broken.bin").value is None
    assert batch.ended is not None and batch.ended.ok
    assert set(listing(location(archive))) == {"keep.txt", "first.txt", "last.txt"}
    assert_valid(archive)


def test_interrupt_mid_stream_never_leaves_a_partial_member(archive):
    loc = location(archive)
    with loc.batch() as batch:
        assert batch.begun.ok

        class Interrupting(Chunks):
            def read(self, size: int = -1) -> bytes:
                if self.given == 2:
                    raise KeyboardInterrupt
                return super().read(size)

        with pytest.raises(KeyboardInterrupt):
            loc.write("big.bin", Interrupting(os.urandom(1 << 20), 5), WHEN_NS)
        write(loc, "ok.txt", b"ok")
    assert batch.ended is not None and batch.ended.ok
    assert set(listing(location(archive))) == {"ok.txt"}
    assert_valid(archive)


# ----- raw copies ---------------------------------------------------------------------------
def test_unchanged_members_are_copied_as_raw_bytes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"m{i}.txt").write_bytes(text(50_000, i))
    archive = tmp_path / "b.zip"
    # Level 1: a recompression (filesync deflates at level 6) would change the bytes.
    zip_cmd(src, "-1", str(archive), *(f"m{i}.txt" for i in range(5)))
    raw = {f"m{i}.txt": raw_record(archive, f"m{i}.txt") for i in range(5)}
    for i in range(5):  # so the test can tell a raw copy from a recompression
        assert raw[f"m{i}.txt"] != deflate6(text(50_000, i))
    loc = location(archive)
    with loc.batch() as batch:
        assert batch.begun.ok
        write(loc, "m2.txt", b"replaced")
        write(loc, "new.txt", text(10_000))
        assert loc.delete("m4.txt").ok
    assert batch.ended is not None and batch.ended.ok
    assert_valid(archive)
    for name in ("m0.txt", "m1.txt", "m3.txt"):
        assert raw_record(archive, name) == raw[name]
    with zipfile.ZipFile(archive) as other:
        assert other.read("m2.txt") == b"replaced"
        assert "m4.txt" not in other.namelist()
        assert [i.filename for i in other.infolist()][:4] == ["m0.txt", "m1.txt", "m2.txt",
                                                              "m3.txt"]


def test_rename_reuses_the_compressed_bytes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ä.txt").write_bytes(text(80_000))
    archive = tmp_path / "b.zip"
    zip_cmd(src, "-1", str(archive), "ä.txt")  # an unflagged UTF-8 name, as on Unix
    raw = raw_record(archive, "ä.txt")
    assert raw != deflate6(text(80_000))
    loc = location(archive)
    moved = loc.rename("ä.txt", ".filesync/versions/ä.txt~x")
    assert moved.ok, moved
    assert moved.value.size == 80_000
    assert_valid(archive)
    assert raw_record(archive, ".filesync/versions/ä.txt~x") == raw
    fresh = location(archive)
    assert fresh.stat("ä.txt").value is None
    assert fresh.stat(".filesync/versions/ä.txt~x").value == moved.value
    assert read_all(fresh, ".filesync/versions/ä.txt~x") == text(80_000)


def test_keep_old_as_moves_the_replaced_member_in_the_same_rewrite(archive):
    loc = location(archive)
    write(loc, "doc.txt", b"version 1")
    inode = archive.stat().st_ino
    write(loc, "doc.txt", b"version 2", keep_old_as=".filesync/versions/doc.txt~1")
    assert archive.stat().st_ino != inode
    fresh = location(archive)
    assert read_all(fresh, "doc.txt") == b"version 2"
    assert read_all(fresh, ".filesync/versions/doc.txt~1") == b"version 1"
    assert list(listing(fresh)) == ["doc.txt"]


# ----- folders ------------------------------------------------------------------------------
def test_folders_explicit_and_implied(tmp_path):
    archive = make_zip(tmp_path / "b.zip", [("a/b/c.txt", b"c"), ("empty/", b"")])
    loc = location(archive)
    found = listing(loc)
    assert {p for p, e in found.items() if e.is_dir} == {"a", "a/b", "empty"}
    assert loc.rmdir("a").ok is False  # not empty
    assert loc.rmdir("empty").ok
    assert "empty" not in listing(location(archive))
    made = loc.mkdir("x/y")
    assert made.ok and made.value == Entry("x/y", True)
    assert {"x", "x/y"} <= set(listing(location(archive)))
    assert_valid(archive)


def test_deleting_the_last_file_keeps_its_folder(tmp_path):
    archive = make_zip(tmp_path / "b.zip", [("a/b/c.txt", b"c")])
    loc = location(archive)
    assert loc.delete("a/b/c.txt").ok
    found = listing(location(archive))
    assert found == {"a": Entry("a", True), "a/b": Entry("a/b", True)}
    assert loc.rmdir("a/b").ok and loc.rmdir("a").ok
    assert listing(location(archive)) == {}
    assert_valid(archive)


def test_a_file_cannot_become_a_folder_or_go_below_one(archive):
    loc = location(archive)
    write(loc, "f", b"file")
    made = loc.mkdir("f")
    assert not made.ok and made.kind is ErrorKind.FAILED
    failed = loc.write("f/inside.txt", io.BytesIO(b"x"), WHEN_NS)
    assert not failed.ok and failed.kind is ErrorKind.FAILED
    assert "'f' is a file" in failed.message
    assert loc.delete("f/inside.txt").ok  # a missing file is fine


# ----- times --------------------------------------------------------------------------------
def test_utc_times_survive_time_zones(archive, monkeypatch):
    loc = location(archive)
    written = write(loc, "a.txt", b"a", WHEN_NS)
    dos_only = make_zip(archive.parent / "dos.zip", [("d.txt", b"d")])
    dos_before = listing(location(dos_only))["d.txt"].mtime_ns
    assert dos_before == int(time.mktime((2020, 5, 6, 7, 8, 10, 0, 0, -1))) * SECOND
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30, far from the machine's zone
    time.tzset()
    try:
        assert listing(location(archive))["a.txt"] == written
        dos_after = listing(location(dos_only))["d.txt"].mtime_ns
        # DOS times are local time by definition: they move with the zone.
        assert dos_after == int(time.mktime((2020, 5, 6, 7, 8, 10, 0, 0, -1))) * SECOND
    finally:
        monkeypatch.undo()
        time.tzset()


def test_times_out_of_range_round_trip_through_scan(archive):
    loc = location(archive)
    for name, when in (("old.txt", -5 * SECOND), ("far.txt", 2**33 * SECOND)):
        written = write(loc, name, b"x", when)
        assert listing(location(archive))[name] == written


# ----- large archives -----------------------------------------------------------------------
def test_zip64_more_than_65535_members(archive):
    loc = location(archive)
    with loc.batch() as batch:
        assert batch.begun.ok
        for i in range(66_000):
            write(loc, f"d{i % 40}/{i}", b"")
    assert batch.ended is not None and batch.ended.ok
    assert_valid(archive)
    with zipfile.ZipFile(archive) as other:
        assert len(other.infolist()) == 66_000 + 1  # the files and the .filesync/ folder
    fresh = location(archive)
    write(fresh, "d3/3", b"changed")  # a rewrite of a ZIP64 archive
    assert_valid(archive)
    assert read_all(location(archive), "d3/3") == b"changed"
    assert len(listing(location(archive))) == 66_000 + 40


def test_zip64_archive_made_by_another_tool(tmp_path):
    archive = make_zip(tmp_path / "b.zip", ((f"{i}", b"") for i in range(65_600)),
                       zipfile.ZIP_STORED)
    loc = location(archive)
    assert loc.check().ok
    assert len(listing(loc)) == 65_600
    assert loc.delete("7").ok
    assert_valid(archive)
    assert len(listing(location(archive))) == 65_599


def test_one_gib_streams_in_and_out_with_bounded_memory(archive):
    loc = location(archive)
    block = os.urandom(1 << 20)
    tracemalloc.start()
    try:
        written = loc.write("huge.bin", Chunks(block, 1024), WHEN_NS)
        _, peak_in = tracemalloc.get_traced_memory()
        assert written.ok and written.value.size == 1 << 30
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        opened = loc.open_read("huge.bin")
        assert opened.ok
        with opened.value as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        _, peak_out = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == hashlib.sha256(block * 1024).hexdigest()
    assert peak_in < 24 << 20 and peak_out < 24 << 20, (peak_in, peak_out)


def test_deflated_member_streams_with_bounded_memory(archive):
    loc = location(archive)
    block = text(1 << 20)
    tracemalloc.start()
    try:
        assert loc.write("big.txt", Chunks(block, 64), WHEN_NS).ok
        digest = hashlib.sha256()
        opened = loc.open_read("big.txt")
        assert opened.ok
        with opened.value as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == hashlib.sha256(block * 64).hexdigest()
    assert peak < 24 << 20
    assert archive.stat().st_size < (64 << 20) // 2


# ----- archives from other tools ------------------------------------------------------------
def test_info_zip_archive_with_data_descriptors(tmp_path):
    archive = tmp_path / "streamed.zip"
    content = text(100_000)
    # Writing to a pipe makes zip use data descriptors (and ZIP64 local fields).
    made = subprocess.run(f"{'/usr/bin/zip'} -q - - | cat > {archive}", shell=True,
                          input=content, check=True)
    assert made.returncode == 0
    loc = location(archive)
    assert loc.check().ok
    assert read_all(loc, "-") == content
    write(loc, "other.txt", b"x")
    assert_valid(archive)
    assert read_all(location(archive), "-") == content
    assert loc.rename("-", "renamed").ok
    assert_valid(archive)
    assert read_all(location(archive), "renamed") == content


@pytest.mark.parametrize("method", ["bzip2", "lzma", "stored"])
def test_other_compression_methods_are_read(tmp_path, method):
    content = text(70_000)
    archive = tmp_path / "b.zip"
    if method == "bzip2":
        src = tmp_path / "src"
        src.mkdir()
        (src / "m.txt").write_bytes(content)
        zip_cmd(src, "-Z", "bzip2", str(archive), "m.txt")
    else:
        make_zip(archive, [("m.txt", content)],
                 zipfile.ZIP_LZMA if method == "lzma" else zipfile.ZIP_STORED)
    loc = location(archive)
    assert read_all(loc, "m.txt") == content
    raw = raw_record(archive, "m.txt")
    write(loc, "x.txt", b"x")
    assert raw_record(archive, "m.txt") == raw
    assert_valid(archive, unzip=None if method == "lzma" else ())  # unzip 6.0 lacks LZMA


def test_archive_with_bytes_in_front(tmp_path):
    inner = make_zip(tmp_path / "inner.zip", [("a.txt", b"a")])
    archive = tmp_path / "sfx.zip"
    archive.write_bytes(b"#!/bin/sh\necho self-extracting stub\nexit 0\n" + inner.read_bytes())
    loc = location(archive)
    assert loc.check().ok
    assert read_all(loc, "a.txt") == b"a"
    write(loc, "b.txt", b"b")
    assert archive.read_bytes().startswith(b"#!/bin/sh\n")
    assert_valid(archive)
    assert read_all(location(archive), "a.txt") == b"a"


def test_archive_comment_is_kept(tmp_path):
    archive = make_zip(tmp_path / "b.zip", [("a.txt", b"a")])
    with zipfile.ZipFile(archive, "a") as other:
        other.comment = b"my backup"
    write(location(archive), "b.txt", b"b")
    with zipfile.ZipFile(archive) as other:
        assert other.comment == b"my backup"


def test_names_in_other_encodings(tmp_path):
    archive = tmp_path / "b.zip"
    # An IBM 437 name (0x84 is "ä") as old Windows tools wrote it, without the UTF-8 flag.
    make_zip(archive, [("placeholder.txt", b"x")])
    data = archive.read_bytes().replace(b"placeholder.txt", b"pl\x84ceholder.txt")
    archive.write_bytes(data)
    assert list(listing(location(archive))) == ["pläceholder.txt"]
    failed = location(archive).write("bad-\udcff.txt", io.BytesIO(b"x"), WHEN_NS)
    assert not failed.ok and failed.kind is ErrorKind.INVALID
    assert "Unicode" in failed.message


# ----- bad input ----------------------------------------------------------------------------
def _corruptions(tmp_path: Path) -> dict[str, bytes]:
    good = make_zip(tmp_path / "good.zip", [("a.txt", text(5000)), ("b.txt", b"b")])
    data = good.read_bytes()
    cd = data.rindex(b"PK\x01\x02")
    return {
        "text": b"just some notes, not an archive\n",
        "empty file": b"",
        "truncated": data[:len(data) // 2],
        "cut end": data[:-5],
        "central directory": data[:cd] + b"XX" + data[cd + 2:],
        "local header": b"PK\x03\x05" + data[4:],
        "overlap": _overlapping(data),
    }


def _overlapping(data: bytes) -> bytes:
    """Point the second member's directory record at the first member's header."""
    last_cd = data.rindex(b"PK\x01\x02")
    return data[:last_cd + 42] + b"\x00\x00\x00\x00" + data[last_cd + 46:]


def test_bad_archives_are_refused_and_untouched(tmp_path):
    for label, content in _corruptions(tmp_path).items():
        path = tmp_path / f"bad-{label.replace(' ', '-')}.zip"
        path.write_bytes(content)
        loc = location(path)
        checked = loc.check()
        assert not checked.ok, label
        assert str(path) in checked.message, (label, checked.message)
        # A damaged archive is bad input (the command line exits 2 for it at start).
        for result in (checked, loc.prepare(), loc.scan(lambda _p: False),
                       loc.write("x.txt", io.BytesIO(b"x"), WHEN_NS), loc.delete("a.txt"),
                       loc.stat("a.txt"), loc.open_read("a.txt"), loc.probe()):
            assert not result.ok and result.kind is ErrorKind.INVALID, (label, result)
        assert path.read_bytes() == content, label
    assert not list(tmp_path.glob(".filesync-*.tmp"))


def test_a_folder_at_the_archive_path_is_refused(tmp_path):
    (tmp_path / "b.zip").mkdir()
    checked = location(tmp_path / "b.zip").check()
    assert not checked.ok and checked.kind is ErrorKind.INVALID
    assert "is a folder" in checked.message


def test_unsafe_names_are_skipped_and_kept(tmp_path):
    names = ["../evil.txt", "/etc/abs.txt", "dir\\back.txt", "C:/drive.txt", "a/../b.txt",
             "good.txt"]
    archive = make_zip(tmp_path / "b.zip", [(n, n.encode()) for n in names])
    loc = location(archive)
    from filesync.excludes import Excludes

    listed = loc.list(Excludes())
    assert listed.ok
    assert set(listed.value.entries) == {"good.txt"}
    assert sum("unsafe name" in w for w in listed.value.warnings) == 5
    write(loc, "new.txt", b"n")
    with zipfile.ZipFile(archive) as other:
        assert set(names) <= set(other.namelist())
    assert not loc.write("../out.txt", io.BytesIO(b"x"), WHEN_NS).ok
    assert not (tmp_path.parent / "out.txt").exists()


def test_encrypted_and_unsupported_members_are_blind_and_survive(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret.txt").write_bytes(b"top secret")
    (src / "plain.txt").write_bytes(b"plain")
    archive = tmp_path / "b.zip"
    zip_cmd(src, "-P", "password", str(archive), "secret.txt")
    zip_cmd(src, str(archive), "plain.txt")
    # A member compressed with a method the standard library lacks (93 is Zstandard).
    odd = make_zip(tmp_path / "odd.zip", [("zstd.bin", b"z" * 100)], zipfile.ZIP_STORED)
    data = bytearray(odd.read_bytes())
    data[8:10] = (93).to_bytes(2, "little")
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 10:cd + 12] = (93).to_bytes(2, "little")
    odd.write_bytes(data)
    for path, blind in ((archive, "secret.txt"), (odd, "zstd.bin")):
        loc = location(path)
        scanned = loc.scan(lambda _p: False)
        assert scanned.ok
        assert blind in scanned.value.blind and blind not in scanned.value.entries
        assert blind in scanned.value.skipped
        assert not loc.stat(blind).ok
        assert not loc.open_read(blind).ok
        assert not loc.delete(blind).ok
        assert not loc.write(blind, io.BytesIO(b"x"), WHEN_NS).ok
        raw = raw_record(path, blind)
        write(loc, "other.txt", b"o")
        assert raw_record(path, blind) == raw, "a rewrite must keep it byte for byte"
    assert_valid(archive, python=False, unzip=("-P", "password"))
    assert_valid(odd, python=False, unzip=None)
    with zipfile.ZipFile(odd) as other:
        assert other.read("other.txt") == b"o"
    listed = subprocess.run([UNZIP, "-P", "password", "-p", str(archive), "secret.txt"],
                            capture_output=True, check=True)
    assert listed.stdout == b"top secret"


def test_duplicate_names_last_wins_with_a_warning(tmp_path):
    archive = tmp_path / "b.zip"
    with pytest.warns(UserWarning):
        make_zip(archive, [("dup.txt", b"first"), ("dup.txt", b"second")])
    loc = location(archive)
    scanned = loc.scan(lambda _p: False)
    assert scanned.ok
    assert scanned.value.entries["dup.txt"].size == len(b"second")
    assert any("more than once" in w for w in scanned.value.warnings)
    assert read_all(loc, "dup.txt") == b"second"


def test_damaged_member_data_fails_the_read_not_silently(tmp_path):
    archive = make_zip(tmp_path / "b.zip", [("a.txt", b"a" * 1000)], zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    data[data.index(b"aaaa") + 10] = ord("b")
    archive.write_bytes(data)
    opened = location(archive).open_read("a.txt")
    assert opened.ok
    with pytest.raises(OSError, match="checksum"), opened.value as stream:
        stream.read()


# ----- other programs -----------------------------------------------------------------------
def test_scan_reuses_the_parsed_directory_while_the_archive_is_unchanged(archive, monkeypatch):
    loc = location(archive)
    write(loc, "a.txt", b"a")
    parses = []
    real = zf.read_directory
    monkeypatch.setattr(zf, "read_directory",
                        lambda *a, **k: parses.append(1) or real(*a, **k))
    for _ in range(5):
        assert loc.scan(lambda _p: False).ok
    assert parses == []
    src = archive.parent / "x"
    src.mkdir()
    (src / "z.txt").write_text("z")
    zip_cmd(src, "-u", str(archive), "z.txt")
    assert "z.txt" in loc.scan(lambda _p: False).value.entries
    assert len(parses) == 1


def test_change_by_another_program_during_a_batch_is_kept(archive):
    loc = location(archive)
    write(loc, "mine.txt", b"v1")
    write(loc, "theirs.txt", b"v1")
    with loc.batch() as batch:
        assert batch.begun.ok
        write(loc, "mine.txt", b"v2")
        write(loc, "theirs.txt", b"filesync")
        src = archive.parent / "x"
        src.mkdir()
        (src / "theirs.txt").write_text("other program")
        (src / "added.txt").write_text("added")
        zip_cmd(src, str(archive), "theirs.txt", "added.txt")
    assert batch.ended is not None and batch.ended.ok
    fresh = location(archive)
    assert read_all(fresh, "mine.txt") == b"v2"
    assert read_all(fresh, "theirs.txt") == b"other program"
    assert read_all(fresh, "added.txt") == b"added"
    assert_valid(archive)


def test_a_stream_opened_before_a_rewrite_reads_the_old_content(archive):
    loc = location(archive)
    write(loc, "a.txt", text(3 << 20))
    opened = loc.open_read("a.txt")
    assert opened.ok
    write(loc, "a.txt", b"new")
    with opened.value as stream:
        assert stream.read() == text(3 << 20)


def test_stale_temporary_files_are_listed_unless_in_use(archive):
    stale = archive.parent / ".filesync-00000000-0123456789ab.tmp"
    stale.write_bytes(b"left by a killed run")
    loc = location(archive)
    assert loc.scan(lambda _p: False).value.temps == [stale.name]
    import fcntl

    with open(stale, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert loc.scan(lambda _p: False).value.temps == []
        assert not loc.delete(stale.name).ok
    assert loc.delete(stale.name).ok
    assert not stale.exists()


def test_marker_and_probe(archive):
    loc = location(archive)
    assert loc.probe().ok
    write(loc, MARKER, b"id\n")
    loc.expect_marker("id")
    assert loc.probe().ok
    assert loc.delete(MARKER).ok
    assert not loc.probe().ok
    archive.unlink()
    assert not location(archive).probe().ok


def test_a_new_archive_that_does_not_read_back_is_never_renamed_in(archive, monkeypatch):
    loc = location(archive)
    write(loc, "a.txt", b"a")
    before = archive.read_bytes()
    real = zf.end_records
    # Simulate a writer fault: the end record claims one member fewer than written.
    monkeypatch.setattr(zf, "end_records",
                        lambda count, *rest: real(count - 1, *rest))
    failed = loc.write("b.txt", io.BytesIO(b"b"), WHEN_NS)
    assert not failed.ok and failed.kind is ErrorKind.FAILED
    assert "did not read back" in failed.message
    assert str(archive) in failed.message
    assert archive.read_bytes() == before
    assert not list(archive.parent.glob(".filesync-*.tmp"))
