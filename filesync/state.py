"""The state store: per path, what the locations last agreed on and what each one held.

Only a comparison with this base tells a deletion from a creation, so every change the
engine applies is written here at once (sqlite in WAL mode: one commit per applied action,
so an interruption loses at most the file in flight).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from filesync.gcpause import gc_paused
from filesync.model import CONFLICT_COPY, DOUBTED_MTIME_NS, Agreed, PathState, Record
from filesync.result import Err, Ok, Result

SCHEMA_VERSION = "1"
#: Starts a stored name that is not valid UTF-8 (see ``_store``); no real name holds a NUL.
_ESCAPED = "\x00"
#: Stored 0/1 flags as bools, by indexing (cheaper than a ``bool()`` call per row).
_FLAGS = (False, True)
#: Inside ``StateStore.batch()``, records are committed at least this often.
BATCH_SECONDS = 0.1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS locations(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS versions(
    path TEXT PRIMARY KEY, gen INTEGER NOT NULL, deleted INTEGER NOT NULL,
    is_dir INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT,
    conflict INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records(
    path TEXT NOT NULL, location INTEGER NOT NULL, gen INTEGER NOT NULL,
    is_dir INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    PRIMARY KEY(path, location)
) WITHOUT ROWID;
"""
#: Every write to what the planner reads drops the plan memo (``filesync.planmemo``), so no
#: writer, in this version or a later one, can leave a memo that no longer holds.
_MEMO_TRIGGERS = "".join(
    f"CREATE TRIGGER IF NOT EXISTS forget_plan_memo_{table}_{event.lower()} AFTER {event} "
    f"ON {table} BEGIN DELETE FROM meta WHERE key='plan_memo'; END;\n"
    for table in ("versions", "records") for event in ("INSERT", "UPDATE", "DELETE"))


def _raw(text: str) -> bytes:
    """The bytes behind ``text``: UTF-8, with file names' undecodable bytes given back."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "surrogatepass")


def _store(text: str) -> str:
    """``text`` as it is stored: itself when it is valid UTF-8, else an escape.

    Names that are not valid UTF-8 (Python gives them with surrogate escapes) are stored
    as a NUL followed by the hex digits of their bytes (``p`` before the digits marks a
    lone surrogate kept with ``surrogatepass``), so they come back unchanged. Ordinary names
    are stored as they always were, so existing state files stay valid.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return _ESCAPED + text.encode("utf-8", "surrogateescape").hex()
        except UnicodeEncodeError:
            return _ESCAPED + "p" + text.encode("utf-8", "surrogatepass").hex()
    return text


def _load(stored: str) -> str:
    """The name ``_store`` stored as ``stored``."""
    if not stored.startswith(_ESCAPED):
        return stored
    if stored.startswith("p", 1):
        return bytes.fromhex(stored[2:]).decode("utf-8", "surrogatepass")
    return bytes.fromhex(stored[1:]).decode("utf-8", "surrogateescape")


def default_state_path(location_keys: Sequence[str]) -> Path:
    """One state file per set of locations, named from their password-free keys."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    digest = hashlib.sha256(_raw("\n".join(sorted(location_keys)))).hexdigest()[:16]
    return Path(base) / "filesync" / f"{digest}.sqlite"


def cache_path(state_path: Path, location_key: str) -> Path:
    """Where a location keeps its cache between runs: beside the state, one per location."""
    digest = hashlib.sha256(_raw(location_key)).hexdigest()[:12]
    return state_path.with_name(f"{state_path.name}.{digest}.cache")


def is_damage(exc: sqlite3.Error) -> bool:
    """True when ``exc`` says the database file itself is damaged (not full, locked, ...)."""
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def failure_message(path: Path, exc: sqlite3.Error) -> str:
    """What to tell the user when the state file failed in the middle of a run."""
    text = str(exc)
    if getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "full" in text.lower():
        return (f"cannot write the state file {path}: {text}; free space on its disk (or "
                "choose another place with --state) and run again; what was applied so far "
                "is kept and nothing is lost")
    if is_damage(exc):
        return (f"the state file {path} is damaged ({text}); run again: it is then moved "
                "aside and that run is treated as a first run (nothing is deleted)")
    return (f"the state file {path} failed: {text}; check its disk and permissions, then "
            "run again (a damaged state file is moved aside at the next start)")


class StateStore:
    """The sqlite database behind one sync group; used from one thread only."""

    def __init__(self, connection: sqlite3.Connection, path: Path, fresh: bool) -> None:
        self._db = connection
        self.path = path
        #: True when no earlier state was found: the engine then takes the union, deletes nothing.
        self.fresh = fresh
        self._ids: dict[str, int] = {
            _load(key): ident for ident, key in self._db.execute("SELECT id, key FROM locations")}
        self._keys = {ident: key for key, ident in self._ids.items()}
        self._batch_started: float | None = None

    @classmethod
    def open(cls, path: Path, location_keys: Sequence[str]) -> Result[tuple[StateStore, str]]:
        """Open or create the store; a damaged one is set aside and replaced, with a warning.

        Returns the store and a warning ("" when there is none).
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return Err(f"cannot create the state folder {path.parent}: {exc.strerror or exc}")
        warning = ""
        existed = path.exists()
        if existed and not path.is_file():
            return Err(f"{path} is not a file (a folder?); give --state the path of a file, "
                       "existing or new")
        opened, damaged = cls._connect(path)
        if not opened.ok and existed and damaged:
            aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                path.rename(aside)
            except OSError as exc:
                return Err(f"state file {path} is unreadable ({opened.message}) and cannot be "
                           f"moved aside: {exc.strerror or exc}")
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(str(path) + suffix).unlink()
            warning = (f"state file {path} was unreadable ({opened.message}); it was moved to "
                       f"{aside.name} and this run is treated as a first run: nothing is deleted")
            existed = False
            opened, _ = cls._connect(path)
        if not opened.ok:
            return Err(f"cannot use the state file {path}: {opened.message}; check that its "
                       "disk has free space and that it is writable, or choose another place "
                       "with --state")
        db = opened.value
        try:
            fresh = not existed or db.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 0
            store = cls(db, path, fresh)
            for key in location_keys:
                store._location_id(key)
            db.commit()
        except sqlite3.Error as exc:
            db.close()
            return Err(failure_message(path, exc))
        return Ok((store, warning))

    @classmethod
    def open_readonly(cls, path: Path) -> Result[StateStore | None]:
        """Open an existing store for reading only (``status``); None when there is none.

        Takes no lock and writes nothing, so it works while an engine syncs the set.
        """
        if not path.is_file():
            return Ok(None)
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                 isolation_level=None)
        except sqlite3.Error as exc:
            return Err(f"cannot read the state file {path}: {exc}")
        try:
            db.execute("SELECT COUNT(*) FROM versions").fetchone()
            return Ok(cls(db, path, fresh=False))
        except sqlite3.Error as exc:
            db.close()
            return Err(f"cannot read the state file {path}: {exc}")

    @staticmethod
    def _connect(path: Path) -> tuple[Result[sqlite3.Connection], bool]:
        """Open and check the database; the flag says whether a failure means damage.

        A full disk, a lock or missing permissions are not damage: such a file is left
        where it is (moving it aside would lose a good state).
        """
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            return Err(str(exc)), False
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # A killed process loses nothing committed; only a power cut could, which the
            # next run survives by treating unrecorded files as new (no deletions).
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA + _MEMO_TRIGGERS)
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                db.close()
                return Err(f"state schema {row[0]} is not the one this filesync uses "
                           f"({SCHEMA_VERSION})"), True
            # Damaged pages in the middle of the file would otherwise surface in the middle
            # of a round; quick_check reads every page once (a second per ~100 MB).
            problems = db.execute("PRAGMA quick_check(1)").fetchone()
            if problems is None or problems[0] != "ok":
                db.close()
                return Err(f"the database is damaged ({problems[0] if problems else '?'})"), True
        except sqlite3.Error as exc:
            db.close()
            return Err(str(exc)), is_damage(exc)
        return Ok(db), False

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _location_id(self, key: str) -> int:
        ident = self._ids.get(key)
        if ident is None:
            cursor = self._db.execute("INSERT INTO locations(key) VALUES(?)", (_store(key),))
            ident = int(cursor.lastrowid or 0)
            self._ids[key] = ident
            self._keys[ident] = key
        return ident

    def owner_id(self) -> str:
        """The id (8 hex) of this sync set, written into its temporary file names; made once."""
        row = self._db.execute("SELECT value FROM meta WHERE key='owner'").fetchone()
        if row is not None:
            return str(row[0])
        owner = os.urandom(4).hex()
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES('owner', ?)", (owner,))
        return owner

    # ----- per-location facts -------------------------------------------------------------
    def marker(self, location: str) -> str | None:
        """The marker id this location had when it was last synced, if any."""
        row = self._db.execute("SELECT value FROM meta WHERE key=?",
                               (f"marker:{_store(location)}",)).fetchone()
        return row[0] if row else None

    def set_marker(self, location: str, marker: str) -> None:
        """Remember the marker id found (or written) in ``location``."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)",
                             (f"marker:{_store(location)}", marker))

    def journal_seen(self, location: str) -> int:
        """The last entry of ``location``'s hub journal this sync set has taken in (0: none)."""
        row = self._db.execute("SELECT value FROM meta WHERE key=?",
                               (f"journal:{_store(location)}",)).fetchone()
        return int(row[0]) if row else 0

    def set_journal_seen(self, location: str, seq: int) -> None:
        """Remember how far ``location``'s hub journal has been taken in."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)",
                             (f"journal:{_store(location)}", str(seq)))

    def plan_memo(self) -> str | None:
        """The digest of the last full round that planned nothing, while it still holds."""
        row = self._db.execute("SELECT value FROM meta WHERE key='plan_memo'").fetchone()
        return row[0] if row else None

    def set_plan_memo(self, digest: str) -> None:
        """Remember that a round with this digest planned nothing (``filesync.planmemo``)."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES('plan_memo', ?)", (digest,))

    def doubt_records(self, location: str, paths: Iterable[str] | None) -> None:
        """Make the file records of ``location`` (all, or of ``paths``) match no listing.

        Another engine wrote those files in a way their size and time may not show (a
        coarse clock): the planner then compares them by content. The generation stays,
        so the location counts as changed, not as behind.
        """
        ident = self._location_id(location)
        with self._transaction():
            if paths is None:
                self._db.execute("UPDATE records SET mtime_ns=? WHERE location=? AND is_dir=0",
                                 (DOUBTED_MTIME_NS, ident))
                return
            self._db.executemany(
                "UPDATE records SET mtime_ns=? WHERE location=? AND path=? AND is_dir=0",
                [(DOUBTED_MTIME_NS, ident, _store(path)) for path in paths])

    def forget_location(self, location: str) -> None:
        """Drop every record of ``location``: it is treated as new (union, no deletions)."""
        with self._transaction():
            self._db.execute("DELETE FROM records WHERE location=?",
                             (self._location_id(location),))

    def file_counts(self) -> dict[str, int]:
        """How many files each location held when last in sync."""
        rows = self._db.execute(
            "SELECT location, COUNT(*) FROM records WHERE is_dir=0 GROUP BY location")
        return {self._keys[ident]: count for ident, count in rows}

    def conflicts(self) -> list[tuple[str, list[str], bool]]:
        """Unresolved conflicts: (path, locations holding it, left alone by ``manual``).

        The others are the visible conflict copies ``--conflict keep-both`` made: they stay
        until someone merges and deletes them.
        """
        rows = self._db.execute(
            "SELECT path, conflict FROM versions WHERE deleted=0 AND is_dir=0 AND "
            "(conflict=1 OR path LIKE '%.conflict-%')").fetchall()
        found: list[tuple[str, list[str], bool]] = []
        for stored, conflict in rows:
            path = _load(stored)
            if not conflict and CONFLICT_COPY.search(path.rpartition("/")[2]) is None:
                continue
            holders = self._db.execute("SELECT location FROM records WHERE path=?", (stored,))
            found.append((path, sorted(self._keys[ident] for ident, in holders),
                          bool(conflict)))
        return sorted(found)

    # ----- reading ------------------------------------------------------------------------
    def load(self, paths: Iterable[str] | None = None) -> dict[str, PathState]:
        """The stored base of every path, or of ``paths`` only."""
        states: dict[str, PathState] = {}
        # A full load builds a few objects per stored path; see ``filesync.gcpause``.
        with gc_paused():
            if paths is None:
                version_rows = self._db.execute("SELECT * FROM versions")
                record_rows = self._db.execute("SELECT * FROM records")
                self._fill(states, version_rows, record_rows)
                return states
            wanted = [_store(path) for path in paths]
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                self._fill(
                    states,
                    self._db.execute(f"SELECT * FROM versions WHERE path IN ({marks})", chunk),
                    self._db.execute(f"SELECT * FROM records WHERE path IN ({marks})", chunk))
        return states

    def _fill(self, states: dict[str, PathState], version_rows: Iterable[tuple],
              record_rows: Iterable[tuple]) -> None:
        # Runs once per stored row: escaped names are rare, so the escape is tested inline
        # without a call per row, and flags become bools by indexing instead of ``bool()``.
        flag = _FLAGS
        for stored, gen, deleted, is_dir, size, mtime_ns, sha, conflict in version_rows:
            path = _load(stored) if stored[:1] == _ESCAPED else stored
            states[path] = PathState(Agreed(gen, flag[deleted], flag[is_dir], size, mtime_ns,
                                            sha, flag[conflict]), {})
        keys = self._keys
        get_state = states.get
        for stored, location, gen, is_dir, size, mtime_ns in record_rows:
            path = _load(stored) if stored[:1] == _ESCAPED else stored
            state = get_state(path)
            if state is None:
                state = states[path] = PathState(None, {})
            state.records[keys[location]] = Record(gen, flag[is_dir], size, mtime_ns)

    # ----- writing ------------------------------------------------------------------------
    def set_agreed(self, path: str, agreed: Agreed, holders: dict[str, Record]) -> None:
        """Store what a path's locations agreed on and who holds it already, in one commit."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO versions VALUES(?,?,?,?,?,?,?,?)",
                (_store(path), agreed.gen, int(agreed.deleted), int(agreed.is_dir), agreed.size,
                 agreed.mtime_ns, agreed.sha256, int(agreed.conflict)))
            for key, record in holders.items():
                self._put_record(path, key, record)

    def set_record(self, path: str, location: str, record: Record | None) -> None:
        """Store (or with ``None`` forget) what ``location`` holds of ``path``, in one commit."""
        with self._transaction():
            if record is None:
                self._db.execute("DELETE FROM records WHERE path=? AND location=?",
                                 (_store(path), self._location_id(location)))
            else:
                self._put_record(path, location, record)

    def set_sha(self, path: str, gen: int, sha256: str) -> None:
        """Remember the content hash of what a path's locations agree on, learnt by copying."""
        with self._transaction():
            self._db.execute("UPDATE versions SET sha256=? WHERE path=? AND gen=?",
                             (sha256, _store(path), gen))

    def forget_tombstone(self, path: str) -> None:
        """Drop a path's agreed deletion once no location keeps a record of it."""
        with self._transaction():
            self._db.execute(
                "DELETE FROM versions WHERE path=? AND deleted=1 AND NOT EXISTS "
                "(SELECT 1 FROM records WHERE records.path=versions.path)", (_store(path),))

    def _put_record(self, path: str, location: str, record: Record) -> None:
        self._db.execute("INSERT OR REPLACE INTO records VALUES(?,?,?,?,?,?)",
                         (_store(path), self._location_id(location), record.gen,
                          int(record.is_dir),
                          record.size, record.mtime_ns))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes of one round into commits at most ``BATCH_SECONDS`` apart.

        A commit per file costs as much as copying a small file. What a kill can lose is at
        most the last fraction of a second of records, and losing them costs no transfer:
        the copies they describe are complete (same size and mtime everywhere), so the next
        run recognises them as in sync and only records them.
        """
        if self._batch_started is not None:
            yield
            return
        self._db.execute("BEGIN")
        self._batch_started = time.monotonic()
        try:
            yield
        except BaseException:
            self._commit_batch()
            raise
        self._commit_batch()

    def _commit_batch(self) -> None:
        self._batch_started = None
        self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._batch_started is not None:
            yield
            if time.monotonic() - self._batch_started >= BATCH_SECONDS:
                self._db.execute("COMMIT")
                self._db.execute("BEGIN")
                self._batch_started = time.monotonic()
            return
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
