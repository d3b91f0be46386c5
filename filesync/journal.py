"""The hub journal: which engine last wrote each file of a coarse-clock hub, and what.

An FTP server keeps whole seconds. When two machines write files of the same size to the
hub within one second, the listing shows the same size and time before and after the
second write, and the first machine would take the hub as unchanged. So every engine that
writes to such a hub (under its lease) also records, in ``.filesync/journal`` there, a
sequence number, its owner id and the SHA-256 of each file it wrote. Another engine reads
the journal at the start of its round and doubts its record of every file someone else
wrote since it last looked (unless the content is the one it already agreed on): the
planner then compares that file by content instead of by its clock.

Entries older than the retention are pruned; an engine that missed pruned entries (a
machine offline for longer than that) doubts every record of the hub once.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from filesync.locations.base import Location
from filesync.model import RESERVED_DIR
from filesync.result import Err, ErrorKind, Ok, Result

JOURNAL = RESERVED_DIR + "/journal"
_HEADER = "filesync-journal 1"
#: Keep entries this long (seconds); the state of an engine offline for longer is doubted.
RETENTION = 30 * 86400.0


@dataclass(frozen=True)
class Written:
    """One write to the hub: by whom, in which order, and what content."""

    seq: int
    when: float
    owner: str
    sha256: str | None


@dataclass
class Journal:
    """The journal of one hub: the latest write of each path, and the sequence so far."""

    seq: int = 0
    #: Every entry with a sequence number up to this one has been pruned.
    pruned_through: int = 0
    entries: dict[str, Written] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The journal file's content: a header line, then one tab-separated line a path."""
        lines = [f"{_HEADER}\t{self.seq}\t{self.pruned_through}"]
        for path, item in sorted(self.entries.items(), key=lambda pair: pair[1].seq):
            raw = path.encode("utf-8", "surrogateescape")
            lines.append(f"{item.seq}\t{item.when:.3f}\t{item.owner}\t{item.sha256 or '-'}\t"
                         f"{quote(raw, safe='/')}")
        return ("\n".join(lines) + "\n").encode("ascii")

    @staticmethod
    def decode(data: bytes) -> Journal | None:
        """The journal in ``data``, or None when it is not one."""
        try:
            text = data.decode("ascii")
            header, *rows = text.splitlines()
            name, seq, pruned = header.split("\t")
            if name != _HEADER:
                return None
            journal = Journal(int(seq), int(pruned))
            for row in rows:
                number, when, owner, sha, quoted = row.split("\t")
                path = unquote(quoted, "utf-8", "surrogateescape")
                journal.entries[path] = Written(int(number), float(when), owner,
                                                None if sha == "-" else sha)
        except (UnicodeDecodeError, ValueError):
            return None
        return journal

    def doubted(self, owner: str, seen: int) -> dict[str, str | None] | None:
        """Paths others wrote after sequence ``seen``, with their hashes.

        None: entries after ``seen`` were pruned, so every record of the hub is in doubt.
        """
        if seen < self.pruned_through:
            return None
        return {path: item.sha256 for path, item in self.entries.items()
                if item.seq > seen and item.owner != owner}

    def record(self, owner: str, writes: dict[str, str | None], now: float) -> None:
        """Add this engine's writes (path -> SHA-256) and prune entries past retention."""
        for path, sha in sorted(writes.items()):
            self.seq += 1
            self.entries[path] = Written(self.seq, now, owner, sha)
        for path, item in list(self.entries.items()):
            if now - item.when > RETENTION:
                del self.entries[path]
                self.pruned_through = max(self.pruned_through, item.seq)


def read_journal(location: Location) -> Result[Journal]:
    """The hub's journal; an empty one when there is none yet."""
    opened = location.open_read(JOURNAL)
    if not opened.ok:
        return Ok(Journal()) if opened.kind is ErrorKind.NOT_FOUND else opened
    try:
        with opened.value as stream:
            data = stream.read()
    except OSError as exc:
        return Err(f"cannot read {JOURNAL} in {location.display}: {exc}", ErrorKind.FAILED)
    journal = Journal.decode(data)
    if journal is None:
        return Err(f"{JOURNAL} in {location.display} is damaged; every file there is compared "
                   "by content this round, and the journal is written anew",
                   ErrorKind.INVALID)
    return Ok(journal)


def write_journal(location: Location, journal: Journal) -> Result[None]:
    """Replace the hub's journal (atomically, as every write)."""
    written = location.write(JOURNAL, io.BytesIO(journal.encode()), time.time_ns())
    return Ok(None) if written.ok else written
