"""Console and file logging: colored on a terminal, plain otherwise, or JSON lines.

Names that are not valid UTF-8 reach the log as strings with surrogate escapes; every
output here writes them as backslash escapes (``backslashreplace``), never failing.

A live status line (``filesync.progress``) may sit below the log on a terminal: the
console handler clears it before a record is written and draws it again after.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

_COLORS = {
    logging.DEBUG: "\033[2m",
    logging.WARNING: "\033[33m",
    logging.ERROR: "\033[31m",
    logging.CRITICAL: "\033[1;31m",
}
_ACTION_COLORS = {"copy": "\033[32m", "mkdir": "\033[32m", "delete": "\033[35m",
                  "conflict": "\033[1;33m"}
_RESET = "\033[0m"
#: Back to the start of the line, and erase it.
CLEAR_LINE = "\r\033[K"
LOG_FORMATS = ("text", "json")


class _ConsoleFormatter(logging.Formatter):
    def __init__(self, color: bool) -> None:
        super().__init__("%(asctime)s %(message)s", "%H:%M:%S")
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, rest = text.partition(" ")
            text = f"{stamp} {record.levelname.lower()}: {rest}"
        if not self.color:
            return text
        color = _COLORS.get(record.levelno)
        if color is None:
            color = _ACTION_COLORS.get(record.getMessage().split(" ", 1)[0], "")
        return f"{color}{text}{_RESET}" if color else text


def escaped(text: str) -> str:
    """``text`` with surrogate escapes (undecodable name bytes) as backslash text."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, message, and the action's fields.

    Action lines carry their fields in ``record.event`` (see ``Executor._announce``).
    Non-ASCII comes out as JSON's backslash-u escapes, so a line is valid JSON whatever the
    stream's encoding, and undecodable names as backslash text, as in the text log.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        moment = dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
        fields: dict[str, Any] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "message": escaped(record.getMessage()),
        }
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            for name, value in event.items():
                fields.setdefault(name, escaped(value) if isinstance(value, str) else value)
        if record.exc_info:
            fields["exception"] = escaped(self.formatException(record.exc_info))
        return json.dumps(fields, ensure_ascii=True, default=str)


class StatusLine:
    """One line redrawn in place at the bottom of a terminal, below the log."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.RLock()
        self._text = ""

    def show(self, text: str) -> None:
        """Draw ``text`` over whatever the line showed ("" leaves it empty)."""
        with self.lock:
            if text or self._text:
                self.stream.write(CLEAR_LINE + text)
                self.stream.flush()
            self._text = text

    @contextlib.contextmanager
    def lifted(self) -> Iterator[None]:
        """Clear the line for a log record written meanwhile, then draw it again."""
        with self.lock:
            text = self._text
            if text:
                self.show("")
            try:
                yield
            finally:
                if text:
                    self.show(text)


_status_line: StatusLine | None = None


def set_status_line(line: StatusLine | None) -> None:
    """The status line console records must step around (None: there is none)."""
    global _status_line  # noqa: PLW0603 - one console, one line, for the whole process
    _status_line = line


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records to the console; lifts the status line around each one."""

    def emit(self, record: logging.LogRecord) -> None:
        line = _status_line
        if line is None:
            super().emit(record)
            return
        with line.lifted():
            super().emit(record)


def use_color(stream: IO[str]) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set to anything (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def forgiving(stream: IO[str]) -> IO[str]:
    """``stream`` set to write unencodable characters as backslash escapes, never failing."""
    if isinstance(stream, io.TextIOWrapper) and stream.errors != "backslashreplace":
        # A detached or closed stream is left as it is.
        with contextlib.suppress(ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")
    return stream


def setup_logging(verbosity: int, log_file: str | None,
                  log_format: str = "text") -> logging.Logger:
    """Log to stderr (and to ``log_file``): -1 quiet (warnings), 0 actions, 1 debug.

    The file always gets the action lines, whatever the console shows. ``log_format``
    "json" writes both as JSON lines (``JsonFormatter``).
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {LOG_FORMATS}")
    as_json = log_format == "json"
    logger = logging.getLogger("filesync")
    for old in logger.handlers:
        old.close()
    logger.handlers.clear()
    logger.propagate = False
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logger.setLevel(min(level, logging.INFO) if log_file else level)
    forgiving(sys.stdout)
    console = _ConsoleHandler(forgiving(sys.stderr))
    console.setLevel(level)
    console.setFormatter(JsonFormatter() if as_json
                         else _ConsoleFormatter(use_color(sys.stderr)))
    logger.addHandler(console)
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8", errors="backslashreplace")
        handler.setFormatter(JsonFormatter() if as_json
                             else logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger
