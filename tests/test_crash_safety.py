"""SIGKILL at any moment leaves no partial file under a real name; the next run completes."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import MAIN, run_main, tree, wait_for

SIZE = 40 * 1024 * 1024


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_mid_copy_then_rerun(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    chunk = hashlib.sha256(b"seed").digest() * (1024 * 32)  # 1 MiB, not all one byte
    for i in range(6):
        with (src / f"big{i}.bin").open("wb") as handle:
            for _ in range(SIZE // len(chunk)):
                handle.write(chunk)
            handle.write(str(i).encode())
    expected = {p.name: digest(p) for p in src.iterdir()}
    state = tmp_path / "state.sqlite"
    process = subprocess.Popen(
        [sys.executable, str(MAIN), "--once", "-q", "--workers", "2", "--state", str(state),
         f"folder:{src}", f"folder:{dst}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(dst.glob(".filesync-*.tmp")), timeout=30,
                 message="a copy in flight")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
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
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    block = hashlib.sha256(b"x").digest() * (1024 * 32)
    for i in range(4):
        with (src / f"big{i}.bin").open("wb") as handle:
            for _ in range(SIZE // len(block)):
                handle.write(block)
    expected = digest(src / "big0.bin")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(MAIN), "--once", "--workers", "1",
             "--state", str(tmp_path / "s.sqlite"), f"folder:{src}", f"folder:{dst}"],
            stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: any(dst.glob(".filesync-*.tmp")), timeout=30,
                     message="a copy in flight")
            process.send_signal(signal.SIGINT)
        finally:
            process.wait(timeout=60)
    text = log.read_text()
    assert process.returncode == 1, text  # stopped before everything was identical
    assert "stopping" in text and "summary:" in text
    assert not list(dst.glob(".filesync-*.tmp")), "Ctrl+C must not leave temporary files"
    copied = list(dst.glob("big*.bin"))
    assert len(copied) < 4
    for path in copied:
        assert digest(path) == expected
