"""Endpoint, region and credentials for S3 locations, taken the way AWS tools take them."""

from __future__ import annotations

from pathlib import Path

import pytest

from filesync.locations.s3.config import Credentials, Endpoint, resolve
from filesync.result import Err, ErrorKind

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLETOKEN"
KEYS = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": SECRET}


def ok(endpoint_url: str | None, environ: dict[str, str], home: Path
       ) -> tuple[Endpoint, Credentials]:
    result = resolve(endpoint_url, environ, home)
    assert result.ok, result
    return result.value


def err(endpoint_url: str | None, environ: dict[str, str], home: Path) -> Err:
    result = resolve(endpoint_url, environ, home)
    assert isinstance(result, Err), result
    return result


def write(home: Path, name: str, text: str) -> Path:
    path = home / ".aws" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_environment_keys_and_aws_default_endpoint(tmp_path: Path) -> None:
    endpoint, creds = ok(None, {**KEYS, "AWS_SESSION_TOKEN": TOKEN}, tmp_path)
    assert endpoint == Endpoint("https", "s3.us-east-1.amazonaws.com", 443, False, "us-east-1")
    assert creds == Credentials("AKIDENV", SECRET, TOKEN)


def test_region_order(tmp_path: Path) -> None:
    write(tmp_path, "config", "[default]\nregion = ap-south-1\n")
    assert ok(None, KEYS, tmp_path)[0].region == "ap-south-1"
    assert ok(None, {**KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, tmp_path)[0].region == "eu-west-3"
    endpoint = ok(None, {**KEYS, "AWS_DEFAULT_REGION": "eu-west-3", "AWS_REGION": "eu-north-1"},
                  tmp_path)[0]
    assert endpoint.region == "eu-north-1"
    assert endpoint.host == "s3.eu-north-1.amazonaws.com"


def test_explicit_endpoint_wins_and_is_path_style(tmp_path: Path) -> None:
    environ = {**KEYS, "AWS_ENDPOINT_URL_S3": "https://other.example:9000",
               "AWS_REGION": "eu-central-1"}
    endpoint, _ = ok("http://127.0.0.1:8333", environ, tmp_path)
    assert endpoint == Endpoint("http", "127.0.0.1", 8333, True, "eu-central-1")
    # Even an explicit amazonaws.com endpoint is path style: the location asked for it.
    assert ok("https://s3.us-east-1.amazonaws.com", KEYS, tmp_path)[0].path_style


def test_endpoint_from_environment_order(tmp_path: Path) -> None:
    both = {**KEYS, "AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://s3:2"}
    assert ok(None, both, tmp_path)[0].host == "s3"
    only_generic = {**KEYS, "AWS_ENDPOINT_URL": "https://minio.example"}
    endpoint = ok(None, only_generic, tmp_path)[0]
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.path_style) == (
        "https", "minio.example", 443, True)


def test_endpoint_and_region_from_profile(tmp_path: Path) -> None:
    write(tmp_path, "config", "[profile work]\nregion = eu-west-1\nendpoint_url = "
          "http://store.internal:7480\n\n[profile nested]\ns3 =\n  endpoint_url = "
          "https://nested.example:8443\n  addressing_style = path\n")
    endpoint = ok(None, {**KEYS, "AWS_PROFILE": "work"}, tmp_path)[0]
    assert endpoint == Endpoint("http", "store.internal", 7480, True, "eu-west-1")
    endpoint = ok(None, {**KEYS, "AWS_PROFILE": "nested"}, tmp_path)[0]
    assert (endpoint.host, endpoint.port, endpoint.region) == ("nested.example", 8443,
                                                               "us-east-1")
    # The environment still beats the profile.
    environ = {**KEYS, "AWS_PROFILE": "work", "AWS_ENDPOINT_URL": "http://env:1"}
    assert ok(None, environ, tmp_path)[0].host == "env"


def test_credentials_file_profiles(tmp_path: Path) -> None:
    write(tmp_path, "credentials", f"[default]\naws_access_key_id = AKIDDEF\n"
          f"aws_secret_access_key = {SECRET}\n\n[ci]\naws_access_key_id = AKIDCI\n"
          f"aws_secret_access_key = other-secret\naws_session_token = {TOKEN}\n")
    assert ok(None, {}, tmp_path)[1] == Credentials("AKIDDEF", SECRET)
    assert ok(None, {"AWS_PROFILE": "ci"}, tmp_path)[1] == Credentials("AKIDCI", "other-secret",
                                                                       TOKEN)
    # Environment keys win over the file.
    assert ok(None, KEYS, tmp_path)[1].access_key == "AKIDENV"


def test_keys_in_config_file_profile(tmp_path: Path) -> None:
    write(tmp_path, "config", f"[profile dev]\naws_access_key_id = AKIDCFG\n"
          f"aws_secret_access_key = {SECRET}\nregion = us-west-2\n")
    endpoint, creds = ok(None, {"AWS_PROFILE": "dev"}, tmp_path)
    assert creds.access_key == "AKIDCFG" and endpoint.region == "us-west-2"


def test_file_locations_from_environment(tmp_path: Path) -> None:
    creds = tmp_path / "elsewhere" / "creds.ini"
    creds.parent.mkdir()
    creds.write_text(f"[default]\naws_access_key_id = AKIDX\naws_secret_access_key = {SECRET}\n")
    config = tmp_path / "elsewhere" / "conf.ini"
    config.write_text("[default]\nregion = sa-east-1\n")
    environ = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(config)}
    endpoint, credentials = ok(None, environ, tmp_path / "nohome")
    assert credentials.access_key == "AKIDX" and endpoint.region == "sa-east-1"


def test_missing_credentials_say_what_to_set(tmp_path: Path) -> None:
    failure = err(None, {}, tmp_path)
    assert failure.kind is ErrorKind.REFUSED
    for needed in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                   str(tmp_path / ".aws" / "credentials")):
        assert needed in failure.message
    half = err(None, {"AWS_ACCESS_KEY_ID": "AKID"}, tmp_path)
    assert half.kind is ErrorKind.REFUSED and "AWS_SECRET_ACCESS_KEY" in half.message


def test_missing_named_profile(tmp_path: Path) -> None:
    write(tmp_path, "credentials", "[default]\naws_access_key_id = A\naws_secret_access_key = B\n")
    failure = err(None, {"AWS_PROFILE": "nosuch"}, tmp_path)
    assert failure.kind is ErrorKind.INVALID and "'nosuch'" in failure.message


def test_bad_endpoint_and_bad_file(tmp_path: Path) -> None:
    assert err("ftp://host", KEYS, tmp_path).kind is ErrorKind.INVALID
    assert err(None, {**KEYS, "AWS_ENDPOINT_URL": "localhost:9000"}, tmp_path).kind is (
        ErrorKind.INVALID)
    assert err("http://host:notaport", KEYS, tmp_path).kind is ErrorKind.INVALID
    write(tmp_path, "credentials", f"aws_secret_access_key = {SECRET}\n[default\n")
    failure = err(None, {}, tmp_path)
    assert failure.kind is ErrorKind.INVALID and SECRET not in failure.message


def test_no_secret_in_repr_or_errors(tmp_path: Path) -> None:
    _, creds = ok(None, {**KEYS, "AWS_SESSION_TOKEN": TOKEN}, tmp_path)
    assert SECRET not in repr(creds) and TOKEN not in repr(creds) and "AKIDENV" in repr(creds)
    assert SECRET not in str(creds)
    write(tmp_path, "credentials", f"[default]\naws_secret_access_key = {SECRET}\n")
    failure = err(None, {}, tmp_path)
    assert SECRET not in failure.message and failure.kind is ErrorKind.REFUSED


@pytest.mark.parametrize("url", ["http://user:pw@host:1"])
def test_endpoint_with_credentials_refused(tmp_path: Path, url: str) -> None:
    failure = err(url, KEYS, tmp_path)
    assert failure.kind is ErrorKind.INVALID and "pw" not in failure.message
