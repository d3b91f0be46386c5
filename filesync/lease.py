"""The hub lease: one engine at a time changes a location that several machines share.

Several engines (one per machine, each with its own state) may sync with one remote
location, the hub. While an engine plans and applies a round that touches the hub it holds
the hub's lease: the folder ``.filesync/lease`` created by ``Location.claim_dir`` (an
atomic create-if-absent the server decides: MKD on FTP, ``If-None-Match: *`` on S3) and
the file ``holder`` in it, which says who holds it. The holder renews the file while it
works, from a thread the lease owns; ``release`` stops that thread and removes both.

A lease is stale when its holder file has not changed for the holder's time to live, as
measured by the waiting engine's own clock (machines' clocks may disagree), or at once
when it names this engine's own owner id (an earlier run of the same sync set, killed).
A stale lease is removed and claimed anew; the claim itself stays atomic.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, replace

from filesync.locations.base import Location
from filesync.model import RESERVED_DIR
from filesync.result import Err, ErrorKind, Ok, Result

log = logging.getLogger("filesync")

LEASE_DIR = RESERVED_DIR + "/lease"
HOLDER = LEASE_DIR + "/holder"
#: How long a lease lasts without renewal, unless the command line says otherwise.
DEFAULT_TTL = 60.0


@dataclass(frozen=True)
class Holder:
    """What the holder file says: who holds the lease, and how long it lasts unrenewed."""

    owner: str
    host: str
    pid: int
    nonce: str
    ttl: float
    renewals: int = 0

    def describe(self) -> str:
        """Who holds it, for messages."""
        return f"the filesync run {self.owner} on {self.host} (pid {self.pid})"

    def encode(self) -> bytes:
        """The holder file's content."""
        return json.dumps({"owner": self.owner, "host": self.host, "pid": self.pid,
                           "nonce": self.nonce, "ttl": self.ttl, "renewals": self.renewals,
                           "written": time.time()}).encode()

    @staticmethod
    def decode(data: bytes) -> Holder | None:
        """The holder a file names, or None when it is not a holder file (half-written)."""
        try:
            fields = json.loads(data.decode("utf-8"))
            return Holder(str(fields["owner"]), str(fields["host"]), int(fields["pid"]),
                          str(fields["nonce"]), float(fields["ttl"]), int(fields["renewals"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def _read(location: Location) -> Result[bytes | None]:
    """The holder file's bytes, None when there is none."""
    opened = location.open_read(HOLDER)
    if not opened.ok:
        return Ok(None) if opened.kind is ErrorKind.NOT_FOUND else opened
    try:
        with opened.value as stream:
            return Ok(stream.read(4096))
    except OSError as exc:
        return Err(f"cannot read the lease of {location.display}: {exc}", ErrorKind.FAILED)


class Lease:
    """A held lease on one location; renewed by its own thread until ``release``."""

    def __init__(self, location: Location, holder: Holder) -> None:
        self.location = location
        self.holder = holder
        #: Set when another engine took the lease over (this one was too slow to renew).
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                        name=f"lease {location.display}")

    def _write(self) -> Result[None]:
        written = self.location.write(HOLDER, io.BytesIO(self.holder.encode()), time.time_ns())
        return Ok(None) if written.ok else written

    def _still_ours(self) -> bool:
        found = _read(self.location)
        if not found.ok:
            return True  # out of reach for a moment: not evidence of a take-over
        current = Holder.decode(found.value or b"")
        return current is not None and current.nonce == self.holder.nonce

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.holder.ttl / 3):
            if not self._still_ours():
                self.lost = True
                log.error("the lease of %s was taken over by another filesync run; this "
                          "run's writes there are still checked one by one",
                          self.location.display)
                return
            self.holder = replace(self.holder, renewals=self.holder.renewals + 1)
            renewed = self._write()
            if not renewed.ok:
                log.warning("cannot renew the lease of %s: %s", self.location.display,
                            renewed.message)

    def release(self) -> None:
        """Stop renewing and remove the lease (a failure only delays the next holder)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.lost or not self._still_ours():
            return
        for step in (lambda: self.location.delete(HOLDER),
                     lambda: self.location.rmdir(LEASE_DIR)):
            done = step()
            if not done.ok and done.kind is not ErrorKind.NOT_FOUND:
                log.warning("cannot release the lease of %s (it expires by itself): %s",
                            self.location.display, done.message)
                return


def _break(location: Location, holder: Holder | None, quiet_for: float) -> Result[None]:
    """Remove a stale lease: its holder file, leftovers in the folder, the folder."""
    who = holder.describe() if holder is not None else "a run that never finished taking it"
    log.warning("%s: taking over the lease of %s, not renewed for %.0f s", location.display,
                who, quiet_for)
    removed = location.delete(HOLDER)
    if not removed.ok:
        return removed
    gone = location.rmdir(LEASE_DIR)
    if gone.ok or gone.kind is ErrorKind.NOT_FOUND:
        return Ok(None)
    # A killed holder may have left a temporary file of its holder write in the folder.
    inside = location.scan(lambda path: path not in (RESERVED_DIR, LEASE_DIR))
    if not inside.ok:
        return inside
    for path in [*inside.value.temps, *inside.value.entries]:
        if path.startswith(LEASE_DIR + "/"):
            location.delete(path)
    gone = location.rmdir(LEASE_DIR)
    return Ok(None) if gone.ok or gone.kind is ErrorKind.NOT_FOUND else gone


def acquire(location: Location, owner: str, ttl: float, wait: float,
            stop: threading.Event) -> Result[Lease]:
    """Take the lease of ``location``, waiting up to ``wait`` seconds while another run holds it.

    Errors: the location cannot be reached or written (its own kind), or another run
    still holds the lease after ``wait`` (``UNAVAILABLE``).
    """
    holder = Holder(owner, socket.gethostname(), os.getpid(), secrets.token_hex(8), ttl)
    seen: bytes | None = None
    seen_since = time.monotonic()
    deadline = seen_since + wait
    told = False
    while True:
        claimed = location.claim_dir(LEASE_DIR)
        if not claimed.ok:
            return Err(f"cannot take the lease of {location.display}: {claimed.message}",
                       claimed.kind)
        found = _read(location)
        if not found.ok:
            return found
        current = Holder.decode(found.value or b"")
        if claimed.value or (current is not None and current.owner == owner):
            if not claimed.value:
                log.info("%s: taking back the lease an earlier run of this sync set left",
                         location.display)
            lease = Lease(location, holder)
            written = lease._write()
            if not written.ok:
                location.rmdir(LEASE_DIR)
                return written
            if lease._still_ours():
                lease._thread.start()
                return Ok(lease)
            continue  # someone broke our fresh claim as stale: start over
        now = time.monotonic()
        if found.value != seen:
            seen, seen_since = found.value, now
        limit = current.ttl if current is not None else ttl
        if now - seen_since >= limit:
            broken = _break(location, current, now - seen_since)
            if not broken.ok:
                return broken
            continue
        if now >= deadline:
            who = current.describe() if current is not None else "another filesync run"
            return Err(f"{location.display} is busy: {who} holds its lease (it syncs with "
                       f"it from another machine or sync set); still waiting after "
                       f"{wait:.0f} s, so this round leaves it out", ErrorKind.UNAVAILABLE)
        if not told:
            who = current.describe() if current is not None else "another filesync run"
            log.info("%s: waiting for %s to finish its round there", location.display, who)
            told = True
        if stop.wait(min(1.0, max(0.05, limit / 20))):
            return Err(f"stopped while waiting for the lease of {location.display}",
                       ErrorKind.UNAVAILABLE)
