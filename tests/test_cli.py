"""The command line: location forms, the prompt, --file, options and exit statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from filesync.locations.spec import FolderSpec, FtpSpec, ZipSpec, parse_location
from tests.conftest import MAIN, run_main, tree, write


def run_cli(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MAIN), "--state", str(tmp_path / "s.sqlite"), *args],
        input=stdin, capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)


# ----- location strings --------------------------------------------------------------------
def test_folder_and_bare_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_location("folder:~/x").value == FolderSpec(tmp_path / "x")
    assert parse_location("rel/dir").value == FolderSpec(tmp_path / "rel" / "dir")
    assert parse_location("backup.ZIP").value == ZipSpec(tmp_path / "backup.ZIP")
    assert parse_location("zip:~/b.zip").value == ZipSpec(tmp_path / "b.zip")


@pytest.mark.parametrize(("text", "expected"), [
    ("ftp:bob:p@ss@host/pub/x", FtpSpec(False, "bob", "p@ss", "host", 21, "/pub/x")),
    ("ftp://bob:s%40c%2Fret@h.example:2121/a%20b/",
     FtpSpec(False, "bob", "s@c/ret", "h.example", 2121, "/a b")),
    ("ftps://alice@[::1]:990/", FtpSpec(True, "alice", None, "::1", 990, "/")),
    ("FTP://h", FtpSpec(False, "anonymous", None, "h", 21, "/")),
])
def test_ftp_forms(text, expected):
    assert parse_location(text).value == expected


def test_ftp_key_and_display_never_hold_the_password():
    spec = parse_location("ftp://bob:hunter2@h/x").value
    assert "hunter2" not in spec.key and "hunter2" not in spec.display
    assert "***" in spec.display


@pytest.mark.parametrize(("text", "fragment"), [
    ("s3:bucket/x", "unknown location kind 's3:'"),
    ("folder:", "needs a path"),
    ("ftp://u:hunter2@host:99999/x", "port '99999'"),
    ("ftp://u:hunter2@/x", "no host"),
])
def test_bad_location_strings_say_what_is_wrong(text, fragment):
    result = parse_location(text)
    assert not result.ok
    assert fragment in result.message
    assert "hunter2" not in result.message


def test_bad_location_exits_2_and_masks_the_password(tmp_path, capsys):
    assert run_main("--once", str(tmp_path), "ftp://u:hunter2@host:0/x") == 2
    err = capsys.readouterr().err
    assert "port" in err and "hunter2" not in err and "***" in err


def test_unknown_prefix_lists_the_valid_forms(tmp_path, capsys):
    assert run_main("--once", str(tmp_path), "webdav:x") == 2
    err = capsys.readouterr().err
    assert "folder:PATH" in err and "zip:PATH" in err and "ftps://" in err


def test_fewer_than_two_locations_is_an_error(tmp_path, capsys):
    assert run_main("--once", f"folder:{tmp_path}") == 2
    assert "at least two locations" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--interval", "0"], ["--workers", "0"],
                                  ["--exclude", ""], ["--exclude-from", "/no/such/file"]])
def test_bad_options_exit_2(tmp_path, args):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_main("--once", *args, f"folder:{a}", f"folder:{b}") == 2
    assert not a.exists() and not b.exists()


def test_help_lists_every_option():
    result = subprocess.run([sys.executable, str(MAIN), "--help"], capture_output=True,
                            text=True, timeout=30, check=True)
    for option in ("--file", "--once", "--interval", "--state", "--dry-run", "--exclude",
                   "--exclude-from", "--log", "--verbose", "--quiet", "--one-way"):
        assert option in result.stdout


# ----- where locations come from -----------------------------------------------------------
def test_locations_from_a_file(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    paths = write(tmp_path / "paths.txt", f"# my sync\n\nfolder:{a}\n  {b}  \n")
    result = run_cli(tmp_path, "--once", "--file", str(paths))
    assert result.returncode == 0, result.stderr
    assert tree(b) == {"f.txt": "f"}


def test_missing_location_file_exits_2(tmp_path):
    result = run_cli(tmp_path, "--once", "--file", str(tmp_path / "nope.txt"))
    assert result.returncode == 2
    assert "cannot read location file" in result.stderr


def test_the_example_location_file_parses():
    lines = [line.strip() for line in (MAIN.parent / "paths.example.txt").read_text()
             .splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(lines) >= 2
    for line in lines:
        assert parse_location(line).ok, line


def test_prompt_asks_until_end_and_explains_bad_entries(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    answers = f"bogus:thing\nfolder:{a}\nfolder:{a}\n\nfolder:{b}\nend\n"
    result = run_cli(tmp_path, "--once", stdin=answers)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Enter path (folder:/zip:/ftp: or [end]): ") == 6
    assert "not a valid location" in result.stdout
    assert "given already" in result.stdout
    assert tree(b) == {"f.txt": "f"}


def test_prompt_ends_at_end_of_input(tmp_path):
    result = run_cli(tmp_path, "--once", stdin=f"folder:{tmp_path / 'a'}\n")
    assert result.returncode == 2
    assert "at least two locations" in result.stderr


# ----- logging -----------------------------------------------------------------------------
def test_log_file_gets_the_action_lines_and_quiet_silences_the_console(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    log = tmp_path / "sync.log"
    result = run_cli(tmp_path, "--once", "-q", "--log", str(log), f"folder:{a}", f"folder:{b}")
    assert result.returncode == 0
    assert result.stderr == ""
    text = log.read_text()
    assert "copy f.txt" in text and "summary:" in text


def test_console_is_plain_when_not_a_terminal(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    result = run_cli(tmp_path, "--once", f"folder:{a}", f"folder:{b}")
    assert "copy f.txt" in result.stderr
    assert "\033[" not in result.stderr


def test_a_second_run_on_the_same_locations_is_refused_while_one_runs(tmp_path, watching):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "f")
    run = watching(f"folder:{a}", f"folder:{b}")
    run.wait_output("watching")
    result = subprocess.run(
        [sys.executable, str(MAIN), "--once", "--state", str(tmp_path / "watch-state.sqlite"),
         f"folder:{a}", f"folder:{b}"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "another filesync run" in result.stderr
    assert run.stop() == 0


def test_main_starts_in_isolated_mode(tmp_path):
    result = subprocess.run([sys.executable, "-I", str(MAIN), "--version"], capture_output=True,
                            text=True, timeout=30, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert "filesync" in result.stdout


def test_the_summary_says_one_conflict_not_one_conflicts():
    from filesync.executor import Stats
    from filesync.report import summary

    one = summary(Stats(copied=1, conflicts=1, errors=1, folders_made=1, folders_removed=1,
                        versions_kept=1))
    assert "1 conflict," in one and "1 error," in one and "1 folder made" in one
    assert "1 folder removed" in one and "1 old version kept" in one
    many = summary(Stats(conflicts=2, errors=0, versions_kept=3))
    assert "2 conflicts," in many and "0 errors," in many and "3 old versions kept" in many
