"""Which names a ZIP archive can hold faithfully, for every tool that reads it later."""

from __future__ import annotations

import re

from filesync.locations.zip import format as zf
from filesync.model import unsafe_reason

_DRIVE = re.compile(r"^[A-Za-z]:")


def zip_name_problem(path: str) -> str | None:
    """Why a member named ``path`` cannot be written to an archive, or None when it can.

    A backslash is read as a folder separator and a drive-letter prefix as an absolute
    path by other ZIP tools, and a name that is not valid Unicode (a local file name in
    another encoding, held as surrogate escapes) cannot be stored as what it is.
    """
    if "\\" in path:
        return ("the name holds a backslash, which other ZIP tools read as a folder "
                "separator; rename the file to sync it into an archive")
    if _DRIVE.match(path):
        return ("the name starts with a drive letter ('C:'), which ZIP tools read as an "
                "absolute path; rename the file to sync it into an archive")
    reason = unsafe_reason(path)
    if reason:
        return f"unsafe name ({reason})"
    try:
        zf.encode_name(path)
    except UnicodeEncodeError:
        return ("the name is not valid Unicode (a file name in another encoding), so a "
                "ZIP archive cannot store it faithfully; rename the file")
    return None
