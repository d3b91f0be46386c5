"""The S3 location against real servers (SeaweedFS, moto): layout, the time cache,
multipart uploads, conditional overwrites, and the forms and times it parses."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from filesync.locations.s3 import upload
from filesync.locations.s3.location import S3Location
from filesync.locations.s3.mtimes import format_mtime, parse_mtime
from filesync.locations.spec import S3Spec, parse_location
from filesync.result import ErrorKind
from tests.contract.helpers import T1, T2, Generated
from tests.s3_servers import (  # noqa: F401 (a fixture used by name)
    REGION,
    moto_process,
    seaweed_s3,
)
from tests.tcp_proxy import TcpProxy

MIB = 1 << 20


@pytest.fixture(params=["seaweedfs", "moto"])
def server(request: pytest.FixtureRequest) -> Any:
    """Each S3 server of the session (SeaweedFS checks signatures, moto does not)."""
    return request.getfixturevalue("seaweed_s3" if request.param == "seaweedfs"
                                   else "moto_process")


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Callable[..., S3Location]]:
    """``opened(server, bucket, port=None, cache=None)``: a prepared location on prefix
    ``data``; closed after the test."""
    made: list[S3Location] = []

    def open_one(server: Any, bucket: str, port: int | None = None,
                 cache: Path | None = None) -> S3Location:
        spec = parse_location(f"s3+http://127.0.0.1:{port or server.port}/{bucket}/data")
        assert isinstance(spec.value, S3Spec)
        location = S3Location(spec.value, environ={
            "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": REGION}, home=tmp_path / "home")
        location.cache_path = cache
        made.append(location)
        prepared = location.prepare()
        assert prepared.ok, prepared
        return location

    yield open_one
    for location in made:
        location.close()


def counting(location: S3Location) -> Counter[str]:
    """Count the requests the location's client makes from now on (they still go out)."""
    client = location._connect().unwrap()
    counts: Counter[str] = Counter()
    for name in ("head", "list_objects", "get", "put", "copy", "delete"):
        original = getattr(client, name)

        def counted(*args: Any, _name: str = name, _original: Any = original,
                    **kwargs: Any) -> Any:
            counts[_name] += 1
            return _original(*args, **kwargs)

        setattr(client, name, counted)
    return counts


def last_modified_ns(boto: Any, bucket: str, key: str) -> int:
    """LastModified of an object as boto3 sees it, in whole seconds (as ns)."""
    return int(boto.head_object(Bucket=bucket, Key=key)["LastModified"].timestamp()) * 10**9


# ----- pure parsing -------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "nanos"), [
    ("1700000000.123456789", 1_700_000_000_123_456_789), ("1700000000", 1_700_000_000 * 10**9),
    ("1700000000.5", 1_700_000_000_500_000_000), ("1700000000.", 1_700_000_000 * 10**9),
    ("1700000000.1234567891234", 1_700_000_000_123_456_789), ("-1.5", -1_500_000_000),
    ("0.000000001", 1)])
def test_mtime_text_is_parsed_exactly(text: str, nanos: int):
    assert parse_mtime(text) == nanos


@pytest.mark.parametrize("text", ["", "abc", "1e9", "1,5", "0x10", "1.2.3", "inf", "nan"])
def test_mtime_text_that_is_no_decimal_number_is_none(text: str):
    assert parse_mtime(text) is None


@pytest.mark.parametrize("nanos", [0, 1, T1, T2, 2_145_830_400_999_999_999, -1_500_000_000])
def test_mtime_round_trips_as_rclone_writes_it(nanos: int):
    text = format_mtime(nanos)
    assert parse_mtime(text) == nanos
    assert text.count(".") == 1 and len(text.partition(".")[2]) == 9


@pytest.mark.parametrize(("text", "key", "endpoint"), [
    ("s3://bucket", "s3://bucket", None),
    ("s3://my.bucket-1/a/b/", "s3://my.bucket-1/a/b", None),
    ("s3+http://127.0.0.1:8333/bkt/x y", "s3+http://127.0.0.1:8333/bkt/x y",
     "http://127.0.0.1:8333"),
    ("S3+HTTPS://Store.Example/bkt", "s3+https://store.example/bkt", "https://store.example"),
    ("s3+http://[::1]:9000/bkt/p", "s3+http://[::1]:9000/bkt/p", "http://[::1]:9000")])
def test_s3_forms_parse(text: str, key: str, endpoint: str | None):
    spec = parse_location(text).unwrap()
    assert isinstance(spec, S3Spec)
    assert spec.key == spec.display == key and spec.endpoint_url == endpoint


@pytest.mark.parametrize(("text", "says"), [
    ("s3://", "no bucket"), ("s3://UPPER", "not a valid bucket name"),
    ("s3://ab", "not a valid bucket name"), ("s3://-bucket", "not a valid bucket name"),
    ("s3://bucket/a//b", "empty, '.' or '..'"), ("s3://bucket/a/../b", "empty, '.' or '..'"),
    ("s3+http://host:99999/bkt", "port"), ("s3+http:///bkt", "host"),
    ("s3+http://host/", "no bucket")])
def test_bad_s3_forms_are_explained(text: str, says: str):
    parsed = parse_location(text)
    assert not parsed.ok and says in parsed.message, parsed


def test_credentials_in_an_s3_form_are_refused_without_echoing_them():
    parsed = parse_location("s3+http://AKIAEXAMPLE:topsecretvalue@127.0.0.1:9000/bkt")
    assert not parsed.ok
    assert "topsecretvalue" not in parsed.message and "AKIAEXAMPLE" not in parsed.message
    assert "AWS_ACCESS_KEY_ID" in parsed.message and "AWS_SECRET_ACCESS_KEY" in parsed.message


def test_overlapping_prefixes_are_found():
    def spec(text: str) -> S3Spec:
        parsed = parse_location(text).unwrap()
        assert isinstance(parsed, S3Spec)
        return parsed

    assert spec("s3://bkt/a").overlap(spec("s3://bkt/a/b"))
    assert spec("s3://bkt").overlap(spec("s3://bkt/a"))
    assert spec("s3://bkt/a").overlap(spec("s3://bkt/a"))
    assert spec("s3://bkt/a").overlap(spec("s3://bkt/ab")) is None
    assert spec("s3://bkt/a").overlap(spec("s3://other/a")) is None
    assert spec("s3+http://h:1/bkt/a").overlap(spec("s3+http://h:2/bkt/a")) is None


# ----- against the servers ------------------------------------------------------------------
def test_foreign_objects_use_last_modified_and_our_times_are_rclone_metadata(server, opened):
    bucket = server.fresh_bucket("layout")
    boto = server.boto3_client()
    boto.put_object(Bucket=bucket, Key="data/foreign.txt", Body=b"from boto3")
    boto.put_object(Bucket=bucket, Key="data/rclone.txt", Body=b"from rclone",
                    Metadata={"mtime": "1700000000.5"})
    boto.put_object(Bucket=bucket, Key="data/implied/deep/file", Body=b"x")
    location = opened(server, bucket)
    written = location.write("sub/ours.txt", io.BytesIO(b"ours"), T1)
    assert written.ok, written
    assert location.mkdir("empty").ok
    entries = location.scan(lambda _path: False).unwrap().entries
    assert entries["foreign.txt"].mtime_ns == last_modified_ns(boto, bucket, "data/foreign.txt")
    assert entries["rclone.txt"].mtime_ns == 1_700_000_000_500_000_000
    assert entries["sub/ours.txt"].mtime_ns == T1
    assert {path for path, entry in entries.items() if entry.is_dir} == {
        "sub", "empty", "implied", "implied/deep"}
    head = boto.head_object(Bucket=bucket, Key="data/sub/ours.txt")
    assert head["Metadata"] == {"mtime": "1700000000.123456789"}
    assert boto.head_object(Bucket=bucket, Key="data/empty/")["ContentLength"] == 0
    stat = location.stat("foreign.txt").unwrap()
    assert stat == entries["foreign.txt"]


def test_a_no_op_rescan_makes_no_look_ups_even_in_a_new_run(server, opened, tmp_path: Path):
    bucket = server.fresh_bucket("cache")
    boto = server.boto3_client()
    for number in range(5):
        # Not empty: boto3 sends an empty body with "Expect: 100-continue", and SeaweedFS
        # then answers twice on the connection (the next request waits 60 s).
        boto.put_object(Bucket=bucket, Key=f"data/foreign{number}.txt",
                        Body=b"x" * (number + 1))
    cache = tmp_path / "s3-cache.json"
    location = opened(server, bucket, cache=cache)
    for number in range(3):
        assert location.write(f"ours{number}.txt", io.BytesIO(b"mine"), T1 + number).ok
    counts = counting(location)
    first = location.scan(lambda _path: False).unwrap().entries
    assert counts["head"] == 5 and counts["list_objects"] == 1, counts  # the 5 foreign ones
    counts.clear()
    assert location.scan(lambda _path: False).unwrap().entries == first
    assert counts == Counter(list_objects=1), counts
    location.close()
    assert cache.exists() and json.loads(cache.read_text())["objects"]
    again = opened(server, bucket, cache=cache)
    counts = counting(again)
    assert again.scan(lambda _path: False).unwrap().entries == first
    assert counts == Counter(list_objects=1), counts
    boto.put_object(Bucket=bucket, Key="data/foreign3.txt", Body=b"changed")
    changed = again.scan(lambda _path: False).unwrap().entries
    assert counts["head"] == 1 and changed["foreign3.txt"].size == 7, counts


def test_multipart_above_the_threshold_in_bounded_memory(server, opened, monkeypatch):
    monkeypatch.setattr(upload, "MULTIPART_THRESHOLD", 5 * MIB + 1)
    monkeypatch.setattr(upload, "PART_SIZE", 5 * MIB)
    bucket = server.fresh_bucket("multipart")
    location = opened(server, bucket)
    source = Generated(23 * MIB)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        written = location.write("big.bin", source, T2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written.ok, written
    # Both servers run in processes of their own: this is filesync's memory alone.
    bound = upload.PARTS_IN_FLIGHT * upload.PART_SIZE + upload.SPOOL_MEMORY + 6 * MIB
    assert peak - before < bound, f"{(peak - before) / MIB:.1f} MiB"
    boto = server.boto3_client()
    head = boto.head_object(Bucket=bucket, Key="data/big.bin")
    assert head["ETag"].strip('"').endswith("-5")  # 23 MiB in parts of 5 MiB
    assert head["Metadata"] == {"mtime": format_mtime(T2)}
    body = boto.get_object(Bucket=bucket, Key="data/big.bin")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == source.digest.hexdigest()
    assert not boto.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert location.stat("big.bin").unwrap() == written.value


def test_an_interrupted_multipart_leaves_nothing_and_is_aborted_next_time(
        server, opened, monkeypatch, tmp_path: Path):
    monkeypatch.setattr(upload, "MULTIPART_THRESHOLD", 5 * MIB + 1)
    monkeypatch.setattr(upload, "PART_SIZE", 5 * MIB)
    bucket = server.fresh_bucket("interrupted")
    boto = server.boto3_client()
    boto.put_object(Bucket=bucket, Key="data/big.bin", Body=b"the old content")
    cache = tmp_path / "cache.json"
    host, _, port = server.endpoint_url.removeprefix("http://").partition(":")
    with TcpProxy(host, int(port)) as proxy:
        cut = opened(server, bucket, port=proxy.port, cache=cache)
        proxy.cut_after = proxy.sent + 7 * MIB  # the line goes down in the second part
        failed = cut.write("big.bin", Generated(16 * MIB), T2)
        assert not failed.ok and failed.kind is ErrorKind.UNAVAILABLE, failed
    assert boto.get_object(Bucket=bucket, Key="data/big.bin")["Body"].read() == (
        b"the old content")
    uploads = boto.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [upload_["Key"] for upload_ in uploads] == ["data/big.bin"]  # abort failed too
    assert json.loads(cache.read_text())["uploads"] == [["data/big.bin",
                                                         uploads[0]["UploadId"]]]
    cut.close()
    foreign = boto.create_multipart_upload(Bucket=bucket, Key="data/other.bin")["UploadId"]
    opened(server, bucket, cache=cache)  # prepare() cleans up
    left = boto.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if server.name == "moto":
        # moto reports every upload as initiated on 2010-11-10: stale, so it goes too.
        assert left == []
    else:
        assert [(item["Key"], item["UploadId"]) for item in left] == [("data/other.bin",
                                                                       foreign)]
    assert json.loads(cache.read_text())["uploads"] == []


@pytest.mark.parametrize("size", [9, 6 * MIB], ids=["put", "multipart"])
def test_a_conditional_overwrite_is_refused_when_another_client_changed_the_object(
        server, opened, monkeypatch, size: int):
    monkeypatch.setattr(upload, "MULTIPART_THRESHOLD", 5 * MIB + 1)
    monkeypatch.setattr(upload, "PART_SIZE", 5 * MIB)
    bucket = server.fresh_bucket("conditional")
    location = opened(server, bucket)
    planned = location.write("f.txt", io.BytesIO(b"planned"), T1).unwrap()
    assert location.scan(lambda _path: False).unwrap().entries["f.txt"] == planned
    # Same size and the same time: only the ETag tells the change.
    boto = server.boto3_client()
    boto.put_object(Bucket=bucket, Key="data/f.txt", Body=b"changed",
                    Metadata={"mtime": format_mtime(T1)})
    refused = location.write("f.txt", io.BytesIO(b"o" * size), T2, expect=planned)
    assert not refused.ok and refused.kind is ErrorKind.CHANGED, refused
    assert boto.get_object(Bucket=bucket, Key="data/f.txt")["Body"].read() == b"changed"
    assert not boto.list_multipart_uploads(Bucket=bucket).get("Uploads")
    kept = location.write("g.txt", io.BytesIO(b"new"), T1, expect=None)
    assert kept.ok, kept
    again = location.write("g.txt", io.BytesIO(b"newer"), T2, expect=None)
    assert not again.ok and again.kind is ErrorKind.CHANGED, again


def test_backslashes_are_refused_where_the_server_mangles_them(server, opened):
    bucket = server.fresh_bucket("names")
    location = opened(server, bucket)
    if server.name == "seaweed":  # SeaweedFS stores "a\\b" as "a/b"
        assert not location.capabilities.posix_names
        assert location.name_problem("back\\slash")
    else:
        assert location.capabilities.posix_names
        assert location.name_problem("back\\slash") is None
    assert type(location).capabilities.posix_names  # the class keeps its declaration
    assert location.name_problem("caf\udce9.txt")  # not UTF-8: S3 keys are
    assert location.name_problem("x" * 1100)


def test_a_missing_bucket_and_a_wrong_secret_are_explained(server, tmp_path: Path):
    spec = parse_location(f"s3+http://127.0.0.1:{server.port}/no-such-bucket-here/p").unwrap()
    assert isinstance(spec, S3Spec)
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    missing = S3Location(spec, environ=env, home=tmp_path)
    checked = missing.check()
    missing.close()
    assert not checked.ok and checked.kind is ErrorKind.INVALID, checked
    assert "no-such-bucket-here" in checked.message and "create it first" in checked.message
    assert server.endpoint_url in checked.message
    nobody = S3Location(spec, environ={}, home=tmp_path)
    unconfigured = nobody.check()
    nobody.close()
    assert not unconfigured.ok and "AWS_ACCESS_KEY_ID" in unconfigured.message
    if server.name != "seaweed":
        return  # moto does not check signatures
    bucket = server.fresh_bucket("secret")
    spec = parse_location(f"s3+http://127.0.0.1:{server.port}/{bucket}").unwrap()
    assert isinstance(spec, S3Spec)
    wrong = S3Location(spec, environ={**env, "AWS_SECRET_ACCESS_KEY": "wrong-" + "x" * 30},
                       home=tmp_path)
    refused = wrong.check()
    wrong.close()
    assert not refused.ok and refused.kind is ErrorKind.REFUSED, refused
    assert spec.display in refused.message and "secret" in refused.message
    assert "wrong-" not in refused.message and server.secret_key not in refused.message


def test_without_conditional_requests_a_look_up_re_checks_and_says_so(server, opened,
                                                                      log_records):
    """Where a server ignores If-Match / If-None-Match (rclone serve s3 does), the
    location re-checks with a HEAD; here the location is told so instead of probing."""
    bucket = server.fresh_bucket("fallback")
    location = opened(server, bucket)
    location._conditional = False
    planned = location.write("f.txt", io.BytesIO(b"planned"), T1).unwrap()
    server.boto3_client().put_object(Bucket=bucket, Key="data/f.txt", Body=b"changed!")
    refused = location.write("f.txt", io.BytesIO(b"overwrite"), T2, expect=planned)
    assert not refused.ok and refused.kind is ErrorKind.CHANGED, refused
    current = location.stat("f.txt").unwrap()
    assert location.write("f.txt", io.BytesIO(b"overwrite"), T2, expect=current).ok
    assert location.write("new.txt", io.BytesIO(b"1"), T1, expect=None).ok
    again = location.write("new.txt", io.BytesIO(b"2"), T1, expect=None)
    assert not again.ok and again.kind is ErrorKind.CHANGED, again
    assert location.claim_dir("lease").unwrap() is True
    assert location.claim_dir("lease").unwrap() is False
    assert "not atomic" in log_records.text
