"""The one place where the ZIP backend turns exceptions into typed ``Err`` values.

Kinds, as the engine reads them: the archive gone (deleted, moved, its disk unmounted) is
``UNAVAILABLE``; a damaged archive, or something at its path that is no ZIP archive, is
``INVALID``; an archive another program keeps rewriting is ``FAILED`` (the next round
tries again); any other ``OSError`` is sorted by its errno (``kind_of``: permission
denied is ``REFUSED``, a full disk ``NO_SPACE``).
"""

from __future__ import annotations

from pathlib import Path

from filesync.locations.localfile import NotRegularFileError
from filesync.locations.zip import format as zf
from filesync.result import Err, ErrorKind, kind_of


class Retry(Exception):
    """The archive changed on disk while it was being read or rewritten."""


class Errors:
    """Messages and kinds for the failures of one archive location."""

    def __init__(self, path: Path, display: str) -> None:
        self.path = path
        self.display = display

    def where(self, path: str) -> str:
        """``'path' in zip:...``, or the location alone for the archive as a whole."""
        return f"{path!r} in {self.display}" if path else self.display

    def missing(self) -> Err:
        """The archive is not there (a location that should exist): out of reach."""
        return Err(f"archive {self.path} is missing (deleted or moved away?); nothing is "
                   "concluded from it until it is back", ErrorKind.UNAVAILABLE)

    def invalid(self, exc: zf.ZipFormatError) -> Err:
        """The archive is damaged or is no ZIP archive."""
        return Err(f"{self.path} is not a valid ZIP archive: {exc}; filesync leaves it "
                   "untouched (check the path, or repair the archive, e.g. with 'zip -FF')",
                   ErrorKind.INVALID)

    def os_error(self, exc: OSError, action: str, path: str = "") -> Err:
        """An ``OSError`` of anything but the archive itself (a source, a staging file)."""
        return Err(f"cannot {action} {self.where(path)}: {exc.strerror or exc}", kind_of(exc))

    def of(self, exc: OSError | zf.ZipFormatError | Retry, action: str, path: str = "",
           after: str = "") -> Err:
        """Translate a failure met while reading or replacing the archive.

        ``action`` and ``path`` start the message (``cannot read 'a' in zip:...``);
        ``after`` is appended to it (what happens next).
        """
        if isinstance(exc, FileNotFoundError):
            return self.missing()
        if isinstance(exc, zf.ZipFormatError):
            return self.invalid(exc)
        if isinstance(exc, Retry):
            return Err(f"cannot {action} {self.where(path)}: another program kept changing "
                       f"the archive{after}", ErrorKind.FAILED)
        failed = self.os_error(exc, action, path)
        kind = ErrorKind.INVALID if isinstance(exc, NotRegularFileError) else failed.kind
        return Err(failed.message + after, kind)
