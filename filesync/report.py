"""What the command line shows of a round: the dry-run plan and the closing summary."""

from __future__ import annotations

import dataclasses
import sys
from typing import TextIO

from filesync.executor import Stats
from filesync.planner import Op, Plan


def print_plan(current: Plan, out: TextIO | None = None) -> None:
    """Print what a round would do (``--dry-run``), one line per action."""
    out = out or sys.stdout
    actions = current.actions()
    for decision in current.decisions:
        for loser in decision.conflicts:
            print(f"conflict {decision.path}: the edit in {loser} would lose to "
                  f"{decision.winner}", file=out)
    for action in actions:
        if action.op is Op.COPY:
            print(f"copy {action.path}  {action.source} -> {action.target}", file=out)
        elif action.op is Op.MKDIR:
            print(f"mkdir {action.path}  in {action.target}", file=out)
        elif action.op is Op.RENAME:
            print(f"rename {action.from_path} -> {action.path}  in {action.target}", file=out)
        else:
            suffix = "/" if action.op is Op.RMDIR else ""
            print(f"delete {action.path}{suffix}  in {action.target}", file=out)
    print(f"dry run: {len(actions)} actions planned, nothing changed", file=out)


def summary(stats: Stats) -> str:
    """One line for the log: what a run did ("1 conflict", "2 conflicts").

    Refusals, unreachable locations and unresolved conflicts are named when there are any.
    """
    line = (f"{stats.copied} copied, {stats.renamed} renamed, {stats.deleted} deleted, "
            f"{counted(stats.folders_made, 'folder')} made, "
            f"{counted(stats.folders_removed, 'folder')} removed, "
            f"{counted(stats.conflicts, 'conflict')}, {counted(stats.errors, 'error')}, "
            f"{stats.skipped} skipped, {size(stats.bytes_moved)} moved, "
            f"{counted(stats.versions_kept, 'old version')} kept")
    return line + "".join(", " + part for part in _troubles(stats))


def _troubles(stats: Stats) -> list[str]:
    parts = []
    if stats.refusals:
        parts.append(f"{counted(stats.refusals, 'round')} refused by the mass-delete guard")
    if stats.unavailable:
        parts.append(f"{counted(stats.unavailable, 'location')} unavailable")
    if stats.unresolved:
        parts.append(f"{counted(stats.unresolved, 'conflict')} unresolved")
    return parts


def brief(stats: Stats) -> str:
    """Only what happened ("2 copied, 1 deleted, 1.2 MiB moved"), for watch mode's rounds."""
    parts = [f"{value} {label}" for value, label in (
        (stats.copied, "copied"), (stats.renamed, "renamed"), (stats.deleted, "deleted"))
        if value]
    parts += [f"{counted(value, noun)} {verb}" for value, noun, verb in (
        (stats.folders_made, "folder", "made"), (stats.folders_removed, "folder", "removed"),
        (stats.versions_kept, "old version", "kept")) if value]
    parts += [counted(value, noun) for value, noun in (
        (stats.conflicts, "conflict"), (stats.errors, "error")) if value]
    parts += _troubles(stats)
    if stats.bytes_moved:
        parts.append(f"{size(stats.bytes_moved)} moved")
    return ", ".join(parts) or "nothing to do"


def difference(after: Stats, before: Stats) -> Stats:
    """What happened between two readings of a run's counters (one round's share).

    ``skipped`` and ``unresolved`` are levels, not counters: they keep ``after``'s value.
    """
    levels = {"skipped", "unresolved"}
    return Stats(**{item.name: getattr(after, item.name) - (
        0 if item.name in levels else getattr(before, item.name))
        for item in dataclasses.fields(Stats)})


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, in the plural unless the count is one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def size(count: int) -> str:
    """A byte count for people (``512 B``, ``3.4 MiB``)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
