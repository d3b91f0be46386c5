"""Contract: delete, mkdir, rmdir and rename."""

from __future__ import annotations

from filesync.result import ErrorKind

from .conftest import Backend
from .helpers import T1, T2, batched, first_failure, kind_of, listed, names, read, written


def test_delete_removes_a_file_and_a_missing_one_is_fine(backend: Backend):
    location = backend.location
    written(location, "d/gone.txt", b"bye")
    written(location, "d/stays.txt", b"hi")
    assert batched(location, lambda: location.delete("d/gone.txt")).ok
    assert location.stat("d/gone.txt").unwrap() is None
    assert names(location) == ["d", "d/stays.txt"]
    assert batched(location, lambda: location.delete("d/gone.txt")).ok
    assert batched(location, lambda: location.delete("no/such/folder/file")).ok


def test_mkdir_makes_parents_and_takes_an_existing_folder(backend: Backend):
    location = backend.location
    made = batched(location, lambda: location.mkdir("p/q/r"))
    assert made.ok and made.value.is_dir and made.value.path == "p/q/r"
    assert batched(location, lambda: location.mkdir("p/q/r")).ok
    assert batched(location, lambda: location.mkdir("p")).ok
    entries = listed(location).entries
    assert sorted(entries) == ["p", "p/q", "p/q/r"]
    assert all(entry.is_dir for entry in entries.values())


def test_rmdir_removes_empty_folders_only(backend: Backend):
    location = backend.location
    assert batched(location, lambda: location.mkdir("p/q/r")).ok
    written(location, "p/file.txt", b"content")
    assert not first_failure(location, lambda: location.rmdir("p")).ok
    assert not first_failure(location, lambda: location.rmdir("p/q")).ok
    assert names(location) == ["p", "p/file.txt", "p/q", "p/q/r"]
    assert batched(location, lambda: location.rmdir("p/q/r")).ok
    assert batched(location, lambda: location.rmdir("p/q")).ok
    assert names(location) == ["p", "p/file.txt"]
    assert read(location, "p/file.txt") == b"content"


def test_rmdir_of_a_missing_folder_is_not_found(backend: Backend):
    location = backend.location
    result = first_failure(location, lambda: location.rmdir("never/made"))
    assert kind_of(result) is ErrorKind.NOT_FOUND, result


def test_rename_moves_a_file_creating_parents(backend: Backend):
    location = backend.location
    entry = written(location, "old.txt", b"moving", T1)
    moved = batched(location, lambda: location.rename("old.txt", "new/place/name.txt"))
    assert moved.ok, moved
    assert moved.value.path == "new/place/name.txt" and moved.value.size == entry.size
    assert location.stat("old.txt").unwrap() is None
    assert read(location, "new/place/name.txt") == b"moving"
    assert names(location) == ["new", "new/place", "new/place/name.txt"]


def test_rename_replaces_an_existing_file(backend: Backend):
    location = backend.location
    written(location, "a.txt", b"winner", T2)
    written(location, "b.txt", b"replaced", T1)
    assert batched(location, lambda: location.rename("a.txt", "b.txt")).ok
    assert read(location, "b.txt") == b"winner"
    assert names(location) == ["b.txt"]


def test_rename_of_a_missing_file_is_not_found(backend: Backend):
    location = backend.location
    result = first_failure(location, lambda: location.rename("missing.txt", "x.txt"))
    assert kind_of(result) is ErrorKind.NOT_FOUND, result
    assert location.stat("x.txt").unwrap() is None
