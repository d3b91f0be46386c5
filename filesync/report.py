"""What the command line shows of a round: the dry-run plan and the closing summary."""

from __future__ import annotations

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
    """One line for the log: what a run did ("1 conflict", "2 conflicts")."""
    return (f"{stats.copied} copied, {stats.renamed} renamed, {stats.deleted} deleted, "
            f"{counted(stats.folders_made, 'folder')} made, "
            f"{counted(stats.folders_removed, 'folder')} removed, "
            f"{counted(stats.conflicts, 'conflict')}, {counted(stats.errors, 'error')}, "
            f"{stats.skipped} skipped, {size(stats.bytes_moved)} moved, "
            f"{counted(stats.versions_kept, 'old version')} kept")


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
