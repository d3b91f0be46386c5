"""Server paths of an FTP location: the synced root, and filesync's own reserved folder.

By default ``.filesync/`` (marker, versions) lives inside the synced folder, like in every
location. With ``?reserved=PATH`` it lives in PATH instead, outside the synced tree, so a
web server publishing that tree never publishes old versions.
"""

from __future__ import annotations

import posixpath

from filesync.model import RESERVED_DIR


def resolve(home: str, path: str) -> str:
    """A location-string path (relative to the login folder ``home``) on the server."""
    joined = posixpath.normpath(posixpath.join(home, path.lstrip("/")))
    return "/" if joined == "//" else joined


def is_reserved_path(path: str) -> bool:
    """True for ``.filesync`` and everything below it."""
    return path == RESERVED_DIR or path.startswith(RESERVED_DIR + "/")


def server_path(root: str, reserved_root: str | None, path: str) -> str:
    """The server path of the relative ``path`` (the root for "").

    With a ``reserved_root``, ``.filesync`` is that folder and ``.filesync/x`` is below it.
    """
    if reserved_root is not None and is_reserved_path(path):
        return (reserved_root.rstrip("/") + path[len(RESERVED_DIR):]) or "/"
    if not path:
        return root
    return root.rstrip("/") + "/" + path


def folders_leading_to(base: str, target: str) -> list[str]:
    """The folders to create, outermost first, to reach ``target`` from ``base``.

    Starts below ``base`` when ``target`` lies inside it, otherwise at ``/``.
    """
    base = base.rstrip("/")
    if not (target + "/").startswith(base + "/"):
        base = ""
    parts = [part for part in target[len(base):].split("/") if part]
    return [base + "/" + "/".join(parts[:count]) for count in range(1, len(parts) + 1)]
