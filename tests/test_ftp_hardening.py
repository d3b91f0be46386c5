"""FTP hardening (issue 8): names servers cannot hold, re-check before replace, transient
replies, other engines' temporary files, the reserved folder outside the synced tree."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from filesync.locations import parse_location
from filesync.locations.ftp import FtpLocation
from filesync.locations.spec import FtpSpec
from filesync.result import ErrorKind
from tests.conftest import run_main, tree, write
from tests.ftp_servers import PyftpdServer, Served

T = 1_700_000_000_000_000_000
OLD = time.time() - 3600


@pytest.fixture
def open_ftp(open_ftp: Callable[..., FtpLocation]) -> Callable[..., FtpLocation]:
    """The shared fixture's locations, prepared."""
    def make(url: str) -> FtpLocation:
        location = open_ftp(url)
        assert location.prepare().ok
        return location

    return make


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ----- 1. names the server cannot hold ------------------------------------------------------
#: Each is dropped, renamed or refused by pyftpdlib or pure-ftpd, or cannot be sent at all.
BAD_NAMES = [
    "tab\there.txt",        # pure-ftpd stores 'tab_here.txt'; our listing skips it anyway
    "del\x7f.txt",          # pure-ftpd: 'del_.txt'
    "esc\x1b.txt",
    "cr\rx.txt",            # CR/LF would inject commands
    "lf\nx.txt",
    "bad\udcff.txt",        # not valid Unicode (an undecodable local name)
    "back\\slash.txt",      # pure-ftpd: 553 Prohibited file name
    "trailing space.txt ",  # pure-ftpd: 'trailing space.txt_'
    "folder /f.txt",        # pure-ftpd creates 'folder_' and says the MKD worked
    "tab\tdir/f.txt",
]
#: Odd, but carried faithfully by both servers.
GOOD_NAMES = [" leading space.txt", "star*.txt", "what?.txt", "[brackets].txt",
              "-dash.txt", "pct%41.txt", "semi;colon.txt", "nbsp\u00a0.txt",
              "c1\u0085control.txt", "emoji 😀.txt", "a" * 255]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_the_server_cannot_hold_are_refused_before_anything_is_sent(
        any_server: Served, open_ftp, name: str):
    location = open_ftp(any_server.url("site"))
    problem = location.name_problem(name)
    assert problem, name
    assert "\r" not in problem and "\n" not in problem
    written = location.write(name, io.BytesIO(b"data"), T)
    assert not written.ok and written.kind is ErrorKind.INVALID
    assert problem in written.message  # the user is told why
    made = location.mkdir(name)
    assert not made.ok and made.kind is ErrorKind.INVALID and problem in made.message
    assert location.write("ok.txt", io.BytesIO(b"ok"), T).ok
    moved = location.rename("ok.txt", name)
    assert not moved.ok and moved.kind is ErrorKind.INVALID and problem in moved.message
    assert _files(any_server.root / "site") == {"ok.txt": b"ok"}
    assert [p.name for p in (any_server.root / "site").iterdir()] == ["ok.txt"]


def test_a_refused_name_sends_no_command(pyftpd, open_ftp):
    server: PyftpdServer = pyftpd()
    location = open_ftp(server.url())
    before = dict(server.stats.commands)
    for name in ("tab\there", "trail ", "x\\y", "bad\udcff"):
        for result in (location.write(name, io.BytesIO(b"data"), T), location.mkdir(name),
                       location.rename("anything", name)):
            assert not result.ok and result.kind is ErrorKind.INVALID, (name, result)
    assert dict(server.stats.commands) == before


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_odd_names_the_servers_keep_are_accepted(any_server: Served, open_ftp, name: str):
    location = open_ftp(any_server.url("site"))
    assert location.name_problem(name) is None
    assert location.name_problem(f"folder/{name}") is None
    entry = location.write(f"folder/{name}", io.BytesIO(b"data"), T).unwrap()
    listing = location.scan(lambda _path: False).unwrap()
    assert listing.entries[f"folder/{name}"] == entry
    assert not listing.skipped and not listing.warnings
    assert (any_server.root / "site" / "folder" / name).read_bytes() == b"data"


def test_the_base_class_rules_still_apply(pyftpd, open_ftp):
    location = open_ftp(pyftpd().url())
    assert location.name_problem("a/.filesync-0123abcd-0123456789ab.tmp")


# ----- 2. re-check right before replace -----------------------------------------------------
class Meddling(io.RawIOBase):
    """``size`` bytes; once half is read, ``meddle()`` runs (a user saving on the server)."""

    def __init__(self, size: int, meddle: Callable[[], None]) -> None:
        self.left = size
        self.half = size // 2
        self.meddle: Callable[[], None] | None = meddle

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        piece = min(self.left, size if size > 0 else self.left, 256 << 10)
        self.left -= piece
        if self.meddle is not None and self.left <= self.half:
            meddle, self.meddle = self.meddle, None
            meddle()
        return b"u" * piece


def _user_saves(served: Served, path: Path, data: bytes) -> Callable[[], None]:
    def save() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        served.own(path)
    return save


def test_a_file_saved_on_the_server_during_an_upload_is_not_replaced(any_server: Served,
                                                                       open_ftp):
    location = open_ftp(any_server.url("site"))
    target = any_server.root / "site" / "doc.txt"
    # Planned as absent (expect=None); the user saves the file while it is uploaded.
    source = Meddling(3 << 20, _user_saves(any_server, target, b"the user's own file"))
    failed = location.write("doc.txt", source, T, expect=None)  # type: ignore[arg-type]
    assert not failed.ok and failed.kind is ErrorKind.CHANGED
    assert target.read_bytes() == b"the user's own file"
    assert _files(any_server.root / "site") == {"doc.txt": b"the user's own file"}

    # Planned as the old content; the user overwrites it meanwhile: no version, no clobber.
    planned = location.stat("doc.txt").unwrap()
    assert planned is not None
    source = Meddling(3 << 20, _user_saves(any_server, target, b"saved again, a longer text"))
    failed = location.write("doc.txt", source, T, keep_old_as=".filesync/versions/doc.txt~1",
                            expect=planned)  # type: ignore[arg-type]
    assert not failed.ok and failed.kind is ErrorKind.CHANGED
    assert _files(any_server.root / "site") == {"doc.txt": b"saved again, a longer text"}


def test_an_unchanged_target_is_replaced(any_server: Served, open_ftp):
    location = open_ftp(any_server.url("site"))
    first = location.write("doc.txt", io.BytesIO(b"one"), T, expect=None).unwrap()
    second = location.write("doc.txt", io.BytesIO(b"two!"), T + 10**9, expect=first,
                            keep_old_as=".filesync/versions/doc.txt~1")
    assert second.ok, second
    assert (any_server.root / "site" / "doc.txt").read_bytes() == b"two!"
    assert (any_server.root / "site" / ".filesync" / "versions" / "doc.txt~1").read_bytes() \
        == b"one"
    # Planned absent, but it is there: refused, nothing changed.
    refused = location.write("doc.txt", io.BytesIO(b"three"), T, expect=None)
    assert not refused.ok and refused.kind is ErrorKind.CHANGED
    assert (any_server.root / "site" / "doc.txt").read_bytes() == b"two!"
    assert not list((any_server.root / "site").rglob(".filesync-*.tmp"))


# ----- 3. transient replies on data connections ---------------------------------------------
TRANSIENT = ["425 Unable to identify the local data socket", "426 Transfer aborted",
             "450 File busy"]


@pytest.mark.parametrize("no_mlsd", [False, True], ids=["mlsd", "list"])
def test_transient_data_replies_are_retried(pyftpd, open_ftp, no_mlsd: bool):
    server: PyftpdServer = pyftpd(no_mlsd=no_mlsd)
    location = open_ftp(server.url("site"))
    payload = os.urandom(300_000)
    server.fail_data(*TRANSIENT)
    assert location.write("sub/f.bin", io.BytesIO(payload), T).ok
    assert server.data_faults_left() == 0
    server.fail_data(*TRANSIENT)
    listing = location.scan(lambda _path: False)
    assert listing.ok, listing
    assert set(listing.value.entries) == {"sub", "sub/f.bin"}
    assert not listing.value.skipped
    assert server.data_faults_left() == 0
    server.fail_data(*TRANSIENT)
    opened = location.open_read("sub/f.bin")
    assert opened.ok, opened
    with opened.value as stream:
        assert stream.read() == payload
    assert server.data_faults_left() == 0


def test_a_server_closing_sessions_with_421_is_waited_out(pyftpd, open_ftp):
    server: PyftpdServer = pyftpd()
    location = open_ftp(server.url("site"))
    assert location.write("f.txt", io.BytesIO(b"data"), T).ok
    logins = server.stats.logins
    server.fail_data(*["421 Service not available, closing control connection"] * 3)
    listing = location.scan(lambda _path: False)
    assert listing.ok, listing
    assert set(listing.value.entries) == {"f.txt"}
    assert server.data_faults_left() == 0
    assert server.stats.logins > logins  # each 421 cost the connection it came on


def test_a_sync_goes_through_transient_replies(pyftpd, sync, tmp_path):
    server: PyftpdServer = pyftpd()
    a, b = tmp_path / "a", tmp_path / "b"
    for number in range(3):
        write(a / f"d{number}" / "f.txt", f"file {number}", OLD)
    b.mkdir()
    server.fail_data(*TRANSIENT * 2)
    assert sync(f"folder:{a}", server.url("site"), "--workers", "1") == 0
    assert tree(server.root / "site") == tree(a)
    server.fail_data(*TRANSIENT * 2)
    assert sync(f"folder:{a}", server.url("site"), f"folder:{b}", "--workers", "1") == 0
    assert tree(b) == tree(a)


def test_transient_replies_while_resuming_a_dropped_transfer_are_retried(pyftpd, open_ftp):
    server: PyftpdServer = pyftpd(drop_after=3 << 20)
    location = open_ftp(server.url())
    data = os.urandom(8 << 20)

    class Source(io.BytesIO):
        """Arms two faults for the data commands after the drop (the resumed STOR)."""

        def read(self, size: int | None = -1) -> bytes:
            if self.tell() == 1 << 20:
                server.fail_data("425 Unable to identify the local data socket",
                                 "450 File busy")
            return super().read(size)

    entry = location.write("big.bin", Source(data), T)
    assert entry.ok, entry
    assert server.stats.dropped and server.data_faults_left() == 0
    assert (server.root / "big.bin").read_bytes() == data
    assert server.stats.commands["REST"] >= 1


def test_transient_replies_while_resuming_a_dropped_download_are_retried(pyftpd, open_ftp):
    server: PyftpdServer = pyftpd(drop_after=3 << 20)
    data = os.urandom(8 << 20)
    (server.root / "big.bin").write_bytes(data)
    location = open_ftp(server.url())
    with location.open_read("big.bin").unwrap() as stream:
        first = stream.read(1 << 20)
        server.fail_data("426 Transfer aborted", "425 Unable to identify the local data socket")
        rest = stream.read()
    assert first + rest == data
    assert server.stats.dropped and server.data_faults_left() == 0


def test_a_server_that_keeps_failing_gives_a_clear_error_in_bounded_time(pyftpd, open_ftp):
    server: PyftpdServer = pyftpd()
    location = open_ftp(server.url("site"))
    assert location.write("f.txt", io.BytesIO(b"data"), T).ok
    server.fail_data(*["450 File busy"] * 1000)
    for attempt in (lambda: location.scan(lambda _path: False),
                    lambda: location.write("g.txt", io.BytesIO(b"data"), T),
                    lambda: location.open_read("f.txt")):
        started = time.monotonic()
        result = attempt()
        assert not result.ok and result.kind is ErrorKind.UNAVAILABLE, result
        assert "450 File busy" in result.message  # what the server said is shown
        assert time.monotonic() - started < 10
    assert not list((server.root / "site").rglob(".filesync-*.tmp"))


# ----- 4. temporary files of other engines --------------------------------------------------
@pytest.mark.parametrize("no_mlsd", [False, True], ids=["mlsd", "list"])
def test_other_engines_temporary_files(pyftpd, sync, tmp_path, no_mlsd: bool):
    server: PyftpdServer = pyftpd(no_mlsd=no_mlsd)
    a = tmp_path / "a"
    write(a / "f.txt", "mine", OLD)
    url = server.url("site")
    assert sync(f"folder:{a}", url) == 0
    served = server.root / "site"
    fresh = write(served / "sub" / ".filesync-0badc0de-0123456789ab.tmp", "in flight")
    stale = write(served / ".filesync-0badc0de-aaaaaaaaaaaa.tmp", "abandoned",
                  time.time() - 2 * 86400)
    legacy = write(served / ".filesync-0123456789ab.tmp", "a user's file", OLD)
    assert sync(f"folder:{a}", url) == 0
    assert fresh.read_text() == "in flight"
    assert not stale.exists()
    kept = list((served / ".filesync" / "versions").glob(".filesync-0badc0de-aaaaaaaaaaaa.tmp~*"))
    assert [p.read_text() for p in kept] == ["abandoned"]
    assert legacy.read_text() == "a user's file"
    assert (a / ".filesync-0123456789ab.tmp").read_text() == "a user's file"
    # A second engine (another state, so another owner id) leaves the first's temp alone.
    other = tmp_path / "other"
    write(other / "g.txt", "theirs", OLD)
    assert run_main("--once", "--state", str(tmp_path / "other.sqlite"), f"folder:{other}",
                    url) == 0
    assert fresh.read_text() == "in flight"
    assert (other / "f.txt").read_text() == "mine"


# ----- 5. the reserved folder outside the synced tree ---------------------------------------
def test_reserved_option_is_parsed():
    spec = parse_location("ftp://u:p@h/www?reserved=private%2Ffilesync").unwrap()
    assert isinstance(spec, FtpSpec)
    assert spec.path == "/www" and spec.reserved == "/private/filesync"
    plain = parse_location("ftp://u:p@h/www").unwrap()
    assert isinstance(plain, FtpSpec) and plain.reserved is None
    assert spec.key == plain.key
    same = parse_location("ftp:u:p@h/www?reserved=/private/filesync/").unwrap()
    assert isinstance(same, FtpSpec) and same.reserved == "/private/filesync"
    # A '?' in the password is not a query.
    odd = parse_location("ftp://u:p?w@h/www").unwrap()
    assert isinstance(odd, FtpSpec) and odd.password == "p?w" and odd.reserved is None


@pytest.mark.parametrize("text,words", [
    ("ftp://u:p@h/www?keep=1", ["unknown option 'keep'", "reserved"]),
    ("ftp://u:p@h/www?reserved=", ["reserved", "folder"]),
    ("ftp://u:p@h/www?reserved=www/private", ["inside"]),
    ("ftp://u:p@h/www?reserved=www", ["inside"]),
    ("ftp://u:p@h/www/site?reserved=www", ["inside"]),
    ("ftp://u:p@h/www?reserved=a&reserved=b", ["twice"]),
])
def test_bad_reserved_options_are_clear_errors(text: str, words: list[str]):
    parsed = parse_location(text)
    assert not parsed.ok
    for word in words:
        assert word in parsed.message
    assert ":p@" not in parsed.message


def test_locations_on_one_account_may_not_hold_each_other():
    def spec(text: str) -> FtpSpec:
        parsed = parse_location(text).unwrap()
        assert isinstance(parsed, FtpSpec)
        return parsed

    www = spec("ftp://u:p@h/www?reserved=private")
    assert www.overlap(spec("ftp://u:p@h/www2")) is None
    assert www.overlap(spec("ftp://v:p@h/private")) is None  # another account
    assert www.overlap(spec("ftp://u:p@other/private")) is None
    assert "inside" in (www.overlap(spec("ftp://u:p@h/www/sub")) or "")
    assert "inside" in (www.overlap(spec("ftp://u:p@h/")) or "")
    clash = www.overlap(spec("ftp://u@h:21/private"))
    assert clash is not None and "reserved folder '/private'" in clash
    assert ":p@" not in clash
    assert spec("ftp://u:p@h/a?reserved=b/c").overlap(spec("ftp://u:p@h/b")) is not None


def test_versions_and_marker_live_outside_the_web_root(any_server: Served, sync, tmp_path,
                                                       capsys):
    a = tmp_path / "a"
    write(a / "index.html", "v1", OLD)
    write(a / "img" / "logo.svg", "logo", OLD)
    url = any_server.url("www") + "?reserved=private/filesync"
    assert sync(f"folder:{a}", url) == 0
    web, private = any_server.root / "www", any_server.root / "private" / "filesync"
    assert tree(web) == tree(a)
    assert (private / "marker").is_file()
    write(a / "index.html", "v2, longer", OLD + 10)
    (a / "img" / "logo.svg").unlink()
    assert sync(f"folder:{a}", url) == 0
    assert (web / "index.html").read_text() == "v2, longer"
    assert not (web / "img" / "logo.svg").exists()
    assert not (web / ".filesync").exists()
    assert sorted(p.relative_to(private).as_posix().rsplit("~", 1)[0]
                  for p in private.rglob("*") if p.is_file()) == [
        "journal", "marker", "versions/img/logo.svg", "versions/index.html"]
    assert not (private / "lease").exists()  # released after the run
    # Nothing changes on the next round: the marker is found where it was put.
    assert sync(f"folder:{a}", url) == 0

    capsys.readouterr()
    assert run_main("restore", url, "--list") == 0
    listed = capsys.readouterr().out
    assert "index.html" in listed and "img/logo.svg" in listed
    assert run_main("restore", url, "img/logo.svg") == 0
    assert (web / "img" / "logo.svg").read_text() == "logo"
    assert not (web / ".filesync").exists()
    assert sync(f"folder:{a}", url) == 0
    assert (a / "img" / "logo.svg").read_text() == "logo"
    assert not (web / ".filesync").exists()


def test_reserved_folder_on_a_server_without_mlsd(pyftpd, sync, tmp_path):
    server: PyftpdServer = pyftpd(no_mlsd=True)
    a = tmp_path / "a"
    write(a / "f.txt", "v1", OLD)
    url = server.url("www") + "?reserved=keep"
    assert sync(f"folder:{a}", url) == 0
    write(a / "f.txt", "v2!", OLD + 10)
    assert sync(f"folder:{a}", url) == 0
    assert sync(f"folder:{a}", url) == 0
    assert not (server.root / "www" / ".filesync").exists()
    keep = server.root / "keep"
    assert (keep / "marker").is_file()
    assert [p.read_text() for p in (keep / "versions").glob("f.txt~*")] == ["v1"]


def test_adding_the_reserved_option_later_needs_the_marker_moved_or_force(pyftpd, sync,
                                                                           tmp_path, capfd):
    server: PyftpdServer = pyftpd()
    a = tmp_path / "a"
    write(a / "f.txt", "v1", OLD)
    assert sync(f"folder:{a}", server.url("www")) == 0
    assert (server.root / "www" / ".filesync" / "marker").is_file()
    moved = server.url("www") + "?reserved=private"
    capfd.readouterr()
    assert sync(f"folder:{a}", moved) == 1  # same location (same state), marker not there
    assert "marker" in capfd.readouterr().err
    assert (a / "f.txt").read_text() == "v1"
    assert sync(f"folder:{a}", moved, "--force") == 0
    assert (server.root / "private" / "marker").is_file()
    write(a / "f.txt", "v2!", OLD + 10)
    assert sync(f"folder:{a}", moved) == 0
    assert [p.read_text() for p in (server.root / "private" / "versions").glob("f.txt~*")] \
        == ["v1"]
