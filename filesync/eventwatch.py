"""Choosing how a location is watched: OS events where the system has them, else polling.

Folders on Linux are watched with inotify (``EventWatcher``): one watch per folder, events
turned into settled paths by a quiet time, a full listing every ``rescan`` seconds to catch
anything the events missed. Every other location (and a folder with ``--poll``, without
inotify, or on a network file system that sends no events) is polled by ``Watcher``.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from filesync import inotify
from filesync.excludes import Excludes
from filesync.inotify import (
    IN_CREATE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    Inotify,
    InotifyError,
    RawEvent,
    WatchAccessError,
    WatchGoneError,
    WatchLimitError,
)
from filesync.locations.base import Location
from filesync.model import RESERVED_DIR, Entry, is_reserved, unsafe_reason
from filesync.watcher import EventKind, Watcher, WatchEvent

log = logging.getLogger("filesync")

#: Watch mode lists every location in full this often (seconds) even when events arrive,
#: to catch anything the events missed.
DEFAULT_RESCAN = 300.0
#: A path is reported once no event touched it for this long (seconds) and its stat is
#: still the one taken at its last event: a file still being written waits.
QUIET = 0.2
#: An ``IN_MOVED_FROM`` without its ``IN_MOVED_TO`` after this long is a move out of the
#: tree (a deletion here).
MOVE_HOLD = 0.5
#: The longest the watcher thread blocks (seconds): how soon it notices ``stop``.
WAKE = 0.25
#: File systems whose changes made elsewhere send no inotify events: polled.
REMOTE_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph",
                       "glusterfs", "lustre", "davfs", "fuse.sshfs", "fuse.rclone",
                       "fuse.s3fs", "fuse.gcsfuse"})

#: ``/proc/self/mounts`` writes a space, tab, newline or backslash as ``\\ooo``.
_OCTAL = re.compile(r"\\([0-7]{3})")


def make_watcher(location: Location, excludes: Excludes, interval: float,
                 events: queue.Queue[WatchEvent], stop: threading.Event,
                 baseline: dict[str, Entry] | None, poll: bool = False,
                 rescan: float = DEFAULT_RESCAN) -> Watcher:
    """The watcher for ``location``: event-driven where possible, else polling."""
    root = location.local_path()
    if (not poll and location.kind == "folder" and root is not None and inotify.available()
            and not on_remote_fs(root)):
        return EventWatcher(location, excludes, interval, events, stop, baseline, rescan)
    return Watcher(location, excludes, interval, events, stop, baseline)


def on_remote_fs(path: Path, mounts: str = "/proc/self/mounts") -> bool:
    """True when ``path`` lies on a network file system (other machines' writes are silent)."""
    try:
        with open(mounts, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        log.debug("cannot read %s (%s); taking %s as local", mounts, exc, path)
        return False
    target = os.path.realpath(path)
    best, fstype = "", ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _OCTAL.sub(lambda match: chr(int(match[1], 8)), fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, fields[2]
    return fstype in REMOTE_FS


@dataclass
class _Pending:
    """A path touched by an event: its stat then, and when it may count as settled."""

    due: float
    entry: Entry | None
    #: Paths of one move share a group: they are reported together (0: no group).
    group: int = 0


class _WatchTable:
    """The inotify instance of one folder tree and which folder each watch stands for."""

    def __init__(self, root: str, skip_dir: Callable[[str], bool],
                 watch_limit: int | None) -> None:
        self.root = root
        self.skip_dir = skip_dir
        self.inotify = Inotify(watch_limit)
        self.by_wd: dict[int, str] = {}
        self.by_path: dict[str, int] = {}
        self.root_wd = -1

    def full(self, rel: str) -> str:
        """The absolute name of ``rel``."""
        return os.path.join(self.root, rel) if rel else self.root

    def tree(self, top: str, found: Callable[[str, bool], None] | None) -> set[int]:
        """Watch ``top`` and every folder below it; returns the watches added or kept.

        With ``found``, every entry seen after its folder's watch exists is passed to it
        (``path, is_dir``), so nothing created before the watch goes unnoticed; a folder
        already watched under this very name was scanned then and is not walked again.
        ``WatchLimitError`` (and any error on the root) is raised; a sub-folder that
        vanished or may not be read is left to the listing.
        """
        added: set[int] = set()
        stack = [top]
        while stack:
            folder = stack.pop()
            if folder and self.skip_dir(folder):
                continue
            try:
                wd = self.inotify.add_watch(self.full(folder))
            except (WatchGoneError, WatchAccessError) as exc:
                if not folder:
                    raise
                log.debug("not watching %s: %s", folder, exc)
                continue
            added.add(wd)
            known = self.by_wd.get(wd)
            if known is not None and known != folder and self.by_path.get(known) == wd:
                del self.by_path[known]
            self.by_wd[wd], self.by_path[folder] = folder, wd
            if not folder:
                self.root_wd = wd
            if found is not None:
                if known == folder:
                    continue
                if folder:
                    found(folder, True)
            try:
                with os.scandir(self.full(folder)) as items:
                    for item in items:
                        rel = f"{folder}/{item.name}" if folder else item.name
                        if item.is_dir(follow_symlinks=False):
                            stack.append(rel)
                        elif found is not None:
                            found(rel, False)
            except OSError as exc:
                log.debug("cannot list %s for watching: %s", folder, exc)
        return added

    def unmap(self, top: str) -> set[int]:
        """Forget the watches of ``top`` and the folders below it (they stay in the kernel)."""
        below = top + "/"
        gone = {path: wd for path, wd in self.by_path.items()
                if path == top or path.startswith(below)}
        for path, wd in gone.items():
            del self.by_path[path]
            if self.by_wd.get(wd) == path:
                del self.by_wd[wd]
        return set(gone.values())

    def remove(self, wds: Iterable[int]) -> None:
        """Stop these watches in the kernel."""
        for wd in wds:
            self.inotify.rm_watch(wd)

    def dropped(self, wd: int) -> None:
        """The kernel removed ``wd`` (``IN_IGNORED``)."""
        path = self.by_wd.pop(wd, None)
        if path is not None and self.by_path.get(path) == wd:
            del self.by_path[path]
        self.inotify.forget(wd)

    def close(self) -> None:
        """Close the inotify fd; every watch ends with it."""
        self.inotify.close()
        self.by_wd.clear()
        self.by_path.clear()


class EventWatcher(Watcher):
    """Watches one local folder tree with inotify; the engine sees a faster ``Watcher``.

    Events only mark paths as touched; a touched path is reported (``CHANGED``) once it
    has been quiet for ``QUIET`` seconds and its stat has not moved since, through the
    same dedup rules as the polling watcher. A full scan runs at start, after an event
    queue overflow and every ``rescan`` seconds. When the watch table is full (``ENOSPC``)
    or inotify fails, the location is polled from then on, exactly as ``Watcher`` does.
    ``watch_limit`` (tests only) lowers the number of watches allowed.
    """

    def __init__(self, location: Location, excludes: Excludes, interval: float,
                 events: queue.Queue[WatchEvent], stop: threading.Event,
                 baseline: dict[str, Entry] | None, rescan: float = DEFAULT_RESCAN,
                 watch_limit: int | None = None) -> None:
        super().__init__(location, excludes, interval, events, stop, baseline)
        self.rescan = rescan
        self.watch_limit = watch_limit
        #: Set once the first watches and scan are done (or the watcher fell back to polling).
        self.ready = threading.Event()
        #: True once the location is polled instead (read by tests and logs).
        self.polling = False
        self.table: _WatchTable | None = None
        self._root = str(location.local_path())
        self._posix = location.capabilities.posix_names
        self._pending: dict[str, _Pending] = {}  # in order of ``due``
        self._groups: dict[int, set[str]] = {}
        self._group_ids = 0
        self._moves: dict[int, tuple[float, str, bool]] = {}  # cookie: (until, path, is_dir)
        self._touched: dict[str, int] = {}  # touched by the events being read: group
        self._overflowed = False
        self._lost: str | None = None

    # ----- the thread ---------------------------------------------------------------------
    def run(self) -> None:
        """Follow events until stopped; fall back to polling when inotify cannot go on."""
        try:
            self._recover()
            self.ready.set()
            self._follow()
        except WatchLimitError:
            self._to_polling(f"cannot watch every folder of {self.location.display} with "
                             "inotify: the system limit fs.inotify.max_user_watches is "
                             "reached (raise it with sysctl)")
        except InotifyError as exc:
            self._to_polling(f"inotify failed for {self.location.display}: {exc}")
        except Exception as exc:  # a bug must not silently end watching: poll instead
            log.exception("event watcher of %s failed: %s", self.location.display, exc)
            self._to_polling(f"watching {self.location.display} by events failed")
        finally:
            self._close()
            self.ready.set()
        if self.polling:
            super().run()

    def _follow(self) -> None:
        rescan_at = time.monotonic() + self.rescan
        while not self.stop.is_set():
            table = self.table
            if table is None or not self._available:
                self._close()
                if self.stop.wait(self.interval):
                    return
                self._recover()
                rescan_at = time.monotonic() + self.rescan
                continue
            raw = table.inotify.read(self._timeout(rescan_at))
            with self._lock:
                now = time.monotonic()
                self._take(raw, now)
                self._expire_moves(now)
                self._arm_touched(now)
                self._settle(now)
            if self._lost is not None:
                self._lose(self._lost)
            elif self._overflowed or time.monotonic() >= rescan_at:
                if self._overflowed:
                    log.warning("inotify dropped events of %s (its queue overflowed); "
                                "rescanning it in full", self.location.display)
                self._overflowed = False
                table.tree("", None)  # folders created while events were lost
                self.scan_once()
                rescan_at = time.monotonic() + self.rescan

    def _timeout(self, rescan_at: float) -> float:
        """How long to block: until the next path is due, a move expires or a rescan."""
        with self._lock:
            wake = rescan_at
            if self._pending:
                wake = min(wake, next(iter(self._pending.values())).due)
            if self._moves:
                wake = min(wake, *(held[0] for held in self._moves.values()))
        return max(0.0, min(WAKE, wake - time.monotonic()))

    def _recover(self) -> None:
        """Watch the tree and scan it (at start, and while the location is unavailable)."""
        if os.path.isdir(self._root):
            self._close()
            self.table = _WatchTable(self._root, self._skip_dir, self.watch_limit)
            try:
                self.table.tree("", None)
            except WatchGoneError:
                self._close()
        self.scan_once()
        if not self._available:
            self._close()

    def _lose(self, message: str) -> None:
        """The root itself went away: unavailable until it is back."""
        self._lost = None
        self._close()
        with self._lock:
            was, self._available = self._available, False
            self._forget_pending()
        if was:
            self.events.put(WatchEvent(self.location.key, EventKind.UNAVAILABLE,
                                       message=message))

    def _to_polling(self, message: str) -> None:
        log.warning("%s; polling it every %.1f s instead", message, self.interval)
        self._close()
        with self._lock:
            self.polling = True
            self._revisit.update(self._pending)
            self._forget_pending()

    def _close(self) -> None:
        table, self.table = self.table, None
        if table is not None:
            table.close()

    def _forget_work(self) -> None:
        """Under the lock: pending paths, move halves and touches are stale after an outage."""
        self._forget_pending()

    def _forget_pending(self) -> None:
        self._pending.clear()
        self._groups.clear()
        self._moves.clear()
        self._touched.clear()

    # ----- the engine's side --------------------------------------------------------------
    def settled(self, path: str, entry: Entry | None) -> bool:
        """True when no event is pending for ``path`` and it was last seen as ``entry``.

        Otherwise the path is revisited: reported once it settles, even unchanged.
        """
        if self.polling:
            return super().settled(path, entry)
        with self._lock:
            if not self._available:
                return True
            pending = self._pending.get(path)
            if pending is None and self._previous.get(path) == entry:
                return True
            self._revisit.add(path)
            if pending is None:  # a change whose event is not read yet (or never comes)
                self._arm(path, entry, time.monotonic())
            return False

    def scan_once(self) -> None:
        """List the location in full; every path that differs from what is known is touched."""
        if self.polling:
            super().scan_once()
            return
        listing = self._fresh_listing()
        if listing is None:
            return
        current = listing.entries
        with self._lock:
            if self._came_back(current):
                return
            reported, previous = self._reported, self._previous
            paths = {path for path, entry in current.items()
                     if reported.get(path) != entry or previous.get(path) != entry}
            paths.update(reported.keys() - current.keys(), previous.keys() - current.keys(),
                         self._revisit)
            now = time.monotonic()
            for path in sorted(paths):
                if listing.sees(path):
                    self._arm(path, current.get(path), now)

    # ----- events -------------------------------------------------------------------------
    def _take(self, raw: list[RawEvent], now: float) -> None:
        """Turn raw events into touched paths (and watch changes)."""
        table = self.table
        if table is None:
            return
        for event in raw:
            if event.mask & IN_Q_OVERFLOW:
                self._overflowed = True
                continue
            if event.mask & IN_IGNORED:
                if event.wd == table.root_wd:
                    self._lost = f"folder {self._root} was deleted or moved away"
                table.dropped(event.wd)
                continue
            parent = table.by_wd.get(event.wd)
            if parent is None:
                continue  # a watch already given up
            if event.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT):
                if event.wd == table.root_wd:
                    self._lost = f"folder {self._root} was deleted, moved or unmounted"
                elif event.mask & IN_UNMOUNT:
                    self._overflowed = True  # a file system below went: look again
                continue  # a sub-folder's own end: its parent's event tells
            if not event.name:
                continue
            path = f"{parent}/{event.name}" if parent else event.name
            if self._ignored(path, event.is_dir):
                continue
            if event.mask & IN_MOVED_FROM:
                self._moves[event.cookie] = (now + MOVE_HOLD, path, event.is_dir)
                continue
            if event.mask & IN_MOVED_TO:
                held = self._moves.pop(event.cookie, None)
                if held is not None:
                    self._moved(held[1], path, event.is_dir)
                    continue
            if event.is_dir and event.mask & (IN_CREATE | IN_MOVED_TO):
                table.tree(path, self._found)  # then scan it: files made before the watch
                self._touch(path)
            else:
                self._touch(path)

    def _moved(self, old: str, new: str, is_dir: bool) -> None:
        """A move inside the tree: both names touched as one group (reported together)."""
        self._group_ids += 1
        group = self._group_ids
        self._touch(old, group)
        self._touch(new, group)
        table = self.table
        if not is_dir or table is None:
            return
        old_wds = table.unmap(old)
        self._touch_known_below(old, group)
        def found(path: str, is_dir: bool) -> None:
            if not self._ignored(path, is_dir):
                self._touch(path, group)

        kept = table.tree(new, found)
        table.remove(old_wds - kept)

    def _expire_moves(self, now: float) -> None:
        """Moves out of the tree: their sources are deletions here."""
        for cookie, (until, path, is_dir) in list(self._moves.items()):
            if until > now:
                continue
            del self._moves[cookie]
            self._touch(path)
            if is_dir and self.table is not None:
                self.table.remove(self.table.unmap(path))
                self._touch_known_below(path, 0)

    def _found(self, path: str, is_dir: bool) -> None:
        if not self._ignored(path, is_dir):
            self._touch(path)

    def _touch(self, path: str, group: int = 0) -> None:
        self._touched[path] = group or self._touched.get(path, 0)

    def _touch_known_below(self, top: str, group: int) -> None:
        below = top + "/"
        for known in (self._reported, self._previous, self._pending):
            for path in [path for path in known if path.startswith(below)]:
                self._touch(path, group)

    def _ignored(self, path: str, is_dir: bool) -> bool:
        """Our own names (temporary files, ``.filesync``), excluded and unsafe names."""
        return (is_reserved(path) or (bool(self.excludes) and self.excludes.excluded(path, is_dir))
                or unsafe_reason(path, self._posix) is not None)

    def _skip_dir(self, folder: str) -> bool:
        return folder == RESERVED_DIR or is_reserved(folder) or (
            bool(self.excludes) and self.excludes.dir_excluded(folder))

    # ----- settling -----------------------------------------------------------------------
    def _arm(self, path: str, entry: Entry | None, now: float, group: int = 0) -> None:
        """(Re)start the quiet time of ``path`` from its stat ``entry``."""
        old = self._pending.pop(path, None)
        if not group and old is not None:
            group = old.group
        if group:
            self._groups.setdefault(group, set()).add(path)
        self._pending[path] = _Pending(now + QUIET, entry, group)

    def _arm_touched(self, now: float) -> None:
        """Stat what the events touched; that stat must hold for the whole quiet time."""
        touched, self._touched = self._touched, {}
        for path, group in touched.items():
            found = self.location.stat(path)
            if found.ok:
                self._arm(path, found.value, now, group)
            else:
                log.debug("%s", found.message)  # the next listing reports it if it lasts

    def _settle(self, now: float) -> None:
        """Report the paths that stayed quiet and unchanged, moves in one go."""
        due = []
        for path, pending in self._pending.items():
            if pending.due > now:
                break
            due.append(path)
        if not due:
            return
        ready: dict[str, Entry | None] = {}
        for path in due:
            found = self.location.stat(path)
            if not found.ok:
                self._drop(path)
                log.debug("%s", found.message)
            elif found.value != self._pending[path].entry:
                self._arm(path, found.value, now)  # it moved without an event: wait again
            else:
                ready[path] = found.value
        changed: list[str] = []
        for path, entry in ready.items():
            group = self._pending[path].group
            if group and any(other in self._pending and other not in ready
                             for other in self._groups.get(group, ())):
                self._arm(path, entry, now)  # wait for the rest of its move
                continue
            self._drop(path)
            if entry is None:
                self._previous.pop(path, None)
            else:
                self._previous[path] = entry
            if path in self._revisit or self._reported.get(path) != entry:
                self._revisit.discard(path)
                if entry is None:
                    self._reported.pop(path, None)
                else:
                    self._reported[path] = entry
                changed.append(path)
        key = self.location.key
        for path in changed:
            self.events.put(WatchEvent(key, EventKind.CHANGED, path))

    def _drop(self, path: str) -> None:
        """``path`` is no longer pending; a group ends when none of its paths is."""
        pending = self._pending.pop(path)
        members = self._groups.get(pending.group)
        if members is not None and not any(other in self._pending for other in members):
            del self._groups[pending.group]
