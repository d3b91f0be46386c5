"""``python main.py check``: content compared by SHA-256 everywhere, nothing changed."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.conftest import run_main, tree, write

T = 1_600_000_000


def identical_pair(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        write(root / "docs" / "report.txt", "the same ten", T)
        write(root / "photo.jpg", b"\xff\xd8 same", T)
        (root / "empty folder").mkdir(parents=True)
    return a, b


def test_identical_locations_exit_0_and_nothing_is_changed(tmp_path: Path, capsys):
    a, b = identical_pair(tmp_path)
    before = tree(a), tree(b)
    assert run_main("check", f"folder:{a}", f"folder:{b}") == 0
    assert "identical: 4 paths in 2 locations" in capsys.readouterr().out
    assert (tree(a), tree(b)) == before
    assert not (a / ".filesync").exists() and not (b / ".filesync").exists()


def test_a_flipped_byte_with_the_same_size_and_time_is_found(tmp_path: Path, capsys):
    a, b = identical_pair(tmp_path)
    write(b / "docs" / "report.txt", "the same tEn", T)  # what a quick check cannot see
    assert run_main("check", f"folder:{a}", f"folder:{b}") == 1
    out = capsys.readouterr().out
    assert "differs: docs/report.txt  (content:" in out and "1 of 4 paths differ" in out
    assert "photo.jpg" not in out


def test_missing_and_different_paths_are_listed_with_where(tmp_path: Path, capsys):
    a, b = identical_pair(tmp_path)
    (b / "photo.jpg").unlink()
    write(a / "only-in-a.txt", "x")
    write(b / "docs" / "report.txt", "longer content now", T)
    assert run_main("check", f"folder:{a}", f"folder:{b}") == 1
    out = capsys.readouterr().out
    assert f"missing: photo.jpg  in folder:{b}" in out
    assert f"missing: only-in-a.txt  in folder:{b}" in out
    assert "differs: docs/report.txt  (sizes" in out


def test_an_archive_against_a_folder(tmp_path: Path, capsys):
    a, _ = identical_pair(tmp_path)
    archive = tmp_path / "backup.zip"
    with zipfile.ZipFile(archive, "w") as built:
        built.writestr("docs/report.txt", "the same ten")
        built.writestr("photo.jpg", b"\xff\xd8 sAme")
        built.writestr("empty folder/", b"")
    assert run_main("check", f"folder:{a}", f"zip:{archive}") == 1
    out = capsys.readouterr().out
    assert "differs: photo.jpg" in out and "report.txt" not in out


def test_bad_input_and_an_unreachable_location_exit_2(tmp_path: Path):
    a, _ = identical_pair(tmp_path)
    assert run_main("check", f"folder:{a}") == 2
    assert run_main("check", f"folder:{a}", "nonsense:x") == 2
    assert run_main("check", f"folder:{a}", f"folder:{tmp_path / 'missing'}") == 2
    assert not (tmp_path / "missing").exists()


def test_a_folder_against_an_ftp_server(tmp_path: Path, capsys):
    from tests.ftp_servers import PyftpdServer

    a, _ = identical_pair(tmp_path)
    served = tmp_path / "served"
    for name in ("docs/report.txt", "photo.jpg"):
        write(served / "site" / name, (a / name).read_bytes())
    (served / "site" / "empty folder").mkdir()
    server = PyftpdServer(served).start()
    try:
        assert run_main("check", f"folder:{a}", server.url("site")) == 0
        write(served / "site" / "photo.jpg", b"\xff\xd8 sAme")
        assert run_main("check", f"folder:{a}", server.url("site")) == 1
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert "differs: photo.jpg  (content:" in out
    assert "Pw-" not in out  # the password is never shown
