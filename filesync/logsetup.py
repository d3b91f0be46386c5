"""Console and file logging: colored on a terminal, plain otherwise.

Names that are not valid UTF-8 reach the log as strings with surrogate escapes; every
output here writes them as backslash escapes (``backslashreplace``), never failing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from typing import IO

_COLORS = {
    logging.DEBUG: "\033[2m",
    logging.WARNING: "\033[33m",
    logging.ERROR: "\033[31m",
    logging.CRITICAL: "\033[1;31m",
}
_ACTION_COLORS = {"copy": "\033[32m", "mkdir": "\033[32m", "delete": "\033[35m",
                  "conflict": "\033[1;33m"}
_RESET = "\033[0m"


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


def setup_logging(verbosity: int, log_file: str | None) -> logging.Logger:
    """Log to stderr (and to ``log_file``): -1 quiet (warnings), 0 actions, 1 debug.

    The file always gets the action lines, whatever the console shows.
    """
    logger = logging.getLogger("filesync")
    for old in logger.handlers:
        old.close()
    logger.handlers.clear()
    logger.propagate = False
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logger.setLevel(min(level, logging.INFO) if log_file else level)
    forgiving(sys.stdout)
    console = logging.StreamHandler(forgiving(sys.stderr))
    console.setLevel(level)
    console.setFormatter(_ConsoleFormatter(use_color(sys.stderr)))
    logger.addHandler(console)
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8", errors="backslashreplace")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger
