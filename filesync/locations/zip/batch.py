"""A batch: the changes collected for one rewrite, kept so they can be applied again."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from filesync.locations.zip.archive import Key
from filesync.locations.zip.stage import Slot
from filesync.locations.zip.view import Item, Look, Problem, View
from filesync.model import Entry

log = logging.getLogger("filesync")


@dataclass(frozen=True)
class Op:
    """One requested change, kept so it can be applied again to a newer archive."""

    kind: str
    path: str
    expect: Look
    item: Item | None = None
    new: str = ""
    expect_new: Look = (None, None)


@dataclass
class Batch:
    """Changes collected until the batch ends; ``view`` is the archive they will produce."""

    ops: list[Op] = field(default_factory=list)
    view: View | None = None
    key: Key | None = None
    slots: list[Slot] = field(default_factory=list)
    free: list[Slot] = field(default_factory=list)
    #: Changes dropped because another program changed their member meanwhile (path ->
    #: message); see ``ZipLocation._batch_refusals``.
    refused: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        """Remove the staging files."""
        for slot in self.slots:
            try:
                slot.close()
            except OSError as exc:
                log.warning("cannot remove temporary file %s: %s", slot.path,
                            exc.strerror or exc)
        self.slots.clear()
        self.free.clear()


def apply(view: View, op: Op) -> tuple[Entry | None, Problem | None]:
    """Apply ``op`` to ``view``: (entry now at the target, None) or (None, why not)."""
    if op.kind == "put":
        assert op.item is not None
        problem = view.put(op.item, op.new)
        return (None, problem) if problem else (op.item.entry(), None)
    if op.kind == "move":
        moved, problem = view.move(op.path, op.new)
        return (None, problem) if moved is None else (moved.entry(), None)
    if op.kind == "delete":
        return None, view.delete(op.path)
    if op.kind == "mkdir":
        problem = view.mkdir(op.path)
        return (None, problem) if problem else (Entry(op.path, True), None)
    return None, view.rmdir(op.path)
