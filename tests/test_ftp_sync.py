"""filesync end to end with FTP locations: --once rounds, watch mode, faults, secrets."""

from __future__ import annotations

import os
import pty
import re
import select
import sqlite3
import sys
import time

from tests.conftest import MAIN, run_main, tree, wait_for, write
from tests.ftp_servers import (
    PASSWORD,
    USER,
    PureFtpd,
    PyftpdServer,
    Served,
    free_port,
)

OLD = time.time() - 3600


def _actions(text: str) -> list[str]:
    return re.findall(r"^\S+ (?:copy|delete|mkdir|conflict) .*$", text, re.MULTILINE)


def test_folder_to_ftp_to_folder(any_server: Served, sync, tmp_path, capfd):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "ünï cødé" / "file one.txt", "first file", OLD)
    write(a / "sp ace.txt", "spaces", OLD + 1)
    write(a / "deep" / "er" / "x.bin", os.urandom(200_000), OLD + 2)
    (a / "empty dir").mkdir()
    b.mkdir()
    url = any_server.url("site/root")
    assert sync(f"folder:{a}", url, f"folder:{b}") == 0
    assert tree(b) == tree(a)
    assert tree(any_server.root / "site" / "root") == tree(a)
    # Times survive the trip through the server (to the second): nothing moves again.
    assert int((b / "sp ace.txt").stat().st_mtime) == int(OLD + 1)
    capfd.readouterr()
    assert sync(f"folder:{a}", url, f"folder:{b}") == 0
    assert _actions(capfd.readouterr().err) == []

    write(b / "ünï cødé" / "file one.txt", "edited in b", OLD + 100)
    assert sync(f"folder:{a}", url, f"folder:{b}") == 0
    assert (a / "ünï cødé" / "file one.txt").read_text() == "edited in b"
    served = any_server.root / "site" / "root"
    assert (served / "ünï cødé" / "file one.txt").read_text() == "edited in b"

    # Deleting a whole folder removes it on the server too; the content stays recoverable.
    for path in sorted((a / "deep").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (a / "deep").rmdir()
    assert sync(f"folder:{a}", url, f"folder:{b}") == 0
    assert not (served / "deep").exists() and not (b / "deep").exists()
    kept = list((served / ".filesync" / "versions").rglob("x.bin*"))
    assert kept and kept[0].stat().st_size == 200_000
    assert tree(served) == tree(a) == tree(b)


def test_a_change_made_on_the_server_reaches_every_folder(any_server: Served, sync, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "v1", OLD)
    b.mkdir()
    url = any_server.url()
    assert sync(f"folder:{a}", url, f"folder:{b}") == 0
    server_file = any_server.root / "new on server.txt"
    write(server_file, "from the server", OLD + 50)
    any_server.own(server_file)
    assert sync(f"folder:{a}", url, f"folder:{b}") == 0
    assert (a / "new on server.txt").read_text() == "from the server"
    assert (b / "new on server.txt").read_text() == "from the server"


def test_watch_mode_through_an_ftp_server(pyftpd, watching, tmp_path):
    server = pyftpd()
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "start.txt", "s")
    b.mkdir()
    run = watching(f"folder:{a}", server.url("w"), f"folder:{b}")
    wait_for(lambda: (b / "start.txt").exists() and (server.root / "w" / "start.txt").exists(),
             message="the first round")
    write(a / "new dir" / "from a ü.txt", "a")
    wait_for(lambda: (server.root / "w" / "new dir" / "from a ü.txt").exists()
             and (b / "new dir" / "from a ü.txt").exists(), message="a new file from a")
    write(server.root / "w" / "from server.txt", "srv")
    wait_for(lambda: (a / "from server.txt").exists() and (b / "from server.txt").exists(),
             message="a new file on the server")
    write(b / "start.txt", "edited in b")
    wait_for(lambda: (server.root / "w" / "start.txt").read_text() == "edited in b"
             and (a / "start.txt").read_text() == "edited in b", message="an edit in b")
    (a / "from server.txt").unlink()
    wait_for(lambda: not (server.root / "w" / "from server.txt").exists()
             and not (b / "from server.txt").exists(), message="a deletion in a")
    assert run.stop() == 0
    assert not re.search(r"^\S+ (error|warning):(?! stopping)", run.output(), re.MULTILINE), \
        run.output()


def test_watch_mode_survives_a_server_restart(pureftpd: PureFtpd, watching, tmp_path):
    a = tmp_path / "a"
    write(a / "before.txt", "b")
    run = watching(f"folder:{a}", pureftpd.url("data"))
    served = pureftpd.root / "data"
    wait_for(lambda: (served / "before.txt").exists(), message="the first round")
    pureftpd.stop()
    write(a / "while down.txt", "d")
    run.wait_output("unavailable")
    assert not (served / "while down.txt").exists()
    pureftpd.start()
    wait_for(lambda: (served / "while down.txt").exists(), timeout=30,
             message="the sync to resume after the restart")
    write(served / "after.txt", "x")
    pureftpd.own(served / "after.txt")
    wait_for(lambda: (a / "after.txt").exists(), message="a change on the restarted server")
    assert run.stop() == 0
    assert "available again" in run.output()


def test_once_with_the_server_down_exits_1(sync, tmp_path, capfd):
    a = tmp_path / "a"
    write(a / "f.txt", "keep me")
    url = f"ftp://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/x"
    assert sync(f"folder:{a}", url) == 1
    err = capfd.readouterr().err
    assert "not reachable" in err and "unavailable" in err and "cannot connect" in err
    assert (a / "f.txt").read_text() == "keep me"
    assert PASSWORD not in err


def test_a_wrong_password_exits_2(pyftpd, sync, tmp_path, capfd):
    server = pyftpd()
    a = tmp_path / "a"
    write(a / "f.txt", "x")
    wrong = "Wr0ng-Secret-99"
    assert sync(f"folder:{a}", f"ftp://{USER}:{wrong}@127.0.0.1:{server.port}/") == 2
    err = capfd.readouterr().err
    assert "refused the login" in err and "check the user name and password" in err
    assert wrong not in err
    assert server.stats.commands["PASS"] == 1
    assert list(server.root.iterdir()) == []


def test_permission_denied_on_one_file_is_reported_the_rest_synced(pureftpd, sync, tmp_path,
                                                                   capfd):
    served = pureftpd.root
    write(served / "pub" / "ok.txt", "readable", OLD)
    write(served / "pub" / "secret.txt", "root only", OLD)
    (served / "locked").mkdir()
    pureftpd.own(served / "pub")
    os.chmod(served / "pub" / "secret.txt", 0o600)
    os.chown(served / "pub" / "secret.txt", 0, 0)  # the FTP user (nobody) cannot read it
    a = tmp_path / "a"
    write(a / "up.txt", "upload me", OLD)
    write(a / "locked" / "new.txt", "cannot go there", OLD)  # locked/ is root's, 0755
    assert sync(pureftpd.url(), f"folder:{a}") == 1
    err = capfd.readouterr().err
    assert (a / "pub" / "ok.txt").read_text() == "readable"
    assert not (a / "pub" / "secret.txt").exists()
    assert (served / "up.txt").read_text() == "upload me"
    assert not (served / "locked" / "new.txt").exists()
    failures = [line for line in err.splitlines() if "failed:" in line]
    assert len(failures) == 2, err
    assert any("pub/secret.txt" in line for line in failures)
    assert any("locked/new.txt" in line for line in failures)
    assert not list(served.rglob(".filesync-*.tmp"))


def test_the_password_never_leaks(pyftpd, sync, tmp_path, capfd):
    server = pyftpd()
    a = tmp_path / "a"
    write(a / "f.txt", "x")
    url = server.url("p")
    log_file = tmp_path / "run.log"
    assert sync("-v", "--log", str(log_file), f"folder:{a}", url) == 0
    write(a / "g.txt", "y")
    assert sync("-v", "--dry-run", f"folder:{a}", url) == 0
    dry = capfd.readouterr()
    assert "copy g.txt" in dry.out and f"ftp://{USER}@127.0.0.1" in dry.out
    server.stop()  # errors name the server too
    assert sync("-v", f"folder:{a}", url) == 1
    server.start()
    output = capfd.readouterr()
    shown = dry.out + dry.err + output.out + output.err + log_file.read_text()
    assert "***" in shown and PASSWORD not in shown
    for path in tmp_path.rglob("*.sqlite*"):
        assert PASSWORD.encode() not in path.read_bytes(), path
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        keys = [row[0] for row in db.execute("SELECT key FROM locations")]
    assert any(key.startswith(f"ftp://{USER}@127.0.0.1") for key in keys), keys


def test_ftps_end_to_end(pyftpd, sync, tmp_path, tls_files, capfd):
    server = pyftpd(tls=tls_files)
    a = tmp_path / "a"
    write(a / "secret plans.txt", "tls only", OLD)
    assert sync(f"folder:{a}", server.url("s")) == 2
    assert "--ca-file" in capfd.readouterr().err
    assert sync("--ca-file", str(tls_files.ca_pem), f"folder:{a}", server.url("s")) == 0
    assert (server.root / "s" / "secret plans.txt").read_text() == "tls only"
    b = tmp_path / "b"
    b.mkdir()
    other_state = tmp_path / "other.sqlite"
    assert run_main("--once", "--state", str(other_state), "--insecure", server.url("s"),
                    f"folder:{b}") == 0
    assert (b / "secret plans.txt").read_text() == "tls only"
    assert "NOT checked" in capfd.readouterr().err


def test_watch_mode_waits_for_a_server_down_at_start(watching, tmp_path):
    port = free_port()
    a = tmp_path / "a"
    write(a / "early.txt", "e")
    run = watching(f"folder:{a}", f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/late")
    run.wait_output("not reachable")
    root = tmp_path / "late-root"
    root.mkdir()
    server = PyftpdServer(root)
    server.port = port
    server.start()
    try:
        wait_for(lambda: (root / "late" / "early.txt").exists(), timeout=30,
                 message="the first sync once the server is up")
        wait_for(lambda: (root / "late" / ".filesync" / "marker").exists(), timeout=10,
                 message="the marker written once the server is up")
        assert run.stop() == 0
    finally:
        server.stop()
    assert PASSWORD not in run.output()


def test_the_password_is_asked_for_on_a_terminal(pyftpd, tmp_path):
    server = pyftpd()
    a = tmp_path / "a"
    write(a / "f.txt", "typed")
    env = dict(os.environ, NETRC=str(tmp_path / "no-netrc"))
    command = [sys.executable, str(MAIN), "--once", "--state", str(tmp_path / "s.sqlite"),
               f"folder:{a}", server.url("t", password=False)]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a terminal is attached, as for a person at the keyboard
        os.execve(sys.executable, command, env)
    shown = b""
    try:
        deadline = time.monotonic() + 30
        while b"Password for" not in shown and time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.5)
            if ready:
                shown += os.read(terminal, 4096)
        assert b"Password for" in shown, shown
        os.write(terminal, PASSWORD.encode() + b"\n")
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.5)
            if not ready:
                continue
            try:
                piece = os.read(terminal, 4096)
            except OSError:  # the child exited and closed the terminal
                break
            if not piece:
                break
            shown += piece
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0, shown
    assert (server.root / "t" / "f.txt").read_text() == "typed"
    assert PASSWORD.encode() not in shown  # the prompt does not echo it


def test_a_name_the_server_would_mangle_is_never_lost(any_server: Served, sync, tmp_path):
    # pure-ftpd stores "tab\there.txt" as "tab_here.txt" and a trailing space as "_"; the
    # next listing then missed the file and it read as "deleted on the server".
    a = tmp_path / "a"
    write(a / "tab\there.txt", "tabbed", OLD)
    write(a / "space at end.txt ", "spaced", OLD)
    write(a / "fine.txt", "fine", OLD)
    url = any_server.url("site")
    for _round in range(3):
        assert sync(f"folder:{a}", url) == 1  # reported, the rest synced
        assert (a / "tab\there.txt").read_text() == "tabbed"
        assert (a / "space at end.txt ").read_text() == "spaced"
    served = any_server.root / "site"
    assert sorted(p.name for p in served.iterdir() if p.name != ".filesync") == ["fine.txt"]
