"""Benchmark: filesync against ``lftp mirror -R`` uploading to real FTP servers on loopback.

Usage: ``python tests/bench/bench_ftp.py [--repeat N] [--dir DIR] [--only pure|slow]``

Three comparisons (issue 5), each timed around the whole process (interpreter start-up
included), median of ``--repeat`` runs after one untimed warm-up of each tool:

1. 1,000 files of 4 KiB (10 folders of 100) plus 5 files of 10 MiB uploaded to pure-ftpd:
   ``python main.py --once`` (default 4 connections) against ``lftp mirror -R -P 4``.
2. 300 folders with one 4 KiB file each, uploaded to pyftpdlib waiting 20 ms before every
   reply (standing in for a distant server): ``--ftp-connections 8 --workers 8`` against
   ``lftp mirror -R -P 8``.
3. The no-op run on both trees (state present, nothing changed) against ``lftp mirror -R``
   finding nothing to do.

Every upload is a fresh folder on the server; the copies are checked (names, sizes, and
for filesync the mtimes) before any figure is printed. Child processes may cache bytecode
(in a scratch folder), as a normal installation does, even when the environment sets
PYTHONDONTWRITEBYTECODE. lftp is told not to try TLS (``ftp:ssl-allow no``), the same plain
FTP filesync speaks here. Needs lftp and pure-ftpd (``apt-get install -y lftp pure-ftpd``).
Exits 0 when every ratio is <= 1.0, 1 when one is not, 2 when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.ftp_servers import (  # noqa: E402 - needs the repository on sys.path first
    PASSWORD,
    PURE_FTPD,
    USER,
    PyftpdServer,
    running_pureftpd,
)

MAIN = ROOT / "main.py"
KIB, MIB = 1 << 10, 1 << 20


class BenchError(Exception):
    """The benchmark cannot run or a tool produced a wrong copy."""


@dataclass
class Row:
    """One comparison: our times and lftp's (seconds)."""

    name: str
    ours: list[float] = field(default_factory=list)
    lftp: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.lftp)


class Runner:
    """Runs both tools against one server, each in a fresh process."""

    def __init__(self, scratch: Path, port: int) -> None:
        self.scratch = scratch
        self.port = port
        self.env = dict(os.environ)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        self.log = scratch / "last-run.log"

    def _run(self, command: list[str]) -> float:
        started = time.perf_counter()
        with open(self.log, "wb") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                  check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            output = self.log.read_text(errors="replace")[-2000:]
            shown = " ".join(command).replace(PASSWORD, "***")
            raise BenchError(f"{shown} exited with {done.returncode}:\n{output}")
        return elapsed

    def ours(self, src: Path, remote: str, state: Path, *options: str) -> float:
        url = f"ftp://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{remote}"
        return self._run([sys.executable, str(MAIN), "--once", "-q", "--state", str(state),
                          *options, f"folder:{src}", url])

    def lftp(self, src: Path, remote: str, parallel: int | None) -> float:
        mirror = f"mirror -R {f'-P {parallel} ' if parallel else ''}{src} /{remote}"
        return self._run(["lftp", "-u", f"{USER},{PASSWORD}",
                          "-e", f"set ftp:ssl-allow no; set cmd:fail-exit yes; {mirror}; quit",
                          f"ftp://127.0.0.1:{self.port}"])


def make_tree(root: Path, layout: Sequence[tuple[str, int]]) -> None:
    """Create files (relative path, size) with random content and distinct old mtimes."""
    stamp = time.time() - 86400
    for number, (rel, size) in enumerate(layout):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            left = size
            while left:
                piece = min(left, MIB)
                handle.write(os.urandom(piece))
                left -= piece
        os.utime(path, (stamp + number, stamp + number))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Relative file path -> (size, mtime in whole seconds), filesync's own folder aside."""
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root):
        if folder == str(root) and ".filesync" in dirs:
            dirs.remove(".filesync")
        for name in files:
            full = Path(folder) / name
            info = full.stat()
            found[full.relative_to(root).as_posix()] = (info.st_size, int(info.st_mtime))
    return found


def verify(src: Path, copy: Path, who: str, check_times: bool) -> None:
    """The copy must hold the source's files with the same sizes (and times)."""
    want, got = snapshot(src), snapshot(copy)
    if not check_times:
        want = {path: (size, 0) for path, (size, _) in want.items()}
        got = {path: (size, 0) for path, (size, _) in got.items()}
    if want != got:
        wrong = sorted(set(want.items()) ^ set(got.items()))[:3]
        raise BenchError(f"{who} produced a wrong copy in {copy}, e.g. {wrong}")


def compare(runner: Runner, served: Path, src: Path, upload: Row, noop: Row, repeat: int,
            ours_options: Sequence[str], lftp_parallel: int,
            progress: Callable[[str], None]) -> None:
    """Fresh uploads by both tools, then no-op runs on the last copies."""
    state = runner.scratch / "state"
    state.mkdir(exist_ok=True)
    for turn in range(repeat + 1):  # turn 0 warms caches up and is not counted
        progress(f"{upload.name}: run {turn}/{repeat}")
        ours_state = state / f"{upload.name}-{turn}.sqlite"
        ours = runner.ours(src, f"ours{turn}", ours_state, *ours_options)
        verify(src, served / f"ours{turn}", "filesync", check_times=True)
        theirs = runner.lftp(src, f"lftp{turn}", lftp_parallel)
        verify(src, served / f"lftp{turn}", "lftp", check_times=False)
        if turn:
            upload.ours.append(ours)
            upload.lftp.append(theirs)
    last = repeat
    for turn in range(repeat + 1):
        progress(f"{noop.name}: run {turn}/{repeat}")
        ours = runner.ours(src, f"ours{last}", state / f"{upload.name}-{last}.sqlite",
                           *ours_options)
        theirs = runner.lftp(src, f"lftp{last}", None)
        if turn:
            noop.ours.append(ours)
            noop.lftp.append(theirs)
    for turn in range(repeat + 1):
        shutil.rmtree(served / f"ours{turn}", ignore_errors=True)
        shutil.rmtree(served / f"lftp{turn}", ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three comparisons and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs each (default 3)")
    parser.add_argument("--dir", type=Path, help="create the scratch folder inside DIR")
    parser.add_argument("--only", choices=("pure", "slow"),
                        help="only the pure-ftpd comparisons, or only the 20 ms server ones")
    args = parser.parse_args(argv)
    for tool in ("lftp", PURE_FTPD):
        if shutil.which(tool) is None and not os.path.exists(tool):
            print(f"bench: {tool} is missing (apt-get install -y lftp pure-ftpd)",
                  file=sys.stderr)
            return 2
    scratch = Path(tempfile.mkdtemp(prefix="filesync-bench-ftp-", dir=args.dir))
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)

    rows: list[Row] = []
    try:
        if args.only != "slow":
            rows += pure_ftpd_rows(scratch, args.repeat, progress)
        if args.only != "pure":
            rows += slow_server_rows(scratch, args.repeat, progress)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(rows, args.repeat)
    return 1 if any(row.ratio > 1.0 for row in rows) else 0


def pure_ftpd_rows(scratch: Path, repeat: int, progress: Callable[[str], None]) -> list[Row]:
    """Comparison 1 and the no-op on its tree."""
    small = scratch / "small-and-big"
    make_tree(small, [(f"d{d}/f{f}.bin", 4 * KIB) for d in range(10) for f in range(100)]
              + [(f"big{n}.bin", 10 * MIB) for n in range(5)])
    upload, noop = Row("upload 1000x4KiB+5x10MiB, pure-ftpd"), Row("no-op, pure-ftpd")
    with running_pureftpd() as server:
        compare(Runner(scratch, server.port), server.root, small, upload, noop, repeat, [], 4,
                progress)
    return [upload, noop]


def slow_server_rows(scratch: Path, repeat: int, progress: Callable[[str], None]) -> list[Row]:
    """Comparison 2 and the no-op on its tree."""
    wide = scratch / "wide"
    make_tree(wide, [(f"dir{d:03d}/file.bin", 4 * KIB) for d in range(300)])
    served = scratch / "slow-root"
    served.mkdir()
    slow = PyftpdServer(served, delay=0.02).start()
    upload, noop = Row("upload 300 dirs x 1 file, 20 ms/reply"), Row("no-op, 20 ms/reply")
    try:
        compare(Runner(scratch, slow.port), served, wide, upload, noop, repeat,
                ["--ftp-connections", "8", "--workers", "8"], 8, progress)
    finally:
        slow.stop()
    return [upload, noop]


def print_table(rows: list[Row], repeat: int) -> None:
    """The figures, one comparison per line, then every sample."""
    lftp_version = subprocess.run(["lftp", "--version"], capture_output=True, text=True,
                                  check=False).stdout.splitlines()[0]
    print(f"\nfilesync vs {lftp_version}; Python {sys.version.split()[0]}; "
          f"{os.cpu_count()} CPUs; median of {repeat} runs, whole process wall time\n")
    width = max(len(row.name) for row in rows)
    print(f"{'comparison'.ljust(width)}  filesync      lftp   ratio  target")
    for row in rows:
        verdict = "ok" if row.ratio <= 1.0 else "MISSED"
        print(f"{row.name.ljust(width)}  {statistics.median(row.ours):7.2f} s "
              f"{statistics.median(row.lftp):7.2f} s  {row.ratio:5.2f}  <= 1.0 {verdict}")
    for row in rows:
        print(f"  {row.name}: filesync {', '.join(f'{t:.2f}' for t in row.ours)}; "
              f"lftp {', '.join(f'{t:.2f}' for t in row.lftp)}")


if __name__ == "__main__":
    sys.exit(main())
