"""Benchmark watch-mode latency and idle cost, file events against ``--poll`` (issue 11).

Usage: ``python tests/bench/bench_latency.py [--samples N] [--idle SECONDS] [--skip-100k]
[--skip-10k] [--poll-only] [--dir DIR]``

Builds 10,000 small files in 1,000 folders in a fresh temporary folder A, then runs
``python main.py folder:A folder:B`` in watch mode with default settings (interval 2 s):

1. latency: a file written in A, timed until it is complete in B (``--samples`` times,
   p50 and p90), with file events and again with ``--poll``;
2. idle cost, once start-up is over: the watch process's CPU time (utime + stime from
   ``/proc/PID/stat``) over ``--idle`` seconds with nothing changing, with events and
   with ``--poll``, and with events on 100,000 files in 10,000 folders (``--skip-100k``
   leaves that tree out; ``--poll-only`` measures only ``--poll`` on the 10,000 files, to
   iterate on the polling watcher quickly).

Prints a table against the issue's targets; exits 0 when every target is met, 1 when one
is not, 2 when the benchmark itself failed. Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"
P50_LIMIT, P90_LIMIT = 0.3, 0.6
IDLE_EVENTS_LIMIT, IDLE_POLL_LIMIT = 1.0, 5.0
PAYLOAD = b"x" * 1000


class BenchError(Exception):
    """The benchmark could not measure something."""


@dataclass
class Row:
    """One line of the result table."""

    what: str
    value: str
    target: str
    met: bool | None  # None: no target (shown for comparison)


def build(root: Path, files: int, folders: int) -> None:
    """``files`` small files spread over ``folders`` folders (two levels deep)."""
    per = max(1, files // folders)
    for i in range(folders):
        folder = root / f"d{i // 10:04d}" / f"s{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per):
            (folder / f"f{j:03d}.dat").write_bytes(PAYLOAD)


def count_files(root: Path) -> int:
    """Regular files below ``root``, filesync's own folder left out."""
    total = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        if ".filesync" in dirnames:
            dirnames.remove(".filesync")
        total += len(filenames)
    return total


class Watch:
    """A watch-mode process of filesync, logging to a file; stopped by ``stop``."""

    def __init__(self, work: Path, a: Path, b: Path, *options: str) -> None:
        self.log = work / f"watch-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(MAIN), "--state", str(work / "state.sqlite"), *options,
                 f"folder:{a}", f"folder:{b}"], stdout=out, stderr=subprocess.STDOUT)

    def wait_watching(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while "watching" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError("watch mode did not start:\n" + self.log.read_text()[-2000:])
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def latencies(a: Path, b: Path, samples: int, tag: str) -> list[float]:
    """Seconds from writing a new file in A until B holds all of it, ``samples`` times."""
    found: list[float] = []
    for i in range(samples):
        name = f"d{i % 100:04d}/s{i % 10}/lat-{tag}-{i}.dat"
        target = b / name
        start = time.monotonic()
        (a / name).write_bytes(PAYLOAD)
        while not (target.exists() and target.stat().st_size == len(PAYLOAD)):
            if time.monotonic() - start > 30:
                raise BenchError(f"{name} did not reach B in 30 s")
            time.sleep(0.002)
        found.append(time.monotonic() - start)
        time.sleep(0.25)
    return found


def idle_percent(watch: Watch, seconds: float) -> float:
    """Share of one core the process used over ``seconds`` with nothing changing."""
    # Start-up (watches added, the first scan) and our own writes settle first.
    deadline = time.monotonic() + 120
    last = watch.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = watch.cpu_seconds()
        if now - last < 0.04:  # under 2 % over two seconds: idle
            break
        last = now
    before, start = watch.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return 100 * (watch.cpu_seconds() - before) / (time.monotonic() - start)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def run_pair(work: Path, files: int, folders: int, args: argparse.Namespace,
             with_poll: bool, rows: list[Row]) -> None:
    a, b = work / "A", work / "B"
    work.mkdir()
    a.mkdir()
    b.mkdir()
    started = time.monotonic()
    build(a, files, folders)
    print(f"built {files} files in {folders} folders in {time.monotonic() - started:.1f} s",
          flush=True)
    label = f"{files // 1000}k"
    modes = [("events", ())] + ([("--poll", ("--poll",))] if with_poll else [])
    if args.poll_only:
        modes = modes[1:]
    for mode, options in modes:
        watch = Watch(work, a, b, *options)
        try:
            started = time.monotonic()
            watch.wait_watching(timeout=600)
            print(f"{mode}: watching after {time.monotonic() - started:.1f} s", flush=True)
            if count_files(b) != count_files(a):
                raise BenchError("B does not hold every file of A after the first round")
            if args.samples:
                found = latencies(a, b, args.samples, f"{mode.strip('-')}{label}")
                p50, p90 = statistics.median(found), pct(found, 0.9)
                print(f"{mode}: latencies {[round(x, 3) for x in found]}", flush=True)
                rows.append(Row(f"latency p50, {label}, {mode}", f"{p50:.3f} s",
                                f"<= {P50_LIMIT} s" if mode == "events" else "",
                                p50 <= P50_LIMIT if mode == "events" else None))
                rows.append(Row(f"latency p90, {label}, {mode}", f"{p90:.3f} s",
                                f"<= {P90_LIMIT} s" if mode == "events" else "",
                                p90 <= P90_LIMIT if mode == "events" else None))
            idle = idle_percent(watch, args.idle)
            limit = IDLE_EVENTS_LIMIT if mode == "events" else IDLE_POLL_LIMIT
            rows.append(Row(f"idle CPU, {label}, {mode}", f"{idle:.2f} %", f"<= {limit} %",
                            idle <= limit))
            print(f"{mode}: idle {idle:.2f} % of a core", flush=True)
        finally:
            watch.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30, help="latency samples per mode")
    parser.add_argument("--idle", type=float, default=20.0, help="idle measurement seconds")
    parser.add_argument("--skip-100k", action="store_true", help="leave the 100k tree out")
    parser.add_argument("--skip-10k", action="store_true", help="leave the 10k tree out")
    parser.add_argument("--poll-only", action="store_true",
                        help="only --poll on the 10k tree (implies --skip-100k)")
    parser.add_argument("--dir", help="where to build the trees (default: a temp folder)")
    args = parser.parse_args()
    if args.poll_only:
        args.skip_100k, args.skip_10k = True, False
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-latency-", dir=args.dir) as tmp:
            if not args.skip_10k:
                run_pair(Path(tmp) / "10k", 10_000, 1_000, args, True, rows)
            if not args.skip_100k:
                small = argparse.Namespace(**{**vars(args), "samples": 0})
                run_pair(Path(tmp) / "100k", 100_000, 10_000, small, False, rows)
    except (BenchError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    print(f"\n{'measure':<32} {'value':>10}  {'target':<10} met")
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        print(f"{row.what:<32} {row.value:>10}  {row.target:<10} {met}")
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
