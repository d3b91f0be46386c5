"""A small S3 client on ``http.client``: SigV4, keep-alive pool, retries, ListObjectsV2.

Conditional requests, as found against the test servers (tests/test_s3_client.py
``test_conditional_requests`` checks each claim):

=================================================  =========  =====================
request                                            SeaweedFS  moto (server mode)
=================================================  =========  =====================
PUT ``If-None-Match: *`` / ``If-Match``            412        412
DELETE ``If-Match``                                412        412
CompleteMultipartUpload ``If-None-Match: *``       412        412
CompleteMultipartUpload ``If-Match``               412        ignored (completes)
CopyObject ``x-amz-copy-source-if-match``          412        ignored (copies)
CopyObject ``If-None-Match: *`` (destination)      412        ignored (copies)
=================================================  =========  =====================

``probe_conditional`` checks the PUT preconditions a location relies on before using them
(``rclone serve s3``, for one, ignores them all).
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO

from filesync.locations.s3 import xmlbody
from filesync.locations.s3.config import Credentials, Endpoint
from filesync.locations.s3.errors import STATUS_CODES, S3Error
from filesync.locations.s3.pool import ConnectionPool, LimitedReader, stream
from filesync.locations.s3.sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, sign, uri_encode

__all__ = ["ObjectInfo", "S3Client", "S3Error"]

#: Tries of one request, and the first pause between them (doubled each time).
TRIES = 4
FIRST_DELAY = 0.2
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_RETRY_CODES = frozenset({"SlowDown", "ConditionalRequestConflict", "RequestTimeout",
                          "InternalError", "ServiceUnavailable"})
#: A reused keep-alive connection the server closed meanwhile fails with one of these.
_DROPPED = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError,
            BrokenPipeError, ConnectionAbortedError)
_HASH_BLOCK = 1024 * 1024
_NO_BODY: Mapping[str, str] = {}


@dataclass(frozen=True)
class ObjectInfo:
    """An object as a listing or a HEAD reports it."""

    key: str
    size: int
    etag: str  # with quotes stripped
    last_modified_ns: int
    metadata: dict[str, str] = field(default_factory=dict)  # x-amz-meta-*, lowercased, no prefix
    #: True for a common prefix of a listing with a delimiter (size 0, no etag).
    is_prefix: bool = False


@dataclass
class _Answer:
    """A complete (non-streamed) answer."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


class S3Client:
    """One bucket on one endpoint; safe to use from several threads at once."""

    def __init__(self, endpoint: Endpoint, credentials: Credentials, bucket: str,
                 connections: int = 4, timeout: float = 60.0) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        self.endpoint, self.bucket = endpoint, bucket
        self._credentials = credentials
        # Virtual-hosted style only on Amazon and for names that are valid host labels.
        self.path_style = endpoint.path_style or "." in bucket or bucket.lower() != bucket
        host = endpoint.host if self.path_style else f"{bucket}.{endpoint.host}"
        default_port = 443 if endpoint.scheme == "https" else 80
        self._host_header = host if endpoint.port == default_port else f"{host}:{endpoint.port}"
        self._pool = ConnectionPool(endpoint.scheme, host, endpoint.port, connections, timeout)
        self._sleep = time.sleep

    def __repr__(self) -> str:
        return f"S3Client({self.endpoint.display()!r}, bucket={self.bucket!r})"

    def close(self) -> None:
        """Close the idle connections."""
        self._pool.close()

    # -- requests -------------------------------------------------------------------------

    def _path(self, key: str | None) -> str:
        """The decoded request path for ``key`` (``None``: the bucket itself)."""
        base = f"/{self.bucket}" if self.path_style else ""
        if key is None:
            return base or "/"
        return f"{base}/{key}"

    def _resource(self, key: str | None) -> str:
        """``bucket/key`` for messages."""
        return self.bucket if key is None else f"{self.bucket}/{key}"

    def _send(self, method: str, key: str | None, query: Sequence[tuple[str, str]] = (),
              headers: Mapping[str, str] = _NO_BODY, body: bytes | BinaryIO | None = None,
              size: int = 0, payload_sha256: str | None = None, streamed: bool = False,
              ) -> tuple[_Answer, BinaryIO | None]:
        """Send one request with retries; the answer, and the body stream when ``streamed``.

        Raises ``S3Error`` for an error status (after retries where they may help) and for a
        server that cannot be reached (status 0).
        """
        path = self._path(key)
        qs = "&".join(f"{uri_encode(k, False)}={uri_encode(v, False)}" for k, v in query)
        target = uri_encode(path, True) + (f"?{qs}" if qs else "")
        if isinstance(body, (bytes, bytearray, memoryview)):
            size = len(body)
            payload_sha256 = payload_sha256 or hashlib.sha256(body).hexdigest()
        elif body is None:
            payload_sha256 = EMPTY_SHA256
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        delay, tries, last = FIRST_DELAY, 0, S3Error(0, "ConnectionFailed")
        sent = False
        while tries < TRIES:
            tries += 1
            if sent and body is not None and not isinstance(body, bytes):
                if not body.seekable():
                    raise last
                body.seek(start)
            sent = True
            conn, reused = self._pool.acquire()
            send_headers = {"Host": self._host_header, **headers}
            if body is not None or method in ("PUT", "POST"):
                send_headers["Content-Length"] = str(size)
            send_headers.update(sign(method, path, list(query), send_headers,
                                     payload_sha256 or UNSIGNED_PAYLOAD, self._credentials,
                                     self.endpoint.region, datetime.now(timezone.utc)))
            payload: bytes | LimitedReader | None = (
                body if body is None or isinstance(body, bytes) else LimitedReader(body, size))
            try:
                conn.request(method, target, body=payload, headers=send_headers)
                response = conn.getresponse()
            except _DROPPED as exc:
                conn.close()
                if reused:  # the server closed an idle connection: reopen, do not count it
                    tries -= 1
                    continue
                last = self._unreachable(exc, key)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                last = self._unreachable(exc, key)
            else:
                if response.status < 300 or response.status == 304:
                    if streamed:
                        return _Answer(response.status, response.headers, b""), stream(
                            self._pool, conn, response)
                    try:
                        data = response.read()
                    except (OSError, http.client.HTTPException) as exc:
                        conn.close()
                        last = self._unreachable(exc, key)
                    else:
                        self._pool.release(conn, not response.will_close)
                        return _Answer(response.status, response.headers, data), None
                else:
                    try:
                        data = response.read()  # empty for HEAD, but it must be read
                    except (OSError, http.client.HTTPException):
                        data = b""
                        conn.close()
                    else:
                        self._pool.release(conn, not response.will_close)
                    last = self._error(response.status, response.headers, data, key)
                    if not (response.status in _RETRY_STATUS or last.code in _RETRY_CODES):
                        raise last
            if tries < TRIES:
                self._sleep(delay)
                delay *= 2
        raise last

    def _unreachable(self, exc: BaseException, key: str | None) -> S3Error:
        """An ``S3Error`` with status 0 for a failure on the way to the server."""
        reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
        if isinstance(exc, (socket.timeout, TimeoutError)):
            reason = "timed out"
        return S3Error(0, "ConnectionFailed",
                       f"cannot reach {self.endpoint.display()}: {reason}",
                       resource=self._resource(key))

    def _error(self, status: int, headers: http.client.HTTPMessage, body: bytes,
               key: str | None) -> S3Error:
        """The ``S3Error`` an error answer stands for."""
        fields = xmlbody.error_fields(body)
        if fields is not None and fields[0]:
            code, message, rest = fields
        else:
            code, message, rest = STATUS_CODES.get(status, f"HTTP{status}"), "", {}
            if status == 404:
                code = "NoSuchBucket" if key is None else "NoSuchKey"
        region = headers.get("x-amz-bucket-region") or rest.get("Region", "")
        clock = ""
        if code == "RequestTimeTooSkewed":
            clock = (f"server {rest.get('ServerTime') or headers.get('Date', '?')}, "
                     f"here {datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}")
        return S3Error(status, code, message, resource=self._resource(key), region=region,
                       clock=clock)

    # -- bucket and listing ---------------------------------------------------------------

    def head_bucket(self) -> None:
        """Check that the bucket exists and these credentials may list it (raises S3Error).

        A one-key listing rather than HEAD: its error body tells a wrong secret from a
        missing permission.
        """
        self._send("GET", None, [("list-type", "2"), ("max-keys", "1"),
                                 ("encoding-type", "url")])

    def list_objects(self, prefix: str, delimiter: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (ListObjectsV2, page by page), in key order.

        With a ``delimiter``, common prefixes come too, as ``is_prefix`` entries.
        """
        token: str | None = None
        while True:
            query = [("list-type", "2"), ("encoding-type", "url"), ("prefix", prefix)]
            if delimiter:
                query.append(("delimiter", delimiter))
            if token:
                query.append(("continuation-token", token))
            answer, _ = self._send("GET", None, query)
            page = self._list_page(answer.body)
            for entry in page.entries:
                yield ObjectInfo(entry.key, entry.size, entry.etag, entry.last_modified_ns)
            for common in page.prefixes:
                yield ObjectInfo(common, 0, "", 0, is_prefix=True)
            if page.next_token is None:
                return
            token = page.next_token

    def _list_page(self, body: bytes) -> xmlbody.ListPage:
        """A listing page, or an ``S3Error`` when the server sent something else."""
        try:
            return xmlbody.list_page(body)
        except (xmlbody.XmlError, ValueError) as exc:
            raise S3Error(200, "MalformedResponse", str(exc),
                          resource=self._resource(None)) from None

    # -- objects --------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size, etag, time and metadata; ``None`` when there is none."""
        try:
            answer, _ = self._send("HEAD", key)
        except S3Error as exc:
            if exc.status == 404:
                return None
            raise
        return _info(key, answer.headers)

    def get(self, key: str) -> BinaryIO:
        """The object's content as a stream; ``close()`` it (a 404 raises NoSuchKey)."""
        _, body = self._send("GET", key, streamed=True)
        assert body is not None
        return body

    def put(self, key: str, body: bytes | BinaryIO, size: int,
            metadata: Mapping[str, str] = _NO_BODY, if_match: str | None = None,
            if_none_match: bool = False, payload_sha256: str | None = None) -> str:
        """Store ``size`` bytes of ``body`` under ``key``; the new ETag.

        A file object is streamed from its current position (hashed first over plain
        HTTP, where the payload must be signed; unsigned over HTTPS).
        """
        headers = _meta_headers(metadata)
        headers.update(_conditions(if_match, if_none_match))
        if not isinstance(body, bytes) and payload_sha256 is None:
            payload_sha256 = (UNSIGNED_PAYLOAD if self.endpoint.scheme == "https"
                              else _file_sha256(body, size))
        answer, _ = self._send("PUT", key, (), headers, body, size, payload_sha256)
        return _etag(answer.headers)

    def copy(self, source_key: str, key: str, metadata: Mapping[str, str] | None = None,
             if_match: str | None = None, if_none_match: bool = False) -> str:
        """Server-side copy of ``source_key`` to ``key``; the new ETag.

        ``metadata`` given: it replaces the source's; else the source's is kept.
        ``if_match`` is a precondition on the source.
        """
        headers = {"x-amz-copy-source": uri_encode(f"/{self.bucket}/{source_key}", True)}
        if metadata is not None:
            headers["x-amz-metadata-directive"] = "REPLACE"
            headers.update(_meta_headers(metadata))
        if if_match:
            headers["x-amz-copy-source-if-match"] = _quote(if_match)
        headers.update(_conditions(None, if_none_match))
        answer, _ = self._send("PUT", key, (), headers, b"")
        return self._result_etag(answer, key, "CopyObject")

    def _result_etag(self, answer: _Answer, key: str, root: str) -> str:
        """The ETag of a copy or completion: an error may come with status 200."""
        fields = xmlbody.error_fields(answer.body)
        if fields is not None:
            raise self._error(500 if fields[0] in _RETRY_CODES else 400, answer.headers,
                              answer.body, key)
        try:
            return xmlbody.required(answer.body, root, "ETag").strip('"')
        except xmlbody.XmlError as exc:
            raise S3Error(200, "MalformedResponse", str(exc),
                          resource=self._resource(key)) from None

    def delete(self, key: str, if_match: str | None = None) -> None:
        """Remove ``key``; a missing object is not an error."""
        try:
            self._send("DELETE", key, (), _conditions(if_match, False))
        except S3Error as exc:
            if exc.status != 404 or exc.code == "NoSuchBucket":
                raise

    # -- multipart ------------------------------------------------------------------------

    def create_multipart(self, key: str, metadata: Mapping[str, str]) -> str:
        """Start a multipart upload; its upload id."""
        answer, _ = self._send("POST", key, [("uploads", "")], _meta_headers(metadata), b"")
        try:
            return xmlbody.required(answer.body, "InitiateMultipartUpload", "UploadId")
        except xmlbody.XmlError as exc:
            raise S3Error(200, "MalformedResponse", str(exc),
                          resource=self._resource(key)) from None

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Upload part ``number`` (from 1); its ETag."""
        answer, _ = self._send("PUT", key, [("partNumber", str(number)),
                                            ("uploadId", upload_id)], {}, data)
        return _etag(answer.headers)

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]],
                           if_match: str | None = None, if_none_match: bool = False) -> str:
        """Assemble the parts ``(number, etag)`` into the object; its ETag."""
        headers = {"Content-Type": "application/xml", **_conditions(if_match, if_none_match)}
        answer, _ = self._send("POST", key, [("uploadId", upload_id)], headers,
                               xmlbody.complete_body(parts))
        return self._result_etag(answer, key, "CompleteMultipartUpload")

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort an upload and free its parts; an upload already gone is not an error."""
        try:
            self._send("DELETE", key, [("uploadId", upload_id)])
        except S3Error as exc:
            if exc.status != 404 or exc.code == "NoSuchBucket":
                raise

    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, int]]:
        """``(key, upload id, initiated ns)`` of every unfinished upload under ``prefix``."""
        markers: tuple[str, str] | None = None
        while True:
            query = [("uploads", ""), ("prefix", prefix), ("encoding-type", "url")]
            if markers is not None:
                query += [("key-marker", markers[0]), ("upload-id-marker", markers[1])]
            answer, _ = self._send("GET", None, query)
            try:
                page = xmlbody.uploads_page(answer.body)
            except (xmlbody.XmlError, ValueError) as exc:
                raise S3Error(200, "MalformedResponse", str(exc),
                              resource=self._resource(None)) from None
            yield from page.uploads
            if page.next_markers is None or page.next_markers == markers:
                return
            markers = page.next_markers

    # -- capabilities ---------------------------------------------------------------------

    def probe_conditional(self, key: str) -> bool:
        """Whether the server honours ``If-None-Match: *`` and ``If-Match`` on PUT.

        Writes ``key`` (a scratch object the caller owns), tries to overwrite it with both
        preconditions failing, and removes it. True only when both were refused with 412.
        """
        etag = self.put(key, b"filesync conditional-write probe\n", 33)
        refused = 0
        for attempt in ({"if_none_match": True}, {"if_match": _other_etag(etag)}):
            try:
                self.put(key, b"overwritten\n", 12, **attempt)  # type: ignore[arg-type]
            except S3Error as exc:
                if exc.status != 412:
                    raise
                refused += 1
        self.delete(key)
        return refused == 2


def _info(key: str, headers: http.client.HTTPMessage) -> ObjectInfo:
    """An ``ObjectInfo`` from HEAD answer headers."""
    modified = headers.get("Last-Modified")
    ns = 0
    if modified:
        try:
            ns = int(email.utils.parsedate_to_datetime(modified).timestamp()) * 1_000_000_000
        except (TypeError, ValueError):
            ns = 0
    metadata = {name.lower()[len("x-amz-meta-"):]: value for name, value in headers.items()
                if name.lower().startswith("x-amz-meta-")}
    return ObjectInfo(key, int(headers.get("Content-Length") or 0), _etag(headers), ns,
                      metadata)


def _etag(headers: http.client.HTTPMessage) -> str:
    """The ETag header without quotes."""
    return (headers.get("ETag") or "").strip().strip('"')


def _quote(etag: str) -> str:
    """An ETag in double quotes."""
    return etag if etag.startswith('"') else f'"{etag}"'


def _other_etag(etag: str) -> str:
    """An ETag that is certainly not ``etag``."""
    return "0" * 32 if etag.strip('"') != "0" * 32 else "1" * 32


def _conditions(if_match: str | None, if_none_match: bool) -> dict[str, str]:
    """The conditional headers of a write."""
    headers = {}
    if if_match:
        headers["If-Match"] = _quote(if_match)
    if if_none_match:
        headers["If-None-Match"] = "*"
    return headers


def _meta_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    """``x-amz-meta-*`` headers; names and values must be printable ASCII."""
    headers = {}
    for name, value in metadata.items():
        if not (name.isascii() and name.isprintable() and value.isascii()
                and value.isprintable()) or not name or ":" in name:
            raise ValueError(f"S3 user metadata must be printable ASCII: {name!r}")
        headers[f"x-amz-meta-{name.lower()}"] = value
    return headers


def _file_sha256(body: BinaryIO, size: int) -> str:
    """The SHA-256 of the next ``size`` bytes of ``body``, which is then seeked back."""
    if not body.seekable():
        raise ValueError("a streamed S3 upload over plain HTTP needs a seekable body "
                         "(or its payload_sha256)")
    start, digest, left = body.tell(), hashlib.sha256(), size
    while left > 0:
        block = body.read(min(_HASH_BLOCK, left))
        if not block:
            break
        digest.update(block)
        left -= len(block)
    body.seek(start)
    return digest.hexdigest()
