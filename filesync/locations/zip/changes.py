"""Changes to an archive: the open batch, look-ups that see it, and the rewrite landing it.

Changes are collected per batch (one engine round); ``end`` writes a complete new archive
beside the old one, fsyncs it, checks it, and renames it over the old one. Outside a batch
every change is its own rewrite.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as st
import threading
from collections.abc import Callable, Iterable

from filesync.locations.base import Readable, changed_since_planned
from filesync.locations.zip import format as zf
from filesync.locations.zip.archive import ATTEMPTS, Archive, Cached, key
from filesync.locations.zip.batch import Batch, Op, apply
from filesync.locations.zip.errors import Errors, Retry
from filesync.locations.zip.stage import Slot, Staged, stage
from filesync.locations.zip.temps import CLOEXEC, Temps, lock_file
from filesync.locations.zip.view import Item, Look, View
from filesync.locations.zip.writer import Writer, fsync_folder, moved_to, verified, write_archive
from filesync.model import ANY, Entry, Unchecked, still_holds, temp_name
from filesync.result import Err, ErrorKind, Ok, Result

log = logging.getLogger("filesync")

_Failure = (OSError, zf.ZipFormatError, Retry)


class Changes:
    """The batch being collected for one archive, and the rewrites that land changes."""

    def __init__(self, archive: Archive, temps: Temps, errors: Errors,
                 owner: Callable[[], str]) -> None:
        self.archive = archive
        self.temps = temps
        self.errors = errors
        #: The owner id for temporary names (the location's, which the engine may set).
        self.owner = owner
        self.folder = archive.path.parent
        self.lock = threading.RLock()
        self._batch: Batch | None = None
        self._refused: dict[str, str] = {}

    # ----- the batch -----------------------------------------------------------------------
    def begin(self) -> Result[None]:
        """Collect the following changes for one rewrite at ``end``."""
        with self.lock:
            if self._batch is None:
                self._batch = Batch()
        return Ok(None)

    def end(self) -> Result[None]:
        """Write every change of the batch in one new archive and rename it into place."""
        with self.lock:
            batch, self._batch = self._batch, None
            self._refused = {}
            if batch is None:
                return Ok(None)
            try:
                return self._commit(batch) if batch.ops else Ok(None)
            finally:
                self._refused = dict(batch.refused)
                batch.close()

    def refusals(self) -> dict[str, str]:
        """Changes of the last batch that did not land (path -> why), though staged fine."""
        with self.lock:
            return dict(self._refused)

    def close(self) -> None:
        """Drop an unfinished batch (its staged data was never part of the archive)."""
        with self.lock:
            batch, self._batch = self._batch, None
        if batch is not None:
            batch.close()

    def staged(self, path: str) -> Item | None:
        """The file ``path`` as the open batch holds it, if the batch staged new content."""
        with self.lock:
            batch = self._batch
            item = batch.view.file(path) if batch and batch.view else None
            return item if item is not None and item.staged is not None else None

    # ----- looking -------------------------------------------------------------------------
    def look_up(self, paths: Iterable[str]) -> dict[str, Result[Entry | None]]:
        """The entries at ``paths`` now: from the batch being built, or the archive on disk."""
        with self.lock:
            batch = self._batch
            if batch is not None and batch.view is not None:
                try:
                    view = self._view(batch)
                except _Failure as exc:
                    failed = self.errors.of(exc, "read")
                    return {path: failed for path in paths}
                return {path: self._looked(path, view.look(path)) for path in paths}
        try:
            snapshot = self.archive.snapshot()
        except _Failure as exc:
            failed = self.errors.of(exc, "read")
            return {path: failed for path in paths}
        return {path: self._looked(path, snapshot.look(path)) for path in paths}

    def _looked(self, path: str, look: Look) -> Result[Entry | None]:
        entry, problem = look
        if problem:
            return Err(f"cannot read {self.errors.where(path)}: {problem}", ErrorKind.INVALID)
        return Ok(entry)

    def _view(self, batch: Batch) -> View:
        """The archive as it is on disk now, with the batch's changes applied.

        Built at the batch's first use; when another program has changed the archive
        since, the batch is applied again to the newer one (``_replay``), so re-checks
        before a change always look at what is really there.
        """
        if batch.view is not None and batch.key == key(os.stat(self.archive.path)):
            return batch.view
        info, directory = self.archive.current()
        batch.view = (self.archive.base_view(directory).copy() if batch.view is None
                      else self._replay(batch, directory))
        batch.key = key(info)
        return batch.view

    # ----- changing ------------------------------------------------------------------------
    def change(self, op: Op, action: str, where: str, own: Batch | None = None,
               planned: Entry | Unchecked | None = ANY) -> Result[Entry | None]:
        """Apply ``op`` to the current batch, or as its own rewrite outside a batch.

        ``action`` and ``where`` name the change in messages ("cannot delete 'x' in
        zip:..."). Unless ``planned`` is ``ANY``, ``op.path`` must still hold it (see
        ``still_holds``); otherwise the result is a ``CHANGED`` error.
        """
        with self.lock:
            batch = self._batch if own is None else own
            single = batch is None
            if batch is None:
                batch = Batch()
            try:
                view = self._view(batch)
                expect = view.look(op.path)
                if planned is not ANY and (expect[1] or not still_holds(expect[0], planned)):
                    return Err(changed_since_planned(op.path, self.errors.display),
                               ErrorKind.CHANGED)
                expect_new = view.look(op.new) if op.new else (None, None)
                entry, problem = apply(view, op)
                if problem:
                    return Err(f"cannot {action} {self.errors.where(where)}: {problem.why}",
                               problem.kind)
                batch.ops.append(Op(op.kind, op.path, expect, op.item, op.new, expect_new))
                if single or own is not None:
                    committed = self._commit(batch)
                    if not committed.ok:
                        return committed
                    if op.path in batch.refused:
                        return Err(batch.refused[op.path], ErrorKind.CHANGED)
                return Ok(entry)
            except _Failure as exc:
                return self.errors.of(exc, action, where)
            finally:
                if single:
                    batch.close()

    def write(self, path: str, source: Readable, mtime_ns: int, keep_old_as: str,
              expect: Entry | Unchecked | None, mode: int) -> Result[Entry | None]:
        """Stage ``source`` as ``path`` in the batch (or land it alone outside a batch)."""
        with self.lock:
            batch = self._batch
            own = None if batch is not None else Batch()
            holder = batch if batch is not None else own
            assert holder is not None
            try:
                slot = (holder.free.pop() if holder.free
                        else Slot(self.folder, self.temps.live, self.owner()))
            except OSError as exc:
                if own is not None:
                    own.close()
                return self.errors.of(exc, "write", path)
            if slot not in holder.slots:
                holder.slots.append(slot)
        try:
            try:
                offset = slot.size
                method, crc, csize, usize = stage(source, slot)
            finally:
                with self.lock:
                    holder.free.append(slot)
        except OSError as exc:
            if own is not None:
                own.close()
            return self.errors.os_error(exc, "write", path)
        except BaseException:
            if own is not None:
                own.close()
            raise
        if not mode:  # a source without permissions: keep those of the member replaced
            found = self.look_up([path])[path]
            mode = found.value.mode if found.ok and found.value is not None else 0
        central = zf.new_central(path, False, mtime_ns, method, crc, csize, usize, mode)
        item = Item(path, False, central, zf.member_mtime_ns(central), None, None, False,
                    Staged(slot, offset))
        with self.lock:
            if own is None and self._batch is not batch:
                return Err(f"cannot write {self.errors.where(path)}: the round ended before "
                           "the file was read; it will be copied again", ErrorKind.FAILED)
            try:
                return self.change(Op("put", path, (None, None), item, keep_old_as),
                                   "write", path, own, expect)
            finally:
                if own is not None:
                    own.close()

    # ----- the rewrite ---------------------------------------------------------------------
    def _replay(self, batch: Batch, directory: zf.Directory) -> View:
        """Apply the batch again to a newer archive, keeping changes made by others.

        A change whose member (or target name) no longer looks as it did when the change
        was staged is dropped and recorded in ``batch.refused``: the other program's
        version stays, and the next round sees it as a change.
        """
        display = self.errors.display
        view = self.archive.base_view(directory).copy()
        kept: list[Op] = []
        for op in batch.ops:
            now = view.look(op.path)
            now_new = view.look(op.new) if op.new else (None, None)
            if now != op.expect or now_new != op.expect_new:
                log.warning("%s in %s was changed by another program while filesync updated "
                            "the archive; that version is kept", op.path, display)
                batch.refused[op.path] = changed_since_planned(op.path, display)
                continue
            _, problem = apply(view, op)
            if problem:
                log.warning("cannot apply the change of %s to %s any more: %s", op.path,
                            display, problem.why)
                batch.refused[op.path] = (f"cannot change {op.path!r} in {display} any "
                                          f"more: {problem.why}; it will be looked at again")
                continue
            kept.append(op)
        batch.ops = kept
        return view

    def _commit(self, batch: Batch) -> Result[None]:
        """Write the batch as one new archive and rename it over the old one."""
        again = "; the archive is unchanged and the changes will be tried again"
        for _attempt in range(ATTEMPTS):
            try:
                src = self.archive.open()
            except OSError as exc:
                return self.errors.of(exc, "read")
            try:
                info = os.fstat(src)
                directory = self.archive.directory(src, info)
                view = batch.view
                if view is None or batch.key != key(info):
                    view = self._replay(batch, directory)
                if not view.changed:
                    return Ok(None)
                view.ensure_not_empty()
                self._rewrite(src, info, directory, view.live())
                return Ok(None)
            except Retry:
                continue
            except (OSError, zf.ZipFormatError) as exc:
                return self.errors.of(exc, "update", after=again)
            finally:
                os.close(src)
        return self.errors.of(Retry(), "update", after=again)

    def _rewrite(self, src: int, info: os.stat_result, directory: zf.Directory,
                 items: list[Item]) -> None:
        """Write ``items`` to a temporary archive, check it, and rename it into place."""
        path = self.archive.path
        temp = self.folder / temp_name("x", self.owner())
        dst = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | CLOEXEC,
                      st.S_IMODE(info.st_mode))
        self.temps.live.add(temp.name)
        replaced = False
        try:
            lock_file(dst)
            out = Writer(dst)
            members = write_archive(out, src, directory, items)
            os.fsync(dst)
            written = os.fstat(dst)
            try:
                new = verified(dst, written.st_size, directory, members, items)
            except zf.ZipFormatError as exc:
                raise OSError(errno.EIO, f"the new archive did not read back as written "
                              f"({exc})") from exc
            if key(os.fstat(src)) != key(info) or key(os.stat(path)) != key(info):
                raise Retry
            os.replace(temp, path)
            replaced = True
            fsync_folder(self.folder)
            now = os.stat(path)
            cached = None
            if now.st_ino == written.st_ino:
                cached = Cached(key(now), new, View.of_items(
                    [moved_to(item, member) for item, member in zip(items, members,
                                                                    strict=True)]))
            self.archive.remember(cached)
        finally:
            os.close(dst)
            self.temps.live.discard(temp.name)
            if not replaced:
                try:
                    os.unlink(temp)
                except OSError as exc:
                    log.warning("cannot remove temporary file %s: %s", temp, exc.strerror or exc)
