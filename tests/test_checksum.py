"""``--checksum``: equality decided by SHA-256, not by size and mtime (issue 12)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import tree, write

MTIME = 1_700_000_000


def flip_a_byte(path: Path) -> None:
    """Change one byte and put size and mtime back: only the content tells."""
    info = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def versions(root: Path) -> list[str]:
    kept = root / ".filesync" / "versions"
    return sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file())


def test_a_content_only_change_is_missed_without_checksum_and_synced_with_it(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "doc.txt", "the original text, long enough", mtime=MTIME)
    write(a / "same.txt", "unchanged", mtime=MTIME)
    b.mkdir()
    assert sync(str(a), str(b)) == 0
    flip_a_byte(b / "doc.txt")
    flipped = (b / "doc.txt").read_text()
    assert sync(str(a), str(b)) == 0
    assert (a / "doc.txt").read_text() != flipped  # the quick check cannot see it
    assert sync(str(a), str(b), "--checksum") == 0
    # Two-way: the changed content is the newer state of the file; the old one is kept.
    assert tree(a) == tree(b) and (a / "doc.txt").read_text() == flipped
    assert [name.startswith("doc") for name in versions(a)] == [True], versions(a)
    assert (a / "same.txt").stat().st_mtime_ns == MTIME * 10**9


def test_one_way_checksum_repairs_a_damaged_replica(tmp_path, sync):
    source, replica = tmp_path / "source", tmp_path / "replica"
    write(source / "photo.jpg", bytes(range(256)) * 64, mtime=MTIME)
    replica.mkdir()
    assert sync("--one-way", str(source), str(replica)) == 0
    flip_a_byte(replica / "photo.jpg")
    assert sync("--one-way", "--checksum", str(source), str(replica)) == 0
    assert (replica / "photo.jpg").read_bytes() == (source / "photo.jpg").read_bytes()
    assert versions(replica), "the damaged copy is kept as a version, not thrown away"


def test_checksum_on_a_first_run_compares_same_size_same_mtime_files(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "x.bin", b"AAAA", mtime=MTIME)
    write(b / "x.bin", b"AAAB", mtime=MTIME)
    assert sync(str(a), str(b)) == 0  # the quick check takes them as equal
    assert (a / "x.bin").read_bytes() != (b / "x.bin").read_bytes()
    assert sync(str(a), str(b), "--checksum") == 0
    assert (a / "x.bin").read_bytes() == (b / "x.bin").read_bytes()


def test_checksum_leaves_identical_files_alone(tmp_path, sync):
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(5):
        write(a / f"f{i}.txt", f"content {i}", mtime=MTIME)
    b.mkdir()
    assert sync(str(a), str(b)) == 0
    inodes = {p.name: p.stat().st_ino for p in b.iterdir() if p.is_file()}
    assert sync(str(a), str(b), "--checksum") == 0
    assert sync(str(a), str(b), "--checksum") == 0
    assert {p.name: p.stat().st_ino for p in b.iterdir() if p.is_file()} == inodes
    assert not versions(a) and not versions(b)
