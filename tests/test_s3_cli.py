"""``python main.py s3+http://… folder:… --once`` as a user runs it, against SeaweedFS and moto:
a sync both ways, and bad input (wrong secret, missing bucket, no permission) refused with
exit status 2, a message naming the location, nothing changed, and no secret anywhere."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from filesync.locations.s3.mtimes import format_mtime
from tests.conftest import MAIN
from tests.s3_servers import (  # noqa: F401 (a fixture used by name)
    REGION,
    moto_process,
    seaweed_s3,
)

T1 = 1_700_000_000_123_456_789


@pytest.fixture(params=["seaweedfs", "moto"])
def server(request: pytest.FixtureRequest) -> Any:
    """Each S3 server of the session."""
    return request.getfixturevalue("seaweed_s3" if request.param == "seaweedfs"
                                   else "moto_process")


def run(server: Any, tmp_path: Path, *args: str, secret: str | None = None,
        access_key: str | None = None) -> subprocess.CompletedProcess[str]:
    """main.py with the server's credentials in the environment (no ~/.aws)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HOME=str(tmp_path / "home"), AWS_ACCESS_KEY_ID=access_key or server.access_key,
               AWS_SECRET_ACCESS_KEY=secret or server.secret_key, AWS_REGION=REGION)
    return subprocess.run([sys.executable, str(MAIN), *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path below ``root`` with its content (None for folders)."""
    return {str(path.relative_to(root)): None if path.is_dir() else path.read_bytes()
            for path in sorted(root.rglob("*"))}


def keys(boto: Any, bucket: str) -> list[str]:
    """Every key in the bucket."""
    return sorted(item["Key"] for item in boto.list_objects_v2(Bucket=bucket).get("Contents", []))


def assert_no_secret(server: Any, result: subprocess.CompletedProcess[str],
                     *secrets: str) -> None:
    """Neither the server's secret nor any other given one appears in the output."""
    for secret in (server.secret_key, *secrets):
        assert secret not in result.stdout and secret not in result.stderr


def test_a_full_sync_both_ways(server, tmp_path: Path):
    bucket = server.fresh_bucket("cli-sync")
    location = f"s3+http://127.0.0.1:{server.port}/{bucket}/team"
    folder = tmp_path / "folder"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "a.txt").write_bytes(b"alpha")
    (folder / "gone.txt").write_bytes(b"to be deleted")
    (folder / "empty").mkdir()
    os.utime(folder / "docs" / "a.txt", ns=(T1, T1))
    first = run(server, tmp_path, "--once", "-v", location, f"folder:{folder}")
    assert first.returncode == 0, first.stderr
    assert_no_secret(server, first)
    boto = server.boto3_client()
    assert {"team/docs/a.txt", "team/gone.txt", "team/empty/", "team/.filesync/marker"} <= set(
        keys(boto, bucket))
    head = boto.head_object(Bucket=bucket, Key="team/docs/a.txt")
    assert head["Metadata"] == {"mtime": format_mtime(T1)}
    # Changes on both sides: a foreign upload and an rclone one in the bucket, a deletion
    # in the folder.
    boto.put_object(Bucket=bucket, Key="team/from-boto.txt", Body=b"uploaded by boto3")
    boto.put_object(Bucket=bucket, Key="team/docs/rclone.txt", Body=b"rclone",
                    Metadata={"mtime": "1700000000.5"})
    (folder / "gone.txt").unlink()
    second = run(server, tmp_path, "--once", location, f"folder:{folder}")
    assert second.returncode == 0, second.stderr
    assert (folder / "from-boto.txt").read_bytes() == b"uploaded by boto3"
    assert (folder / "docs" / "rclone.txt").stat().st_mtime_ns == 1_700_000_000_500_000_000
    assert "team/gone.txt" not in keys(boto, bucket)
    assert (folder / "empty").is_dir()
    third = run(server, tmp_path, "--once", location, f"folder:{folder}")
    assert third.returncode == 0 and "0 copied" in third.stdout + third.stderr, third


def _deny(boto: Any, bucket: str, actions: list[str], resource: str) -> None:
    boto.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": actions,
                       "Resource": [resource]}]}))


def _moto_auth(server: Any, count: str) -> None:
    """Turn moto's IAM checks on ("0") or off ("inf") through its documented API."""
    request = urllib.request.Request(f"{server.endpoint_url}/moto-api/reset-auth",
                                     data=count.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def _user_without_rights(server: Any, cleanup: contextlib.ExitStack) -> tuple[str, str]:
    """moto: an IAM user with no policy, and IAM checks on until the test ends.

    moto enforces bucket policies on object requests only, so a listing refused for lack
    of permission needs its IAM checks (global to the server process, turned off after).
    """
    import boto3

    iam = boto3.client("iam", endpoint_url=server.endpoint_url, region_name=REGION,
                       aws_access_key_id=server.access_key,
                       aws_secret_access_key=server.secret_key)
    name = f"nobody-{os.getpid()}-{len(iam.list_users()['Users'])}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    _moto_auth(server, "0")
    cleanup.callback(_moto_auth, server, "inf")
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.mark.parametrize("case", [
    "seaweedfs/wrong secret", "seaweedfs/missing bucket", "seaweedfs/no permission",
    # moto does not check signatures: a wrong secret is SeaweedFS's case alone.
    "moto/missing bucket", "moto/no permission"])
def test_bad_input_is_refused_at_start_with_nothing_changed(request: pytest.FixtureRequest,
                                                            tmp_path: Path, case: str):
    name, _, problem = case.partition("/")
    server = request.getfixturevalue("seaweed_s3" if name == "seaweedfs" else "moto_process")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "mine.txt").write_bytes(b"precious")
    before = tree(folder)
    bucket = server.fresh_bucket("cli-bad")
    secret = access_key = None
    cleanup = contextlib.ExitStack()
    if problem == "missing bucket":
        bucket = "never-created-" + bucket[-12:]
    elif problem == "wrong secret":
        secret = "WrongSecret/" + "q" * 28
    elif name == "moto":
        access_key, secret = _user_without_rights(server, cleanup)
    else:
        _deny(server.boto3_client(), bucket, ["s3:ListBucket"], f"arn:aws:s3:::{bucket}")
    location = f"s3+http://127.0.0.1:{server.port}/{bucket}/p"
    with cleanup:
        for extra in ([], ["-v"], ["--dry-run", "-v"]):
            result = run(server, tmp_path, "--once", *extra, location, f"folder:{folder}",
                         secret=secret, access_key=access_key)
            assert result.returncode == 2, (extra, result.stdout, result.stderr)
            assert location in result.stderr, result.stderr
            assert_no_secret(server, result, *([secret] if secret else []))
            assert tree(folder) == before
    if problem == "missing bucket":
        assert "does not exist" in result.stderr and "never creates" in result.stderr
    elif problem == "wrong secret":
        assert "AWS_SECRET_ACCESS_KEY" in result.stderr
    else:
        assert "not allowed" in result.stderr or "AccessDenied" in result.stderr
    if problem != "missing bucket":
        boto = server.boto3_client()
        if problem == "no permission" and name != "moto":
            boto.delete_bucket_policy(Bucket=bucket)
        assert keys(boto, bucket) == []  # nothing was written there either


def test_the_secret_never_shows_in_a_verbose_dry_run_or_a_verbose_sync(server, tmp_path: Path):
    bucket = server.fresh_bucket("cli-secret")
    location = f"s3+http://127.0.0.1:{server.port}/{bucket}"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x.txt").write_bytes(b"x")
    dry = run(server, tmp_path, "--dry-run", "-v", location, f"folder:{folder}")
    assert dry.returncode == 0, dry.stderr
    assert_no_secret(server, dry)
    assert keys(server.boto3_client(), bucket) == []
    log = tmp_path / "sync.log"
    real = run(server, tmp_path, "--once", "-v", "--log", str(log), location, f"folder:{folder}")
    assert real.returncode == 0, real.stderr
    assert_no_secret(server, real)
    assert server.secret_key not in log.read_text(errors="replace")
    state_files = [path for path in tmp_path.rglob("*") if path.is_file()
                   and path.suffix not in (".txt",)]
    for path in state_files:
        assert server.secret_key.encode() not in path.read_bytes(), path


def test_one_prefix_inside_another_of_the_same_bucket_is_refused(tmp_path: Path, capfd):
    from tests.conftest import run_main

    status = run_main("--once", "--state", str(tmp_path / "state.sqlite"),
                      "s3+http://127.0.0.1:9/photos/2024", "s3+http://127.0.0.1:9/photos",
                      f"folder:{tmp_path / 'a'}")
    assert status == 2
    err = capfd.readouterr().err
    assert "s3+http://127.0.0.1:9/photos/2024" in err and "inside" in err
    assert not (tmp_path / "a").exists()


def test_versions_are_kept_in_the_bucket_and_restore_brings_them_back(server, tmp_path: Path):
    bucket = server.fresh_bucket("restore")
    boto = server.boto3_client()
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "docs" / "a.txt").write_text("first")
    (site / "gone.txt").write_text("deleted later")
    port = server.endpoint_url.rsplit(":", 1)[1]
    url = f"s3+http://127.0.0.1:{port}/{bucket}/site"
    state = str(tmp_path / "state.sqlite")
    assert run(server, tmp_path, "--once", "--state", state, f"folder:{site}", url
               ).returncode == 0
    (site / "docs" / "a.txt").write_text("second, longer")
    (site / "gone.txt").unlink()
    assert run(server, tmp_path, "--once", "--state", state, f"folder:{site}", url
               ).returncode == 0
    versions = [key for key in keys(boto, bucket) if key.startswith("site/.filesync/versions/")]
    assert len(versions) == 2  # the overwritten and the deleted file, copied in the bucket
    listed = run(server, tmp_path, "restore", url, "--list")
    assert listed.returncode == 0 and "docs/a.txt" in listed.stdout
    assert "gone.txt" in listed.stdout
    restored = run(server, tmp_path, "restore", url, "docs/a.txt", "gone.txt")
    assert restored.returncode == 0, restored.stderr
    body = boto.get_object(Bucket=bucket, Key="site/docs/a.txt")["Body"].read()
    assert body == b"first"
    assert boto.get_object(Bucket=bucket, Key="site/gone.txt")["Body"].read() == b"deleted later"
    boto.close()


def test_an_unreachable_endpoint_stops_once_at_start_and_watch_mode_waits_for_it(
        tmp_path: Path):
    from tests.conftest import wait_for
    from tests.s3_servers import free_ports

    port = free_ports(1)[0]  # nothing listens there
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "f.txt").write_text("kept")
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HOME=str(tmp_path / "home"), AWS_ACCESS_KEY_ID="id", AWS_SECRET_ACCESS_KEY="s")
    url = f"s3+http://127.0.0.1:{port}/bucket/x"
    once = subprocess.run([sys.executable, str(MAIN), "--once", "--state",
                           str(tmp_path / "s.sqlite"), f"folder:{folder}", url], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert once.returncode == 2
    assert url in once.stderr and "cannot reach" in once.stderr
    log = tmp_path / "watch.log"
    with open(log, "wb") as sink:
        watch = subprocess.Popen([sys.executable, str(MAIN), "--interval", "0.2", "--state",
                                  str(tmp_path / "s.sqlite"), f"folder:{folder}", url],
                                 env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "unavailable" in log.read_text(), 30, "the outage to be logged")
        assert "retries it until it answers" in log.read_text()
        assert watch.poll() is None  # still running, waiting for the endpoint
    finally:
        watch.terminate()
        assert watch.wait(timeout=30) == 0
    assert (folder / "f.txt").read_text() == "kept"
    # Only the folder's own marker was added: nothing was deleted because of the outage.
    assert sorted(path.name for path in folder.iterdir()) == [".filesync", "f.txt"]
