"""Contract: listings, single look-ups, and the names a location takes or refuses."""

from __future__ import annotations

from filesync.locations import Entry
from filesync.model import MARKER, RESERVED_DIR, TEMP_NAME, is_reserved
from filesync.result import ErrorKind

from .conftest import Backend
from .helpers import (
    T1,
    batched,
    first_failure,
    kind_of,
    listed,
    names,
    read,
    same_time,
    scanned,
    write,
    written,
)

#: A temporary file's name as a crashed run of another sync set would leave it.
STRAY_TEMP = ".filesync-0123abcd-0123456789ab.tmp"


def test_a_new_location_lists_nothing(backend: Backend):
    listing = listed(backend.location)
    assert listing.entries == {}
    assert not listing.blind and not listing.skipped and not listing.temps


def test_listing_holds_files_nested_folders_and_empty_folders(backend: Backend):
    location = backend.location
    written(location, "top.txt", b"top")
    written(location, "a/b/c/deep.txt", b"deep file")
    assert batched(location, lambda: location.mkdir("empty")).ok
    assert batched(location, lambda: location.mkdir("a/also empty")).ok
    entries = listed(location).entries
    assert sorted(entries) == ["a", "a/also empty", "a/b", "a/b/c", "a/b/c/deep.txt",
                               "empty", "top.txt"]
    assert {path for path, entry in entries.items() if entry.is_dir} == {
        "a", "a/also empty", "a/b", "a/b/c", "empty"}
    assert entries["a/b/c/deep.txt"].size == 9 and entries["top.txt"].size == 3
    assert same_time(location, entries["top.txt"].mtime_ns, T1)
    everything = scanned(location).entries
    assert {path: everything[path] for path in entries} == entries


def test_skipped_folders_are_left_out_with_everything_below(backend: Backend):
    location = backend.location
    written(location, "keep/file", b"1")
    written(location, "skip/inner/file", b"2")
    result = location.scan(lambda path: path == "skip")
    assert result.ok, result
    assert sorted(path for path in result.value.entries if not is_reserved(path)) == [
        "keep", "keep/file"]


def test_reserved_folder_and_temporary_files_are_not_listed(backend: Backend):
    location = backend.location
    written(location, "real.txt", b"mine")
    assert location.write_marker().ok
    written(location, f"{RESERVED_DIR}/versions/real.txt~20240101T000000.000000Z", b"old")
    backend.plant_temp(STRAY_TEMP)
    listing = listed(location)
    assert sorted(listing.entries) == ["real.txt"]
    assert STRAY_TEMP in listing.temps
    everything = scanned(location)
    assert STRAY_TEMP in everything.temps
    assert not any(TEMP_NAME.match(path.rpartition("/")[2]) for path in everything.entries)
    assert MARKER in everything.entries and RESERVED_DIR in everything.entries
    reserved = location.list_reserved()
    assert reserved.ok, reserved
    assert "real.txt" not in reserved.value.entries and MARKER in reserved.value.entries


def test_a_write_in_flight_never_shows_under_a_real_name(backend: Backend):
    location = backend.location
    seen: list[set[str]] = []

    class Watched:
        """A source that lists the location while the write reads it."""

        def __init__(self) -> None:
            self.pieces = [b"x" * 1000, b"y" * 1000]

        def read(self, size: int = -1, /) -> bytes:
            listing = location.scan(lambda _path: False)
            assert listing.ok, listing
            seen.append(set(listing.value.entries))
            return self.pieces.pop(0) if self.pieces else b""

    entry = write(location, "dir/new.txt", Watched())
    assert entry.ok, entry
    assert seen and all("dir/new.txt" not in names for names in seen)
    assert not any(TEMP_NAME.match(name.rpartition("/")[2]) for names in seen for name in names)
    assert read(location, "dir/new.txt") == b"x" * 1000 + b"y" * 1000


def test_stat_of_file_folder_and_missing_paths(backend: Backend):
    location = backend.location
    entry = written(location, "f/file.bin", b"12345")
    found = location.stat("f/file.bin")
    assert found.ok and found.value == entry
    assert found.value.size == 5 and same_time(location, found.value.mtime_ns, T1)
    folder = location.stat("f")
    assert folder.ok and folder.value is not None and folder.value.is_dir
    for missing in ("nothing", "f/nothing", "nothing/below/it"):
        result = location.stat(missing)
        assert result.ok and result.value is None, (missing, result)
    many = location.stat_many(["f/file.bin", "f", "nothing", "f/nothing"])
    assert {path: result.unwrap() for path, result in many.items()} == {
        "f/file.bin": entry, "f": Entry("f", True), "nothing": None, "f/nothing": None}


def test_unicode_and_space_names_round_trip(backend: Backend):
    location = backend.location
    names = ["with space/é ü ñ 日本語.txt", " leading space.txt", "Ünïcödé/ß-ø-æ"]
    for number, path in enumerate(names):
        written(location, path, f"content {number}".encode())
    entries = scanned(location).entries
    for number, path in enumerate(names):
        assert path in entries, (path, sorted(entries))
        assert read(location, path) == f"content {number}".encode()
    assert "with space" in entries and entries["with space"].is_dir


def test_unsafe_names_are_refused_before_anything_is_written(backend: Backend):
    location = backend.location
    unsafe = ["../x", "a/../../x", "/absolute", "a//b", "./x", "a/./b", "nul\x00byte",
              f"dir/{STRAY_TEMP}"]
    if not location.capabilities.posix_names:
        unsafe += ["back\\slash", "C:drive"]
    for path in unsafe:
        assert location.name_problem(path), path
        result = write(location, path, b"never")
        assert kind_of(result) is ErrorKind.INVALID, (path, result)
    written(location, "safe.txt", b"safe")
    for name, result in [
            ("mkdir", first_failure(location, lambda: location.mkdir("../outside"))),
            ("rename", first_failure(location, lambda: location.rename("safe.txt", "../x"))),
            ("keep_old_as", write(location, "safe.txt", b"new", keep_old_as="../kept"))]:
        assert kind_of(result) is ErrorKind.INVALID, (name, result)
    assert names(location) == ["safe.txt"]
    assert read(location, "safe.txt") == b"safe"


def test_posix_names_take_backslashes_and_drive_letters(backend: Backend):
    location = backend.location
    names = ["back\\slash", "c:colon"]
    if not location.capabilities.posix_names:
        assert all(location.name_problem(path) for path in names)
        return
    for path in names:
        assert location.name_problem(path) is None
        written(location, path, path.encode())
        assert read(location, path) == path.encode()
    assert sorted(listed(location).entries) == sorted(names)
