"""filesync: keep any number of storage locations identical, losing nothing on the way.

The Python API (see ``filesync.api`` and the README's "Python API")::

    import filesync

    report = filesync.sync(["folder:photos", "zip:backup.zip"], exclude=["*.tmp"])
    with filesync.watch(["folder:a", "folder:b"], interval=1) as running:
        print(running.status()["engine"])
"""

__version__ = "0.1.0"

# After __version__: the command line (imported by the API) reads it from here.
from filesync.api import FilesyncError, Report, Watch, status, sync, watch

__all__ = ["FilesyncError", "Report", "Watch", "__version__", "status", "sync", "watch"]
