"""The S3 protocol layer: SigV4 against AWS's worked examples, the client against SeaweedFS
(which checks signatures and preconditions) and moto, with boto3 as the independent client.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from filesync.locations.s3 import client as client_module
from filesync.locations.s3.client import S3Client, S3Error
from filesync.locations.s3.config import Credentials, Endpoint, resolve
from filesync.locations.s3.sigv4 import EMPTY_SHA256, canonical_request, sign, signing_key
from filesync.result import ErrorKind
from tests.s3_servers import (  # noqa: F401  (fixtures, used through getfixturevalue)
    FaultProxy,
    MotoS3,
    SeaweedS3,
    free_ports,
    moto_s3,
    seaweed_s3,
)

#: Both session servers start before any test's thread-leak check takes its snapshot (moto
#: runs in threads; started later, by getfixturevalue, it would count as leaked).
pytestmark = pytest.mark.usefixtures("seaweed_s3", "moto_s3")

AWS_KEYS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
EXAMPLE_TIME = datetime(2013, 5, 24, tzinfo=timezone.utc)
EXAMPLE_HOST = "examplebucket.s3.amazonaws.com"
ODD_NAMES = ["sp ace.txt", "plus+sign", "100%", "hash#tag", "what?.txt", "ünïcødé/文件.txt",
             "amp&eq=semi;", "tilde~/a b/c+d", "quote'\"", "star*(paren)", "dots.../x",
             "%2F-looks-encoded", "trailing-space "]


# ----- SigV4: the worked examples of "Signature Calculations for the Authorization Header:
# Transferring Payload in a Single Chunk" (AWS S3 API reference, sig-v4-header-based-auth).
def _signature(headers: dict[str, str]) -> str:
    return headers["Authorization"].rsplit("Signature=", 1)[1]


def test_sigv4_get_object_example() -> None:
    added = sign("GET", "/test.txt", [], {"Host": EXAMPLE_HOST, "Range": "bytes=0-9"},
                 EMPTY_SHA256, AWS_KEYS, "us-east-1", EXAMPLE_TIME)
    assert added["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    assert added["x-amz-date"] == "20130524T000000Z"
    assert added["x-amz-content-sha256"] == EMPTY_SHA256
    assert "x-amz-security-token" not in added


def test_sigv4_put_object_example() -> None:
    body = b"Welcome to Amazon S3."
    headers = {"Host": EXAMPLE_HOST, "Date": "Fri, 24 May 2013 00:00:00 GMT",
               "x-amz-storage-class": "REDUCED_REDUNDANCY"}
    added = sign("PUT", "/test$file.text", [], headers, hashlib.sha256(body).hexdigest(),
                 AWS_KEYS, "us-east-1", EXAMPLE_TIME)
    assert "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class," in (
        added["Authorization"])
    assert _signature(added) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"


def test_sigv4_get_bucket_lifecycle_and_list_objects_examples() -> None:
    lifecycle = sign("GET", "/", [("lifecycle", "")], {"Host": EXAMPLE_HOST}, EMPTY_SHA256,
                     AWS_KEYS, "us-east-1", EXAMPLE_TIME)
    assert _signature(lifecycle) == (
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    listing = sign("GET", "/", [("prefix", "J"), ("max-keys", "2")], {"Host": EXAMPLE_HOST},
                   EMPTY_SHA256, AWS_KEYS, "us-east-1", EXAMPLE_TIME)
    assert _signature(listing) == (
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")


def test_sigv4_canonical_request_details() -> None:
    request, names = canonical_request(
        "PUT", "/bucket/a b/ü+%#?~.txt", [("b", "2 3"), ("a", "x/y"), ("a", "")],
        {"Host": "h", "X-Amz-Meta-Mtime": "  1.5   2 ", "Content-Type": "text/plain",
         "User-Agent": "not signed", "If-None-Match": "*"}, "UNSIGNED-PAYLOAD")
    lines = request.split("\n")
    assert lines[1] == "/bucket/a%20b/%C3%BC%2B%25%23%3F~.txt"  # encoded once, / kept
    assert lines[2] == "a=&a=x%2Fy&b=2%203"
    assert "x-amz-meta-mtime:1.5 2" in lines
    assert names == "content-type;host;if-none-match;x-amz-meta-mtime"
    # A session token is sent and signed.
    added = sign("GET", "/", [], {"Host": "h"}, EMPTY_SHA256,
                 Credentials("AK", "SK", "TOKEN"), "eu-west-1", EXAMPLE_TIME)
    assert added["x-amz-security-token"] == "TOKEN"
    assert "x-amz-security-token" in added["Authorization"]
    assert signing_key("SK", "20130524", "eu-west-1") != signing_key("SK", "20130524", "us-east-1")


# ----- against real servers ---------------------------------------------------------------
def make_client(server: Any, bucket: str, tmp_path: Path, *, secret: str | None = None,
                url: str | None = None, **options: Any) -> S3Client:
    environ = {**server.environ(), "AWS_SECRET_ACCESS_KEY": secret or server.secret_key}
    endpoint, credentials = resolve(url or server.endpoint_url, environ, tmp_path).unwrap()
    return S3Client(endpoint, credentials, bucket, **options)


@pytest.fixture
def weed(request: pytest.FixtureRequest) -> SeaweedS3:
    """The session's SeaweedFS."""
    return request.getfixturevalue("seaweed_s3")  # type: ignore[no-any-return]


@pytest.fixture(params=["seaweed", "moto"])
def server(request: pytest.FixtureRequest) -> SeaweedS3 | MotoS3:
    """Each test using this runs against SeaweedFS and against moto."""
    both = {"seaweed": request.getfixturevalue("seaweed_s3"),
            "moto": request.getfixturevalue("moto_s3")}
    return both[request.param]  # type: ignore[no-any-return]


@pytest.fixture
def s3(server: Any, tmp_path: Path) -> Iterator[S3Client]:
    """A client on a fresh bucket of ``server``; closed after the test."""
    client = make_client(server, server.fresh_bucket(), tmp_path, connections=8)
    yield client
    client.close()


@pytest.fixture
def proxy(weed: SeaweedS3) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of SeaweedFS."""
    fault = FaultProxy(weed.port)
    yield fault
    fault.stop()


def test_seaweed_listens_on_loopback_only(weed: SeaweedS3) -> None:
    addresses = weed.listening()
    assert len(addresses) >= 5
    assert all(address.startswith("127.0.0.1:") for address in addresses), addresses
    assert f"127.0.0.1:{weed.port}" in addresses


def test_listing_pages_and_odd_names(server: Any, s3: S3Client) -> None:
    many = [f"many/{index:05d}" for index in range(1_050)]
    server.seed(s3.bucket, many)
    odd = [f"odd/{name}" for name in ODD_NAMES]
    for name in odd:
        s3.put(name, name.encode(), len(name.encode()))
    listed = list(s3.list_objects("many/"))
    assert [info.key for info in listed] == many  # both pages, in order, nothing twice
    assert all(info.size == 0 and info.etag == "d41d8cd98f00b204e9800998ecf8427e"
               and info.last_modified_ns > 1_600_000_000 * 10**9 for info in listed)
    names = {info.key: info for info in s3.list_objects("odd/")}
    theirs = server.boto3_client().list_objects_v2(Bucket=s3.bucket, Prefix="odd/")
    assert set(names) == set(odd) == {item["Key"] for item in theirs["Contents"]}
    for name in odd:
        assert names[name].size == len(name.encode())
        with s3.get(name) as body:
            assert body.read() == name.encode()
        assert s3.head(name) is not None
    top = list(s3.list_objects("", delimiter="/"))
    assert {info.key for info in top if info.is_prefix} == {"many/", "odd/"}
    assert not [info for info in top if not info.is_prefix]


def test_put_get_head_delete_and_metadata(server: Any, s3: S3Client) -> None:
    etag = s3.put("dir/file.txt", b"hello", 5, {"mtime": "1700000000.25", "Owner": "x"})
    assert etag == hashlib.md5(b"hello").hexdigest()
    info = s3.head("dir/file.txt")
    assert info is not None
    assert (info.size, info.etag, info.metadata) == (5, etag,
                                                     {"mtime": "1700000000.25", "owner": "x"})
    theirs = server.boto3_client().head_object(Bucket=s3.bucket, Key="dir/file.txt")
    assert theirs["Metadata"] == {"mtime": "1700000000.25", "owner": "x"}
    assert info.last_modified_ns == int(theirs["LastModified"].timestamp()) * 10**9
    with s3.get("dir/file.txt") as body:
        assert body.read() == b"hello"
    # A file object is streamed from its position, only ``size`` bytes (hashed first: http).
    source = io.BytesIO(b"skip|streamed body|tail")
    source.seek(5)
    s3.put("streamed", source, 13)
    got = server.boto3_client().get_object(Bucket=s3.bucket, Key="streamed")["Body"].read()
    assert got == b"streamed body"
    s3.put("empty/", b"", 0)
    assert s3.head("empty/") is not None
    s3.delete("dir/file.txt")
    assert s3.head("dir/file.txt") is None
    s3.delete("dir/file.txt")  # missing: not an error
    with pytest.raises(S3Error) as caught:
        s3.get("dir/file.txt")
    assert caught.value.code == "NoSuchKey" and caught.value.kind is ErrorKind.NOT_FOUND


def test_copy_keeps_or_replaces_metadata(s3: S3Client) -> None:
    etag = s3.put("a", b"content", 7, {"mtime": "1"})
    assert s3.copy("a", "b") == etag
    assert s3.head("b").metadata == {"mtime": "1"}  # type: ignore[union-attr]
    assert s3.copy("a", "a", {"mtime": "2"}) == etag  # onto itself: metadata edited
    info = s3.head("a")
    assert info is not None and info.metadata == {"mtime": "2"} and info.etag == etag
    with s3.get("a") as body:
        assert body.read() == b"content"


def test_multipart_upload_abort_and_list(server: Any, s3: S3Client) -> None:
    first, second = b"\x01" * (5 * 1024 * 1024), b"\x02"
    upload = s3.create_multipart("big", {"mtime": "42"})
    parts = [(1, s3.upload_part("big", upload, 1, first)),
             (2, s3.upload_part("big", upload, 2, second))]
    assert [(key, uid) for key, uid, _ in s3.list_multipart_uploads("")] == [("big", upload)]
    etag = s3.complete_multipart("big", upload, parts)
    assert etag.endswith("-2")
    info = s3.head("big")
    assert info is not None and info.size == len(first) + 1 and info.metadata == {"mtime": "42"}
    got = server.boto3_client().get_object(Bucket=s3.bucket, Key="big")["Body"].read()
    assert got == first + second
    stale = s3.create_multipart("dir/stale", {})
    s3.upload_part("dir/stale", stale, 1, b"x")
    other = s3.create_multipart("elsewhere", {})
    uploads = list(s3.list_multipart_uploads("dir/"))
    assert [(key, uid) for key, uid, _ in uploads] == [("dir/stale", stale)]
    if isinstance(server, SeaweedS3):
        assert uploads[0][2] > 1_600_000_000 * 10**9
    else:  # moto reports every upload as initiated at 2010-11-10T20:48:33Z
        assert uploads[0][2] == 1_289_422_113 * 10**9
    s3.abort_multipart("dir/stale", stale)
    s3.abort_multipart("dir/stale", stale)  # already gone: not an error
    s3.abort_multipart("elsewhere", other)
    assert list(s3.list_multipart_uploads("")) == []


def _refused(action: Any) -> bool:
    try:
        action()
    except S3Error as exc:
        assert exc.status == 412 and exc.kind is ErrorKind.CHANGED, exc
        return True
    return False


def test_conditional_requests(server: Any, s3: S3Client) -> None:
    """What each server honours (the table in client.py's docstring)."""
    wrong = "0" * 32
    assert s3.probe_conditional(".filesync/probe")
    assert s3.head(".filesync/probe") is None
    etag = s3.put("k", b"one", 3, if_none_match=True)
    assert _refused(lambda: s3.put("k", b"two", 3, if_none_match=True))
    assert _refused(lambda: s3.put("k", b"two", 3, if_match=wrong))
    etag = s3.put("k", b"two", 3, if_match=etag)
    assert _refused(lambda: s3.delete("k", if_match=wrong))
    upload = s3.create_multipart("k", {})
    parts = [(1, s3.upload_part("k", upload, 1, b"p" * (5 << 20))),
             (2, s3.upload_part("k", upload, 2, b"q"))]
    assert _refused(lambda: s3.complete_multipart("k", upload, parts, if_none_match=True))
    honours_all = isinstance(server, SeaweedS3)
    assert _refused(lambda: s3.copy("k", "k2", if_match=wrong)) is honours_all
    s3.put("k3", b"", 0)
    assert _refused(lambda: s3.copy("k", "k3", if_none_match=True)) is honours_all
    assert _refused(lambda: s3.complete_multipart("k", upload, parts, if_match=wrong)) is (
        honours_all)
    if honours_all:
        s3.complete_multipart("k", upload, parts, if_match=s3.head("k").etag)  # type: ignore[union-attr]
    s3.delete("k", if_match=s3.head("k").etag)  # type: ignore[union-attr]
    assert s3.head("k") is None


def test_wrong_secret_is_refused_clearly(weed: SeaweedS3, tmp_path: Path) -> None:
    bucket = weed.fresh_bucket()
    wrong = "Wrong-Secret-9f8e7d6c"
    client = make_client(weed, bucket, tmp_path, secret=wrong)
    try:
        for action in (client.head_bucket, lambda: client.put("x", b"x", 1)):
            with pytest.raises(S3Error) as caught:
                action()
            error = caught.value
            assert error.kind is ErrorKind.REFUSED and error.code == "SignatureDoesNotMatch"
            assert "AWS_SECRET_ACCESS_KEY" in error.explain()
            for text in (str(error), repr(error), error.explain(), repr(client)):
                assert wrong not in text and weed.secret_key not in text
        with pytest.raises(S3Error) as caught:
            client.head("x")  # HEAD answers carry no body: the status tells
        assert caught.value.kind is ErrorKind.REFUSED
    finally:
        client.close()


def test_clock_skew_is_explained(weed: SeaweedS3, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    class Skewed(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) - timedelta(hours=2)

    client = make_client(weed, weed.fresh_bucket(), tmp_path)
    monkeypatch.setattr(client_module, "datetime", Skewed)
    try:
        with pytest.raises(S3Error) as caught:
            client.head_bucket()
    finally:
        client.close()
    assert caught.value.code == "RequestTimeTooSkewed" and caught.value.kind is ErrorKind.REFUSED
    assert "clock" in caught.value.explain()


def test_missing_bucket_is_invalid(server: Any, tmp_path: Path) -> None:
    client = make_client(server, "no-such-bucket-here", tmp_path)
    try:
        with pytest.raises(S3Error) as caught:
            client.head_bucket()
        assert caught.value.code == "NoSuchBucket" and caught.value.kind is ErrorKind.INVALID
        assert "never creates" in caught.value.explain()
        with pytest.raises(S3Error) as caught:
            list(client.list_objects(""))
        assert caught.value.kind is ErrorKind.INVALID
    finally:
        client.close()


def test_unreachable_endpoint_is_unavailable(weed: SeaweedS3, tmp_path: Path) -> None:
    port = free_ports(1)[0]
    client = make_client(weed, "bucket", tmp_path, url=f"http://127.0.0.1:{port}")
    pauses: list[float] = []
    client._sleep = pauses.append  # type: ignore[method-assign]
    try:
        with pytest.raises(S3Error) as caught:
            client.head("x")
    finally:
        client.close()
    assert caught.value.status == 0 and caught.value.kind is ErrorKind.UNAVAILABLE
    assert f"127.0.0.1:{port}" in caught.value.explain()
    assert pauses == [0.2, 0.4, 0.8]  # four tries, backing off


def test_timeout_is_unavailable(weed: SeaweedS3, proxy: FaultProxy,
                                tmp_path: Path) -> None:
    proxy.blackhole = True
    client = make_client(weed, "bucket", tmp_path, url=proxy.endpoint_url, timeout=0.2)
    client._sleep = lambda _seconds: None  # type: ignore[method-assign]
    try:
        with pytest.raises(S3Error) as caught:
            client.head_bucket()
    finally:
        client.close()
    assert caught.value.kind is ErrorKind.UNAVAILABLE and "timed out" in caught.value.explain()
    assert proxy.connections == 4


def test_dropped_keepalive_connection_is_reopened(weed: SeaweedS3, proxy: FaultProxy,
                                                  tmp_path: Path) -> None:
    bucket = weed.fresh_bucket()
    client = make_client(weed, bucket, tmp_path, url=proxy.endpoint_url)
    pauses: list[float] = []
    client._sleep = pauses.append  # type: ignore[method-assign]
    try:
        client.put("a", b"1", 1)
        assert client.head("a") is not None
        assert proxy.connections == 1  # kept alive
        proxy.drop_all()
        assert client.head("a") is not None  # reopened and retried at once
        with client.get("a") as body:
            assert body.read() == b"1"
        proxy.drop_all()
        client.put("b", io.BytesIO(b"22"), 2)  # a streamed body is rewound for the retry
        assert proxy.connections == 3 and pauses == []
    finally:
        client.close()


def test_slowdown_is_retried_with_backoff(weed: SeaweedS3, proxy: FaultProxy,
                                          tmp_path: Path) -> None:
    bucket = weed.fresh_bucket()
    client = make_client(weed, bucket, tmp_path, url=proxy.endpoint_url)
    pauses: list[float] = []
    client._sleep = pauses.append  # type: ignore[method-assign]
    try:
        proxy.slowdowns = 2
        client.head_bucket()
        assert pauses == [0.2, 0.4] and proxy.connections == 3
        client.close()
        proxy.drop_all()
        client = make_client(weed, bucket, tmp_path, url=proxy.endpoint_url)
        client._sleep = pauses.append  # type: ignore[method-assign]
        proxy.slowdowns = 4
        with pytest.raises(S3Error) as caught:
            client.head_bucket()
        assert caught.value.code == "SlowDown" and caught.value.kind is ErrorKind.UNAVAILABLE
    finally:
        client.close()


def test_threads_share_one_client(server: Any, s3: S3Client) -> None:
    def work(index: int) -> bytes:
        key = f"t/{index}"
        s3.put(key, str(index).encode(), len(str(index)))
        with s3.get(key) as body:
            return body.read()

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(work, range(64))) == [str(i).encode() for i in range(64)]
    assert len(list(s3.list_objects("t/"))) == 64


def test_virtual_hosted_addressing_for_aws() -> None:
    endpoint = Endpoint("https", "s3.eu-west-1.amazonaws.com", 443, False, "eu-west-1")
    keys = Credentials("AK", "SK")
    assert not S3Client(endpoint, keys, "plain-bucket").path_style
    assert S3Client(endpoint, keys, "dotted.bucket").path_style
    assert "SK" not in repr(S3Client(endpoint, keys, "plain-bucket"))
