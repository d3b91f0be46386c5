"""Opening a user's local file safely: shared by the folder and ZIP backends."""

from __future__ import annotations

import errno
import os
import stat as st

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class NotRegularFileError(OSError):
    """A path expected to be a regular file is a FIFO, device, socket or folder."""


def open_regular(path: str | os.PathLike[str], follow: bool = False) -> int:
    """Open a regular file for reading; anything else is refused, never waited on.

    The open does not block (a FIFO put where a file was would otherwise wait forever
    for a writer) and, unless ``follow``, does not follow a symlink at the name; the
    descriptor is checked with ``fstat`` and then made blocking for normal reads.
    Raises ``OSError`` (``NotRegularFileError`` for the wrong kind of file).
    """
    flags = os.O_RDONLY | _NONBLOCK | _CLOEXEC | (0 if follow else _NOFOLLOW)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not st.S_ISREG(mode):
            kind = ("a FIFO" if st.S_ISFIFO(mode) else "a folder" if st.S_ISDIR(mode)
                    else "a device or socket")
            raise NotRegularFileError(errno.EINVAL, f"not a regular file ({kind}); it is not "
                                      "read. Put a regular file there, or exclude the path")
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd
