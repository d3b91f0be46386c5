"""Reading and writing the small XML documents of the S3 API (namespaces ignored)."""

from __future__ import annotations

import calendar
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_plus
from xml.sax.saxutils import escape

_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]00:?00)?$")


class XmlError(ValueError):
    """The body is not the XML document expected."""


def parse(body: bytes) -> ET.Element:
    """The root element of ``body``."""
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise XmlError(f"malformed XML from the server: {exc}") from None


def local(tag: str) -> str:
    """A tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def children(elem: ET.Element, name: str) -> Iterator[ET.Element]:
    """Direct children named ``name``."""
    return (child for child in elem if local(child.tag) == name)


def text(elem: ET.Element, name: str, default: str = "") -> str:
    """The text of the first child named ``name``."""
    for child in children(elem, name):
        return child.text or ""
    return default


def iso_to_ns(value: str) -> int:
    """Nanoseconds since the epoch from an ISO 8601 UTC time (``2009-10-12T17:50:30.000Z``)."""
    match = _ISO.match(value.strip())
    if match is None:
        raise XmlError(f"unexpected time {value!r} from the server")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = (match.group(7) or "").ljust(9, "0")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds * 1_000_000_000 + int(fraction or 0)


def error_fields(body: bytes) -> tuple[str, str, dict[str, str]] | None:
    """``(Code, Message, other fields)`` of an ``<Error>`` document, else ``None``."""
    if not body.lstrip().startswith(b"<"):
        return None
    try:
        root = parse(body)
    except XmlError:
        return None
    if local(root.tag) != "Error":
        return None
    rest = {local(child.tag): child.text or "" for child in root}
    return rest.get("Code", ""), rest.get("Message", ""), rest


@dataclass
class Entry:
    """One object of a listing."""

    key: str
    size: int
    etag: str
    last_modified_ns: int


@dataclass
class ListPage:
    """One page of ListObjectsV2."""

    entries: list[Entry] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    next_token: str | None = None


def _key(raw: str, encoded: bool) -> str:
    """A key as listed, decoded when the server URL-encoded it."""
    return unquote_plus(raw) if encoded else raw


def list_page(body: bytes) -> ListPage:
    """Parse a ``ListBucketResult`` (ListObjectsV2)."""
    root = parse(body)
    if local(root.tag) != "ListBucketResult":
        raise XmlError(f"expected ListBucketResult, got {local(root.tag)}")
    encoded = text(root, "EncodingType").lower() == "url"
    page = ListPage()
    for item in children(root, "Contents"):
        page.entries.append(Entry(_key(text(item, "Key"), encoded),
                                  int(text(item, "Size", "0") or 0),
                                  text(item, "ETag").strip('"'),
                                  iso_to_ns(text(item, "LastModified"))))
    for item in children(root, "CommonPrefixes"):
        page.prefixes.append(_key(text(item, "Prefix"), encoded))
    if text(root, "IsTruncated").lower() == "true":
        page.next_token = text(root, "NextContinuationToken") or None
        if page.next_token is None:
            raise XmlError("a truncated listing without NextContinuationToken")
    return page


@dataclass
class UploadsPage:
    """One page of ListMultipartUploads."""

    uploads: list[tuple[str, str, int]] = field(default_factory=list)
    next_markers: tuple[str, str] | None = None


def uploads_page(body: bytes) -> UploadsPage:
    """Parse a ``ListMultipartUploadsResult``."""
    root = parse(body)
    if local(root.tag) != "ListMultipartUploadsResult":
        raise XmlError(f"expected ListMultipartUploadsResult, got {local(root.tag)}")
    encoded = text(root, "EncodingType").lower() == "url"
    page = UploadsPage()
    for item in children(root, "Upload"):
        initiated = text(item, "Initiated")
        page.uploads.append((_key(text(item, "Key"), encoded), text(item, "UploadId"),
                             iso_to_ns(initiated) if initiated else 0))
    if text(root, "IsTruncated").lower() == "true":
        page.next_markers = (_key(text(root, "NextKeyMarker"), encoded),
                             text(root, "NextUploadIdMarker"))
    return page


def required(body: bytes, root_stem: str, field_name: str) -> str:
    """The text of ``field_name`` in a ``root_stem...`` document (e.g. the UploadId).

    The root is matched by its start: AWS answers ``CompleteMultipartUploadResult``,
    moto ``CompleteMultipartUploadResponse``.
    """
    root = parse(body)
    if not local(root.tag).startswith(root_stem):
        raise XmlError(f"expected {root_stem}Result, got {local(root.tag)}")
    value = text(root, field_name)
    if not value:
        raise XmlError(f"{local(root.tag)} without {field_name}")
    return value


def complete_body(parts: Sequence[tuple[int, str]]) -> bytes:
    """The ``CompleteMultipartUpload`` request body."""
    items = "".join(f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(_quoted(etag))}"
                    "</ETag></Part>" for number, etag in sorted(parts))
    return (f'<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload '
            f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{items}'
            "</CompleteMultipartUpload>").encode()


def _quoted(etag: str) -> str:
    """An ETag in quotes, as the API expects it."""
    return etag if etag.startswith('"') else f'"{etag}"'
