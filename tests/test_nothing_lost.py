"""Nothing lost: versions, restore, conflict policies, markers, the mass-delete guard."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import threading
from pathlib import Path

from filesync.engine import Engine, Options
from filesync.locations.folder import FolderLocation
from filesync.locations.spec import FolderSpec
from filesync.result import ErrorKind
from filesync.state import StateStore
from tests.conftest import run_main, tree, write

T0 = 1_700_000_000


def versions(root: Path) -> dict[str, str]:
    """Kept versions: relative name under .filesync/versions -> content."""
    base = root / ".filesync" / "versions"
    return {p.relative_to(base).as_posix(): p.read_text()
            for p in sorted(base.rglob("*")) if p.is_file()} if base.exists() else {}


def kept_contents(root: Path) -> list[str]:
    return sorted(versions(root).values())


def setup_pair(tmp_path: Path, sync, **files: str) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for name, text in files.items():
        write(a / name, text, mtime=T0)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    return a, b


# ----- versions ------------------------------------------------------------------------------
def test_an_overwritten_file_is_kept_as_a_version(tmp_path, sync):
    a, b = setup_pair(tmp_path, sync, **{"doc.txt": "first"})
    write(a / "doc.txt", "second", mtime=T0 + 10)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (b / "doc.txt").read_text() == "second"
    kept = versions(b)
    assert list(kept.values()) == ["first"]
    assert re.fullmatch(r"doc\.txt~\d{8}T\d{6}\.\d{6}Z", next(iter(kept)))


def test_a_deleted_file_is_kept_as_a_version_by_rename(tmp_path, sync):
    a, b = setup_pair(tmp_path, sync, **{"sub/gone.txt": "precious"})
    inode = (b / "sub" / "gone.txt").stat().st_ino
    (a / "sub" / "gone.txt").unlink()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert not (b / "sub" / "gone.txt").exists()
    [(name, text)] = versions(b).items()
    assert name.startswith("sub/gone.txt~") and text == "precious"
    assert (b / ".filesync" / "versions" / name).stat().st_ino == inode  # renamed, not copied


def test_the_reserved_folder_is_never_synced(tmp_path, sync):
    a, b = setup_pair(tmp_path, sync, **{"f.txt": "v1"})
    write(a / "f.txt", "v2", mtime=T0 + 5)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert versions(b) and not versions(a)  # b's version stays in b
    assert tree(a) == tree(b) == {"f.txt": "v2"}


def test_keep_versions_limits_versions_per_file(tmp_path, sync):
    a, b = setup_pair(tmp_path, sync, **{"f.txt": "v0"})
    for i in range(1, 5):
        write(a / "f.txt", f"v{i}", mtime=T0 + i)
        assert sync(f"folder:{a}", f"folder:{b}", "--keep-versions", "2") == 0
    assert kept_contents(b) == ["v2", "v3"]


def test_keep_days_prunes_old_versions(tmp_path, sync):
    a, b = setup_pair(tmp_path, sync, **{"f.txt": "v0", "g.txt": "g0"})
    write(a / "f.txt", "v1", mtime=T0 + 1)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    [old] = (b / ".filesync" / "versions").glob("f.txt~*")
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)
    old.rename(old.with_name("f.txt~" + long_ago.strftime("%Y%m%dT%H%M%S.%fZ")))
    write(a / "g.txt", "g1", mtime=T0 + 1)
    assert sync(f"folder:{a}", f"folder:{b}", "--keep-days", "30") == 0
    assert kept_contents(b) == ["g0"]


# ----- restore -------------------------------------------------------------------------------
def test_restore_undoes_the_last_round_and_can_itself_be_undone(tmp_path, sync, capsys):
    a, b = setup_pair(tmp_path, sync, **{"x.txt": "x1", "y.txt": "y1", "z.txt": "z1"})
    write(a / "x.txt", "x2 bad edit", mtime=T0 + 10)
    (a / "y.txt").unlink()
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert run_main("restore", f"folder:{b}", "--list") == 0
    listing = capsys.readouterr().out
    assert "x.txt" in listing and "y.txt" in listing and "z.txt" not in listing
    assert run_main("restore", f"folder:{b}") == 0
    assert tree(b) == {"x.txt": "x1", "y.txt": "y1", "z.txt": "z1"}
    assert "x2 bad edit" in kept_contents(b)  # the restore kept what it replaced
    assert sync(f"folder:{a}", f"folder:{b}") == 0  # and the next sync spreads it
    assert tree(a) == {"x.txt": "x1", "y.txt": "y1", "z.txt": "z1"}


def _age_version(path: Path, days: float) -> None:
    """Pretend a kept version was superseded ``days`` ago (a fast test makes them all now)."""
    user_name = path.name.rsplit("~", 1)[0]
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
    path.rename(path.with_name(f"{user_name}~{moment.strftime('%Y%m%dT%H%M%S.%fZ')}"))


def test_restore_a_folder_as_it_was_at_a_time(tmp_path, sync):
    a, b = setup_pair(tmp_path, sync, **{"d/one.txt": "1", "d/two.txt": "2", "other.txt": "o"})
    versions_dir = b / ".filesync" / "versions" / "d"
    for round_number, age in ((1, 2), (2, 1)):
        write(a / "d" / "one.txt", f"1 edit {round_number}", mtime=T0 + round_number)
        assert sync(f"folder:{a}", f"folder:{b}") == 0
        newest = max(versions_dir.glob("one.txt~*"), key=lambda p: p.stat().st_ctime_ns)
        _age_version(newest, age)  # superseded 2 days ago, then 1 day ago
    shutil.rmtree(a / "d")
    write(a / "other.txt", "o edited", mtime=T0 + 9)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert "d/one.txt" not in tree(b)
    # A day and a half ago, d/one.txt read "1 edit 1" and d/two.txt "2".
    moment = dt.datetime.now() - dt.timedelta(days=1.5)
    assert run_main("restore", f"folder:{b}", "d", "--at",
                    moment.strftime("%Y-%m-%d %H:%M:%S")) == 0
    restored = tree(b)
    assert restored["d/one.txt"] == "1 edit 1"
    assert restored["d/two.txt"] == "2"
    assert restored["other.txt"] == "o edited"  # outside the restored folder: untouched


def test_restore_with_bad_input_changes_nothing(tmp_path, sync, capsys):
    _, b = setup_pair(tmp_path, sync, **{"f.txt": "f"})
    before = tree(b)
    assert run_main("restore", f"folder:{b}", "--at", "yesterday") == 2
    assert run_main("restore", f"folder:{b}", "no/such/path") == 1
    assert run_main("restore", "bogus:thing") == 2
    assert tree(b) == before
    assert "not a time like" in capsys.readouterr().err


# ----- conflicts -----------------------------------------------------------------------------
def concurrent_edits(tmp_path, sync, *policy: str) -> tuple[Path, Path]:
    a, b = setup_pair(tmp_path, sync, **{"notes.txt": "base"})
    write(a / "notes.txt", "edit in a (older)", mtime=T0 + 10)
    write(b / "notes.txt", "edit in b (newer)", mtime=T0 + 20)
    return a, b


def test_conflict_newest_wins_and_the_loser_is_a_version(tmp_path, sync, capsys):
    a, b = concurrent_edits(tmp_path, sync)
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert (a / "notes.txt").read_text() == "edit in b (newer)"
    assert kept_contents(a) == ["edit in a (older)"]
    assert "conflict notes.txt" in capsys.readouterr().err


def test_conflict_keep_both_shows_the_loser_everywhere(tmp_path, sync):
    a, b = concurrent_edits(tmp_path, sync)
    assert sync(f"folder:{a}", f"folder:{b}", "--conflict", "keep-both") == 0
    assert tree(a) == tree(b)
    copies = [name for name in tree(a) if name != "notes.txt"]
    assert len(copies) == 1
    assert re.fullmatch(r"notes\.conflict-\d{8}-\d{6}-a\.txt", copies[0])
    assert tree(a)[copies[0]] == "edit in a (older)"
    assert tree(a)["notes.txt"] == "edit in b (newer)"


def test_conflict_manual_leaves_everything_until_resolved(tmp_path, sync, capsys):
    a, b = concurrent_edits(tmp_path, sync)
    for _ in range(2):
        assert sync(f"folder:{a}", f"folder:{b}", "--conflict", "manual") == 1
        assert "conflict notes.txt" in capsys.readouterr().err
        assert (a / "notes.txt").read_text() == "edit in a (older)"
        assert (b / "notes.txt").read_text() == "edit in b (newer)"
    write(a / "notes.txt", "merged by hand", mtime=T0 + 5)  # older mtime, still the resolution
    assert sync(f"folder:{a}", f"folder:{b}", "--conflict", "manual") == 0
    assert (b / "notes.txt").read_text() == "merged by hand"


def test_metadata_only_differences_are_never_conflicts(tmp_path, sync, capsys):
    a, b = setup_pair(tmp_path, sync, **{"same.txt": "same"})
    write(a / "same.txt", "same", mtime=T0 + 10)
    write(b / "same.txt", "same", mtime=T0 + 20)
    assert sync(f"folder:{a}", f"folder:{b}", "--conflict", "keep-both") == 0
    assert "conflict " not in capsys.readouterr().err
    assert tree(a) == tree(b) == {"same.txt": "same"}
    assert versions(a) == versions(b) == {}


# ----- guards --------------------------------------------------------------------------------
def test_a_location_that_lost_its_marker_is_unavailable_not_empty(tmp_path, sync, capsys):
    a, b = setup_pair(tmp_path, sync, **{"one.txt": "1", "two.txt": "2"})
    shutil.rmtree(b)  # the disk is not mounted: an empty mount point
    b.mkdir()
    assert sync(f"folder:{a}", f"folder:{b}") == 1
    err = capsys.readouterr().err
    assert "lost its marker" in err and "--force" in err
    assert tree(a) == {"one.txt": "1", "two.txt": "2"}
    assert tree(b) == {}
    assert sync(f"folder:{a}", f"folder:{b}", "--force") == 0
    assert tree(b) == {"one.txt": "1", "two.txt": "2"}  # taken as new: merged, not emptied


def test_a_round_deleting_most_files_is_refused_without_force(tmp_path, sync, capsys):
    files = {f"f{i:02}.txt": str(i) for i in range(20)}
    a, b = setup_pair(tmp_path, sync, **files)
    for i in range(15):
        (a / f"f{i:02}.txt").unlink()
    write(a / "new.txt", "new")
    assert sync(f"folder:{a}", f"folder:{b}") == 1
    err = capsys.readouterr().err
    assert "refusing to delete 15 of 20 files" in err and "--force" in err
    assert len(tree(b)) == 20 and "new.txt" not in tree(b)  # nothing at all was applied
    assert sync(f"folder:{a}", f"folder:{b}", "--force") == 0
    assert tree(b) == tree(a)
    assert len(versions(b)) == 15


def test_few_deletions_pass_the_guard(tmp_path, sync):
    files = {f"f{i}.txt": str(i) for i in range(9)}
    a, b = setup_pair(tmp_path, sync, **files)
    for i in range(9):
        (a / f"f{i}.txt").unlink()
    assert sync(f"folder:{a}", f"folder:{b}") == 0  # 9 < 10: below the minimum
    assert tree(b) == {}


def test_a_target_changed_after_planning_is_not_clobbered(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "from a", mtime=T0 + 10)
    write(b / "f.txt", "old b", mtime=T0)
    locations = [FolderLocation(FolderSpec(a)), FolderLocation(FolderSpec(b))]
    store, _ = StateStore.open(tmp_path / "s.sqlite", [loc.key for loc in locations]).value
    engine = Engine(locations, store, Options(), threading.Event())
    engine.start()
    planned = engine.make_plan(engine.list_all())
    assert [act.target for act in planned.actions()] == [locations[1].key]
    write(b / "f.txt", "edited meanwhile!", mtime=T0 + 20)  # after the plan, before applying
    outcome = engine.executor.apply(planned)
    store.close()
    assert (b / "f.txt").read_text() == "edited meanwhile!"
    assert [(f.path, f.kind) for f in outcome.failures] == [("f.txt", ErrorKind.CHANGED)]


def test_stale_temporary_files_never_count_as_user_files(tmp_path, sync):
    a, b = setup_pair(tmp_path, sync, **{"f.txt": "f"})
    write(b / ".filesync-abcdefab-abcdefabcdef.tmp", "half")
    os.utime(b / ".filesync-abcdefab-abcdefabcdef.tmp", (T0, T0))
    assert sync(f"folder:{a}", f"folder:{b}") == 0
    assert tree(a) == tree(b) == {"f.txt": "f"}
