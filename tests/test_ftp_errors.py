"""Every FTP failure carries the kind the engine decides from, against both real servers.

The kinds come from the server's reply code and text (``ftp.errors.reply_kind``), so they
are checked with the wordings of pyftpdlib and pure-ftpd, and end to end on each server.
"""

from __future__ import annotations

import ftplib
import io

import pytest

from filesync.locations.ftp.errors import (
    FTP_ERRORS,
    FtpFailure,
    LoginRefused,
    ServerUnavailable,
    ftp_kind,
    reply_kind,
)
from filesync.result import ErrorKind, Result
from tests.ftp_servers import PASSWORD, USER, Served, free_port

T = 1_700_000_000_000_000_000
NOT_FOUND, REFUSED, UNAVAILABLE = ErrorKind.NOT_FOUND, ErrorKind.REFUSED, ErrorKind.UNAVAILABLE


def kind(result: Result[object]) -> ErrorKind | None:
    """The kind of a failed result, None for a success."""
    return None if result.ok else result.kind


# ----- replies, as the two servers word them ------------------------------------------------
@pytest.mark.parametrize("reply,expected", [
    # pyftpdlib
    ("550 No such file or directory.", NOT_FOUND),
    ("501 No such directory.", NOT_FOUND),
    ("550 /site/x is not retrievable", NOT_FOUND),
    ("550 Not enough privileges.", REFUSED),
    ("550 Permission denied.", REFUSED),
    ("550 Directory not empty.", ErrorKind.FAILED),
    ("530 Authentication failed.", REFUSED),
    ("530 Log in with USER and PASS first.", REFUSED),
    # pure-ftpd
    ("550 Can't open x.txt: No such file or directory", NOT_FOUND),
    ("550 Sorry, but that file doesn't exist", NOT_FOUND),
    ("553 Can't open that file: No such file or directory", NOT_FOUND),
    ("553 Can't open that file: Permission denied", REFUSED),
    ("550 Could not delete f: Permission denied", REFUSED),
    ("550 Can't create directory: Permission denied", REFUSED),
    ("451 Rename/move failure: Permission denied", REFUSED),
    ("553 Prohibited file name: a\\b", ErrorKind.INVALID),
    ("550 Can't remove directory: Directory not empty", ErrorKind.FAILED),
    ("530 Login authentication failed", REFUSED),
    # others (vsftpd, ProFTPD, IIS) and the codes alone
    ("550 Failed to open file.", ErrorKind.FAILED),
    ("550 The system cannot find the file specified.", NOT_FOUND),
    ("550 Access is denied.", REFUSED),
    ("553 Could not create file.", REFUSED),
    ("452 Insufficient storage space", ErrorKind.NO_SPACE),
    ("552 Exceeded storage allocation", ErrorKind.NO_SPACE),
    ("451 Error writing file: No space left on device", ErrorKind.NO_SPACE),
    ("550 Disk quota exceeded", ErrorKind.NO_SPACE),
    ("421 Service not available, closing control connection", UNAVAILABLE),
    ("421 Too many connections (8) from this IP", UNAVAILABLE),
    ("425 Unable to build data connection", UNAVAILABLE),
    ("426 Transfer aborted", UNAVAILABLE),
    ("450 File busy", UNAVAILABLE),
    ("502 Command not implemented.", ErrorKind.FAILED),
])
def test_reply_kinds(reply: str, expected: ErrorKind):
    assert reply_kind(reply[:3], reply) is expected


@pytest.mark.parametrize("exc,expected", [
    (ftplib.error_perm("550 No such file or directory."), NOT_FOUND),
    (ftplib.error_temp("421 Timeout."), UNAVAILABLE),
    (ftplib.error_temp("450 File busy"), UNAVAILABLE),
    (ftplib.error_reply("332 Need account for login."), UNAVAILABLE),
    (ConnectionRefusedError(111, "Connection refused"), UNAVAILABLE),
    (ConnectionResetError(104, "Connection reset by peer"), UNAVAILABLE),
    (TimeoutError("timed out"), UNAVAILABLE),
    (EOFError(), UNAVAILABLE),
    (ServerUnavailable("cannot connect"), UNAVAILABLE),
    (LoginRefused("refused the login"), REFUSED),
    (FtpFailure("the upload is incomplete"), ErrorKind.FAILED),
    (FtpFailure("cannot create folder", REFUSED), REFUSED),
])
def test_exception_kinds(exc: BaseException, expected: ErrorKind):
    assert isinstance(exc, FTP_ERRORS)
    assert ftp_kind(exc) is expected


# ----- end to end, on both servers ----------------------------------------------------------
def test_a_missing_path_is_not_found(any_server: Served, open_ftp):
    location = open_ftp(any_server.url("site"))
    assert location.prepare().ok
    assert location.write("there/file.txt", io.BytesIO(b"x"), T).ok
    for missing in ("nothing.txt", "there/nothing.txt", "nowhere/file.txt"):
        assert kind(location.open_read(missing)) is NOT_FOUND, missing
        assert kind(location.rename(missing, "moved.txt")) is NOT_FOUND, missing
        assert location.stat(missing).unwrap() is None
        assert location.delete(missing).ok  # already gone is fine
        assert kind(location.rmdir(missing)) is NOT_FOUND, missing
    assert kind(location.sha256("nothing.txt")) is NOT_FOUND
    assert location.stat_many(["nothing.txt", "nowhere/x"]) == {
        "nothing.txt": location.stat("nothing.txt"), "nowhere/x": location.stat("nowhere/x")}


def test_a_refused_login_at_prepare_is_refused(any_server: Served, open_ftp):
    wrong = "Not-The-Pw-42"
    location = open_ftp(any_server.url("site").replace(PASSWORD, wrong))
    refused = location.prepare()
    assert kind(refused) is REFUSED, refused
    assert wrong not in refused.message
    assert kind(location.scan(lambda _path: False)) is REFUSED  # no retry storm either


def test_a_server_down_at_prepare_is_unavailable(any_server: Served, open_ftp):
    location = open_ftp(any_server.url("site"))
    any_server.stop()
    prepared = location.prepare()
    assert kind(prepared) is UNAVAILABLE, prepared
    assert PASSWORD not in prepared.message


def test_nothing_listens_at_prepare_is_unavailable(open_ftp):
    location = open_ftp(f"ftp://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/site")
    prepared = location.prepare()
    assert kind(prepared) is UNAVAILABLE and "cannot connect" in prepared.message
    assert kind(location.probe()) is UNAVAILABLE


def test_a_server_gone_midway_is_unavailable_never_empty(any_server: Served, open_ftp):
    location = open_ftp(any_server.url("site"))
    assert location.prepare().ok
    assert location.write("file.txt", io.BytesIO(b"precious"), T).ok
    any_server.stop()
    for name, result in [("probe", location.probe()),
                         ("scan", location.scan(lambda _path: False)),
                         ("stat", location.stat("file.txt")),
                         ("open_read", location.open_read("file.txt")),
                         ("write", location.write("other.txt", io.BytesIO(b"new"), T)),
                         ("delete", location.delete("file.txt")),
                         ("mkdir", location.mkdir("folder"))]:
        assert kind(result) is UNAVAILABLE, (name, result)


def test_a_vanished_root_is_unavailable(any_server: Served, open_ftp):
    location = open_ftp(any_server.url("site/inner"))
    assert location.prepare().ok
    (any_server.root / "site" / "inner").rmdir()
    assert kind(location.probe()) is UNAVAILABLE
    assert kind(location.scan(lambda _path: False)) is UNAVAILABLE


def test_permission_denied_is_refused(any_server: Served, open_ftp):
    location = open_ftp(any_server.url("site"))
    assert location.prepare().ok
    assert location.write("file.txt", io.BytesIO(b"mine"), T).ok
    assert location.mkdir("folder").ok
    any_server.deny(any_server.root / "site")
    for name, result in [
            ("write", location.write("new.txt", io.BytesIO(b"refused"), T)),
            ("replace", location.write("file.txt", io.BytesIO(b"refused"), T)),
            ("delete", location.delete("file.txt")),
            ("mkdir", location.mkdir("other")),
            ("rmdir", location.rmdir("folder")),
            ("rename", location.rename("file.txt", "moved.txt"))]:
        assert kind(result) is REFUSED, (name, any_server.name, result)
    assert sorted(location.scan(lambda _path: False).unwrap().entries) == ["file.txt", "folder"]


def test_a_root_that_may_not_be_created_is_refused_at_prepare(any_server: Served, open_ftp):
    (any_server.root / "locked").mkdir()
    any_server.deny(any_server.root / "locked")
    prepared = open_ftp(any_server.url("locked/not/allowed")).prepare()
    assert kind(prepared) is REFUSED, prepared  # the CLI exits 2: retrying will not help


def test_a_reply_that_does_not_say_why_is_looked_into(pyftpd, open_ftp):
    # vsftpd answers "550 Failed to open file." to a missing and a forbidden file alike.
    server = pyftpd()
    location = open_ftp(server.url())
    assert location.write("there.txt", io.BytesIO(b"x"), T).ok
    server.fail_data("550 Failed to open file.", "550 Failed to open file.")
    assert kind(location.open_read("missing.txt")) is NOT_FOUND
    failed = location.open_read("there.txt")
    assert kind(failed) is ErrorKind.FAILED and "Failed to open file" in failed.message
    assert server.data_faults_left() == 0
