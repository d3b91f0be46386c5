"""Which names an FTP server can carry faithfully, checked before anything is sent.

Tested against pyftpdlib and pure-ftpd: CR and LF end a command (anything after them would
be a command of its own) and NUL ends a C string; pure-ftpd stores the other control
characters (tab, ESC, DEL, ...) and trailing spaces as ``_`` and refuses backslashes (553),
all while answering that the upload worked; our own listing skips names with control
characters or backslashes, so such a file would read as "deleted on the server". Leading
spaces, ``*``, ``?``, ``[``, ``%``, ``;``, non-breaking spaces and other Unicode are kept
exactly by both servers, so they are allowed.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unsendable(path: str) -> str | None:
    """Why ``path`` cannot be written to an FTP server as it is, or None when it can.

    The message is a sentence fragment without line breaks (the name itself is not in it).
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return ("the name is not valid Unicode (a file name that could not be decoded); "
                "rename it to send it to an FTP server")
    control = _CONTROL.search(path)
    if control is not None:
        return (f"the name contains the control character U+{ord(control.group()):04X}, "
                "which FTP servers cannot carry (line breaks would end the command, other "
                "control characters are dropped or replaced); rename it")
    if "\\" in path:
        return ("the name contains a backslash, which FTP servers refuse or take as a "
                "folder separator; rename it")
    if any(part.endswith(" ") for part in path.split("/")):
        return ("a name ending in a space is stored under another name by FTP servers "
                "(pure-ftpd replaces the space with '_'); rename it")
    return None


def unsafe_command_argument(path: str) -> str | None:
    """Why ``path`` may not even be looked up on a server (would break the command line)."""
    if any(char in path for char in "\r\n\x00"):
        return "line breaks cannot be sent to an FTP server"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    return None
