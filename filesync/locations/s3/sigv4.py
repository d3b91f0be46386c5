"""AWS Signature Version 4 for S3, header authentication (``Authorization``).

The canonical request is: method, URI (each path segment encoded once, not normalized),
sorted encoded query, lowercased sorted signed headers with trimmed values, the signed
header names, and the payload hash. The string to sign hashes it under
``date/region/s3/aws4_request``; the key is an HMAC chain from ``"AWS4" + secret``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from urllib.parse import quote

from filesync.locations.s3.config import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
SERVICE = "s3"

#: Headers signed besides ``host`` and every ``x-amz-*`` one, when they are sent.
_SIGNED_EXTRA = frozenset({"content-md5", "content-type", "date", "if-match", "if-none-match",
                           "range"})
_SPACES = re.compile(r"\s+")


def uri_encode(text: str, keep_slash: bool) -> str:
    """RFC 3986 percent-encoding of UTF-8 ``text``; unreserved characters are kept."""
    return quote(text, safe="/~" if keep_slash else "~")


def canonical_query(query: Sequence[tuple[str, str]]) -> str:
    """The query parameters encoded and sorted by name, then value."""
    pairs = sorted((uri_encode(k, False), uri_encode(v, False)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


def _headers_to_sign(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The (lowercased name, trimmed value) pairs that are signed, sorted."""
    chosen: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if low == "host" or low.startswith("x-amz-") or low in _SIGNED_EXTRA:
            chosen[low] = _SPACES.sub(" ", str(value).strip())
    return sorted(chosen.items())


def canonical_request(method: str, url_path: str, query: Sequence[tuple[str, str]],
                      headers: Mapping[str, str], payload_sha256: str) -> tuple[str, str]:
    """The canonical request and its signed-header list (``host;x-amz-date;...``)."""
    signed = _headers_to_sign(headers)
    names = ";".join(name for name, _ in signed)
    lines = [method.upper(), uri_encode(url_path or "/", True), canonical_query(query),
             "".join(f"{name}:{value}\n" for name, value in signed), names, payload_sha256]
    return "\n".join(lines), names


def signing_key(secret_key: str, date: str, region: str) -> bytes:
    """The day's signing key for S3 in ``region``."""
    key = hmac.new(("AWS4" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def amz_date(now: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def sign(method: str, url_path: str, query: list[tuple[str, str]], headers: dict[str, str],
         payload_sha256: str, credentials: Credentials, region: str, now: datetime
         ) -> dict[str, str]:
    """The headers to add so that the request is signed.

    ``headers`` must already hold ``Host`` and every other header that is sent and should
    be signed; the returned ``x-amz-date``, ``x-amz-content-sha256`` and (with a session
    token) ``x-amz-security-token`` are signed too.
    """
    stamp = amz_date(now)
    added = {"x-amz-date": stamp, "x-amz-content-sha256": payload_sha256}
    if credentials.session_token:
        added["x-amz-security-token"] = credentials.session_token
    lowered = {name.lower(): value for name, value in headers.items()}
    lowered.update(added)
    request, names = canonical_request(method, url_path, query, lowered, payload_sha256)
    scope = f"{stamp[:8]}/{region}/{SERVICE}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope,
                         hashlib.sha256(request.encode()).hexdigest()])
    signature = hmac.new(signing_key(credentials.secret_key, stamp[:8], region),
                         to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                              f"SignedHeaders={names}, Signature={signature}")
    return added
