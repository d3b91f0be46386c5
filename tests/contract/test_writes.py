"""Contract: streaming writes and reads, atomic replacement, re-checks, kept versions,
times and permissions."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from filesync.locations.base import CHUNK_SIZE
from filesync.model import TEMP_NAME
from filesync.result import ErrorKind

from .conftest import Backend
from .helpers import (
    T1,
    T2,
    Generated,
    digest_of,
    kind_of,
    names,
    read,
    same_time,
    scanned,
    write,
    written,
)

#: The large file: far more than any buffer a backend may hold.
LARGE = 64 << 20
#: Memory a streaming write or read may use on top of what stays held afterwards, whatever
#: the file's size: pieces in flight (1 MiB each) and bounded buffers (an FTP upload keeps
#: the last 16 MiB it sent, so a dropped connection can resume), never the file.
TRANSIENT_BOUND = 24 << 20


def test_large_file_streams_through_bounded_memory(backend: Backend):
    """64 MiB made on the fly are written and read back with little memory in use.

    tracemalloc sees every Python allocation of this process, so the FTP server thread of
    pyftpdlib counts too (pure-ftpd runs in its own processes). What is asserted:

    - write: the peak above the memory in use before it is under ``TRANSIENT_BOUND`` plus
      what stays held after the write, and what stays held is at most one copy of the file
      (plus 1 MiB). A backend that keeps files in this process (memory) holds its copy;
      every other one holds next to nothing.
    - read: the peak above the memory in use before it is under ``TRANSIENT_BOUND``.
    """
    location = backend.location
    source = Generated(LARGE)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        entry = write(location, "big/large.bin", source, T1)
        after, peak = tracemalloc.get_traced_memory()
        held = after - before
        assert entry.ok, entry
        assert held <= LARGE + (1 << 20), f"{held / 2**20:.1f} MiB held after the write"
        assert peak - before < TRANSIENT_BOUND + max(held, 0), (
            f"write peak {(peak - before) / 2**20:.1f} MiB above the start, "
            f"{held / 2**20:.1f} MiB held after it")
        tracemalloc.reset_peak()
        start_read, _ = tracemalloc.get_traced_memory()
        digest = digest_of(location, "big/large.bin")
        _, read_peak = tracemalloc.get_traced_memory()
        assert read_peak - start_read < TRANSIENT_BOUND, (
            f"read peak {(read_peak - start_read) / 2**20:.1f} MiB")
    finally:
        tracemalloc.stop()
    assert entry.value.size == LARGE
    assert digest == source.digest.hexdigest()
    found = location.stat("big/large.bin")
    assert found.ok and found.value is not None and found.value.size == LARGE


def test_a_failing_source_leaves_the_old_file_and_no_temporary_name(backend: Backend):
    location = backend.location
    old = written(location, "doc.txt", b"the old content", T1)
    failed = write(location, "doc.txt", Generated(4 * CHUNK_SIZE, fail_after=2 * CHUNK_SIZE),
                   T2)
    assert not failed.ok
    assert read(location, "doc.txt") == b"the old content"
    assert location.stat("doc.txt").unwrap() == old
    listing = scanned(location)
    assert names(location) == ["doc.txt"]
    assert not any(TEMP_NAME.match(path.rpartition("/")[2]) for path in listing.entries)
    new = write(location, "new.txt", Generated(3 * CHUNK_SIZE, fail_after=CHUNK_SIZE), T2)
    assert not new.ok
    assert location.stat("new.txt").unwrap() is None
    assert names(location) == ["doc.txt"]


def test_write_replaces_a_file_and_creates_parents(backend: Backend):
    location = backend.location
    first = written(location, "x/y/z.txt", b"one", T1)
    second = written(location, "x/y/z.txt", b"second version", T2)
    assert second.size == 14 and first.size == 3
    assert read(location, "x/y/z.txt") == b"second version"
    assert location.stat("x/y/z.txt").unwrap() == second
    assert scanned(location).entries["x/y/z.txt"] == second


def test_expect_none_means_the_path_must_still_be_absent(backend: Backend):
    location = backend.location
    created = write(location, "new.txt", b"mine", expect=None)
    assert created.ok, created
    refused = write(location, "new.txt", b"would clobber", T2, expect=None)
    assert kind_of(refused) is ErrorKind.CHANGED, refused
    assert read(location, "new.txt") == b"mine"
    assert names(location) == ["new.txt"]


def test_expect_refuses_a_target_changed_since_the_plan(backend: Backend):
    location = backend.location
    planned = written(location, "f.txt", b"as planned", T1)
    written(location, "f.txt", b"changed by the user", T2)
    refused = write(location, "f.txt", b"copy", T1 + 5 * 10**9, expect=planned)
    assert kind_of(refused) is ErrorKind.CHANGED, refused
    assert read(location, "f.txt") == b"changed by the user"
    gone = write(location, "absent.txt", b"copy", T1, expect=planned)
    assert kind_of(gone) is ErrorKind.CHANGED, gone
    assert location.stat("absent.txt").unwrap() is None
    current = location.stat("f.txt").unwrap()
    assert write(location, "f.txt", b"copy", T1, expect=current).ok
    assert read(location, "f.txt") == b"copy"


def test_keep_old_as_keeps_the_replaced_content(backend: Backend):
    location = backend.location
    kept_as = ".filesync/versions/notes.txt~20240101T000000.000000Z"
    old = written(location, "notes.txt", b"old notes", T1)
    new = write(location, "notes.txt", b"new notes!", T2, keep_old_as=kept_as)
    assert new.ok, new
    assert read(location, "notes.txt") == b"new notes!"
    assert read(location, kept_as) == b"old notes"
    kept = location.stat(kept_as).unwrap()
    assert kept is not None and kept.size == old.size
    assert same_time(location, kept.mtime_ns, T1)
    fresh = write(location, "fresh.txt", b"nothing to keep", T1,
                  keep_old_as=".filesync/versions/fresh.txt~20240101T000000.000000Z")
    assert fresh.ok, fresh
    assert location.stat(".filesync/versions/fresh.txt~20240101T000000.000000Z").unwrap() is None


@pytest.mark.parametrize("mtime_ns", [T1, 1_000_000_000_500_000_000, 2_145_830_400_999_999_999],
                         ids=["2023", "2001", "2037"])
def test_mtime_is_kept_within_the_declared_precision(backend: Backend, mtime_ns: int):
    location = backend.location
    entry = written(location, "timed.txt", b"tick", mtime_ns)
    assert same_time(location, entry.mtime_ns, mtime_ns), (entry.mtime_ns, mtime_ns)
    found = location.stat("timed.txt").unwrap()
    assert found is not None and same_time(location, found.mtime_ns, mtime_ns)
    listed_entry = scanned(location).entries["timed.txt"]
    assert same_time(location, listed_entry.mtime_ns, mtime_ns)
    tolerance = location.capabilities.mtime_tolerance_ns
    assert abs(listed_entry.mtime_ns - found.mtime_ns) <= tolerance
    assert abs(entry.mtime_ns - found.mtime_ns) <= tolerance
    if location.capabilities.mtime_precision_ns == 1:
        assert entry.mtime_ns == found.mtime_ns == listed_entry.mtime_ns == mtime_ns


def test_permissions_are_kept_where_declared(backend: Backend):
    location = backend.location
    if not location.capabilities.keeps_permissions:
        # A mode is accepted and ignored; the entries report it as unknown (0).
        entry = written(location, "script.sh", b"#!/bin/sh\n", T1, mode=0o750)
        assert entry.mode == 0 and scanned(location).entries["script.sh"].mode == 0
        return
    entry = written(location, "script.sh", b"#!/bin/sh\n", T1, mode=0o750)
    assert entry.mode == 0o750
    assert location.stat("script.sh").unwrap().mode == 0o750  # type: ignore[union-attr]
    assert scanned(location).entries["script.sh"].mode == 0o750
    again = written(location, "script.sh", b"#!/bin/sh\nexit 0\n", T2, mode=0o640)
    assert again.mode == 0o640
    assert scanned(location).entries["script.sh"].mode == 0o640
