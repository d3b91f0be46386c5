"""MemoryLocation's own promises beyond the contract: fault injection and concurrency."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from filesync.engine import Engine, Options
from filesync.locations.folder import FolderLocation
from filesync.locations.memory import DEFAULT_MODE, MemoryLocation
from filesync.locations.spec import FolderSpec
from filesync.result import ErrorKind
from filesync.state import StateStore

from .helpers import T1, T2, Generated, batched, kind_of, listed, read, scanned, write, written


def test_identity_and_defaults():
    location = MemoryLocation("photos")
    assert location.key == location.display == "memory:photos"
    assert MemoryLocation().key == "memory:memory"
    assert location.kind == "memory" and location.local_path() is None
    entry = written(location, "new.txt", b"x")
    assert entry.mode == DEFAULT_MODE
    assert written(location, "new.txt", b"y", T2).mode == DEFAULT_MODE


def test_an_injected_full_disk_fails_the_next_write_mid_stream():
    location = MemoryLocation()
    written(location, "f.bin", b"old content", T1)
    location.fail_next_write_after(3 << 20)
    source = Generated(8 << 20)
    failed = write(location, "f.bin", source, T2)
    assert kind_of(failed) is ErrorKind.NO_SPACE, failed
    assert 3 << 20 < source.given < 8 << 20  # it failed in the middle, not before
    assert read(location, "f.bin") == b"old content"
    assert sorted(scanned(location).entries) == ["f.bin"]
    assert write(location, "f.bin", Generated(8 << 20), T2).ok  # one write only


def test_switched_off_everything_is_unavailable_and_back_on_nothing_was_lost():
    location = MemoryLocation()
    written(location, "keep.txt", b"kept")
    location.available = False
    for result in (location.check(), location.prepare(), location.probe(),
                   location.scan(lambda _path: False), location.stat("keep.txt"),
                   location.open_read("keep.txt"), write(location, "x", b"x"),
                   location.rename("keep.txt", "y"), location.delete("keep.txt"),
                   location.mkdir("d"), location.rmdir("d")):
        assert kind_of(result) is ErrorKind.UNAVAILABLE, result
    location.available = True
    assert sorted(listed(location).entries) == ["keep.txt"]


def test_read_only_refuses_changes_but_reads():
    location = MemoryLocation()
    written(location, "a.txt", b"a")
    location.read_only = True
    for result in (write(location, "b.txt", b"b"), location.rename("a.txt", "c.txt"),
                   location.delete("a.txt"), location.mkdir("d"), location.rmdir("d")):
        assert kind_of(result) is ErrorKind.REFUSED, result
    assert read(location, "a.txt") == b"a"


def test_an_open_stream_keeps_the_content_it_started_with():
    location = MemoryLocation()
    written(location, "f.txt", b"first version")
    opened = location.open_read("f.txt")
    assert opened.ok
    written(location, "f.txt", b"second", T2)
    with opened.value as stream:
        assert stream.read(5) == b"first"
        assert stream.read() == b" version"
        assert stream.read(10) == b""
    assert read(location, "f.txt") == b"second"


def test_reads_across_pieces_return_exactly_what_was_asked():
    location = MemoryLocation()
    pieces = [b"a" * 1000, b"b" * 1000, b"c" * 1000]

    class Pieces(io.RawIOBase):
        def read(self, size: int = -1, /) -> bytes:
            return pieces.pop(0) if pieces else b""

    assert write(location, "p", Pieces(), T1).ok
    opened = location.open_read("p").unwrap()
    assert opened.read(1500) == b"a" * 1000 + b"b" * 500
    buffer = bytearray(1000)
    assert opened.readinto(buffer) == 1000 and bytes(buffer) == b"b" * 500 + b"c" * 500
    assert opened.read() == b"c" * 500


def test_writers_on_many_threads_all_land():
    location = MemoryLocation()

    def writer(number: int) -> None:
        for step in range(20):
            assert location.write(f"t{number}/f{step}", io.BytesIO(b"%d" % step), T1).ok

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = [path for path, entry in listed(location).entries.items() if not entry.is_dir]
    assert len(files) == 8 * 20


def test_planted_temporary_files_are_temps_and_stay_removable():
    location = MemoryLocation()
    temp = "d/.filesync-0123abcd-0123456789ab.tmp"
    location.plant(temp, b"left over")
    listing = scanned(location)
    assert listing.temps == [temp] and sorted(listing.entries) == ["d"]
    assert location.delete(temp).ok
    assert scanned(location).temps == []


def test_the_engine_syncs_a_memory_location_with_a_folder(tmp_path: Path):
    """A library user's view: a MemoryLocation takes part in rounds like any backend."""
    memory = MemoryLocation("engine")
    folder = FolderLocation(FolderSpec(tmp_path / "folder"))
    assert folder.prepare().ok
    written(memory, "from memory/a.txt", b"made in memory", T1)
    (tmp_path / "folder" / "b.txt").write_bytes(b"made on disk")
    store, _ = StateStore.open(tmp_path / "state.sqlite", [memory.key, folder.key]).unwrap()
    try:
        engine = Engine([memory, folder], store, Options(), threading.Event())
        engine.start()
        assert engine.run_round().identical
        assert (tmp_path / "folder" / "from memory" / "a.txt").read_bytes() == b"made in memory"
        assert read(memory, "b.txt") == b"made on disk"
        assert memory.read_marker().unwrap() is not None
        assert batched(memory, lambda: memory.delete("b.txt")).ok
        assert engine.run_round().identical
        assert not (tmp_path / "folder" / "b.txt").exists()
        assert list((tmp_path / "folder" / ".filesync" / "versions").glob("b.txt~*"))
        memory.available = False  # unavailable is not empty: nothing is deleted
        report = engine.run_round()
        assert not report.identical and report.listings[memory.key] is None
        assert (tmp_path / "folder" / "from memory" / "a.txt").exists()
    finally:
        store.close()
