"""One ListObjectsV2 walk of a prefix: files (dated by ``date_files``), folders, temporaries.

Keys ending in ``/`` are folders of their own; every folder on the way to a key is a folder
too (S3 has no folders, other tools imply them). Modification times are not here: the
listing has none (see ``S3Location.scan``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from filesync.locations.s3.client import ObjectInfo, S3Client, S3Error
from filesync.locations.s3.mtimes import MtimeCache, Seen, mtime_of
from filesync.model import TEMP_NAME, Entry, Listing
from filesync.result import ErrorKind

#: Threads that look up modification times a scan cannot take from the cache.
LOOKUP_THREADS = 4

#: The object that claims its folder (``S3Location.claim_dir``); never listed as a file.
CLAIM_NAME = ".filesync-claim"


@dataclass
class Walked:
    """What the walk found: the listing with its folders (files still to be dated)."""

    listing: Listing = field(default_factory=Listing)
    #: Path -> the listed object, for every file not below a skipped folder.
    files: dict[str, ObjectInfo] = field(default_factory=dict)
    #: Folders that have their own ``path/`` object.
    explicit: set[str] = field(default_factory=set)
    #: Every key below the prefix (for pruning the cache).
    keys: set[str] = field(default_factory=set)


def walk(client: S3Client, base: str, skip_dir: Callable[[str], bool]) -> Walked:
    """List every key below ``base`` (raises ``S3Error``).

    Folders ``skip_dir`` refuses are left out with everything below them.
    """
    walked = Walked()
    listing = walked.listing
    shown: dict[str, bool] = {"": True}
    folders: set[str] = set()

    def visible(folder: str) -> bool:
        """True when ``folder`` is listed: neither it nor a folder above it is skipped."""
        known = shown.get(folder)
        if known is None:
            parent = folder.rpartition("/")[0]
            known = shown[folder] = visible(parent) and not skip_dir(folder)
            if known:
                folders.add(folder)
        return known

    for info in client.list_objects(base):
        walked.keys.add(info.key)
        rel = info.key[len(base):]
        if not rel or not info.key.startswith(base):
            continue  # the prefix's own folder object
        if rel.endswith("/"):
            path = rel[:-1]
            walked.explicit.add(path)
            if path:
                visible(path)
            continue
        parent, _, name = rel.rpartition("/")
        if not visible(parent):
            continue
        if name == CLAIM_NAME:
            continue  # the folder it claims is listed (implied by it)
        if TEMP_NAME.match(name):
            listing.temps.append(rel)
        else:
            walked.files[rel] = info
    for path in sorted(folders & walked.files.keys()):
        # Both the object "a" and keys below "a/": neither can be synced as it is.
        del walked.files[path]
        folders.discard(path)
        listing.skip(path, "the bucket holds a file and a folder of this name")
    listing.entries.update((path, Entry(path, True)) for path in sorted(folders))
    return walked


def date_files(client: S3Client, walked: Walked,
               cache: MtimeCache) -> tuple[str, S3Error] | None:
    """Add the walked files to the listing with their modification times.

    A time comes from the cache when it holds the listed ETag, size and LastModified,
    else from a HEAD each, several at once.

    Returns the path and error of a look-up that found the server unreachable (the whole
    scan fails then); other failures make that path blind (``Listing.skip``).
    """
    listing = walked.listing
    misses: list[tuple[str, ObjectInfo]] = []
    for path, info in walked.files.items():
        mtime = cache.lookup(info.key, info.etag, info.size, info.last_modified_ns)
        if mtime is None:
            misses.append((path, info))
        else:
            listing.entries[path] = Entry(path, False, info.size, mtime)
    if not misses:
        return None

    def head(item: tuple[str, ObjectInfo]) -> ObjectInfo | S3Error | None:
        try:
            return client.head(item[1].key)
        except S3Error as exc:
            return exc

    with ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="s3-head") as pool:
        for (path, _listed), found in zip(misses, pool.map(head, misses), strict=True):
            if isinstance(found, S3Error):
                if found.kind is ErrorKind.UNAVAILABLE:
                    return path, found
                listing.skip(path, f"cannot read its time: {found.explain()}")
            elif found is not None:  # None: deleted since the listing
                mtime = mtime_of(found)
                cache.remember(found.key, Seen(found.etag, found.size, found.last_modified_ns,
                                               mtime))
                listing.entries[path] = Entry(path, False, found.size, mtime)
    return None
