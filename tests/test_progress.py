"""The live progress line: drawn in place on a (pseudo-)terminal, never in a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.conftest import MAIN

MIB = 1 << 20
COLUMNS = 100
CLEAR = "\r\033[K"
#: "1/3 files  2.0 MiB/6.0 MiB  2.0 MiB/s  ETA 0:01  file2.bin"
PROGRESS = re.compile(r"\d+/3 files  \d+(\.\d)? (B|KiB|MiB)/6\.0 MiB  \d+(\.\d)? (B|KiB|MiB)/s  "
                      r"ETA (\d+:\d\d|\?)")
LOG_LINE = re.compile(r"\d\d:\d\d:\d\d \S")


def make_source(tmp_path: Path) -> Path:
    source = tmp_path / "A"
    source.mkdir()
    for index in range(3):
        (source / f"file{index}.bin").write_bytes(os.urandom(2 * MIB))
    return source


def command(tmp_path: Path, source: Path, *extra: str) -> list[str]:
    return [sys.executable, str(MAIN), "--once", "--state",
            str(tmp_path / f"state-{time.monotonic_ns()}.sqlite"), str(source),
            str(tmp_path / f"B{time.monotonic_ns()}"), "--bwlimit", "2M", *extra]


def run_on_terminal(args: list[str]) -> str:
    """Run ``args`` with stderr on a pseudo-terminal COLUMNS wide; all it wrote there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("COLUMNS", None)
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        process.wait(timeout=30)
    assert process.returncode == 0
    # The terminal turns "\n" into "\r\n"; undo that to see what filesync wrote.
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_a_terminal_gets_a_progress_line_redrawn_in_place(tmp_path):
    source = make_source(tmp_path)
    output = run_on_terminal(command(tmp_path, source))
    pieces = output.split(CLEAR)
    drawn = [piece for piece in pieces if PROGRESS.match(piece)]
    # About 3 s at 4 redraws a second; some redraws show the same numbers.
    assert len(drawn) >= 5, output
    for line in drawn:
        assert "\n" not in line and len(line) <= COLUMNS - 1, repr(line)
    assert any("file" in line.split("ETA", 1)[1] for line in drawn), drawn  # in flight
    assert any(not line.startswith("0/") for line in drawn), drawn
    # Log records are whole lines: the progress line is cleared before each, redrawn after.
    logged = [piece for piece in pieces if piece and not PROGRESS.match(piece)]
    for piece in logged:
        assert piece.endswith("\n"), repr(piece)
        for line in piece.splitlines():
            assert LOG_LINE.match(line) and not PROGRESS.search(line), repr(line)
    text = "".join(logged)
    for index in range(3):
        assert f"copy file{index}.bin  folder:" in text
    # Cleared at the end: the summary comes after a clear, and nothing is drawn after it
    # (a record logged while the line stands is followed by the line drawn again).
    assert LOG_LINE.match(pieces[-1]) and "summary: 3 copied" in pieces[-1]
    assert pieces[-1].endswith("\n") and pieces[-1].count("\n") == 1, output[-500:]


def test_nothing_of_it_in_a_pipe_or_with_quiet(tmp_path):
    source = make_source(tmp_path)
    piped = subprocess.run(command(tmp_path, source), capture_output=True, text=True,
                           timeout=60, check=False)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stderr and "\033" not in piped.stderr
    lines = piped.stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert sum(" copy file" in line for line in lines) == 3
    assert "summary: 3 copied" in lines[-1]
    quiet = run_on_terminal(command(tmp_path, source, "--quiet"))
    assert quiet == "", repr(quiet)
