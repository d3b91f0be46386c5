"""Contract: errors of the right kind (missing, unavailable, refused) and markers."""

from __future__ import annotations

import io

from filesync.excludes import Excludes
from filesync.model import MARKER
from filesync.result import ErrorKind

from .conftest import Backend
from .helpers import T1, batched, first_failure, kind_of, listed, scanned, write, written


def test_reading_a_missing_file_is_not_found(backend: Backend):
    location = backend.location
    written(location, "there/file.txt", b"x")
    for missing in ("nothing.txt", "there/nothing.txt", "nowhere/file.txt"):
        opened = location.open_read(missing)
        assert kind_of(opened) is ErrorKind.NOT_FOUND, (missing, opened)
    assert kind_of(location.sha256("nothing.txt")) is ErrorKind.NOT_FOUND


def test_an_unreachable_location_is_unavailable_never_empty(backend: Backend):
    location = backend.location
    written(location, "file.txt", b"precious")
    backend.go_away()
    for name, result in [("probe", location.probe()),
                         ("scan", location.scan(lambda _path: False)),
                         ("list", location.list_reserved()),
                         ("open_read", location.open_read("file.txt")),
                         ("write", write(location, "other.txt", b"new"))]:
        assert kind_of(result) is ErrorKind.UNAVAILABLE, (name, result)
    looked = location.stat("file.txt")
    # A single look-up under a vanished root may see "nothing there" (probe guards it).
    assert kind_of(looked) is ErrorKind.UNAVAILABLE or looked.value is None, looked


def test_refused_changes_are_refused(backend: Backend):
    location = backend.location
    written(location, "file.txt", b"mine")
    assert batched(location, lambda: location.mkdir("folder")).ok
    backend.refuse_changes()
    for name, result in [
            ("write", write(location, "new.txt", b"refused")),
            ("replace", write(location, "file.txt", b"refused")),
            ("delete", first_failure(location, lambda: location.delete("file.txt"))),
            ("mkdir", first_failure(location, lambda: location.mkdir("other"))),
            ("rename", first_failure(location, lambda: location.rename("file.txt", "x.txt")))]:
        assert kind_of(result) is ErrorKind.REFUSED, (name, result)
    assert sorted(listed(location).entries) == ["file.txt", "folder"]


def test_markers_are_written_read_and_missed(backend: Backend):
    location = backend.location
    assert location.read_marker().unwrap() is None
    marker = location.write_marker()
    assert marker.ok, marker
    assert location.marker == marker.value
    assert location.read_marker().unwrap() == marker.value
    assert location.probe().ok
    assert listed(location).entries == {}
    location.expect_marker(marker.value)
    assert location.probe().ok
    assert batched(location, lambda: location.delete(MARKER)).ok
    probed = location.probe()
    assert kind_of(probed) is ErrorKind.UNAVAILABLE, probed
    assert kind_of(location.list_reserved()) is None  # the reserved folder itself is fine
    assert kind_of(location.list(Excludes())) is ErrorKind.UNAVAILABLE


def test_a_marker_written_elsewhere_is_read_back(backend: Backend):
    location = backend.location
    assert batched(location, lambda: location.write(MARKER, io.BytesIO(b"abc123\n"), T1)).ok
    assert location.read_marker().unwrap() == "abc123"
    assert MARKER in scanned(location).entries
