"""The hub journal (``filesync.journal``): what it keeps, and whom it makes doubt."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filesync.journal import RETENTION, Journal, read_journal, write_journal
from filesync.locations.memory import MemoryLocation
from filesync.result import ErrorKind


def test_others_writes_since_last_seen_are_doubted_never_our_own():
    journal = Journal()
    journal.record("aaaa1111", {"a.txt": "1" * 64, "b.txt": None}, now=1000.0)
    seen = journal.seq
    journal.record("bbbb2222", {"a.txt": "2" * 64}, now=1001.0)
    journal.record("aaaa1111", {"c.txt": "3" * 64}, now=1002.0)
    assert journal.doubted("aaaa1111", seen) == {"a.txt": "2" * 64}
    assert journal.doubted("aaaa1111", journal.seq) == {}
    assert journal.doubted("bbbb2222", 0) == {"b.txt": None, "c.txt": "3" * 64}


def test_a_run_that_missed_pruned_entries_doubts_everything():
    journal = Journal()
    journal.record("aaaa1111", {"old.txt": None}, now=0.0)
    journal.record("bbbb2222", {"new.txt": None}, now=RETENTION + 10)
    assert "old.txt" not in journal.entries and journal.pruned_through == 1
    assert journal.doubted("cccc3333", 0) is None
    assert journal.doubted("cccc3333", 1) == {"new.txt": None}


names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).map(
    lambda text: text.replace("/", "_"))


@given(st.dictionaries(names, st.one_of(st.none(), st.just("f" * 64)), max_size=8))
def test_the_file_form_keeps_every_name(writes):
    journal = Journal()
    journal.record("aaaa1111", writes, now=5.0)
    journal.record("bbbb2222", {"tab\there\nnew line": None,
                                "bad-\udcff-bytes": "e" * 64}, now=6.0)
    again = Journal.decode(journal.encode())
    assert again == journal


def test_read_and_write_through_a_location():
    hub = MemoryLocation("hub")
    assert read_journal(hub).unwrap() == Journal()
    journal = Journal()
    journal.record("aaaa1111", {"x": None}, now=1.0)
    assert write_journal(hub, journal).ok
    assert read_journal(hub).unwrap() == journal


def test_a_damaged_journal_is_reported_as_such():
    hub = MemoryLocation("hub")
    hub.plant(".filesync/journal", b"\x00garbage")
    damaged = read_journal(hub)
    assert not damaged.ok and damaged.kind is ErrorKind.INVALID
    assert "damaged" in damaged.message
