"""filesync: keep any number of storage locations identical, losing nothing on the way.

The Python API (see ``filesync.api`` and the README's "Python API")::

    import filesync

    report = filesync.sync(["folder:photos", "zip:backup.zip"], exclude=["*.tmp"])
    with filesync.watch(["folder:a", "folder:b"], interval=1) as running:
        print(running.status()["engine"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from filesync.api import FilesyncError, Report, Watch, status, sync, watch

__all__ = ["FilesyncError", "Report", "Watch", "__version__", "status", "sync", "watch"]
#: Loaded on first use, so importing one module (the planner, say) loads no others.
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> object:
    """The API's names, imported from ``filesync.api`` when first asked for."""
    if name in _API:
        from filesync import api  # noqa: PLC0415 - lazily, see _API

        return getattr(api, name)
    raise AttributeError(f"module 'filesync' has no attribute {name!r}")
