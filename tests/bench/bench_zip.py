"""Benchmark: replace one member of a large ZIP archive, filesync against Info-ZIP ``zip``.

Usage: ``python tests/bench/bench_zip.py [--dir DIR] [--repeat N] [--members N] [--size B]``

Builds a folder of 5,000 files of 100 KB (text-like data: compressible, but not trivially;
about 500 MB in all), lets filesync create the archive from it (``--once`` into a new
``zip:``), and makes a byte-identical copy of that archive for Info-ZIP. Then, ``--repeat``
times, one file of the folder changes and both tools bring their archive up to date:

* filesync: ``python main.py --once folder:MIRROR zip:ARCHIVE`` (a whole run: start-up,
  listing both sides, planning, the rewrite, fsync and rename);
* Info-ZIP: ``zip ARCHIVE-COPY thatfile``, run in the folder (it too writes a new archive
  and renames it over the old one, copying the other members' compressed bytes).

For context it also times filesync's run with nothing changed (the same command again): the
cost of a run that rewrites nothing (start-up, listing, state, planning).

Each command runs in a fresh process, timed around the whole process, after ``sync`` so
neither pays for the other's writes. Python keeps its compiled bytecode in a cache folder
inside the scratch folder, as it does by default for an installed program (even where
``PYTHONDONTWRITEBYTECODE`` is set), and the repository stays untouched. The figure is the
median; the target is a ratio filesync / Info-ZIP of at most 1.0. Prints the samples and the
machine load, exits 0 when the target is met, 1 when not, 2 when the benchmark could not
run. Removes what it made.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"
ZIP = shutil.which("zip") or "/usr/bin/zip"
TARGET_RATIO = 1.0


class BenchError(Exception):
    """A command failed or produced a wrong archive."""


def corpus(seed: int, size: int) -> bytes:
    """Words from a 20,000-word vocabulary in random order: deflates to about 40 %."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(20_000)]
    out = bytearray()
    while len(out) < size:
        line = " ".join(rng.choices(vocabulary, k=rng.randint(5, 18)))
        out += line.encode() + b".\n"
    return bytes(out[:size])


def build_folder(folder: Path, members: int, size: int) -> None:
    """``members`` files of ``size`` bytes, each a different slice of one large text."""
    text = corpus(1, 8 << 20)
    rng = random.Random(2)
    for index in range(members):
        sub = folder / f"part{index // 500:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        start = rng.randrange(0, len(text) - size)
        header = f"file {index}\n".encode()
        (sub / f"file{index:05d}.txt").write_bytes(header + text[start:start + size - len(header)])


def run(command: Sequence[str], cwd: Path | None = None,
        env: dict[str, str] | None = None) -> float:
    """Run ``command`` after flushing dirty pages; its wall time in seconds."""
    os.sync()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{' '.join(map(str, command))} exited with {done.returncode}:\n"
                         f"{(done.stdout + done.stderr)[-2000:]}")
    return elapsed


def check_member(archive: Path, name: str, expected: bytes) -> None:
    with zipfile.ZipFile(archive) as opened:
        if opened.read(name) != expected:
            raise BenchError(f"{archive.name}: {name} does not hold the new content")


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def measure(base: Path, members: int, size: int,
            repeat: int) -> tuple[list[float], list[float], list[float]]:
    mirror, ours, theirs = base / "mirror", base / "archive.zip", base / "infozip.zip"
    state = base / "state.sqlite"
    sync = [sys.executable, str(MAIN), "--once", "-q", "--state", str(state),
            f"folder:{mirror}", f"zip:{ours}"]
    env = {key: value for key, value in os.environ.items()
           if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    print(f"building {members:,} files of {size:,} bytes in {mirror}", flush=True)
    build_folder(mirror, members, size)
    print("filesync creates the archive (untimed)", flush=True)
    run(sync, env=env)
    shutil.copyfile(ours, theirs)
    print(f"archive: {ours.stat().st_size / 1e6:.1f} MB, {members:,} members; identical copy "
          "for Info-ZIP made", flush=True)
    rng = random.Random(3)
    samples_ours: list[float] = []
    samples_theirs: list[float] = []
    samples_idle: list[float] = []
    for round_ in range(repeat + 1):  # round 0 warms both tools up and is not counted
        index = rng.randrange(members)
        name = f"part{index // 500:02d}/file{index:05d}.txt"
        changed = corpus(100 + round_, size)
        (mirror / name).write_bytes(changed)
        took_ours = run(sync, env=env)
        took_theirs = run([ZIP, "-q", str(theirs), name], cwd=mirror)
        check_member(ours, name, changed)
        check_member(theirs, name, changed)
        took_idle = run(sync, env=env)
        label = "warm-up" if round_ == 0 else f"run {round_}"
        print(f"{label:>8}: {name}  filesync {took_ours:.3f} s   zip {took_theirs:.3f} s   "
              f"ratio {took_ours / took_theirs:.2f}   (filesync with nothing to do "
              f"{took_idle:.3f} s)   load {load()}", flush=True)
        if round_:
            samples_ours.append(took_ours)
            samples_theirs.append(took_theirs)
            samples_idle.append(took_idle)
    for archive in (ours, theirs):
        tested = subprocess.run(["unzip", "-tq", str(archive)], capture_output=True,
                                text=True, check=False)
        if tested.returncode != 0:
            raise BenchError(f"unzip -t fails on {archive.name}: {tested.stdout}")
    return samples_ours, samples_theirs, samples_idle


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="create the scratch folder inside DIR")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (default: 5)")
    parser.add_argument("--members", type=int, default=5000, help="files (default: 5000)")
    parser.add_argument("--size", type=int, default=100_000, help="bytes each (default: 100000)")
    args = parser.parse_args(argv)
    if not os.access(ZIP, os.X_OK):
        print("Info-ZIP zip is not installed (apt-get install zip)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="bench-zip-", dir=args.dir))
    try:
        ours, theirs, idle = measure(base, args.members, args.size, max(1, args.repeat))
    except (BenchError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(base, ignore_errors=True)
    median_ours, median_theirs = statistics.median(ours), statistics.median(theirs)
    ratio = median_ours / median_theirs
    print(f"\nreplace one member of {args.members:,} (median of {len(ours)}): "
          f"filesync {median_ours:.3f} s, Info-ZIP zip {median_theirs:.3f} s, "
          f"ratio {ratio:.2f} (target <= {TARGET_RATIO:.1f}) on {os.cpu_count()} CPUs; "
          f"filesync with nothing to do {statistics.median(idle):.3f} s")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
