"""Many machines kept identical through one shared hub (an FTP folder or an S3 prefix).

Every machine is a separate ``python main.py`` process with its own folder and state; the
hub is a real server. See ``tests/hub_machines.py``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for, write
from tests.ftp_servers import PureFtpd, PyftpdServer
from tests.hub_machines import (
    Hub,
    Machine,
    converged,
    everything_kept,
    hub_versions,
    set_time,
)

HUBS = ("ftp-pyftpdlib", "ftp-pure-ftpd", "s3-seaweedfs", "s3-moto")


def _folder_files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in root.rglob("*") if path.is_file()}


@pytest.fixture(params=HUBS)
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    """An empty hub on a real server, stopped after the test."""
    if request.param == "ftp-pyftpdlib":
        served = tmp_path / "ftp-root"
        served.mkdir()
        server = PyftpdServer(served).start()
        try:
            yield Hub(request.param, server.url("hub"),
                      lambda: _folder_files(served / "hub"), {},
                      lambda name, data: write(served / "hub" / name, data) and None)
        finally:
            server.stop()
    elif request.param.startswith("s3-"):
        yield _s3_hub(request)
    else:
        pure = PureFtpd()
        try:
            pure.start()
            def plant(name: str, data: bytes) -> None:
                write(pure.root / "hub" / name, data)
                pure.own(pure.root / "hub")  # folders made for it too

            yield Hub(request.param, pure.url("hub"),
                      lambda: _folder_files(pure.root / "hub"), {}, plant)
        finally:
            pure.cleanup()


def _s3_hub(request: pytest.FixtureRequest) -> Hub:
    """A prefix in a fresh bucket of the session's SeaweedFS or moto server."""
    server = request.getfixturevalue("seaweed_s3" if request.param == "s3-seaweedfs"
                                     else "moto_process")
    bucket = server.fresh_bucket("hub")
    client = server.boto3_client()
    request.addfinalizer(client.close)

    def files() -> dict[str, bytes]:
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix="hub/"):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"]
                    found[item["Key"][len("hub/"):]] = body.read()
        return found

    def plant(name: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key="hub/" + name, Body=data)

    env = {key: value for key, value in server.environ().items()
           if not key.startswith("AWS_ENDPOINT_URL")}
    port = server.endpoint_url.rsplit(":", 1)[1]
    hub = Hub(request.param, f"s3+http://127.0.0.1:{port}/{bucket}/hub", files, env, plant)
    hub.uploads = lambda: [upload["Key"] for upload in client.list_multipart_uploads(
        Bucket=bucket).get("Uploads", [])]
    hub.start_foreign_upload = lambda key: client.create_multipart_upload(
        Bucket=bucket, Key="hub/" + key)["UploadId"]
    return hub


@pytest.fixture
def machines(tmp_path: Path, hub: Hub) -> Iterator[list[Machine]]:
    """Three machines sharing the hub; background runs are killed after the test."""
    made = [Machine(tmp_path, f"m{n}", hub) for n in (1, 2, 3)]
    yield made
    for machine in made:
        if machine.process is not None:
            machine.stop(signal.SIGKILL)


def test_edits_and_deletions_on_any_machine_reach_every_machine(machines: list[Machine]):
    m1, m2, m3 = machines
    write(m1.folder / "docs" / "plan.txt", "plan v1")
    write(m1.folder / "photos" / "cat.jpg", b"\xff\xd8 cat")
    write(m2.folder / "notes.txt", "from m2")
    for machine in (m1, m2, m3, m1):
        machine.once()
    assert m1.files() == m2.files() == m3.files()
    assert m3.files()["notes.txt"] == "from m2"

    write(m2.folder / "docs" / "plan.txt", "plan v2, edited on m2")
    (m3.folder / "photos" / "cat.jpg").unlink()
    write(m3.folder / "new-on-m3.txt", "hello")
    for machine in (m2, m3, m1, m2):
        machine.once()
    assert m1.files() == m2.files() == m3.files()
    assert m1.files()["docs/plan.txt"] == "plan v2, edited on m2"
    assert "photos/cat.jpg" not in m1.files() and "new-on-m3.txt" in m1.files()


def test_two_machines_editing_one_file_at_once_one_wins_and_nothing_is_lost(
        machines: list[Machine], hub: Hub):
    m1, m2, _ = machines
    write(m1.folder / "shared.txt", "original")
    m1.once()
    m2.once()
    write(m1.folder / "shared.txt", "m1's edit, a longer one", time.time() - 5)
    write(m2.folder / "shared.txt", "m2's edit", time.time())
    runs = [m1.start("--once"), m2.start("--once")]
    for run in runs:
        assert run.wait(timeout=120) in (0, 1), m1.output()
    m1.process = m2.process = None
    m1.once()
    m2.once()
    m1.once()
    assert m1.files() == m2.files()
    assert m1.files()["shared.txt"] == "m2's edit"  # the newer edit wins everywhere
    assert b"m1's edit, a longer one" in everything_kept(hub, m1, m2)
    assert hub.files()["shared.txt"] == b"m2's edit"


def test_a_same_second_same_size_edit_through_the_hub_is_not_missed(
        machines: list[Machine], hub: Hub):
    """Whole-second clocks show both writes as the same size and time: the journal tells."""
    m1, m2, _ = machines
    second = float(int(time.time()) - 50)
    set_time(write(m1.folder / "f.txt", "0000000000"), second - 100)
    m1.once()
    m2.once()
    set_time(write(m1.folder / "f.txt", "AAAAAAAAAA"), second + 0.2)
    m1.once()
    set_time(write(m2.folder / "f.txt", "BBBBBBBBBB"), second + 0.7)
    m2.once()  # both changed: m2's is newer and wins; the hub keeps m1's as a version
    assert hub.files()["f.txt"] == b"BBBBBBBBBB"
    assert b"AAAAAAAAAA" in hub_versions(hub)
    m1.once()  # the hub shows the size and second m1 wrote, but not m1's content
    assert m1.files()["f.txt"] == "BBBBBBBBBB"
    assert b"AAAAAAAAAA" in m1.kept()


def test_machines_watching_at_once_converge(machines: list[Machine], hub: Hub):
    m1, m2, m3 = machines
    for machine in machines:
        machine.start("--interval", "0.3")
    try:
        for n in range(5):
            write(m1.folder / f"from-m1-{n}.txt", f"m1 {n}")
            write(m2.folder / "sub" / f"from-m2-{n}.txt", f"m2 {n}")
            write(m3.folder / "common.txt", f"m3 edit {n}")
            time.sleep(0.2)
        try:
            wait_for(lambda: len(m1.files()) == 12 and m1.files() == m2.files() == m3.files(),
                     90, "three watching machines to converge")
        except AssertionError:
            report = "\n".join(f"--- {m.name}: {sorted(m.files())}\n{m.output()[-4000:]}"
                                for m in machines)
            raise AssertionError(f"not converged:\n{report}") from None
        assert m2.files()["common.txt"] == "m3 edit 4"
        (m2.folder / "from-m1-0.txt").unlink()
        converged(m1, m2, m3)
        wait_for(lambda: "from-m1-0.txt" not in m3.files(), 60, "the deletion to spread")
    finally:
        codes = [machine.stop() for machine in machines]
    assert codes == [0, 0, 0], m1.output()
    assert hub.files()["common.txt"] == b"m3 edit 4"


def test_a_machine_killed_mid_upload_loses_nothing_and_others_take_its_lease(
        machines: list[Machine], hub: Hub):
    m1, m2, _ = machines
    s3 = hub.name.startswith("s3-")
    # Big enough that the upload takes a while (on S3: a multipart upload, seen as such).
    big = bytes(range(256)) * ((400 if s3 else 160) * 1024)
    write(m1.folder / "big.bin", big)
    for n in range(20):
        write(m1.folder / "small" / f"{n}.txt", f"small {n}")
    m1.start("--once", "--workers", "1")

    def uploading() -> bool:
        if s3:
            return bool(hub.uploads())
        return any(name.startswith(".filesync-") and name.endswith(".tmp")
                   for name in hub.files())  # big.bin's, at the top (not the journal's)

    wait_for(uploading, 60, "an upload to be under way")
    m1.stop(signal.SIGKILL)
    assert "big.bin" not in hub.files() or hub.files()["big.bin"] == big
    assert any(name.startswith(".filesync/lease/") for name in hub.files())
    started = time.monotonic()
    log = m2.once()  # m1's lease is unrenewed: m2 takes it over after its time to live
    assert time.monotonic() - started >= 2
    assert "taking over the lease" in log
    started = time.monotonic()
    m1.once()  # m1 again: its own earlier lease (if any is left) is taken back at once
    m2.once()
    assert m1.files() == m2.files()
    assert m2.folder.joinpath("big.bin").read_bytes() == big
    assert len(m2.files()) == 22
    assert not any(name.endswith(".tmp") for name in hub.files())
    if s3:
        assert hub.uploads() == []  # m1's own leftover upload was aborted by its next run


def test_another_machines_fresh_temporary_file_in_the_hub_is_left_alone(
        machines: list[Machine], hub: Hub):
    m1, _, _ = machines
    if hub.name.startswith("s3-"):
        _another_machines_upload_is_left_alone(m1, hub)
        return
    write(m1.folder / "a.txt", "a")
    m1.once()
    planted = "sub/.filesync-0badc0de-0123456789ab.tmp"
    hub.plant(planted, b"an upload in flight on another machine")
    write(m1.folder / "sub" / "b.txt", "b")
    m1.once()
    assert hub.files()[planted] == b"an upload in flight on another machine"
    assert hub.files()["sub/b.txt"] == b"b"


def _another_machines_upload_is_left_alone(m1: Machine, hub: Hub) -> None:
    """S3 writes no temporary files; another machine's multipart upload is its analogue."""
    write(m1.folder / "a.txt", "a")
    m1.once()
    hub.start_foreign_upload("sub/big.iso")
    write(m1.folder / "sub" / "b.txt", "b")
    m1.once()
    assert hub.files()["sub/b.txt"] == b"b"
    if hub.name == "s3-moto":
        # moto dates every upload 2010-11-10: older than a day, so it counts as abandoned.
        assert hub.uploads() == []
    else:
        assert hub.uploads() == ["hub/sub/big.iso"]
