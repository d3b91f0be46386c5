"""SIGKILL at any moment leaves no partial file under a real name; the next run completes."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from tests.conftest import MAIN, run_main, tree, wait_for

SIZE = 40 * 1024 * 1024


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def big_files(tmp_path: Path, count: int) -> tuple[Path, Path, dict[str, str]]:
    """``src`` with ``count`` distinct files of about 40 MiB, an empty ``dst``, and digests."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    chunk = hashlib.sha256(b"seed").digest() * (1024 * 32)  # 1 MiB, not all one byte
    for i in range(count):
        with (src / f"big{i}.bin").open("wb") as handle:
            for _ in range(SIZE // len(chunk)):
                handle.write(chunk)
            handle.write(str(i).encode())
    return src, dst, {p.name: digest(p) for p in src.iterdir()}


def signal_mid_copy(args: list[str], dst: Path, sig: int, output: int | IO[bytes]) -> int:
    """Run ``main.py ARGS``, send ``sig`` once a copy into ``dst`` is in flight; its status."""
    process = subprocess.Popen([sys.executable, str(MAIN), *args], stdout=output,
                               stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: any(dst.glob(".filesync-*.tmp")), timeout=30,
                 message="a copy in flight")
        process.send_signal(sig)
    finally:
        process.wait(timeout=60)
    return process.returncode


def test_sigkill_mid_copy_then_rerun(tmp_path):
    src, dst, expected = big_files(tmp_path, 6)
    state = tmp_path / "state.sqlite"
    status = signal_mid_copy(["--once", "-q", "--workers", "2", "--state", str(state),
                              f"folder:{src}", f"folder:{dst}"], dst, signal.SIGKILL,
                             subprocess.DEVNULL)
    assert status == -signal.SIGKILL
    for path in dst.iterdir():
        if path.name.startswith("big"):  # anything under a real name is complete
            assert digest(path) == expected[path.name], f"partial file {path.name}"
    assert any(dst.glob(".filesync-*.tmp")), "the kill should have left a temporary file"
    assert run_main("--once", "--state", str(state), f"folder:{src}", f"folder:{dst}") == 0
    assert not list(dst.glob(".filesync-*.tmp")), "stale temporary files must be removed"
    assert {p.name: digest(p) for p in dst.iterdir() if p.is_file()} == expected
    assert sorted(tree(src)) == sorted(tree(dst))
    assert not (src / ".filesync" / "versions").exists()  # nothing was duplicated or lost
    assert not (dst / ".filesync" / "versions").exists()


def test_ctrl_c_mid_copy_stops_cleanly(tmp_path):
    src, dst, expected = big_files(tmp_path, 4)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        status = signal_mid_copy(["--once", "--workers", "1", "--state",
                                  str(tmp_path / "s.sqlite"), f"folder:{src}", f"folder:{dst}"],
                                 dst, signal.SIGINT, out)
    text = log.read_text()
    assert status == 1, text  # stopped before everything was identical
    assert "stopping" in text and "summary:" in text
    assert not list(dst.glob(".filesync-*.tmp")), "Ctrl+C must not leave temporary files"
    copied = list(dst.glob("big*.bin"))
    assert len(copied) < 4
    for path in copied:
        assert digest(path) == expected[path.name]


def test_our_temporary_files_left_in_the_reserved_folder_are_removed_at_start(tmp_path):
    """A run killed while writing the journal, the lease holder or the marker leaves its
    temporary file in ``.filesync/``, where round listings never look."""
    import sqlite3

    from tests.conftest import run_main, write

    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "f.txt", "x")
    state = tmp_path / "state.sqlite"
    assert run_main("--once", "--state", str(state), f"folder:{a}", f"folder:{b}") == 0
    with sqlite3.connect(state) as db:
        owner = db.execute("SELECT value FROM meta WHERE key='owner'").fetchone()[0]
    ours = b / ".filesync" / f".filesync-{owner}-0123456789ab.tmp"
    ours_in_lease = b / ".filesync" / "lease" / f".filesync-{owner}-0123456789ac.tmp"
    theirs = b / ".filesync" / ".filesync-0badc0de-0123456789ab.tmp"
    for path in (ours, ours_in_lease, theirs):
        write(path, "half written")
    assert run_main("--once", "--state", str(state), f"folder:{a}", f"folder:{b}") == 0
    assert not ours.exists() and not ours_in_lease.exists()
    assert theirs.read_text() == "half written"  # another run's may be in flight
