"""The web dashboard: address parsing, the HTTP server, the page, and the page in Chromium."""

from __future__ import annotations

import copy
import http.client
import json
import logging
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import pytest

from filesync.dashboard import (
    Dashboard,
    exposure_warning,
    host_allowed,
    is_loopback,
    parse_address,
)
from filesync.dashboard_page import duration_text, render_page, render_status, size_text
from tests.dashboard_screenshot import CHROMIUM, CHROMIUM_FLAGS, FTP, HOME_A, HOME_B

EVIL = "<img src=x onerror=alert(1)>.txt"


def document(**changes: Any) -> dict[str, Any]:
    """A small status document; keyword arguments replace top-level fields."""
    doc: dict[str, Any] = {
        "version": 1, "generated_at": "2026-11-30T12:00:00Z",
        "state": {"path": "/tmp/state.sqlite", "bytes": 40960},
        "engine": {"running": True, "pid": 4242, "since": "2026-11-30T11:00:00Z",
                   "mode": "watch"},
        "last_round": {"finished_at": "2026-11-30T11:59:58Z", "result": "ok",
                       "summary": "3 copied, 0 renamed, 1 deleted, 0 errors",
                       "stats": {"copied": 3}},
        "locations": [
            {"key": HOME_A, "display": "/home/ann/Photos", "kind": "folder",
             "available": True, "message": None, "versions": {"count": 3, "bytes": 10240}},
            {"key": FTP, "display": "ftp://ann@nas.local/photos", "kind": "ftp",
             "available": True, "message": None, "versions": None}],
        "pending": [{"op": "copy", "path": "a.txt", "source": HOME_A, "target": FTP,
                     "from_path": None}],
        "conflicts": [], "paused_deletions": [],
        "progress": {"files_done": 3, "files_total": 12, "bytes_done": 1048576,
                     "bytes_total": 10485760, "rate": 524288.0, "eta": 17.5,
                     "in_flight": [{"path": "big.iso", "target": FTP, "bytes_done": 1000,
                                    "bytes_total": 5000}]},
        "recent": [{"time": "2026-11-30T11:59:58Z", "action": "copy", "path": "old.txt",
                    "source": HOME_A, "target": FTP, "message": "copy old.txt"}],
    }
    doc.update(changes)
    return doc


def later_document() -> dict[str, Any]:
    """Document B: other progress, a new recent action, the FTP server unavailable."""
    doc = document(generated_at="2026-11-30T12:00:07Z")
    doc["locations"][1].update(available=False, message="connection refused (nas.local:21)")
    doc["locations"].append({"key": HOME_B, "display": "/media/backup/Photos",
                             "kind": "folder", "available": True, "message": None,
                             "versions": {"count": 7, "bytes": 1280}})
    doc["progress"].update(files_done=9, bytes_done=7864320, rate=1536000.0, eta=2.0,
                           in_flight=[{"path": "photos/2026/IMG_0042.jpg",
                                       "target": HOME_B, "bytes_done": 2621440,
                                       "bytes_total": 4194304}])
    doc["recent"].append({"time": "2026-11-30T12:00:05Z", "action": "copy", "path": EVIL,
                          "source": HOME_A, "target": HOME_B, "message": f'copy "{EVIL}"'})
    doc["conflicts"] = [{"path": "notes.txt", "locations": [HOME_A, HOME_B],
                         "detail": "changed in both; --conflict manual leaves it alone"}]
    doc["paused_deletions"] = [{"path": "photos/1.jpg", "locations": [HOME_B]}]
    return doc


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[], dict[str, Any]]], Dashboard]]:
    """``serve(provider)``: a started dashboard on 127.0.0.1 (any free port), stopped after."""
    started: list[Dashboard] = []

    def start(provider: Callable[[], dict[str, Any]]) -> Dashboard:
        dashboard = Dashboard(("127.0.0.1", 0), provider)
        assert dashboard.start().ok
        started.append(dashboard)
        return dashboard

    yield start
    for dashboard in started:
        dashboard.stop()


def request(dashboard: Dashboard, path: str, method: str = "GET",
            host: str | None = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; ``host`` None sends no Host header at all."""
    assert dashboard.url
    port = int(dashboard.url.rstrip("/").rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True)
        if host is not None:
            connection.putheader("Host", f"{host}:{port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


# --- addresses -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("8080", ("127.0.0.1", 8080)), ("0", ("127.0.0.1", 0)),
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("localhost:8080", ("localhost", 8080)),
    ("[::1]:8080", ("::1", 8080)), ("0.0.0.0:8080", ("0.0.0.0", 8080)),
    (":65535", ("127.0.0.1", 65535)), (" example.org:80 ", ("example.org", 80)),
])
def test_parse_address_forms(text: str, expected: tuple[str, int]) -> None:
    parsed = parse_address(text)
    assert parsed.ok and parsed.value == expected


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty"), ("http", "not a number"), ("8080x", "not a number"),
    ("65536", "above 65535"), ("-1", "not a number"), ("127.0.0.1:", "not a number"),
    ("::1:8080", "in brackets"), ("[::1]", "[ADDRESS]:PORT"), ("[::1:8080", "[ADDRESS]:PORT"),
    ("[nope]:80", "not an IPv6 address"), ("my host:80", "not a host name"),
    ("\u0661\u0662:80", "not a host name"), ("80\u0661", "not a number"),
])
def test_parse_address_errors(text: str, why: str) -> None:
    parsed = parse_address(text)
    assert not parsed.ok
    assert why in parsed.message and "HOST:PORT" in parsed.message


def test_exposure_warning_only_off_loopback() -> None:
    for host in ("127.0.0.1", "127.0.0.53", "::1", "localhost", "[::1]"):
        assert is_loopback(host) and exposure_warning(host, 8080) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "nas.local"):
        warning = exposure_warning(host, 8080)
        assert warning is not None and "anyone" in warning and "127.0.0.1" in warning
    assert "[::]:8080" in str(exposure_warning("::", 8080))


def test_host_header_decision() -> None:
    for header in ("localhost", "localhost:8080", "127.0.0.1:1", "[::1]:8080", "LOCALHOST"):
        assert host_allowed(header), header
    for header in (None, "", "evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                   "localhost.evil.example:80", "[::2]:80"):
        assert not host_allowed(header), header


# --- the server ------------------------------------------------------------------------

def test_routes_and_headers(serve: Callable[..., Dashboard]) -> None:
    doc = document()
    dashboard = serve(lambda: doc)
    status, headers, body = request(dashboard, "/api/status")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == doc
    assert headers["cache-control"] == "no-store"
    assert request(dashboard, "/api/status?t=1")[0] == 200

    status, headers, page = request(dashboard, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b"/home/ann/Photos" in page and b"3 of 12 files" in page
    # Nothing from elsewhere: every referenced resource is one of ours.
    assert re.findall(rb'(?:src|href)="([^"]*)"', page) == [b"/dashboard.css",
                                                            b"/dashboard.js"]
    for path, kind in (("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")):
        status, headers, body = request(dashboard, path)
        assert status == 200 and headers["content-type"].startswith(kind) and body
        assert b"http://" not in body and b"https://" not in body
    for path in ("/", "/api/status", "/dashboard.js", "/nope"):
        headers = request(dashboard, path)[1]
        assert headers["x-content-type-options"] == "nosniff"
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe" not in policy and "*" not in policy

    status, headers, body = request(dashboard, "/nope")
    assert status == 404 and json.loads(body) == {"error": "not found"}
    assert request(dashboard, "/api/status/../secret")[0] == 404


def test_head_and_other_methods(serve: Callable[..., Dashboard]) -> None:
    dashboard = serve(document)
    status, get_headers, body = request(dashboard, "/")
    status, head_headers, head_body = request(dashboard, "/", method="HEAD")
    assert status == 200 and head_body == b""
    assert head_headers["content-length"] == get_headers["content-length"] == str(len(body))
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
        status, headers, body = request(dashboard, "/api/status", method=method)
        assert status == 405, method
        assert headers["allow"] == "GET, HEAD" and b"read-only" in body


def test_host_header_checked_on_loopback(serve: Callable[..., Dashboard]) -> None:
    dashboard = serve(document)
    for host in ("127.0.0.1", "localhost", "[::1]"):
        assert request(dashboard, "/api/status", host=host)[0] == 200, host
    for host in ("evil.example", None):
        status, _, body = request(dashboard, "/api/status", host=host)
        assert status == 403 and b"http://127.0.0.1:PORT/" in body
        assert doc_not_in(body)


def doc_not_in(body: bytes) -> bool:
    """No status data in a refused answer."""
    return b"Photos" not in body and b"4242" not in body


def test_provider_failure_is_500_and_server_goes_on(
        serve: Callable[..., Dashboard], log_records: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def flaky() -> dict[str, Any]:
        calls.append(1)
        if len(calls) in (1, 2):
            raise RuntimeError("state locked by password=hunter2")
        if len(calls) == 3:
            return {"not json": object()}
        return document()

    dashboard = serve(flaky)
    status, headers, body = request(dashboard, "/api/status")
    assert status == 500 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert "see the filesync log" in error and "hunter2" not in error
    status, _, page = request(dashboard, "/")
    assert status == 500 and b"Cannot show the status" in page and b"/dashboard.js" in page
    assert b"hunter2" not in page
    assert request(dashboard, "/api/status")[0] == 500  # not serialisable
    status, _, body = request(dashboard, "/api/status")
    assert status == 200 and json.loads(body)["engine"]["pid"] == 4242
    # A set: the fixture's handler may see a record twice (logger and root).
    failures = {r for r in log_records.records if "status provider failed" in r.getMessage()}
    assert len(failures) == 3 and all(r.levelno == logging.ERROR for r in failures)


def test_quiet_access_log(serve: Callable[..., Dashboard], capfd: pytest.CaptureFixture[str],
                          log_records: pytest.LogCaptureFixture) -> None:
    dashboard = serve(document)
    for path in ("/", "/api/status", "/nope"):
        request(dashboard, path)
    request(dashboard, "/", method="POST")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    access = [r for r in log_records.records if '"GET /nope' in r.getMessage()]
    assert access and all(r.levelno == logging.DEBUG for r in access)
    assert not [r for r in log_records.records if r.levelno >= logging.WARNING]


def test_port_in_use_and_bad_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = Dashboard(("127.0.0.1", port), document).start()
        assert not started.ok
        assert f"127.0.0.1:{port}" in started.message and "already in use" in started.message
        assert "choose another port" in started.message
    # TEST-NET-1 is no address of this machine: the bind itself fails, nothing listens.
    started = Dashboard(("192.0.2.1", 0), document).start()
    assert not started.ok and "no such address" in started.message


def test_stop_joins_every_thread() -> None:
    before = set(threading.enumerate())
    dashboard = Dashboard(("127.0.0.1", 0), document)
    assert dashboard.stop() is None  # stopping what never started is fine
    url = dashboard.start()
    assert url.ok and url.value.startswith("http://127.0.0.1:") and url.value.endswith("/")
    assert dashboard.start().value == url.value  # started once only
    assert request(dashboard, "/api/status")[0] == 200
    # A browser's spare connection that never sends a request must not hold up the stop.
    idle = socket.create_connection(("127.0.0.1", int(url.value.rsplit(":", 1)[1][:-1])))
    try:
        deadline = time.monotonic() + 5
        while not [t for t in threading.enumerate() if t not in before and
                   t.name != "filesync-dashboard"] and time.monotonic() < deadline:
            time.sleep(0.01)
        started_at = time.monotonic()
        dashboard.stop()
        assert time.monotonic() - started_at < 3
    finally:
        idle.close()
    assert [t for t in threading.enumerate() if t not in before] == []
    dashboard.stop()
    assert dashboard.url is None
    with socket.socket() as probe:  # the port is closed
        assert probe.connect_ex(("127.0.0.1", int(url.value.rsplit(":", 1)[1][:-1]))) != 0


def test_context_manager() -> None:
    with Dashboard(("127.0.0.1", 0), document) as dashboard:
        assert dashboard.url and request(dashboard, "/")[0] == 200
    assert dashboard.url is None


# --- the page --------------------------------------------------------------------------

def section(page: str, section_id: str) -> str:
    """The markup of one card of the page."""
    found = re.search(rf'<section [^>]*id="{section_id}">(.*?)</section>', page, re.S)
    assert found, section_id
    return found.group(1)


def test_page_escapes_file_names() -> None:
    doc = later_document()
    doc["locations"][0]["display"] = f"/home/{EVIL}"
    doc["conflicts"][0]["path"] = EVIL
    doc["paused_deletions"][0]["path"] = EVIL
    doc["pending"][0].update(path=EVIL, from_path=f'"{EVIL}"')
    doc["progress"]["in_flight"][0]["path"] = EVIL
    doc["last_round"]["summary"] = EVIL
    page = render_page(doc)
    assert "<img" not in page and "onerror=alert(1)&gt;" in page
    for name in ("engine", "progress", "locations", "conflicts", "paused", "recent", "pending"):
        assert "&lt;img src=x onerror=alert(1)&gt;.txt" in section(page, name), name
    assert 'title="copy &quot;&lt;img src=x onerror=alert(1)&gt;.txt&quot;"' in page


def test_page_sections() -> None:
    page = render_page(later_document())
    for text in ("running", "pid 4242 · watch mode", "3 copied, 0 renamed",
                 "9 of 12 files · 7.5 MiB of 10.0 MiB", "1.5 MiB/s · ETA 2 s", "75 %",
                 "connection refused (nas.local:21)", "unavailable", "7 · 1.3 KiB",
                 "Unresolved conflicts (1)", "notes.txt", "Paused deletions (1)",
                 "photos/<wbr>1.jpg", "Recent actions (2)", "Pending changes (1)"):
        assert text in page, text
    recent = section(page, "recent")  # newest action first
    assert recent.index("12:00:05") < recent.index("11:59:58")

    idle = render_status(document(progress=None, pending=None, last_round=None,
                                  engine={"running": False, "pid": None, "since": None,
                                          "mode": None}))
    for text in ("no round is being applied", "Not computed.", "not running", "never",
                 "No unresolved conflicts.", "No deletions are paused."):
        assert text in idle, text

    many = [{"op": "delete", "path": f"f{n}.txt", "source": HOME_A, "target": FTP,
             "from_path": None} for n in range(60)]
    page = render_status(document(pending=many))
    assert "Pending changes (60)" in page and "f49.txt" in page and "f50.txt" not in page
    assert "… and 10 more" in page


def test_human_sizes_and_durations() -> None:
    assert [size_text(n) for n in (0, 1023, 1024, 1280, 1536000, 10485760, 3 * 2**40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.3 KiB", "1.5 MiB", "10.0 MiB", "3.0 TiB"]
    assert size_text(None) == "?"
    assert [duration_text(s) for s in (None, 0, 17.5, 59.4, 125, 3780)] == [
        "?", "0 s", "18 s", "59 s", "2 min 5 s", "1 h 3 min"]


# --- in a real browser -----------------------------------------------------------------

class _Canonical(HTMLParser):
    """Markup as (start tag with sorted attributes | end tag | text) events, for comparing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[Any, ...]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, tuple(sorted(attrs))))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        if self.events and self.events[-1][0] == "text":
            self.events[-1] = ("text", self.events[-1][1] + data)
        else:
            self.events.append(("text", data))


def canonical(markup: str) -> list[tuple[Any, ...]]:
    parser = _Canonical()
    parser.feed(markup)
    parser.close()
    return parser.events


def browser_dom(url: str) -> str:
    """The page's DOM after its script ran for a few (virtual) seconds, from Chromium."""
    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} is missing: `bash tests/setup.sh` installs Debian's chromium")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             "--virtual-time-budget=2500", "--dump-dom", url],
            check=False, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    return done.stdout


def main_of(dom: str) -> str:
    found = re.search(r"<main[^>]*>(.*)</main>", dom, re.S)
    assert found, dom[:2000]
    return found.group(1)


def test_browser_shows_the_refreshed_document(serve: Callable[..., Dashboard]) -> None:
    first, later = document(), later_document()
    calls: list[int] = []

    def provider() -> dict[str, Any]:
        calls.append(1)
        return copy.deepcopy(first if len(calls) == 1 else later)

    dashboard = serve(provider)
    started = time.monotonic()
    dom = browser_dom(str(dashboard.url))
    assert time.monotonic() - started < 10
    assert len(calls) >= 2, "the page never asked /api/status"
    shown = main_of(dom)
    # What the script drew from B is exactly what the server draws for B.
    assert canonical(shown) == canonical(render_status(later))
    text = re.sub(r"<wbr>", "", shown)
    for value in ("9 of 12 files · 7.5 MiB of 10.0 MiB", "1.5 MiB/s · ETA 2 s", "75 %",
                  "photos/2026/IMG_0042.jpg", "2.5 MiB of 4.0 MiB", "unavailable",
                  "connection refused (nas.local:21)", "Recent actions (2)",
                  "&lt;img src=x onerror=alert(1)&gt;.txt", "notes.txt", "photos/1.jpg",
                  "7 · 1.3 KiB", "Updated 2026-11-30 12:00:07 UTC"):
        assert value in text, value
    assert "3 of 12 files" not in text and "big.iso" not in text
    assert "<img" not in dom
    assert re.search(r'<div class="offline" id="offline" hidden(="[^"]*")?>', dom), dom[:3000]


def test_browser_notes_when_the_status_cannot_be_read(serve: Callable[..., Dashboard]) -> None:
    calls: list[int] = []

    def provider() -> dict[str, Any]:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("state file gone")
        return document()

    dashboard = serve(provider)
    dom = browser_dom(str(dashboard.url))
    assert len(calls) >= 2
    note = re.search(r'<div class="offline" id="offline"( hidden[^>]*)?>([^<]*)</div>', dom)
    assert note and note.group(1) is None, dom[:3000]
    assert "could not be read (HTTP 500)" in note.group(2)
    assert "Showing the status of 2026-11-30 12:00:00 UTC" in note.group(2)
    assert "3 of 12 files" in main_of(dom)  # the last good document stays on screen
