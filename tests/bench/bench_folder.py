"""Benchmark filesync folder -> folder against ``rsync -a`` (issue 2, "Speed and memory").

Usage: ``python tests/bench/bench_folder.py [--small] [--dir DIR] [--repeat N]``

Builds a tree (10,000 files of 4 KiB in nested folders plus 10 files of 10 MiB; ``--small``
shrinks it 10x) in a fresh temporary folder, then measures, side by side in one run:

1. the first ``--once`` sync into an empty folder against ``rsync -a SRC/ DST2/``;
2. the same two commands again with nothing changed (no-op);
3. the peak memory of our process for (1), and what a single 1 GiB file adds to the peak
   memory of an empty-tree sync.

Every command runs in a fresh process; its wall time is taken around the whole process
(interpreter start-up included) and its peak memory is its ``ru_maxrss``, reported by GNU
``/usr/bin/time`` or, without it, by a bare Python middleman (see ``Meter``).
Each figure is the median of ``--repeat`` runs after one untimed warm-up run (warm caches
for both tools). Prints a table and exits 0 when every target passes, 1 when one fails,
2 when the benchmark itself could not run. Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

#: filesync's own folder in every location (markers, versions); not user data.
RESERVED = ".filesync"
#: A console log line reporting an action: ``HH:MM:SS copy PATH ...``.
ACTION_LINE = re.compile(r"^\S+ (copy|mkdir|delete|conflict) ")
NOOP_LIMIT_S = 0.5
RSS_LIMIT_MIB = 100.0
HUGE_EXTRA_LIMIT_MIB = 30.0


class BenchError(Exception):
    """The benchmark could not measure something (a command failed, a copy is wrong)."""


@dataclass(frozen=True)
class Sizes:
    """The shape of the data set."""

    folders: int
    files_per_folder: int
    small_size: int
    big_files: int
    big_size: int
    huge_size: int

    def describe(self) -> str:
        small = self.folders * self.files_per_folder
        return (f"{small:,} files of {self.small_size // KIB} KiB in {self.folders} folders "
                f"+ {self.big_files} files of {self.big_size // MIB} MiB; "
                f"huge file {_human(self.huge_size)}")


FULL = Sizes(folders=100, files_per_folder=100, small_size=4 * KIB, big_files=10,
             big_size=10 * MIB, huge_size=GIB)
SMALL = Sizes(folders=10, files_per_folder=100, small_size=4 * KIB, big_files=10,
              big_size=MIB, huge_size=100 * MIB)


@dataclass(frozen=True)
class Sample:
    """One finished command: its wall time and its peak resident memory."""

    seconds: float
    max_rss_kib: int


@dataclass
class Series:
    """Samples of one measurement for one tool."""

    samples: list[Sample] = field(default_factory=list)

    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    def rss_mib(self) -> float:
        return statistics.median(s.max_rss_kib for s in self.samples) / KIB

    def spread(self) -> str:
        times = ", ".join(f"{s.seconds:.3f}" for s in self.samples)
        rss = ", ".join(f"{s.max_rss_kib / KIB:.1f}" for s in self.samples)
        return f"s [{times}]  MiB [{rss}]"


def _human(count: int) -> str:
    return f"{count // GIB} GiB" if count >= GIB else f"{count // MIB} MiB"


# ----- building the data --------------------------------------------------------------------
def _folder_path(index: int) -> str:
    """Folder ``index`` of the tree; a quarter sit two levels deeper, a quarter one level."""
    top = f"d{index:03d}"
    if index % 4 == 0:
        return f"{top}/sub/deeper"
    if index % 4 == 1:
        return f"{top}/sub"
    return top


def build_tree(src: Path, sizes: Sizes) -> None:
    """Random-content files, so nothing can be deduplicated or compressed away."""
    for index in range(sizes.folders):
        folder = src / _folder_path(index)
        folder.mkdir(parents=True)
        block = os.urandom(sizes.small_size * sizes.files_per_folder)
        for number in range(sizes.files_per_folder):
            start = number * sizes.small_size
            (folder / f"f{number:03d}.bin").write_bytes(block[start:start + sizes.small_size])
    big = src / "big"
    big.mkdir()
    for number in range(sizes.big_files):
        _write_random(big / f"big{number:02d}.bin", sizes.big_size)


def _write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        left = size
        while left:
            piece = min(left, 4 * MIB)
            handle.write(os.urandom(piece))
            left -= piece


def _snapshot(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Relative path -> (is_dir, size, mtime_ns) below ``root``, filesync's own folder aside."""
    found: dict[str, tuple[bool, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        if folder == str(root) and RESERVED in dirs:
            dirs.remove(RESERVED)
        rel_folder = os.path.relpath(folder, root)
        for name in dirs + files:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            info = os.lstat(os.path.join(folder, name))
            is_dir = os.path.isdir(os.path.join(folder, name))
            found[rel] = (is_dir, 0 if is_dir else info.st_size,
                          0 if is_dir else info.st_mtime_ns)
    return found


def verify_copy(src: Path, dst: Path, who: str) -> None:
    """The copy must hold the same names, sizes and file mtimes as the source."""
    want, got = _snapshot(src), _snapshot(dst)
    if want != got:
        missing = sorted(set(want) - set(got))[:3]
        extra = sorted(set(got) - set(want))[:3]
        differ = sorted(p for p in set(want) & set(got) if want[p] != got[p])[:3]
        raise BenchError(f"{who} did not produce an identical copy in {dst}: missing "
                         f"{missing}, extra {extra}, different {differ}")


# ----- running commands ---------------------------------------------------------------------
# A child's ru_maxrss starts at the peak of the process that forked it (Linux records the
# old address space's high-water mark at exec, and subprocess uses vfork), so the bench's
# own memory would leak into every figure. Commands are therefore started by a small
# middleman that forks them and reports their ru_maxrss: GNU time when it is installed,
# otherwise a bare Python interpreter.
_PY_METER = """\
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - started
with open(sys.argv[1], "w") as report:
    report.write(f"{usage.ru_maxrss} {elapsed}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def gnu_time_works(scratch: Path) -> bool:
    """True when /usr/bin/time is GNU time (it understands ``-f %M -o FILE``)."""
    if not os.access("/usr/bin/time", os.X_OK):
        return False
    report = scratch / "meter-check"
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), "true"],
                          capture_output=True, check=False)
    try:
        return done.returncode == 0 and report.read_text().split()[-1].isdigit()
    except (OSError, IndexError):
        return False


class Meter:
    """Runs a command in a fresh grandchild; returns its wall time and peak memory."""

    def __init__(self, scratch: Path, use_gnu_time: bool) -> None:
        self.report = scratch / "meter-report"
        self.use_gnu_time = use_gnu_time
        # Cache bytecode in the scratch folder even where PYTHONDONTWRITEBYTECODE is set, so
        # every run is not charged for compiling filesync again; the repository stays clean.
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        self.name = ("GNU time (%M)" if use_gnu_time
                     else "a Python middleman (fork + wait4)")

    def run(self, command: Sequence[str], output: Path | None) -> Sample:
        """Run ``command``; its output goes to ``output`` (or /dev/null)."""
        if self.use_gnu_time:
            wrapped = ["/usr/bin/time", "-f", "%M", "-o", str(self.report), *command]
        else:
            wrapped = [sys.executable, "-I", "-S", "-c", _PY_METER, str(self.report), *command]
        target = output if output is not None else Path(os.devnull)
        with target.open("wb") as sink:
            started = time.perf_counter()
            # Its own session, so that an interrupted bench can stop the measured command
            # too, not only the middleman, before deleting the folders it works in.
            process = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=sink,
                                       stderr=sink, start_new_session=True, env=self.env)
            try:
                returncode = process.wait()
            except BaseException:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise
            elapsed = time.perf_counter() - started
        if returncode != 0:
            tail = output.read_text(errors="replace")[-2000:] if output is not None else ""
            raise BenchError(f"{shlex.join(command)} exited with {returncode}\n{tail}")
        fields = self.report.read_text().split()
        if self.use_gnu_time:
            # GNU time's own start-up (about a millisecond) is charged to both tools alike.
            return Sample(elapsed, int(fields[-1]))
        return Sample(float(fields[1]), int(fields[0]))


def reset_dir(path: Path) -> None:
    """Make ``path`` an empty folder and flush dirty pages to disk.

    The flush keeps the next timing from paying for writing back an earlier run's output.
    """
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.sync()


class Bench:
    """Owns the scratch folder and the commands for both tools."""

    def __init__(self, base: Path, repeat: int, meter: Meter) -> None:
        self.base = base
        self.repeat = repeat
        self.meter = meter
        self.log = base / "last-run.log"

    def ours(self, src: Path, dst: Path, state: Path, quiet: bool,
             keep_log: bool = False) -> Sample:
        command = [sys.executable, str(MAIN), "--once", "--state", str(state / "state.sqlite")]
        if quiet:
            command.append("-q")
        command += [f"folder:{src}", f"folder:{dst}"]
        # The default log (one line per action) goes to /dev/null, as the brief asks; -q
        # output is kept so that a failure can be shown.
        return self.meter.run(command, self.log if quiet or keep_log else None)

    def check_noop(self, src: Path, dst: Path, state: Path) -> None:
        """A sync with nothing changed must log no action at all."""
        self.ours(src, dst, state, quiet=False, keep_log=True)
        text = self.log.read_text(errors="replace")
        actions = [line for line in text.splitlines() if ACTION_LINE.match(line)]
        if actions:
            raise BenchError(f"the no-op sync still acted ({len(actions)} actions), e.g. "
                             f"{actions[0]!r}; the no-op timing would be meaningless")

    def rsync(self, src: Path, dst: Path) -> Sample:
        return self.meter.run(["rsync", "-a", f"{src}/", f"{dst}/"], self.log)

    def first_sync(self, src: Path, dst: Path, state: Path, quiet: bool) -> Sample:
        """Ours into an empty folder with no state."""
        if state.exists():
            shutil.rmtree(state)
        reset_dir(dst)
        return self.ours(src, dst, state, quiet)

    def first_rsync(self, src: Path, dst: Path) -> Sample:
        reset_dir(dst)
        return self.rsync(src, dst)


@dataclass
class Results:
    """Every series the table is made from."""

    first_q: Series = field(default_factory=Series)
    first_v: Series = field(default_factory=Series)
    first_rsync: Series = field(default_factory=Series)
    noop_q: Series = field(default_factory=Series)
    noop_v: Series = field(default_factory=Series)
    noop_rsync: Series = field(default_factory=Series)
    empty: Series = field(default_factory=Series)
    empty_rsync: Series = field(default_factory=Series)
    huge: Series = field(default_factory=Series)
    huge_rsync: Series = field(default_factory=Series)


def measure(bench: Bench, sizes: Sizes, progress: Callable[[str], None]) -> Results:
    """Build the data, then take every measurement; returns the raw series."""
    base = bench.base
    src, dst, dst2, state = base / "src", base / "dst", base / "dst2", base / "state"
    results = Results()

    progress(f"building {sizes.describe()} in {base}")
    build_tree(src, sizes)

    progress("warm-up: one untimed first sync for each tool")
    bench.first_sync(src, dst, state, quiet=True)
    verify_copy(src, dst, "filesync")
    bench.first_rsync(src, dst2)
    verify_copy(src, dst2, "rsync")

    progress(f"first sync into an empty folder, {bench.repeat} runs each")
    for turn in range(bench.repeat):
        # Alternate who goes first so neither always profits from the other's cache work.
        steps: list[tuple[Series, Callable[[], Sample]]] = [
            (results.first_q, lambda: bench.first_sync(src, dst, state, quiet=True)),
            (results.first_v, lambda: bench.first_sync(src, dst, state, quiet=False)),
            (results.first_rsync, lambda: bench.first_rsync(src, dst2)),
        ]
        if turn % 2:
            steps.reverse()
        for series, step in steps:
            series.samples.append(step())
    # The last run of ours was -q or default depending on the turn; either left a full
    # copy and its state behind, which the no-op runs start from.
    verify_copy(src, dst, "filesync")
    verify_copy(src, dst2, "rsync")

    progress(f"no-op sync (nothing changed), {bench.repeat} runs each")
    bench.check_noop(src, dst, state)  # also the untimed warm-up
    bench.rsync(src, dst2)
    for turn in range(bench.repeat):
        steps = [(results.noop_q, lambda: bench.ours(src, dst, state, quiet=True)),
                 (results.noop_v, lambda: bench.ours(src, dst, state, quiet=False)),
                 (results.noop_rsync, lambda: bench.rsync(src, dst2))]
        if turn % 2:
            steps.reverse()
        for series, step in steps:
            os.sync()
            series.samples.append(step())
    verify_copy(src, dst, "filesync (after the no-op runs)")
    verify_copy(src, dst2, "rsync (after the no-op runs)")

    for path in (src, dst, dst2, state):
        shutil.rmtree(path)

    empty_src, huge_src = base / "empty-src", base / "huge-src"
    empty_src.mkdir()
    huge_src.mkdir()
    progress(f"writing one {_human(sizes.huge_size)} file of random bytes")
    _write_random(huge_src / "huge.bin", sizes.huge_size)
    runs = min(bench.repeat, 3)
    progress(f"peak memory: empty tree vs one {_human(sizes.huge_size)} file, {runs} runs each")
    bench.first_sync(huge_src, dst, state, quiet=True)  # warm-up: the file is now cached
    for _ in range(runs):
        results.empty.samples.append(bench.first_sync(empty_src, dst, state, quiet=True))
        results.empty_rsync.samples.append(bench.first_rsync(empty_src, dst2))
        results.huge.samples.append(bench.first_sync(huge_src, dst, state, quiet=True))
        verify_copy(huge_src, dst, "filesync")
        results.huge_rsync.samples.append(bench.first_rsync(huge_src, dst2))
    return results


# ----- reporting ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One line of the table; ``verdict`` is None for figures given for information."""

    name: str
    ours: float
    rsync: float | None
    target: str
    verdict: bool | None
    unit: str = "s"

    def cells(self) -> list[str]:
        digits = 3 if self.unit == "s" else 1
        ours = f"{self.ours:.{digits}f} {self.unit}"
        rsync = "-" if self.rsync is None else f"{self.rsync:.{digits}f} {self.unit}"
        ratio = "-" if not self.rsync else f"{self.ours / self.rsync:.2f}"
        verdict = "-" if self.verdict is None else ("PASS" if self.verdict else "FAIL")
        return [self.name, ours, rsync, ratio, self.target, verdict]


def make_rows(results: Results, sizes: Sizes) -> list[Row]:
    first_q, first_r = results.first_q.seconds(), results.first_rsync.seconds()
    noop_q, noop_r = results.noop_q.seconds(), results.noop_rsync.seconds()
    rss = results.first_q.rss_mib()
    extra = results.huge.rss_mib() - results.empty.rss_mib()
    extra_rsync = results.huge_rsync.rss_mib() - results.empty_rsync.rss_mib()
    huge = _human(sizes.huge_size)
    return [
        Row("first sync, -q", first_q, first_r, "ratio <= 1.0", first_q <= first_r),
        Row("first sync, default log", results.first_v.seconds(), first_r, "(info)", None),
        Row("no-op, -q: wall", noop_q, noop_r, f"< {NOOP_LIMIT_S} s", noop_q < NOOP_LIMIT_S),
        Row("no-op, -q: vs rsync", noop_q, noop_r, "ratio <= 1.0", noop_q <= noop_r),
        Row("no-op, default log", results.noop_v.seconds(), noop_r, "(info)", None),
        Row("peak RSS, first sync", rss, results.first_rsync.rss_mib(),
            f"< {RSS_LIMIT_MIB:.0f} MiB", rss < RSS_LIMIT_MIB, "MiB"),
        Row("peak RSS, empty tree", results.empty.rss_mib(), results.empty_rsync.rss_mib(),
            "(info)", None, "MiB"),
        Row(f"peak RSS, one {huge} file", results.huge.rss_mib(),
            results.huge_rsync.rss_mib(), "(info)", None, "MiB"),
        Row(f"RSS added by the {huge} file", extra, extra_rsync,
            f"< {HUGE_EXTRA_LIMIT_MIB:.0f} MiB", extra < HUGE_EXTRA_LIMIT_MIB, "MiB"),
        Row(f"one {huge} file, -q", results.huge.seconds(), results.huge_rsync.seconds(),
            "(info)", None),
    ]


def print_table(rows: list[Row]) -> None:
    header = ["measurement", "ours", "rsync", "ratio", "target", "result"]
    table = [header] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for number, line in enumerate(table):
        print("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                        for i, (cell, width) in enumerate(zip(line, widths, strict=True))).rstrip())
        if number == 0:
            print("  ".join("-" * width for width in widths))


def print_samples(results: Results) -> None:
    print("\nraw samples (wall seconds, peak RSS MiB; rsync: its largest process):")
    for name, series in vars(results).items():
        print(f"  {name:<12} {series.spread()}")


def _rsync_version() -> str:
    first = subprocess.run(["rsync", "--version"], capture_output=True, text=True,
                           check=False).stdout.splitlines()
    return first[0] if first else "rsync (unknown version)"


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cleanup in main()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a 10x smaller data set")
    parser.add_argument("--dir", type=Path, help="create the scratch folder inside DIR")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed runs per measurement; the median is reported (default 5)")
    parser.add_argument("--meter", choices=("auto", "gnu-time", "python"), default="auto",
                        help="what measures each command's peak memory (default: GNU time "
                             "when installed, else a Python middleman)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if shutil.which("rsync") is None:
        print("bench: rsync is not installed; it is the reference", file=sys.stderr)
        return 2
    sizes = SMALL if args.small else FULL
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        base = Path(tempfile.mkdtemp(prefix="filesync-bench-", dir=args.dir))
    except OSError as exc:
        print(f"bench: cannot create a scratch folder in {args.dir or tempfile.gettempdir()}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)

    try:
        use_gnu_time = args.meter == "gnu-time" or (
            args.meter == "auto" and gnu_time_works(base))
        meter = Meter(base, use_gnu_time)
        results = measure(Bench(base, args.repeat, meter), sizes, progress)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if base.exists():
            print(f"bench: could not remove {base} completely", file=sys.stderr)
    print(f"\nfilesync vs {_rsync_version()}; Python {sys.version.split()[0]}; "
          f"{os.cpu_count()} CPUs; {sizes.describe()}")
    print(f"median of {args.repeat} runs ({min(args.repeat, 3)} for the big file); "
          "wall time of the whole process, interpreter start included; "
          f"peak memory (ru_maxrss) via {meter.name}\n")
    rows = make_rows(results, sizes)
    print_table(rows)
    print_samples(results)
    return 0 if all(row.verdict is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
