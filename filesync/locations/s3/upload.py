"""Uploads to S3: one PUT, or a multipart upload with parallel parts for large files.

The source is spooled first (its size and SHA-256 learnt); above ``MULTIPART_THRESHOLD``
it goes up in parts.

A PUT (or a completed multipart upload) is atomic: the real key shows the new object or
the old one, never part of one. A multipart upload that fails or is interrupted is
aborted here; one that cannot be aborted (the process killed) stays remembered in the
location's cache, and the next ``prepare`` aborts it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, cast

from filesync.locations.base import CHUNK_SIZE, Readable
from filesync.locations.s3.client import S3Client, S3Error
from filesync.locations.s3.mtimes import MtimeCache, Seen, mtime_of
from filesync.model import Entry, still_holds

log = logging.getLogger("filesync")

#: Files larger than this go up as multipart uploads (tests lower it; S3's minimum part
#: is 5 MiB, so it must stay above that).
MULTIPART_THRESHOLD = 64 << 20
#: The size of each part (grown for huge files: S3 allows at most ``MAX_PARTS``).
PART_SIZE = 16 << 20
#: Parts sent at once; also how many parts are held in memory at most.
PARTS_IN_FLIGHT = 4
#: A spooled source stays in memory up to this size, then moves to a temporary file.
SPOOL_MEMORY = 8 << 20
#: S3's limit of parts per upload.
MAX_PARTS = 10_000


@dataclass
class Spooled:
    """A source read to its end: where its bytes are now, how many, and their SHA-256."""

    file: BinaryIO
    size: int
    sha256: str

    def close(self) -> None:
        """Drop the spooled bytes (the temporary file goes with them)."""
        self.file.close()


def spool(source: Readable) -> Spooled:
    """Read ``source`` into memory (up to ``SPOOL_MEMORY``) or a temporary file, hashing.

    Errors of the source (``OSError``) pass through; nothing is left behind then.
    """
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 (returned)
    digest = hashlib.sha256()
    size = 0
    try:
        while piece := source.read(CHUNK_SIZE):
            digest.update(piece)
            spooled.write(piece)
            size += len(piece)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return Spooled(cast(BinaryIO, spooled), size, digest.hexdigest())


def planned(client: S3Client, key: str, expect: Entry, cache: MtimeCache,
            fresh: bool) -> Seen | None:
    """The object as the plan saw it (``expect``), with its ETag; None if it changed.

    The ETag comes from the cache when it holds that size and time (no request), else from
    a HEAD; ``fresh`` forces the HEAD (no conditional requests: the re-check itself).
    """
    if expect.is_dir:
        return None
    seen = cache.get(key)
    if not fresh and seen is not None and (seen.size, seen.mtime_ns) == (expect.size,
                                                                        expect.mtime_ns):
        return seen
    found = client.head(key)
    if found is None:
        return None
    mtime = mtime_of(found)
    if not still_holds(Entry(expect.path, False, found.size, mtime), expect):
        return None
    return Seen(found.etag, found.size, found.last_modified_ns, mtime)


def upload(client: S3Client, key: str, spooled: Spooled, metadata: Mapping[str, str],
           cache: MtimeCache, if_match: str | None = None, if_none_match: bool = False) -> str:
    """Store the spooled bytes under ``key``; returns the new ETag (raises ``S3Error``)."""
    spooled.file.seek(0)
    if spooled.size <= MULTIPART_THRESHOLD:
        return client.put(key, spooled.file, spooled.size, metadata, if_match=if_match,
                          if_none_match=if_none_match, payload_sha256=spooled.sha256)
    upload_id = client.create_multipart(key, metadata)
    cache.upload_started(key, upload_id)
    try:
        parts = _send_parts(client, key, upload_id, spooled)
        _recheck(client, key, if_match, if_none_match)
        etag = client.complete_multipart(key, upload_id, parts, if_match=if_match,
                                         if_none_match=if_none_match)
    except BaseException:
        _abort(client, key, upload_id, cache)
        raise
    cache.upload_ended(key, upload_id)
    return etag


def _recheck(client: S3Client, key: str, if_match: str | None, if_none_match: bool) -> None:
    """Check the conditions with a HEAD right before the parts are assembled.

    Some servers ignore conditions on CompleteMultipartUpload (moto does; SeaweedFS and
    AWS honour them), so the conditions are also sent, and this narrows the window where
    they are not.
    """
    if if_match is None and not if_none_match:
        return
    found = client.head(key)
    if (found is not None) if if_none_match else (found is None or found.etag != if_match):
        raise S3Error(412, "PreconditionFailed", f"{key!r} changed during the upload",
                      resource=f"{client.bucket}/{key}")


def _abort(client: S3Client, key: str, upload_id: str, cache: MtimeCache) -> None:
    """Abort a failed upload; if even that fails, the next ``prepare`` does it."""
    try:
        client.abort_multipart(key, upload_id)
    except S3Error as exc:
        log.warning("cannot abort the multipart upload of %r now (%s); the next run "
                    "aborts it", key, exc.explain())
        return
    cache.upload_ended(key, upload_id)


def part_size_for(size: int) -> int:
    """``PART_SIZE``, or more when the file would need more than ``MAX_PARTS`` parts."""
    return max(PART_SIZE, -(-size // MAX_PARTS))


def _send_parts(client: S3Client, key: str, upload_id: str,
                spooled: Spooled) -> list[tuple[int, str]]:
    """Send the parts, ``PARTS_IN_FLIGHT`` at once; memory holds at most that many parts."""
    part_size = part_size_for(spooled.size)
    slots = threading.BoundedSemaphore(PARTS_IN_FLIGHT)
    futures: list[Future[str]] = []
    failed = threading.Event()

    def done(future: Future[str]) -> None:
        if future.cancelled() or future.exception() is not None:
            failed.set()
        slots.release()

    with ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part") as pool:
        try:
            number = 0
            while number * part_size < spooled.size and not failed.is_set():
                slots.acquire()
                data = spooled.file.read(part_size)
                number += 1
                future = pool.submit(client.upload_part, key, upload_id, number, data)
                del data  # the pool's work item holds the only reference
                future.add_done_callback(done)
                futures.append(future)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    # Every part has ended; the first failure (if any) is raised.
    return [(index, future.result()) for index, future in enumerate(futures, start=1)]
