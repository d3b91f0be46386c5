"""The live progress line on a terminal: files, bytes, rate, ETA and the files in flight.

Drawn in place (a carriage return) below the log while a round is applied, cleared when
it ends; the console log handler lifts it around every record (``logsetup.StatusLine``).
When the stream is not a terminal nothing of it is ever written: logs stay line-based.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from types import TracebackType
from typing import IO, Any

from filesync.logsetup import StatusLine, escaped, set_status_line
from filesync.transfers import Progress, format_bytes, format_rate

#: Seconds between redraws.
REDRAW_EVERY = 0.25
#: Columns assumed when the terminal does not say.
DEFAULT_WIDTH = 80

log = logging.getLogger("filesync")


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def terminal_width(stream: IO[str]) -> int:
    """Columns of the terminal ``stream`` writes to (``COLUMNS`` wins, as in ``shutil``)."""
    if not os.environ.get("COLUMNS"):
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        if columns > 0:
            return columns
    columns = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return columns if columns > 0 else DEFAULT_WIDTH


def format_eta(seconds: float | None) -> str:
    """``0:07``, ``12:30``, ``1:02:03``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, its middle replaced by ``...`` when too long."""
    if len(text) <= width:
        return text
    if width <= 3:
        return text[-width:] if width > 0 else ""
    head = (width - 3) // 2
    return text[:head] + "..." + text[len(text) - (width - 3 - head):]


def status_text(snapshot: dict[str, Any], width: int) -> str:
    """The progress line for a ``Progress.snapshot()``, at most ``width - 1`` columns.

    One column is left free: a line filling the terminal would wrap, and the carriage
    return would then clear only its second half.
    """
    room = max(10, width - 1)
    head = (f"{snapshot['files_done']}/{snapshot['files_total']} files  "
            f"{format_bytes(snapshot['bytes_done'])}/{format_bytes(snapshot['bytes_total'])}  "
            f"{format_rate(snapshot['rate'])}  ETA {format_eta(snapshot['eta'])}")
    # Undecodable bytes as backslash text, control characters (a newline) as "?".
    names = ["".join(c if c.isprintable() else "?" for c in escaped(str(item["path"])))
             for item in snapshot["in_flight"]]
    left = room - len(head) - 2
    if names and left >= 8:
        each = max(5, (left - 2 * (len(names) - 1)) // len(names))
        shown = ", ".join(shorten(name, each) for name in names)
        head = f"{head}  {shorten(shown, left)}"
    return shorten(head, room)


class ProgressDisplay:
    """Redraws one status line about 4 times a second while a round is applied.

    Only when ``stream`` is a terminal (and ``enabled``); otherwise ``start`` does
    nothing. Use it as a context manager, or call ``start`` and ``stop``.
    """

    def __init__(self, progress: Progress, stream: IO[str], enabled: bool = True) -> None:
        self.progress = progress
        self.stream = stream
        self.active = enabled and _is_terminal(stream)
        self._line = StatusLine(stream)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start redrawing (on a terminal only)."""
        if not self.active or self._thread is not None:
            return
        set_status_line(self._line)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="filesync-progress",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop redrawing, wait for the thread, and clear the line."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join()
        set_status_line(None)
        self._line.show("")

    def __enter__(self) -> ProgressDisplay:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.wait(REDRAW_EVERY):
            self.redraw()

    def redraw(self) -> None:
        """Draw the line for the current snapshot; clear it when no round is applied."""
        snapshot = self.progress.snapshot()
        text = "" if snapshot is None else status_text(snapshot, terminal_width(self.stream))
        try:
            self._line.show(text)
        except (OSError, ValueError) as exc:  # the terminal went away: stop drawing
            self._stopping.set()
            set_status_line(None)
            log.debug("the progress line is no longer drawn: %s", exc)
