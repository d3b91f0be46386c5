"""Folders on S3, which has none: ``path/`` objects, folders kept when emptied, claims.

A folder is its zero-byte ``path/`` object or implied by any key below it. Removing the
last entry of a folder without its own object would remove the folder too, so it gets one
first (``lone_parent`` / ``keep``). A claim (``claim``, the hub lease's atomic step) is an
``If-None-Match: *`` PUT of the file object ``path/CLAIM_NAME``: SeaweedFS lets several
racing conditional PUTs of a ``x/`` key succeed, but never of a file key.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

from filesync.locations.s3.client import S3Client, S3Error
from filesync.locations.s3.scan import CLAIM_NAME
from filesync.result import ErrorKind

log = logging.getLogger("filesync")

#: ``remove``'s reasons for not removing a folder.
NOT_THERE = "it is not there"
NOT_EMPTY = "it is not empty"


class Folders:
    """The folder objects of one location (keys made by ``object_key``)."""

    def __init__(self, object_key: Callable[[str], str], display: str,
                 conditional: Callable[[S3Client], bool]) -> None:
        self.object_key = object_key
        self.display = display
        #: Whether the server honours conditional requests (probed once by the location).
        self.conditional = conditional
        #: Folders known to have their own ``path/`` object (they outlive their contents).
        self.explicit: set[str] = set()

    def lone_parent(self, client: S3Client, path: str) -> str | None:
        """The parent of ``path`` if removing ``path`` would remove that folder too.

        That is: ``path`` (with what is below it, at most two objects) is all it holds, and
        the folder has no object of its own.
        """
        parent = path.rpartition("/")[0]
        if not parent or parent in self.explicit:
            return None
        prefix = self.object_key(parent) + "/"
        keys = {info.key for info in itertools.islice(client.list_objects(prefix), 3)}
        if prefix in keys:
            self.explicit.add(parent)
            return None
        key = self.object_key(path)
        alone = keys and all(found == key or found.startswith(key + "/") for found in keys)
        return parent if alone else None

    def keep(self, client: S3Client, folder: str | None) -> None:
        """Give ``folder`` its own ``folder/`` object, after its last entry was removed.

        Not before: SeaweedFS then refuses a later ``If-None-Match`` create of that entry.
        """
        if folder is not None:
            client.put(self.object_key(folder) + "/", b"", 0)
            self.explicit.add(folder)

    def make(self, client: S3Client, path: str) -> None:
        """Put the zero-byte ``path/`` object (its parents are implied by it)."""
        client.put(self.object_key(path) + "/", b"", 0)
        self.explicit.add(path)

    def remove(self, client: S3Client, path: str) -> str | None:
        """Remove an empty folder's objects (``path/`` and its claim); else say why not."""
        prefix = self.object_key(path) + "/"
        below = {info.key for info in itertools.islice(client.list_objects(prefix), 3)}
        if not below:
            return NOT_THERE
        if not below <= {prefix, prefix + CLAIM_NAME}:
            return NOT_EMPTY
        lone = self.lone_parent(client, path)
        for key in sorted(below, reverse=True):
            client.delete(key)
        self.explicit.discard(path)
        self.keep(client, lone)
        return None

    def claim(self, client: S3Client, path: str) -> bool:
        """Create the folder ``path`` only if nothing is there; True when this call did.

        A folder or file that was there before (made otherwise) is something there too:
        the claim is then taken back. Where the server ignores conditions: a look, then a
        PUT (not atomic; said at debug level).
        """
        prefix = self.object_key(path) + "/"
        claim = prefix + CLAIM_NAME
        if not self.conditional(client):
            log.debug("%s: claiming %r by a look-up and a write (not atomic: the server "
                      "ignores If-None-Match)", self.display, path)
            if (next(iter(client.list_objects(prefix)), None) is not None
                    or client.head(prefix[:-1]) is not None):
                return False
            client.put(claim, b"", 0)
            return True
        try:
            client.put(claim, b"", 0, if_none_match=True)
        except S3Error as exc:
            if exc.kind is ErrorKind.CHANGED:
                return False
            raise
        below = [info.key for info in itertools.islice(client.list_objects(prefix), 2)]
        if below != [claim] or client.head(prefix[:-1]) is not None:
            client.delete(claim)
            return False
        return True
