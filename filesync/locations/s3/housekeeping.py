"""What ``S3Location.prepare`` does besides checking: stale uploads, how keys are kept."""

from __future__ import annotations

import logging
import time

from filesync.locations.s3.client import S3Client
from filesync.locations.s3.mtimes import MtimeCache

log = logging.getLogger("filesync")

#: Another machine's multipart upload older than this is abandoned and may be aborted.
STALE_UPLOAD_NS = 86_400 * 10**9


def abort_stale_uploads(client: S3Client, base: str, cache: MtimeCache, display: str) -> None:
    """Abort unfinished multipart uploads below ``base`` (raises ``S3Error``).

    Our own (remembered in the cache) always; another machine's only after a day, since it
    may still be uploading.
    """
    now = time.time_ns()
    for key, upload_id, initiated in list(client.list_multipart_uploads(base)):
        own = cache.is_own_upload(key, upload_id)
        if not own and now - initiated < STALE_UPLOAD_NS:
            continue
        log.info("%s: aborting the unfinished upload of %r (%s)", display, key,
                 "left by an earlier run" if own else "older than a day")
        client.abort_multipart(key, upload_id)
        cache.upload_ended(key, upload_id)


def keeps_backslashes(client: S3Client, base: str, owner: str) -> bool:
    """Whether the server keeps a backslash in keys (SeaweedFS makes it ``/``).

    One probe object under ``.filesync/`` (raises ``S3Error``), removed again in both forms.
    """
    probe = base + ".filesync/backslash-probe\\" + owner
    client.put(probe, b"", 0)
    try:
        return any(info.key == probe for info in client.list_objects(probe))
    finally:
        client.delete(probe)
        client.delete(probe.replace("\\", "/"))
