"""Contract: ``claim_dir``, the atomic create-if-absent the hub lease is built on."""

from __future__ import annotations

import threading

from filesync.result import ErrorKind

from .conftest import Backend
from .helpers import listed, written


def _claims(backend: Backend) -> bool:
    """Whether the backend declares claims; one that does not must refuse them clearly."""
    if backend.location.capabilities.atomic_claim:
        return True
    refused = backend.location.claim_dir(".filesync/lease")
    assert not refused.ok and refused.kind is ErrorKind.INVALID
    assert "lease" in refused.message
    return False


def test_claim_creates_once_then_reports_the_folder_as_taken(backend: Backend):
    location = backend.location
    if not _claims(backend):
        return
    assert location.claim_dir(".filesync/claims/lease").unwrap() is True
    assert location.claim_dir(".filesync/claims/lease").unwrap() is False
    found = location.stat(".filesync/claims/lease").unwrap()
    assert found is not None and found.is_dir
    assert location.rmdir(".filesync/claims/lease").ok
    assert location.claim_dir(".filesync/claims/lease").unwrap() is True


def test_a_file_of_that_name_is_something_there(backend: Backend):
    location = backend.location
    if not _claims(backend):
        return
    written(location, "taken", b"a file")
    assert location.claim_dir("taken").unwrap() is False
    assert listed(location).entries["taken"].is_dir is False


def test_of_many_racing_claims_exactly_one_wins(backend: Backend):
    location = backend.location
    if not _claims(backend):
        return
    results: list[bool] = []
    failures: list[str] = []
    gate = threading.Barrier(6)

    def claim() -> None:
        gate.wait()
        outcome = location.claim_dir("race/lease")
        if outcome.ok:
            results.append(outcome.value)
        else:
            failures.append(outcome.message)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(results) == [False] * 5 + [True]


def test_a_claim_on_an_unreachable_location_is_an_error(backend: Backend):
    location = backend.location
    if not _claims(backend):
        return
    backend.go_away()
    outcome = location.claim_dir(".filesync/lease")
    assert not outcome.ok
