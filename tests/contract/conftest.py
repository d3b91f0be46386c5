"""One fixture, ``backend``, yielding a prepared location of every kind (see ``Backend``).

Adding a backend to the contract suite means adding one branch here; the tests themselves
never look at which backend they run against, only at its declared capabilities.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from filesync.locations import Location, open_location, parse_location
from filesync.locations.memory import MemoryLocation
from tests.ftp_servers import USER, PureFtpd, PyftpdServer, running_pureftpd
from tests.s3_servers import moto_process, seaweed_s3  # noqa: F401 (fixtures used by name)
from tests.tcp_proxy import TcpProxy

#: Numbers the folders tests get on the shared pure-ftpd.
_SITES = itertools.count()

#: Every backend setup the suite runs against (the ids of the parametrized tests).
BACKENDS = ("memory", "folder", "zip", "ftp-pyftpdlib", "ftp-pure-ftpd", "s3-seaweedfs",
            "s3-moto")


@dataclass
class Backend:
    """A prepared location and the ways a test reaches around it.

    The callables stand for things that happen outside filesync (a user deleting the
    folder, a server going down, a crashed run's leftovers), which no location method can
    do; everything else a test does goes through ``location`` alone.
    """

    name: str
    location: Location
    #: Make the location unreachable: its root removed, its server stopped, its archive
    #: deleted, or (memory) switched off.
    go_away: Callable[[], None]
    #: Leave a file named ``name`` (a temporary file's name) where a crashed run of
    #: filesync would have left it (beside a ZIP archive, in a folder's root, ...).
    plant_temp: Callable[[str], None]
    #: Make changes to the location refused (permission denied).
    refuse_changes: Callable[[], None]


def _open(text: str) -> Location:
    spec = parse_location(text).unwrap()
    return open_location(spec).unwrap()


def _prepared(location: Location) -> Location:
    prepared = location.prepare()
    assert prepared.ok, prepared
    return location


def _refusal(root: Path, cleanup: contextlib.ExitStack) -> Callable[[], None]:
    """Refuse changes in the folder ``root``: by its permissions, or for root (whom
    permission bits do not stop) by making it immutable (``chattr +i``), undone after."""
    def refuse() -> None:
        if os.geteuid() != 0:
            root.chmod(0o555)
            cleanup.callback(root.chmod, 0o755)
            return
        subprocess.run(["chattr", "+i", str(root)], check=True, capture_output=True)
        cleanup.callback(subprocess.run, ["chattr", "-i", str(root)], check=False)

    return refuse


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A prepared, empty location of each kind; closed (and its server stopped) after."""
    name: str = request.param
    with contextlib.ExitStack() as cleanup:
        if name == "memory":
            memory = MemoryLocation("contract")

            def switch_off() -> None:
                memory.available = False

            def refuse_memory() -> None:
                memory.read_only = True

            yield Backend(name, _prepared(memory), switch_off,
                          lambda temp: memory.plant(temp, b"left over"), refuse_memory)
        elif name == "folder":
            root = tmp_path / "folder root"
            folder = _prepared(_open(f"folder:{root}"))
            cleanup.callback(folder.close)
            yield Backend(name, folder, lambda: shutil.rmtree(root),
                          lambda temp: (root / temp).write_bytes(b"left over"),
                          _refusal(root, cleanup))
        elif name == "zip":
            archive = tmp_path / "archive.zip"
            zipped = _prepared(_open(f"zip:{archive}"))
            cleanup.callback(zipped.close)
            yield Backend(name, zipped, archive.unlink,
                          lambda temp: (tmp_path / temp).write_bytes(b"left over"),
                          _refusal(tmp_path, cleanup))
        elif name == "ftp-pyftpdlib":
            served = tmp_path / "pyftpd-root"
            served.mkdir()
            server = PyftpdServer(served).start()
            cleanup.callback(server.stop)
            ftp = _prepared(_open(server.url("site")))
            cleanup.callback(ftp.close)

            def deny() -> None:
                # pyftpdlib's own permission setting: list and read only, below the site.
                server.handler.authorizer.override_perm(USER, str(served / "site"), "elr",
                                                         recursive=True)

            yield Backend(name, ftp, server.stop,
                          lambda temp: (served / "site" / temp).write_bytes(b"left over"),
                          deny)
        elif name.startswith("s3-"):
            yield _s3_backend(name, request, tmp_path, cleanup)
        else:
            pure: PureFtpd = request.getfixturevalue("shared_pureftpd")
            site_name = f"site{next(_SITES)}"
            ftp = _prepared(_open(pure.url(site_name)))
            cleanup.callback(ftp.close)
            site = pure.root / site_name

            def plant_on_server(temp: str) -> None:
                (site / temp).write_bytes(b"left over")
                pure.own(site / temp)

            def lock_site() -> None:
                # The virtual user is not root: the folder's own permissions stop it.
                site.chmod(0o555)

            def restart() -> None:
                if pure.process is None:  # stopped by go_away: the next test needs it
                    pure.start()

            cleanup.callback(restart)
            yield Backend(name, ftp, pure.stop, plant_on_server, lock_site)


def _s3_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path,
                cleanup: contextlib.ExitStack) -> Backend:
    """A prefix in a fresh bucket of the session's S3 server, reached through a proxy the
    test can shut (``go_away``) while the server keeps serving the other tests."""
    server = request.getfixturevalue("seaweed_s3" if name == "s3-seaweedfs" else "moto_process")
    bucket = server.fresh_bucket("contract")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
                     "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    host, _, port = server.endpoint_url.removeprefix("http://").partition(":")
    proxy = TcpProxy(host, int(port))
    cleanup.callback(proxy.close)
    location = _prepared(_open(f"s3+http://127.0.0.1:{proxy.port}/{bucket}/site"))
    cleanup.callback(location.close)
    boto = server.boto3_client()

    def plant(temp: str) -> None:
        boto.put_object(Bucket=bucket, Key=f"site/{temp}", Body=b"left over")

    def refuse() -> None:
        # A bucket policy denying writes and deletes: both servers enforce it (403).
        boto.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Principal": "*",
                           "Action": ["s3:PutObject", "s3:DeleteObject"],
                           "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}))

    return Backend(name, location, proxy.close, plant, refuse)


@pytest.fixture(scope="session")
def shared_pureftpd() -> Iterator[PureFtpd]:
    """One pure-ftpd for every contract test (it needs about 2 s to stop); each test
    gets a folder of its own on it."""
    with running_pureftpd() as server:
        yield server
