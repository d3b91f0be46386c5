"""Issue 8: odd names, state failures, extreme options, the prompt, nesting, one-way sources."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from filesync.model import Agreed, Record
from filesync.state import StateStore, default_state_path
from tests.conftest import MAIN, run_main, tree, wait_for, write

CAFE = b"caf\xe9.txt"  # Latin-1 bytes: not valid UTF-8


def run_cli(cwd: Path, *args: str, stdin: str = "", state: Path | None = None,
            own_state: bool = True, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    """``python main.py [--state STATE] ARGS`` in a subprocess (env without NO_COLOR)."""
    state_args = ["--state", str(state or cwd / "s.sqlite")] if own_state else []
    base = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    return subprocess.run(
        [sys.executable, str(MAIN), *state_args, *args], input=stdin, capture_output=True,
        text=True, errors="replace", timeout=60, cwd=cwd, check=False,
        env={**base, **(env or {})})


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


# ----- 1. names that are not valid UTF-8 ---------------------------------------------------
def test_undecodable_name_is_synced_byte_exact_then_deleted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "plain.txt", "p")
    a_bytes = os.fsencode(a)
    with open(os.path.join(a_bytes, CAFE), "wb") as handle:
        handle.write(b"latin")
    result = run_cli(tmp_path, "--once", f"folder:{a}", f"folder:{b}")
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert sorted(os.listdir(os.fsencode(b))) == [b".filesync", CAFE, b"plain.txt"]
    with open(os.path.join(os.fsencode(b), CAFE), "rb") as handle:
        assert handle.read() == b"latin"
    assert "caf\\udce9.txt" in result.stderr or "caf\\xe9.txt" in result.stderr
    os.remove(os.path.join(a_bytes, CAFE))
    again = run_cli(tmp_path, "--once", f"folder:{a}", f"folder:{b}")
    assert again.returncode == 0, again.stderr
    assert CAFE not in os.listdir(os.fsencode(b))


def test_undecodable_names_survive_the_state_round_trip(tmp_path):
    name = os.fsdecode(b"dir\xff/caf\xe9.txt")
    key = "folder:" + os.fsdecode(b"/x/d\xe9")
    store, _ = StateStore.open(tmp_path / "s.sqlite", [key]).value
    store.set_agreed(name, Agreed(1, False, False, 5, 7), {key: Record(1, False, 5, 7)})
    store.set_agreed("plain", Agreed(2, False, False, 1, 1), {key: Record(2, False, 1, 1)})
    assert set(store.load()) == {name, "plain"}
    assert store.load([name])[name].records[key].size == 5
    assert store.file_counts() == {key: 2}
    store.set_marker(key, "m1")
    assert store.marker(key) == "m1"
    store.close()
    again, warning = StateStore.open(tmp_path / "s.sqlite", [key]).value
    assert warning == "" and not again.fresh
    assert again.load([name])[name].agreed.size == 5
    again.close()


def test_ordinary_names_are_stored_as_before(tmp_path):
    """Existing state files stay valid: plain names are the same TEXT as always."""
    store, _ = StateStore.open(tmp_path / "s.sqlite", ["folder:/a"]).value

    store.set_agreed("d/é.txt", Agreed(1, False, False, 1, 1),
                      {"folder:/a": Record(1, False, 1, 1)})
    store.close()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    assert db.execute("SELECT path FROM versions").fetchall() == [("d/é.txt",)]
    assert db.execute("SELECT key FROM locations").fetchall() == [("folder:/a",)]
    db.close()
    # The default state file of a set of locations keeps its name (computed by 0.x).
    assert default_state_path(["folder:/b", "folder:/a"]).name == "852d44fa9be54748.sqlite"


def _folder_named(tmp_path: Path, name: bytes) -> bytes:
    """A folder whose own name is ``name`` (bytes, maybe not UTF-8) holding f.txt."""
    odd = os.path.join(os.fsencode(tmp_path), name)
    os.mkdir(odd)
    with open(os.path.join(odd, b"f.txt"), "wb") as handle:
        handle.write(b"f")
    return odd


def test_a_location_folder_whose_path_is_not_utf8(tmp_path):
    odd = _folder_named(tmp_path, b"d\xe9")
    b = tmp_path / "b"
    result = run_cli(tmp_path, "--once", os.fsdecode(odd), f"folder:{b}", own_state=False)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert tree(b) == {"f.txt": "f"}


def test_a_location_file_may_name_a_path_that_is_not_utf8(tmp_path):
    odd = _folder_named(tmp_path, b"src\xe9")
    listing = tmp_path / "paths.txt"
    listing.write_bytes(b"folder:" + odd + b"\n" + os.fsencode(tmp_path / "b") + b"\n")
    result = run_cli(tmp_path, "--once", "--file", str(listing))
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "b") == {"f.txt": "f"}


def test_undecodable_name_in_watch_mode(tmp_path, watching):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "first.txt", "1")
    run = watching(f"folder:{a}", f"folder:{b}")
    run.wait_output("watching")
    with open(os.path.join(os.fsencode(a), CAFE), "wb") as handle:
        handle.write(b"w")
    write(a / "second.txt", "2")
    wait_for(lambda: CAFE in os.listdir(os.fsencode(b)) and (b / "second.txt").exists(),
             message="both new files in b")
    assert run.process.poll() is None
    assert run.stop() == 0
    assert "Traceback" not in run.output()


# ----- 2. the state file fails -------------------------------------------------------------
def _many_files(root: Path, count: int) -> None:
    for index in range(count):
        write(root / f"folder-{index // 50}" / f"a-rather-long-file-name-{index:05}.txt", "x")


def _page_of(state: Path, table: str) -> int:
    """The byte offset of a page in the middle of ``table`` in the sqlite file ``state``."""
    db = sqlite3.connect(state)
    try:
        pages = [row[0] for row in db.execute(
            "SELECT pageno FROM dbstat WHERE name=? ORDER BY pageno", (table,))]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()
    assert len(pages) > 3, pages
    return (pages[len(pages) // 2] - 1) * size


@pytest.mark.parametrize("table", ["versions", "records", "locations"])
def test_damaged_state_pages_are_moved_aside_and_nothing_is_deleted(tmp_path, table):
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "s.sqlite"
    _many_files(a, 400)
    assert run_cli(tmp_path, "--once", f"folder:{a}", f"folder:{b}").returncode == 0
    offset = _page_of(state, table) if table != "locations" else 4096 * 2
    with open(state, "r+b") as handle:
        handle.seek(offset)
        handle.write(os.urandom(4096))
    (a / "folder-0" / "a-rather-long-file-name-00000.txt").unlink()
    result = run_cli(tmp_path, "--once", f"folder:{a}", f"folder:{b}")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "moved to" in result.stderr
    assert list(tmp_path.glob("s.sqlite.damaged-*"))
    # A first run: the union, so the file deleted in a comes back from b.
    assert (a / "folder-0" / "a-rather-long-file-name-00000.txt").exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (needs root), unmounted at the end."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (tests need root): {done.stderr}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path, leave: int = 0) -> None:
    """Fill ``disk`` up to the last byte, then free ``leave`` bytes again."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)


def test_state_disk_full_at_start_changes_nothing(tmp_path, small_disk):
    a, b, state = tmp_path / "a", tmp_path / "b", small_disk / "s.sqlite"
    write(a / "f.txt", "f")
    assert run_cli(tmp_path, "--once", f"folder:{a}", f"folder:{b}", state=state).returncode == 0
    write(a / "g.txt", "g")
    _fill(small_disk)
    result = run_cli(tmp_path, "--once", f"folder:{a}", f"folder:{b}", state=state)
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert str(state) in result.stderr and "space" in result.stderr
    assert not (b / "g.txt").exists()
    assert state.exists() and not list(small_disk.glob("*.damaged-*"))


def test_state_disk_full_mid_run_is_a_clear_error(tmp_path, small_disk):
    a, b, state = tmp_path / "a", tmp_path / "b", small_disk / "s.sqlite"
    write(a / "f.txt", "f")
    assert run_cli(tmp_path, "--once", f"folder:{a}", f"folder:{b}", state=state).returncode == 0
    _many_files(a, 300)
    _fill(small_disk, leave=48 * 1024)
    result = run_cli(tmp_path, "--once", f"folder:{a}", f"folder:{b}", state=state)
    no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert str(state) in result.stderr and "full" in result.stderr
    assert "summary:" in result.stderr


def test_state_disk_full_stops_watch_mode_cleanly(tmp_path, small_disk):
    a, b, state = tmp_path / "a", tmp_path / "b", small_disk / "s.sqlite"
    write(a / "f.txt", "f")
    log = tmp_path / "watch.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(MAIN), "--interval", "0.2", "--state", str(state),
             f"folder:{a}", f"folder:{b}"], stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "watching" in log.read_text(errors="replace"), message="watching")
            _fill(small_disk, leave=48 * 1024)
            _many_files(a, 300)
            assert process.wait(timeout=30) == 1
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert str(state) in text and "summary:" in text


def test_state_naming_a_folder_is_refused_and_the_folder_kept(tmp_path):
    folder = tmp_path / "mystate"
    write(folder / "precious.txt", "keep me")
    result = run_cli(tmp_path, "--once", f"folder:{tmp_path / 'a'}", f"folder:{tmp_path / 'b'}",
                     state=folder)
    assert result.returncode == 2, result.stderr
    assert "folder" in result.stderr
    assert (folder / "precious.txt").read_text() == "keep me"
    assert not list(tmp_path.glob("mystate.damaged-*"))


def test_state_store_never_renames_what_is_not_a_file(tmp_path):
    folder = tmp_path / "st"
    folder.mkdir()
    assert not StateStore.open(folder, ["folder:/a"]).ok
    assert folder.is_dir()


# ----- 3. extreme option values ------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["--keep-days", "inf"], ["--keep-days", "1e10"], ["--keep-days", "nan"],
    ["--keep-days", "-1"], ["--interval", "inf"], ["--interval", "nan"],
    ["--interval", "0.001"], ["--interval", "1e9"], ["--interval", "-2"],
    ["--max-delete", "nan"], ["--max-delete", "101"], ["--max-delete", "-1"],
    ["--workers", "0"], ["--workers", "65"], ["--workers", "1e3"],
    ["--ftp-connections", "0"], ["--ftp-connections", "100"],
    ["--keep-versions", "-1"], ["--keep-versions", "99999999999"],
])
def test_extreme_option_values_exit_2(tmp_path, capsys, args):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    assert run_main("--once", *args, f"folder:{a}", f"folder:{b}") == 2
    err = capsys.readouterr().err
    assert args[0] in err and "Traceback" not in err
    assert not b.exists()


def test_sensible_option_values_are_accepted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    assert run_main("--once", "--state", str(tmp_path / "s.sqlite"), "--keep-days", "36500",
                    "--interval", "0.05", "--max-delete", "100", "--workers", "64",
                    "--ftp-connections", "64", f"folder:{a}", f"folder:{b}") == 0


def test_options_and_locations_mix_in_any_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    assert run_main(f"folder:{a}", "--once", f"folder:{b}", "--state",
                    str(tmp_path / "s.sqlite")) == 0
    assert tree(b) == {"f.txt": "f"}


# ----- 4. restore: options and paths in any order ------------------------------------------
@pytest.fixture
def kept(tmp_path: Path) -> Path:
    """A folder pair synced twice, so ``a`` keeps an old version of docs/x.txt."""
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "docs" / "x.txt", "old", mtime=1_000_000_000)
    assert run_main("--once", "--state", str(tmp_path / "s.sqlite"), f"folder:{a}",
                    f"folder:{b}") == 0
    write(b / "docs" / "x.txt", "new", mtime=1_100_000_000)
    assert run_main("--once", "--state", str(tmp_path / "s.sqlite"), f"folder:{a}",
                    f"folder:{b}") == 0
    return a


@pytest.mark.parametrize("order", [
    ["LOC", "--list", "docs"], ["--list", "LOC", "docs"], ["LOC", "docs", "--list"],
    ["LOC", "--list", "docs/x.txt", "docs"],
])
def test_restore_list_takes_options_and_paths_in_any_order(kept, tmp_path, order):
    argv = [str(kept) if part == "LOC" else part for part in order]
    result = run_cli(tmp_path, "restore", *argv, own_state=False)
    assert result.returncode == 0, result.stderr
    assert "docs/x.txt" in result.stdout


def test_restore_at_may_come_before_the_paths(kept, tmp_path):
    result = run_cli(tmp_path, "restore", str(kept), "--at", "2020-01-01", "docs/x.txt",
                     own_state=False)
    assert result.returncode == 0, result.stderr
    assert (kept / "docs" / "x.txt").read_text() == "old"


# ----- 5. the prompt ------------------------------------------------------------------------
PROMPT = "Enter path (folder:/zip:/ftp: or [end]): "


def test_prompt_checks_each_entry_when_typed_and_keeps_the_good_ones(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    write(tmp_path / "plainfile", "not a folder")
    answers = "\n".join([
        f"folder:{tmp_path / 'no' / 'such' / 'parent'}",  # cannot be created
        f"folder:{a}",
        f"folder:{tmp_path / 'plainfile'}",                 # not a folder
        f"folder:{a / 'inside'}",                           # inside a
        f"{a}",                                             # the same again
        f"folder:{b}",
        "end"]) + "\n"
    result = run_cli(tmp_path, "--once", stdin=answers)
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.count(PROMPT) == 7
    assert "neither does its parent" in result.stdout
    assert "not a folder" in result.stdout
    assert "inside" in result.stdout
    assert "given already" in result.stdout or "twice" in result.stdout
    assert tree(b) == {"f.txt": "f"}
    assert not (a / "inside").exists()


def test_ctrl_c_at_the_prompt_ends_cleanly(tmp_path):
    process = subprocess.Popen([sys.executable, str(MAIN), "--once"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        seen = b""
        deadline = time.monotonic() + 20
        assert process.stdout is not None
        while PROMPT.encode() not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                seen += os.read(process.stdout.fileno(), 4096)
        assert PROMPT.encode() in seen
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert b"Traceback" not in err
    assert b"nothing was synced" in err


# ----- 6. nested locations of every kind ---------------------------------------------------
@pytest.mark.parametrize(("outer", "inner"), [
    ("ftp://u:p@127.0.0.1:1/site", "ftp://u:p@127.0.0.1:1/site/sub"),
    ("ftp://u:p@127.0.0.1:1/site/sub", "ftps://u:p@127.0.0.1:1/site"),
    ("ftp://u:p@LocalHost:1/site", "ftp://u:q@localhost:1/site/"),
    ("ftp://u:p@127.0.0.1:1/", "ftp://u:p@127.0.0.1:1/anything"),
    ("folder:OUT", "zip:OUT/inner.zip"),
    ("folder:OUT", "folder:OUT/deeper"),
    ("ftp://u:p@127.0.0.1:1/www", "ftp://u:p@127.0.0.1:1/other?reserved=/www/private"),
])
def test_nested_locations_are_refused(tmp_path, capsys, outer, inner):
    out = str(tmp_path / "out")
    outer, inner = outer.replace("OUT", out), inner.replace("OUT", out)
    assert run_main("--once", outer, inner) == 2
    err = capsys.readouterr().err
    assert "inside" in err or "same place" in err


@pytest.mark.parametrize(("one", "two"), [
    ("ftp://u:p@127.0.0.1:1/site", "ftp://u:p@127.0.0.1:1/site2"),
    ("ftp://u:p@127.0.0.1:1/site", "ftp://u:p@127.0.0.1:2/site/sub"),
    ("ftp://u:p@127.0.0.1:1/site", "ftp://v:p@127.0.0.1:1/site/sub"),
])
def test_separate_ftp_locations_pass_the_nesting_check(one, two):
    from filesync.cli_input import check_group
    from filesync.locations import open_location, parse_location

    locations = [open_location(parse_location(text).value).value for text in (one, two)]
    try:
        assert check_group(locations).ok
    finally:
        for location in locations:
            location.close()


# ----- 7. a one-way source is never created ------------------------------------------------
def test_one_way_with_a_missing_source_changes_nothing(tmp_path):
    target = tmp_path / "target"
    write(target / "important.txt", "i")
    result = run_cli(tmp_path, "--once", "--one-way", f"folder:{tmp_path / 'sorce'}",
                     f"folder:{target}")
    assert result.returncode == 2
    assert "source" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "sorce").exists()
    assert tree(target) == {"important.txt": "i"}


def test_one_way_with_a_missing_source_archive_is_refused(tmp_path):
    target = tmp_path / "target"
    write(target / "important.txt", "i")
    result = run_cli(tmp_path, "--once", "--one-way", f"zip:{tmp_path / 'src.zip'}",
                     f"folder:{target}")
    assert result.returncode == 2
    assert not (tmp_path / "src.zip").exists()
    assert tree(target) == {"important.txt": "i"}


# ----- 8. NO_COLOR -------------------------------------------------------------------------
def _stderr_on_a_terminal(tmp_path: Path, env: dict[str, str]) -> str:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / f"f{len(env)}.txt", "f")
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, str(MAIN), "--once", "--state", str(tmp_path / "s.sqlite"),
             f"folder:{a}", f"folder:{b}"], stderr=slave, stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, cwd=tmp_path,
            env={**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, **env})
        os.close(slave)
        output = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=30) == 0
    finally:
        os.close(master)
    return output.decode(errors="replace")


def test_no_color_turns_colour_off_on_a_terminal(tmp_path):
    coloured = _stderr_on_a_terminal(tmp_path, {})
    assert "\033[" in coloured and "copy f0.txt" in coloured
    plain = _stderr_on_a_terminal(tmp_path, {"NO_COLOR": "1"})
    assert "copy f1.txt" in plain and "\033[" not in plain
