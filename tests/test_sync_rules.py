"""The engine's rules, each checked through the command line on real folders."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import tree, write

T0 = 1_700_000_000  # a fixed, old mtime, so "newer" is always explicit in a test


def folders(tmp_path: Path, *names: str) -> list[Path]:
    paths = [tmp_path / name for name in names]
    for path in paths:
        path.mkdir(exist_ok=True)
    return paths


# ----- rule 1: first run -----------------------------------------------------------------
def test_first_run_takes_the_union_and_deletes_nothing(tmp_path, sync):
    a, b, c = folders(tmp_path, "a", "b", "c")
    write(a / "only-a.txt", "A")
    write(b / "sub" / "only-b.txt", "B")
    write(c / "deep" / "er" / "only-c.txt", "C")
    (c / "empty").mkdir()
    assert sync(f"folder:{a}", f"folder:{b}", f"folder:{c}") == 0
    expected = {"only-a.txt": "A", "sub": None, "sub/only-b.txt": "B", "deep": None,
                "deep/er": None, "deep/er/only-c.txt": "C", "empty": None}
    for root in (a, b, c):
        assert tree(root) == expected


def test_first_run_newest_mtime_wins(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "f.txt", "old", mtime=T0)
    write(b / "f.txt", "newer", mtime=T0 + 60)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (a / "f.txt").read_text() == "newer"
    assert (a / "f.txt").stat().st_mtime_ns == (T0 + 60) * 10**9


def test_first_run_tie_goes_to_the_first_location(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "f.txt", "from a", mtime=T0)
    write(b / "f.txt", "from b!", mtime=T0)  # other size: same size+mtime counts as equal
    assert sync(f"folder:{b}", f"folder:{a}") == 0
    assert (a / "f.txt").read_text() == "from b!"


# ----- rule 2: state ---------------------------------------------------------------------
def test_state_is_a_sqlite_database_with_every_synced_path(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "x" / "y.txt", "y")
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        paths = {row[0] for row in db.execute("SELECT path FROM versions")}
        records = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    assert paths == {"x", "x/y.txt"}
    assert records == 4


def test_default_state_file_is_per_location_set(tmp_path, private_state):
    from tests.conftest import run_main

    a, b, c = folders(tmp_path, "a", "b", "c")
    assert run_main("--once", f"folder:{a}", f"folder:{b}") == 0
    assert run_main("--once", f"folder:{b}", f"folder:{a}") == 0  # same set, same file
    assert run_main("--once", f"folder:{a}", f"folder:{c}") == 0
    files = sorted((private_state / "filesync").glob("*.sqlite"))
    assert len(files) == 2


def test_lost_state_means_first_run_without_deletions(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "keep.txt", "k")
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    (b / "keep.txt").unlink()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'state.sqlite'}{suffix}").unlink(missing_ok=True)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (b / "keep.txt").read_text() == "k"  # restored, not deleted from a


def test_unreadable_state_is_set_aside_with_a_warning(tmp_path, sync, capsys):
    a, b = folders(tmp_path, "a", "b")
    write(a / "keep.txt", "k")
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    (b / "keep.txt").unlink()
    (tmp_path / "state.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp_path / 'state.sqlite'}{suffix}").unlink(missing_ok=True)
    capsys.readouterr()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    err = capsys.readouterr().err
    assert "unreadable" in err and "first run" in err
    assert (b / "keep.txt").read_text() == "k"
    assert list(tmp_path.glob("state.sqlite.damaged-*"))


# ----- rule 3: changes since the base ----------------------------------------------------
def test_deletion_while_not_running_propagates(tmp_path, sync):
    a, b, c = folders(tmp_path, "a", "b", "c")
    write(a / "gone.txt", "g")
    write(a / "dir" / "gone-too.txt", "g")
    write(a / "stays.txt", "s")
    locations = [f"folder:{p}" for p in (a, b, c)]
    assert sync(*locations) == 0
    (b / "gone.txt").unlink()
    (b / "dir" / "gone-too.txt").unlink()
    (b / "dir").rmdir()
    assert sync(*locations) == 0
    for root in (a, b, c):
        assert tree(root) == {"stays.txt": "s"}


def test_modification_in_one_location_reaches_all(tmp_path, sync):
    a, b, c = folders(tmp_path, "a", "b", "c")
    write(a / "f.txt", "v1", mtime=T0)
    locations = [f"folder:{p}" for p in (a, b, c)]
    assert sync(*locations) == 0
    write(c / "f.txt", "v2 from c", mtime=T0 - 3600)  # older mtime: a change still wins
    assert sync(*locations) == 0
    for root in (a, b, c):
        assert (root / "f.txt").read_text() == "v2 from c"


def test_concurrent_edits_newest_wins(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "f.txt", "base", mtime=T0)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    write(a / "f.txt", "edit a", mtime=T0 + 20)
    write(b / "f.txt", "edit b!", mtime=T0 + 10)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (b / "f.txt").read_text() == "edit a"


def test_concurrent_equal_edits_copy_nothing(tmp_path, sync, capsys):
    a, b = folders(tmp_path, "a", "b")
    write(a / "f.txt", "base", mtime=T0)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    write(a / "f.txt", "same new", mtime=T0 + 20)
    write(b / "f.txt", "same new", mtime=T0 + 30)
    capsys.readouterr()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    err = capsys.readouterr().err
    assert "copy " not in err and "conflict " not in err
    assert (a / "f.txt").stat().st_mtime == T0 + 20  # metadata-only: nothing rewritten


def test_edit_beats_concurrent_delete(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "f.txt", "base", mtime=T0)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    (a / "f.txt").unlink()
    write(b / "f.txt", "edited", mtime=T0 - 100)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (a / "f.txt").read_text() == "edited"


def test_edit_inside_a_deleted_folder_keeps_the_folder(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "d" / "one.txt", "1", mtime=T0)
    write(a / "d" / "two.txt", "2", mtime=T0)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    for name in ("one.txt", "two.txt"):
        (a / "d" / name).unlink()
    (a / "d").rmdir()
    write(b / "d" / "two.txt", "2 edited", mtime=T0 + 5)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert tree(a) == tree(b) == {"d": None, "d/two.txt": "2 edited"}


# ----- rule 4: equality -------------------------------------------------------------------
def test_same_content_other_mtime_is_recorded_not_copied(tmp_path, sync, capsys):
    a, b = folders(tmp_path, "a", "b")
    write(a / "f.txt", "identical", mtime=T0)
    write(b / "f.txt", "identical", mtime=T0 + 500)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    err = capsys.readouterr().err
    assert "copy " not in err
    assert (a / "f.txt").stat().st_mtime == T0
    assert (b / "f.txt").stat().st_mtime == T0 + 500
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert "copy " not in capsys.readouterr().err


def test_same_size_other_content_is_copied(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "f.txt", "AAAA", mtime=T0)
    write(b / "f.txt", "BBBB", mtime=T0 + 1)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (a / "f.txt").read_text() == "BBBB"


# ----- rule 5: copies ----------------------------------------------------------------------
def test_copies_keep_mtime_and_leave_no_temporary_files(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "big.bin", os.urandom(3 * 1024 * 1024 + 17), mtime=T0 + 0.123456789)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (b / "big.bin").read_bytes() == (a / "big.bin").read_bytes()
    assert (b / "big.bin").stat().st_mtime_ns == (a / "big.bin").stat().st_mtime_ns
    assert sorted(p.name for p in b.iterdir()) == [".filesync", "big.bin"]
    assert not list(b.rglob(".filesync-*.tmp"))


def test_abandoned_temporary_files_are_set_aside_and_never_synced(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "real.txt", "r")
    stale = write(a / "sub" / ".filesync-00000000-0123456789ab.tmp", "partial")
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert not stale.exists()
    kept = list((a / ".filesync" / "versions" / "sub").iterdir())
    assert [p.read_text() for p in kept] == ["partial"]
    assert tree(b) == {"real.txt": "r", "sub": None}


def test_empty_directories_are_created_and_deleted(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    (a / "e1" / "e2").mkdir(parents=True)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (b / "e1" / "e2").is_dir()
    (b / "e1" / "e2").rmdir()
    (b / "e1").rmdir()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert not (a / "e1").exists()


# ----- rule 9: bad input ----------------------------------------------------------------
@pytest.mark.parametrize("second", ["same", "inside", "symlinked"])
def test_same_or_nested_locations_are_refused(tmp_path, sync, second):
    a = tmp_path / "a"
    write(a / "f.txt", "f")
    if second == "same":
        other = a
    elif second == "inside":
        other = a / "backup"
    else:
        other = tmp_path / "link"
        other.symlink_to(a)
    assert sync(f"folder:{a}", f"folder:{other}") == 2
    assert tree(a) == {"f.txt": "f"}


def test_missing_folder_is_created_when_its_parent_exists(tmp_path, sync):
    a = tmp_path / "a"
    write(a / "f.txt", "f")
    assert sync(f"folder:{a}", f"folder:{tmp_path / 'new'}") == 0
    assert (tmp_path / "new" / "f.txt").read_text() == "f"


def test_missing_parent_is_refused_and_nothing_changes(tmp_path, sync, capsys):
    a = tmp_path / "a"
    write(a / "f.txt", "f")
    created = tmp_path / "created-first"
    assert sync(f"folder:{created}", f"folder:{a}", f"folder:{tmp_path / 'no' / 'such'}") == 2
    assert "does not exist" in capsys.readouterr().err
    assert not created.exists() and not (tmp_path / "no").exists()


def test_symlinks_are_skipped_with_a_warning(tmp_path, sync, capsys):
    a, b = folders(tmp_path, "a", "b")
    write(tmp_path / "outside" / "secret.txt", "s")
    (a / "link").symlink_to(tmp_path / "outside")
    (a / "file-link").symlink_to(tmp_path / "outside" / "secret.txt")
    write(a / "real.txt", "r")
    # Not identical afterwards (b lacks the links), so not exit 0; the rest is synced.
    assert sync("--once", f"folder:{a}", f"folder:{b}") == 1
    err = capsys.readouterr().err
    assert "symbolic link" in err and "2 skipped" in err
    assert tree(b) == {"real.txt": "r"}
    # Excluded links are not skipped differences: exit 0.
    assert sync(f"folder:{a}", f"folder:{b}", "--exclude", "link", "--exclude",
                "file-link") == 0


def test_unicode_spaces_and_deep_trees(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    deep = Path(*[f"level {i}" for i in range(40)])
    write(a / "ünïcödé 名前" / "spaced name.txt", "u")
    write(a / deep / "bottom ✓.txt", "deep")
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert tree(b) == tree(a)
    assert (b / deep / "bottom ✓.txt").read_text() == "deep"


# ----- rule 10: one failure does not stop the others ---------------------------------------
def test_one_failing_file_is_reported_and_the_rest_synced(tmp_path, sync, capsys):
    a, b = folders(tmp_path, "a", "b")
    write(a / "clash", "a file in a")
    write(b / "clash" / "inner.txt", "a folder in b")
    for i in range(5):
        write(a / f"ok{i}.txt", str(i))
    assert sync(f"folder:{a}", f"folder:{b}") == 1
    err = capsys.readouterr().err
    assert "clash" in err and "rename one of them" in err
    assert "failed: clash/inner.txt" in err
    for i in range(5):
        assert (b / f"ok{i}.txt").read_text() == str(i)


# ----- excludes and one-way ----------------------------------------------------------------
def test_excluded_paths_are_neither_copied_nor_deleted(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "keep.txt", "k")
    write(a / "x.tmp", "t")
    write(a / "build" / "out.o", "o")
    write(a / "src" / "node_modules" / "m.js", "m")
    write(b / "local.tmp", "mine")
    excludes = ["--exclude", "*.tmp", "--exclude", "build/", "--exclude", "**/node_modules"]
    assert sync(f"folder:{a}", f"folder:{b}", *excludes) == 0
    assert tree(b) == {"keep.txt": "k", "local.tmp": "mine", "src": None}
    (b / "keep.txt").unlink()
    assert sync(f"folder:{a}", f"folder:{b}", *excludes) == 0
    assert (a / "x.tmp").exists() and (a / "build" / "out.o").exists()
    assert not (a / "keep.txt").exists()


def test_exclude_from_file(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "a.log", "l")
    write(a / "a.txt", "t")
    patterns = write(tmp_path / "ignore.txt", "# logs\n\n*.log\n")
    assert sync(f"folder:{a}", f"folder:{b}", "--exclude-from", str(patterns)) == 0
    assert tree(b) == {"a.txt": "t"}


def test_one_way_makes_targets_identical_and_undoes_their_changes(tmp_path, sync):
    src, dst = folders(tmp_path, "src", "dst")
    write(src / "f.txt", "source", mtime=T0)
    write(dst / "extra.txt", "extra")
    # A first run may not delete most of a target's files, however few it has.
    assert sync("--one-way", f"folder:{src}", f"folder:{dst}") == 1
    assert (dst / "extra.txt").exists()
    assert sync("--one-way", "--force", f"folder:{src}", f"folder:{dst}") == 0
    assert tree(dst) == {"f.txt": "source"}
    write(dst / "f.txt", "edited in target", mtime=T0 + 100)
    assert sync("--one-way", f"folder:{src}", f"folder:{dst}") == 0
    assert (dst / "f.txt").read_text() == "source"
    assert tree(src) == {"f.txt": "source"}


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path, sync, capsys):
    a, b = folders(tmp_path, "a", "b")
    write(a / "new.txt", "n")
    assert sync("--dry-run", f"folder:{a}", f"folder:{b}") == 0
    out = capsys.readouterr().out
    assert "copy new.txt" in out and "nothing changed" in out
    assert tree(b) == {}


def test_copies_keep_the_source_permissions_like_rsync_a(tmp_path, sync):
    a, b = folders(tmp_path, "a", "b")
    write(a / "run.sh", "echo 1", mtime=T0)
    (a / "run.sh").chmod(0o750)
    write(a / "data.txt", "d", mtime=T0)
    (a / "data.txt").chmod(0o600)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (b / "run.sh").stat().st_mode & 0o7777 == 0o750
    assert (b / "data.txt").stat().st_mode & 0o7777 == 0o600
    write(a / "run.sh", "echo 2", mtime=T0 + 10)
    (a / "run.sh").chmod(0o755)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (b / "run.sh").read_text() == "echo 2"
    assert (b / "run.sh").stat().st_mode & 0o7777 == 0o755


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_dry_run_against_a_location_still_to_be_created(tmp_path, sync, capsys, kind):
    a = tmp_path / "a"
    write(a / "new.txt", "n")
    target = tmp_path / ("b.zip" if kind == "zip" else "b")
    assert sync("--dry-run", f"folder:{a}", f"{kind}:{target}") == 0
    out = capsys.readouterr().out
    assert "copy new.txt" in out and "nothing changed" in out
    assert not target.exists()
