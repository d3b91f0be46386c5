"""Profiles (``--profile NAME|FILE``) and location lists (``--file``): format, paths, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from filesync.cli import build_parser
from filesync.profiles import profile_arguments, read_location_file, strip_comment
from tests.conftest import MAIN, run_main, tree, write


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``$XDG_CONFIG_HOME`` with its ``filesync`` folder."""
    home = tmp_path / "config"
    (home / "filesync").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An unrelated current directory, so relative paths cannot resolve by accident."""
    cwd = tmp_path / "somewhere" / "else"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    return cwd


def messages(capsys: pytest.CaptureFixture[str]) -> str:
    """What an in-process run logged (its console handler writes to the captured stderr)."""
    return capsys.readouterr().err


def arguments(profile: Path, *argv: str) -> dict[str, object]:
    """The options ``--profile PROFILE ARGV`` ends up with, parsed as ``main`` parses them."""
    expanded = profile_arguments(str(profile), build_parser())
    assert expanded.ok, expanded
    return vars(build_parser().parse_intermixed_args([*expanded.value, *argv]))


# ----- profiles: finding them ----------------------------------------------------------------
def test_profile_by_name_from_another_folder(tmp_path, config_home, elsewhere):
    """The brief's own example, as a user runs it: python main.py --profile photos --once."""
    folder = config_home / "filesync"
    write(folder / "photos" / "a.jpg", "jpeg")
    write(folder / "photos" / "scratch.tmp", "t")
    write(folder / "photos.conf", "# my photos\n"
                                  "photos\n"
                                  "folder:backup/photos     # relative to this file\n"
                                  "--exclude *.tmp\n"
                                  "--state photos.sqlite\n")
    (folder / "backup").mkdir()
    result = subprocess.run([sys.executable, str(MAIN), "--profile", "photos", "--once"],
                            capture_output=True, text=True, timeout=60, cwd=elsewhere,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert tree(folder / "backup" / "photos") == {"a.jpg": "jpeg"}
    assert (folder / "photos.sqlite").is_file()
    assert not any(elsewhere.iterdir())


def test_profile_name_defaults_to_dot_config(tmp_path, monkeypatch, elsewhere, capsys):
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    conf = write(tmp_path / "home" / ".config" / "filesync" / "docs.conf", "a\nb\n--once\n")
    write(conf.parent / "a" / "f.txt", "f")
    assert run_main("--profile", "docs", "--state", str(tmp_path / "s.sqlite")) == 0
    assert tree(conf.parent / "b") == {"f.txt": "f"}


@pytest.mark.parametrize("how", ["absolute", "relative with a slash", "ending in .conf"])
def test_profile_by_path(tmp_path, config_home, monkeypatch, how):
    profiles = tmp_path / "profiles"
    conf = write(profiles / "work.conf", "src\ndst\n")
    write(profiles / "src" / "f.txt", "f")
    value = {"absolute": str(conf), "relative with a slash": "profiles/work.conf",
             "ending in .conf": "work.conf"}[how]
    monkeypatch.chdir(profiles if how == "ending in .conf" else tmp_path)
    assert run_main("--profile", value, "--once", "--state", str(tmp_path / "s.sqlite")) == 0
    assert tree(profiles / "dst") == {"f.txt": "f"}
    assert not (config_home / "filesync" / "work.conf").exists()


def test_missing_profile_says_which_file_and_how_to_create_it(tmp_path, config_home,
                                                              capsys):
    assert run_main("--profile", "photos", "--once") == 2
    text = messages(capsys)
    assert str(config_home / "filesync" / "photos.conf") in text
    assert "create it" in text and "--interval 5" in text


@pytest.mark.parametrize("value", ["a b", "photos!", ""])
def test_a_value_that_is_neither_name_nor_path_is_refused(config_home, capsys, value):
    assert run_main("--profile", value, "--once") == 2
    assert "neither a profile name" in messages(capsys)


# ----- profiles: the format ------------------------------------------------------------------
def test_every_kind_of_option_and_comments(tmp_path):
    base = tmp_path / "p"
    conf = write(base / "all.conf", "\n".join([
        "# a whole-line comment",
        "   # an indented one",
        "",
        "--one-way            # a flag",
        "--interval 7.5       # a value after spaces",
        "--conflict=keep-both",
        "--exclude *.tmp",
        "--exclude=build/",
        "--exclude my notes.txt",
        "--exclude -draft*",
        "-v",
        "--exclude-from ignore.txt",
        "--ca-file ~/ca.pem",
        "--log /var/tmp/x.log",
        "src",
        "zip:out.zip",
        "ftp://u:p#w@host/x   # the '#' in the password stays",
    ]) + "\n")
    parsed = arguments(conf)
    assert parsed["one_way"] is True and parsed["verbose"] is True
    assert parsed["interval"] == 7.5
    assert parsed["conflict"] == "keep-both"
    assert parsed["exclude"] == ["*.tmp", "build/", "my notes.txt", "-draft*"]
    assert parsed["exclude_from"] == [str(base / "ignore.txt")]
    assert parsed["ca_file"] == os.path.expanduser("~/ca.pem")
    assert parsed["log"] == "/var/tmp/x.log"
    assert parsed["locations"] == [f"folder:{base / 'src'}", f"zip:{base / 'out.zip'}",
                                   "ftp://u:p#w@host/x"]


def test_the_command_line_overrides_single_values_and_adds_to_repeatable_ones(tmp_path):
    conf = write(tmp_path / "p.conf", "--interval 7\n--conflict manual\n--exclude *.tmp\n"
                                      "a\n")
    parsed = arguments(conf, "--interval", "3", "--exclude", "*.bak", "b",
                       "--conflict=newest")
    assert parsed["interval"] == 3.0 and parsed["conflict"] == "newest"
    assert parsed["exclude"] == ["*.tmp", "*.bak"]
    assert parsed["locations"] == [f"folder:{tmp_path / 'a'}", "b"]


def test_a_command_line_state_wins_over_the_profiles(tmp_path, config_home, elsewhere):
    folder = config_home / "filesync"
    write(folder / "set.conf", "a\nb\n--state from-profile.sqlite\n")
    write(folder / "a" / "f.txt", "f")
    assert run_main("--profile", "set", "--once", "--state", str(tmp_path / "cli.sqlite")) == 0
    assert (tmp_path / "cli.sqlite").is_file()
    assert not (folder / "from-profile.sqlite").exists()
    assert tree(folder / "b") == {"f.txt": "f"}


def test_profile_options_take_effect(tmp_path, config_home, elsewhere):
    """A flag (--dry-run) and a repeatable option (--exclude) from the profile are obeyed."""
    folder = config_home / "filesync"
    write(folder / "a" / "keep.txt", "k")
    write(folder / "a" / "x.tmp", "t")
    write(folder / "a" / "y.bak", "b")
    write(folder / "set.conf", "a\nb\n--exclude *.tmp\n--dry-run\n")
    state = str(tmp_path / "s.sqlite")
    assert run_main("--profile", "set", "--state", state) == 0
    assert not (folder / "b").exists()
    (folder / "set.conf").write_text("a\nb\n--exclude *.tmp\n", encoding="utf-8")
    assert run_main("--profile", "set", "--once", "--exclude", "*.bak", "--state", state) == 0
    assert tree(folder / "b") == {"keep.txt": "k"}


# ----- profiles: mistakes --------------------------------------------------------------------
@pytest.mark.parametrize(("line", "fragment"), [
    ("--interval abc", "argument --interval: 'abc' is not a number"),
    ("--interval", "expected one argument"),
    ("--conflict oldest", "invalid choice"),
    ("--once yes", "ignored explicit argument"),
    ("--no-such-option 1", "unknown option '--no-such-option'"),
    ("--inter 5", "unknown option '--inter'"),
    ("-- x", "is not an option"),
    ("--profile other", "cannot include another profile"),
    ("--file paths.txt", "list the locations in the profile itself"),
    ("--help", "belongs on the command line"),
    ("bogus:thing", "invalid location 'bogus:thing'"),
])
def test_a_bad_line_is_named_by_file_and_line_and_nothing_changes(tmp_path, config_home,
                                                                  capsys, line, fragment):
    conf = write(config_home / "filesync" / "bad.conf", f"# fine\nsrc\n\n{line}\ndst\n")
    write(conf.parent / "src" / "f.txt", "f")
    assert run_main("--profile", "bad", "--once", "--state", str(tmp_path / "s.sqlite")) == 2
    text = messages(capsys)
    assert f"{conf}:4: " in text and fragment in text, text
    assert not (conf.parent / "dst").exists()
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("line", ["--password hunter2", "--pass=hunter2",
                                  "ftp://u:hunter2@host:99999/x",
                                  "ftps://u:hunter2@/x"])
def test_errors_never_echo_a_password(tmp_path, config_home, line):
    conf = write(config_home / "filesync" / "secret.conf", f"a\n{line}\n")
    result = subprocess.run([sys.executable, str(MAIN), "--profile", "secret", "--once"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            check=False)
    assert result.returncode == 2
    assert f"{conf}:2: " in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_a_profile_that_is_a_folder_is_refused(tmp_path, capsys):
    (tmp_path / "odd.conf").mkdir()
    assert run_main("--profile", str(tmp_path / "odd.conf"), "--once") == 2
    assert "cannot read profile file" in messages(capsys)


# ----- --file location lists -----------------------------------------------------------------
def test_comment_rule():
    assert strip_comment("folder:a   # after spaces") == "folder:a"
    assert strip_comment("folder:a\t#after a tab") == "folder:a"
    assert strip_comment("  # whole line") == ""
    assert strip_comment("#whole line") == ""
    assert strip_comment("ftp://u:p#w@h/x") == "ftp://u:p#w@h/x"
    assert strip_comment("folder:a#b") == "folder:a#b"


def test_location_list_comments_and_ftp_password_hash(tmp_path):
    listing = write(tmp_path / "list" / "paths.txt",
                    "# header\n"
                    "folder:a   # the source\n"
                    "\t# indented comment\n"
                    "ftp://u:p#w@h.example/x\n"
                    "ftp://u:p#w@h.example/y # a comment after it\n"
                    "s3+http://127.0.0.1:8333/bucket/prefix\n")
    read = read_location_file(str(listing))
    assert read.ok, read
    assert read.value == [f"folder:{tmp_path / 'list' / 'a'}", "ftp://u:p#w@h.example/x",
                          "ftp://u:p#w@h.example/y", "s3+http://127.0.0.1:8333/bucket/prefix"]


def test_location_list_relative_paths_from_another_folder(tmp_path, elsewhere):
    sets = tmp_path / "sets"
    write(sets / "a" / "f.txt", "f")
    write(sets / "paths.txt", "a          # folder beside this file\n"
                              "folder:b\n"
                              "zip:backup/c.zip\n"
                              "./d.zip\n")
    (sets / "backup").mkdir()
    result = subprocess.run([sys.executable, str(MAIN), "--state", str(tmp_path / "s.sqlite"),
                             "--once", "--file", "../../sets/paths.txt"],
                            capture_output=True, text=True, timeout=60, cwd=elsewhere,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert tree(sets / "b") == {"f.txt": "f"}
    assert (sets / "backup" / "c.zip").is_file() and (sets / "d.zip").is_file()
    assert not any(elsewhere.iterdir())


def test_location_list_absolute_and_home_paths_stay(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    listing = write(tmp_path / "l" / "paths.txt", f"folder:{tmp_path / 'abs'}\n~/h.zip\n")
    read = read_location_file(str(listing))
    assert read.ok and read.value == [f"folder:{tmp_path / 'abs'}",
                                      f"zip:{tmp_path / 'home' / 'h.zip'}"]


def test_location_list_bad_line_is_named_and_masked(tmp_path, capsys):
    listing = write(tmp_path / "paths.txt", "a\nftp://u:hunter2@host:0/x\n")
    assert run_main("--once", "--file", str(listing), "--state", str(tmp_path / "s")) == 2
    text = messages(capsys)
    assert f"{listing}:2: invalid location" in text and "hunter2" not in text
    assert not (tmp_path / "a").exists()


def test_check_reads_location_lists_the_same_way(tmp_path, elsewhere, capsys):
    write(tmp_path / "sets" / "a" / "f.txt", "same")
    write(tmp_path / "sets" / "b" / "f.txt", "same")
    listing = write(tmp_path / "sets" / "paths.txt", "a  # one\nb  # two\n")
    assert run_main("check", "--file", str(listing)) == 0


def test_the_example_location_file_reads_with_these_rules():
    example = MAIN.parent / "paths.example.txt"
    read = read_location_file(str(example))
    assert read.ok, read
    assert read.value == [f"folder:{MAIN.parent / 'photos'}",
                          f"folder:{os.path.realpath(os.path.expanduser('~/backup/photos'))}"]


def test_the_readme_example_profile_is_valid(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    readme = (MAIN.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("### Profiles", 1)[1].split("```\n", 2)[1]
    conf = write(tmp_path / "home" / ".config" / "filesync" / "photos.conf", example)
    parsed = arguments(conf)
    assert parsed["locations"] == [f"folder:{tmp_path / 'home' / 'Pictures'}",
                                   "ftp://me@nas.local/photos",
                                   f"zip:{conf.parent / 'archive' / 'photos.zip'}"]
    assert parsed["conflict"] == "keep-both" and parsed["interval"] == 10.0
    assert parsed["exclude"] == ["*.tmp", "Thumbs.db", "my notes.txt"]
    assert parsed["exclude_from"] == [str(conf.parent / "photos.exclude")]
    assert parsed["keep_versions"] == 20 and parsed["max_delete"] == 20.0
