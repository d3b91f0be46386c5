"""Shared fixtures: run filesync in-process or as a subprocess, build trees, poll with deadlines."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

#: The FTP server fixtures (pyftpdlib and pure-ftpd) live in their own module.
pytest_plugins = ("tests.ftp_servers", "tests.s3_servers")

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "main.py"


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Every thread a test starts must be stopped and joined by its owner."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.05)
    pytest.fail(f"threads left running: {leaked}")


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep default state files out of the real home directory."""
    state_home = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    return state_home


@pytest.fixture
def log_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture the ``filesync`` logger (it does not propagate once the CLI configured it)."""
    logger = logging.getLogger("filesync")
    logger.addHandler(caplog.handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(old_level)


def run_main(*args: str) -> int:
    """Run ``python main.py ARGS`` in this process; signal handlers are restored after."""
    from filesync.cli import main

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return main(list(args))
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.fixture
def sync(tmp_path: Path) -> Callable[..., int]:
    """``sync(loc, loc, ..., *options)``: one ``--once`` run with a state file in tmp_path."""
    state = tmp_path / "state.sqlite"

    def run(*args: str) -> int:
        return run_main("--once", "--state", str(state), *args)

    return run


def write(path: Path, text: str | bytes, mtime: float | None = None) -> Path:
    """Create ``path`` (and parents) with ``text``; optionally set its mtime (seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def tree(root: Path) -> dict[str, str | None]:
    """Relative path -> content (``None`` for directories), filesync's own files left out."""
    found: dict[str, str | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == ".filesync" or rel.startswith(".filesync/"):
            continue
        found[rel] = None if path.is_dir() else path.read_bytes().decode("utf-8", "replace")
    return found


def wait_for(condition: Callable[[], object], timeout: float = 15.0,
             message: str = "condition") -> None:
    """Poll ``condition`` until it is true; fail with ``message`` at the deadline.

    A file vanishing under the condition (the engine is moving things) counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except FileNotFoundError:
            pass  # a file vanished while the condition looked at a tree being synced
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


class Watching:
    """A ``python main.py`` watch-mode subprocess, stopped with SIGTERM by its owner."""

    def __init__(self, tmp_path: Path, *args: str, interval: float = 0.2) -> None:
        self.log_path = tmp_path / f"watch-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(MAIN), "--interval", str(interval),
             "--state", str(tmp_path / "watch-state.sqlite"), *args],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=tmp_path)

    def output(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_output(self, text: str, timeout: float = 15.0) -> None:
        """Wait until ``text`` appears in the log."""
        wait_for(lambda: text in self.output(), timeout, f"{text!r} in the log:\n"
                 + self.output()[-3000:])

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[Callable[..., Watching]]:
    """Start watch-mode runs; every one is stopped when the test ends."""
    started: list[Watching] = []

    def start(*args: str, interval: float = 0.2) -> Watching:
        run = Watching(tmp_path, *args, interval=interval)
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop()
