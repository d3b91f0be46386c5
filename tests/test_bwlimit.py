"""--bwlimit on real 10 MiB copies: the total rate holds, with one transfer and with four."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import MAIN

MIB = 1 << 20
SIZE = 10 * MIB
RATE = 4 * MIB


def run_once(tmp_path: Path, *args: str) -> tuple[float, str]:
    """``python main.py --once ARGS``: (seconds the run says it took, its output)."""
    state = tmp_path / f"state-{time.monotonic_ns()}.sqlite"
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(MAIN), "--once", "--state", str(state), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    said = re.search(r"summary: .* in (\d+\.\d) s", done.stderr)
    assert said, done.stderr
    seconds = float(said[1])
    assert seconds <= wall
    return seconds, done.stderr


def make_files(folder: Path, sizes: list[int]) -> dict[str, str]:
    """Random files of ``sizes`` in ``folder``: name -> SHA-256."""
    folder.mkdir(parents=True)
    digests: dict[str, str] = {}
    for index, size in enumerate(sizes):
        data = os.urandom(size)
        (folder / f"file{index}.bin").write_bytes(data)
        digests[f"file{index}.bin"] = hashlib.sha256(data).hexdigest()
    return digests


def digests_in(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.iterdir() if path.is_file()}


def test_a_folder_copy_holds_the_rate(tmp_path):
    source = tmp_path / "a"
    expected = make_files(source, [SIZE])
    limited, output = run_once(tmp_path, str(source), str(tmp_path / "b"), "--bwlimit", "4M")
    assert limited >= SIZE / RATE * 0.9, output
    assert limited < SIZE / RATE * 2 + 2, output
    assert digests_in(tmp_path / "b") == expected
    unlimited, output = run_once(tmp_path, str(source), str(tmp_path / "c"))
    assert digests_in(tmp_path / "c") == expected
    # Without the limit the same copy is far faster: the limit is what slowed it.
    assert unlimited < limited / 3, (unlimited, limited)


def test_four_parallel_uploads_share_the_rate(tmp_path, pyftpd):
    server = pyftpd()
    source = tmp_path / "a"
    expected = make_files(source, [SIZE // 5] * 5)
    (server.root / "limited").mkdir()
    limited, output = run_once(tmp_path, str(source), server.url("limited"), "--workers", "4",
                               "--bwlimit", "4M")
    assert limited >= SIZE / RATE * 0.9, output
    assert digests_in(server.root / "limited") == expected
    (server.root / "free").mkdir()
    unlimited, output = run_once(tmp_path, str(source), server.url("free"), "--workers", "4")
    assert digests_in(server.root / "free") == expected
    assert unlimited < limited / 2, (unlimited, limited)
