"""The FTP location against real servers: pyftpdlib (plain, TLS, faulty) and pure-ftpd."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

from filesync.excludes import Excludes
from filesync.locations.ftp import FtpLocation
from filesync.locations.ftp.listing import whole_seconds
from filesync.model import Entry
from filesync.result import ErrorKind
from tests.conftest import wait_for
from tests.ftp_servers import (
    PASSWORD,
    USER,
    PyftpdServer,
    Served,
    free_port,
)

T = 1_700_000_000_123_456_789  # a source mtime with a fraction the server cannot keep


class Breaking(io.RawIOBase):
    """A source that fails like the engine's reader does when the source file changes."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        if self.left <= 0:
            raise OSError("the source changed while being copied")
        piece = min(self.left, size if size > 0 else self.left, 65536)
        self.left -= piece
        return b"x" * piece


def _write(location: FtpLocation, path: str, data: bytes, mtime: int = T,
           keep: str | None = None) -> Entry:
    written = location.write(path, io.BytesIO(data), mtime, keep_old_as=keep)
    assert written.ok, written
    return written.value


def _read(location: FtpLocation, path: str) -> bytes:
    opened = location.open_read(path)
    assert opened.ok, opened
    with opened.value as stream:
        return stream.read()


def _temps(root: Path) -> list[str]:
    return [p.name for p in root.rglob(".filesync-*.tmp")]


# ----- the core operations, against both servers -------------------------------------------
def test_round_trip_keeps_names_sizes_and_times(any_server: Served, open_ftp):
    location = open_ftp(any_server.url("site"))
    assert location.prepare().ok
    path = "a b/é ü/f 1 ünï.txt"
    entry = _write(location, path, b"hello world")
    assert entry == Entry(path, False, 11, whole_seconds(T))
    on_disk = any_server.root / "site" / path
    assert on_disk.read_bytes() == b"hello world"
    assert on_disk.stat().st_mtime_ns == whole_seconds(T)
    listing = location.scan(lambda _path: False).unwrap()
    assert listing.entries == {"a b": Entry("a b", True), "a b/é ü": Entry("a b/é ü", True),
                               path: entry}
    assert not listing.blind and not listing.temps and not listing.warnings
    assert location.stat(path).unwrap() == entry
    assert location.stat("a b").unwrap() == Entry("a b", True)
    assert location.stat("a b/none").unwrap() is None
    assert location.stat("nothing/below").unwrap() is None
    many = location.stat_many([path, "a b", "a b/none", "a b/é ü/none", "x/y/z"])
    assert {p: r.unwrap() for p, r in many.items()} == {
        path: entry, "a b": Entry("a b", True), "a b/none": None, "a b/é ü/none": None,
        "x/y/z": None}
    assert _read(location, path) == b"hello world"
    assert location.sha256(path).unwrap() == \
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    assert _temps(any_server.root) == []


def test_write_replaces_and_keeps_the_old_version(any_server: Served, open_ftp):
    location = open_ftp(any_server.url())
    assert location.prepare().ok
    _write(location, "doc.txt", b"first")
    second = _write(location, "doc.txt", b"second!", T + 5 * 10**9,
                    keep=".filesync/versions/doc.txt.1")
    assert second == Entry("doc.txt", False, 7, whole_seconds(T + 5 * 10**9))
    assert _read(location, "doc.txt") == b"second!"
    assert _read(location, ".filesync/versions/doc.txt.1") == b"first"
    # Keeping a file that is not there any more is fine.
    _write(location, "new.txt", b"n", keep=".filesync/versions/new.txt.1")
    assert location.stat(".filesync/versions/new.txt.1").unwrap() is None
    assert _temps(any_server.root) == []


def test_rename_delete_mkdir_rmdir(any_server: Served, open_ftp):
    location = open_ftp(any_server.url())
    assert location.prepare().ok
    _write(location, "old.txt", b"12345")
    moved = location.rename("old.txt", ".filesync/versions/deep/er/old.txt")
    assert moved.unwrap() == Entry(".filesync/versions/deep/er/old.txt", False, 5,
                                   whole_seconds(T))
    assert location.stat("old.txt").unwrap() is None
    assert location.mkdir("p/q/r").unwrap() == Entry("p/q/r", True)
    assert location.mkdir("p/q").ok  # already there
    _write(location, "p/q/r/f", b"f")
    refused = location.rmdir("p/q/r")
    assert not refused.ok and refused.kind is ErrorKind.FAILED and "p/q/r" in refused.message
    assert location.delete("p/q/r/f").ok
    assert location.delete("p/q/r/f").ok  # already gone
    assert location.rmdir("p/q/r").ok
    gone = location.rmdir("p/q/r")  # already gone: the contract says so
    assert not gone.ok and gone.kind is ErrorKind.NOT_FOUND
    assert location.stat("p/q").unwrap() == Entry("p/q", True)


def test_a_source_failing_mid_upload_leaves_nothing(any_server: Served, open_ftp):
    location = open_ftp(any_server.url())
    assert location.prepare().ok
    failed = location.write("big.bin", Breaking(3 << 20), T)  # type: ignore[arg-type]
    assert not failed.ok
    assert "the source changed" in failed.message and "big.bin" in failed.message
    assert location.stat("big.bin").unwrap() is None
    assert _temps(any_server.root) == []
    # The connection is still good for the next upload.
    assert _write(location, "after.txt", b"ok").size == 2


def test_a_missing_root_is_an_error_not_an_empty_listing(any_server: Served, open_ftp):
    # pyftpdlib answers MLSD of a missing folder with 501, pure-ftpd with 550.
    location = open_ftp(any_server.url("not/there"))
    failed = location.scan(lambda _path: False)
    assert not failed.ok and failed.kind is ErrorKind.UNAVAILABLE and "not/there" in failed.message
    assert not (any_server.root / "not").exists()  # only prepare creates it
    probed = location.probe()
    assert not probed.ok and probed.kind is ErrorKind.UNAVAILABLE
    assert location.prepare().ok  # creates it
    assert location.scan(lambda _path: False).unwrap().entries == {}
    assert location.probe().ok


def test_skipped_folders_temps_and_reserved_names(any_server: Served, open_ftp):
    location = open_ftp(any_server.url())
    assert location.prepare().ok
    _write(location, "keep/a.txt", b"a")
    _write(location, "skip/b.txt", b"b")
    stale = any_server.root / "keep" / ".filesync-00000000-0123456789ab.tmp"
    stale.write_bytes(b"partial")
    any_server.own(stale)
    listing = location.scan(lambda path: path == "skip").unwrap()
    assert set(listing.entries) == {"keep", "keep/a.txt"}
    assert listing.temps == ["keep/.filesync-00000000-0123456789ab.tmp"]
    assert location.delete(listing.temps[0]).ok
    assert not stale.exists()


def test_stat_many_of_a_crowded_folder_lists_it_once(pyftpd, open_ftp):
    server = pyftpd()
    location = open_ftp(server.url())
    assert location.prepare().ok
    for number in range(6):
        _write(location, f"d/f{number}", b"x" * number)
    before = server.stats.commands.copy()
    found = location.stat_many([f"d/f{n}" for n in range(8)])
    assert [r.unwrap() is not None for r in found.values()] == [True] * 6 + [False] * 2
    used = server.stats.commands - before
    assert used["MLSD"] == 1 and used["MLST"] == 0


def test_an_unreadable_folder_is_blind_never_empty(pureftpd, open_ftp):
    private = pureftpd.root / "private"
    private.mkdir(mode=0o700)  # root's: the FTP user (nobody) cannot look inside
    (private / "a").write_text("a")
    (pureftpd.root / "open.txt").write_text("o")
    pureftpd.own(pureftpd.root / "open.txt")
    location = open_ftp(pureftpd.url())
    listing = location.scan(lambda _path: False).unwrap()
    assert listing.blind == {"private"} and "private" in listing.entries
    assert "open.txt" in listing.entries and "private/a" not in listing.entries
    found = location.stat_many(["private/a", "private/b", "private/c"])
    assert all(not result.ok for result in found.values()), found
    gone = location.stat_many(["gone/a", "gone/b", "gone/c"])
    assert all(result.ok and result.value is None for result in gone.values()), gone


# ----- server dialects and features --------------------------------------------------------
def test_servers_without_mlsd_are_listed_with_list_and_mdtm(pyftpd, open_ftp):
    server = pyftpd(no_mlsd=True)
    location = open_ftp(server.url("w"))
    assert location.prepare().ok
    entry = _write(location, "sub dir/ä b.txt", b"data")
    assert entry.mtime_ns == whole_seconds(T)
    (server.root / "w" / "sub dir" / ".filesync-00000000-00000000000a.tmp").write_bytes(b"t")
    listing = location.scan(lambda _path: False).unwrap()
    assert listing.entries == {"sub dir": Entry("sub dir", True), "sub dir/ä b.txt": entry}
    assert listing.temps == ["sub dir/.filesync-00000000-00000000000a.tmp"]
    assert location.stat("sub dir/ä b.txt").unwrap() == entry
    assert location.stat("sub dir/none").unwrap() is None
    assert server.stats.commands["MDTM"] >= 1 and server.stats.commands["MLSD"] == 0


def test_site_utime_is_used_when_mfmt_is_missing(pyftpd, open_ftp):
    server = pyftpd(no_mfmt=True, site_utime=True)
    location = open_ftp(server.url())
    assert location.prepare().ok
    entry = _write(location, "f.txt", b"abc")
    assert entry.mtime_ns == whole_seconds(T)
    assert (server.root / "f.txt").stat().st_mtime_ns == whole_seconds(T)
    assert server.stats.commands["SITE"] >= 1 and server.stats.commands["MFMT"] == 0


def test_without_any_way_to_set_times_the_server_time_is_remembered(pyftpd, open_ftp):
    server = pyftpd(no_mfmt=True)
    location = open_ftp(server.url())
    assert location.prepare().ok
    entry = _write(location, "f.txt", b"abc")
    assert entry.mtime_ns != whole_seconds(T)
    assert location.scan(lambda _path: False).unwrap().entries["f.txt"] == entry
    again = _write(location, "g.txt", b"abcd")
    assert location.stat("g.txt").unwrap() == again


def test_hostile_names_from_the_server_are_rejected(pyftpd, open_ftp):
    evil = ["../escape.txt", "a/../../b", "/etc/passwd", "..", "back\\slash"]
    for no_mlsd in (False, True):
        server = pyftpd(evil_names=evil, no_mlsd=no_mlsd)
        (server.root / "inject-here").write_text("x")
        (server.root / "good.txt").write_text("g")
        location = open_ftp(server.url())
        listing = location.list(Excludes()).unwrap()
        assert set(listing.entries) == {"inject-here", "good.txt"}
        warned = "\n".join(listing.warnings)
        for name in ("../escape.txt", "a/../../b", "/etc/passwd", "back\\\\slash"):
            assert name in warned, (name, warned)


# ----- interrupted transfers resume --------------------------------------------------------
def test_an_interrupted_upload_resumes_and_is_checked_by_size(pyftpd, open_ftp, log_records):
    server = pyftpd(drop_after=3 << 20)
    location = open_ftp(server.url())
    assert location.prepare().ok
    data = os.urandom(12 << 20)
    entry = _write(location, "big.bin", data)
    assert server.stats.dropped, "the server did not drop the connection"
    assert entry.size == len(data)
    assert (server.root / "big.bin").read_bytes() == data
    assert server.stats.commands["REST"] >= 1
    assert "resuming" in log_records.text
    assert _temps(server.root) == []


def test_an_interrupted_download_resumes(pyftpd, open_ftp):
    server = pyftpd(drop_after=3 << 20)
    data = os.urandom(12 << 20)
    (server.root / "big.bin").write_bytes(data)
    location = open_ftp(server.url())
    assert _read(location, "big.bin") == data
    assert server.stats.dropped and server.stats.commands["REST"] >= 1


# ----- the connection pool -----------------------------------------------------------------
def test_the_pool_never_opens_more_connections_than_allowed(pyftpd, open_ftp):
    server = pyftpd()
    location = open_ftp(server.url(), ftp_connections=2)
    assert location.prepare().ok
    errors: list[str] = []

    def work(number: int) -> None:
        for turn in range(5):
            written = location.write(f"t{number}/f{turn}", io.BytesIO(b"x" * 5000), T)
            listed = location.scan(lambda _path: False)
            for result in (written, listed):
                if not result.ok:
                    errors.append(result.message)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert server.stats.peak <= 2 and location._session.pool.peak <= 2
    assert server.stats.logins <= 2  # logins are reused, not repeated


def test_a_server_connection_limit_is_respected(pyftpd, open_ftp):
    server = pyftpd(max_cons_per_ip=2)
    location = open_ftp(server.url(), ftp_connections=5)
    assert location.prepare().ok
    results: list[bool] = []
    together = threading.Barrier(6)

    def work(number: int) -> None:
        together.wait()
        for turn in range(4):
            written = location.write(f"f{number}-{turn}", io.BytesIO(b"y" * 200_000), T)
            results.append(written.ok)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 24
    assert location._session.pool._cap <= 2


def test_dropped_idle_connections_are_replaced_transparently(pyftpd, open_ftp):
    server = pyftpd(timeout=0.5)  # the server says 421 and hangs up after 0.5 s idle
    location = open_ftp(server.url(), keepalive=0)
    assert location.prepare().ok
    wait_for(lambda: server.stats.connections == 0, message="the server's idle timeout")
    assert location.scan(lambda _path: False).ok
    assert server.stats.logins == 2
    server.stop()  # a restart drops every connection
    server.start()
    assert _write(location, "after-restart.txt", b"r").size == 1


def test_idle_connections_are_kept_alive_with_noop(pyftpd, open_ftp):
    server = pyftpd(timeout=1.0)
    location = open_ftp(server.url(), keepalive=0.2)
    assert location.prepare().ok
    wait_for(lambda: server.stats.commands["NOOP"] >= 8, timeout=10, message="NOOPs")
    assert location.scan(lambda _path: False).ok
    assert server.stats.logins == 1  # never had to log in again


def test_a_server_down_at_start_is_waited_for(pyftpd, open_ftp, tmp_path):
    port = free_port()
    location = open_ftp(f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/data")
    prepared = location.prepare()
    assert not prepared.ok and prepared.kind is ErrorKind.UNAVAILABLE  # the CLI goes on
    assert "cannot connect" in prepared.message
    failed = location.scan(lambda _path: False)
    assert not failed.ok and failed.kind is ErrorKind.UNAVAILABLE
    assert "cannot connect" in failed.message
    started = time.monotonic()
    assert not location.scan(lambda _path: False).ok  # backoff: no new attempt yet
    assert time.monotonic() - started < 0.2
    root = tmp_path / "late-root"
    (root / "data").mkdir(parents=True)
    server = PyftpdServer(root)
    server.port = port
    server.start()
    try:
        wait_for(lambda: location.scan(lambda _path: False).ok, timeout=20,
                 message="the location to come back")
    finally:
        server.stop()


def test_a_wrong_password_fails_clearly_without_a_retry_storm(pyftpd, open_ftp):
    server = pyftpd()
    location = open_ftp(f"ftp://{USER}:WrongPass123@127.0.0.1:{server.port}/")
    refused = location.prepare()
    assert not refused.ok and refused.kind is ErrorKind.REFUSED  # the CLI exits 2
    assert "password" in refused.message  # what to check
    assert "WrongPass123" not in refused.message
    for _ in range(5):
        assert not location.scan(lambda _path: False).ok
    assert server.stats.commands["PASS"] == 1  # one attempt, not one per scan


# ----- TLS ---------------------------------------------------------------------------------
def test_ftps_with_a_trusted_ca(pyftpd, open_ftp, tls_files):
    server = pyftpd(tls=tls_files)
    location = open_ftp(server.url("secure"), ca_file=str(tls_files.ca_pem))
    assert location.prepare().ok
    entry = _write(location, "s p/ä.txt", b"secret data")
    assert location.scan(lambda _path: False).unwrap().entries["s p/ä.txt"] == entry
    assert _read(location, "s p/ä.txt") == b"secret data"
    assert server.stats.commands["PROT"] >= 1 and server.stats.commands["AUTH"] >= 1


def test_ftps_refuses_an_unknown_certificate(pyftpd, open_ftp, tls_files):
    server = pyftpd(tls=tls_files)
    refused = open_ftp(server.url()).prepare()
    assert not refused.ok and refused.kind is ErrorKind.REFUSED
    assert "certificate" in refused.message and "--ca-file" in refused.message  # the way out
    assert server.stats.logins == 0


def test_ftps_insecure_works_with_a_warning(pyftpd, open_ftp, tls_files, log_records):
    server = pyftpd(tls=tls_files)
    location = open_ftp(server.url(), insecure_tls=True)
    assert location.prepare().ok
    assert "NOT checked" in log_records.text
    assert _write(location, "x", b"1").size == 1


def test_plain_ftp_to_a_tls_only_server_is_a_clear_error(pyftpd, open_ftp, tls_files):
    server = pyftpd(tls=tls_files)
    refused = open_ftp(server.url(scheme="ftp")).prepare()
    assert not refused.ok and refused.kind is ErrorKind.REFUSED


# ----- passwords ---------------------------------------------------------------------------
def test_the_password_comes_from_netrc(pyftpd, open_ftp, tmp_path, monkeypatch):
    server = pyftpd()
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    location = open_ftp(server.url(password=False))
    assert location.check().ok
    assert location.prepare().ok
    assert PASSWORD not in location.display


def test_no_password_anywhere_is_a_clear_error(pyftpd, open_ftp, tmp_path, monkeypatch):
    server = pyftpd()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login somebody-else password nope\n")
    monkeypatch.setenv("NETRC", str(netrc))
    checked = open_ftp(server.url(password=False)).check()
    assert not checked.ok and checked.kind is ErrorKind.INVALID
    assert str(netrc) in checked.message  # where to put it
    assert server.stats.commands["USER"] == 0


def test_a_malformed_netrc_is_reported_without_its_content(open_ftp, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login alice password {PASSWORD}\nnonsense here\n")
    monkeypatch.setenv("NETRC", str(netrc))
    checked = open_ftp("ftp://alice@127.0.0.1:21/").check()
    assert not checked.ok and checked.kind is ErrorKind.INVALID and "malformed" in checked.message
    assert PASSWORD not in checked.message and "nonsense" not in checked.message
