"""Several "machines" (each a folder, a state file and a filesync process) and one hub.

Each machine runs ``python main.py folder:MINE HUB`` as a subprocess with its own state,
as separate computers would; the hub is a real FTP server or S3 store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import MAIN, tree, wait_for

#: Lease time to live the tests give machines (short, so a killed machine's lease expires).
TEST_TTL = "3"


@dataclass
class Hub:
    """The shared location: its location string, what it holds, and its kept versions."""

    name: str
    url: str
    #: Relative path -> bytes of every file in the hub, ``.filesync/`` included.
    files: Callable[[], dict[str, bytes]]
    env: dict[str, str]
    #: Put a file into the hub behind filesync's back (another machine's leftovers).
    plant: Callable[[str, bytes], None]
    #: S3 only: the keys of the multipart uploads under way in the bucket.
    uploads: Callable[[], list[str]] = list
    #: S3 only: start a multipart upload of this key as another machine would.
    start_foreign_upload: Callable[[str], str] = str


class Machine:
    """One machine: its folder and state, and the filesync runs it starts."""

    def __init__(self, base: Path, name: str, hub: Hub) -> None:
        self.name = name
        self.home = base / name
        self.folder = self.home / "files"
        self.folder.mkdir(parents=True)
        self.state = self.home / "state.sqlite"
        self.hub = hub
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.home / "watch.log"

    def command(self, *options: str) -> list[str]:
        """The command line of this machine's filesync run."""
        return [sys.executable, str(MAIN), f"folder:{self.folder}", self.hub.url,
                "--state", str(self.state), "--lease-ttl", TEST_TTL, *options]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "XDG_STATE_HOME": str(self.home / "xdg"), **self.hub.env}

    def once(self, *options: str, expect: int | None = 0) -> str:
        """Run ``--once``; returns its log. ``expect``: the exit status required."""
        done = subprocess.run(self.command("--once", *options), check=False, capture_output=True,
                              timeout=180, env=self._env(), cwd=self.home)
        log = done.stderr.decode(errors="replace") + done.stdout.decode(errors="replace")
        if expect is not None:
            assert done.returncode == expect, f"{self.name} exited {done.returncode}:\n{log}"
        return log

    def start(self, *options: str) -> subprocess.Popen[bytes]:
        """Start a run in the background (watch mode unless ``--once`` is given)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(self.command(*options), stdout=log,
                                        stderr=subprocess.STDOUT, env=self._env(),
                                        cwd=self.home)
        log.close()
        return self.process

    def output(self) -> str:
        """What the background runs logged."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the background run (SIGTERM: cleanly; SIGKILL: as a crash)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.process = None

    def files(self) -> dict[str, str | None]:
        """This machine's tree, filesync's own files left out."""
        return tree(self.folder)

    def kept(self) -> list[bytes]:
        """The contents this machine keeps as versions."""
        versions = self.folder / ".filesync" / "versions"
        return [path.read_bytes() for path in versions.rglob("*") if path.is_file()]


def hub_versions(hub: Hub) -> list[bytes]:
    """The contents the hub keeps as versions."""
    return [data for path, data in hub.files().items()
            if path.startswith(".filesync/versions/")]


def everything_kept(hub: Hub, *machines: Machine) -> list[bytes]:
    """Every content anywhere: current files and versions, on every machine and the hub."""
    found = hub_versions(hub)
    for machine in machines:
        found += machine.kept()
        found += [path.read_bytes() for path in machine.folder.rglob("*")
                  if path.is_file() and ".filesync" not in path.parts]
    return found


def converged(*machines: Machine, timeout: float = 60.0) -> None:
    """Wait until every machine holds the same tree."""
    def same() -> bool:
        first = machines[0].files()
        return all(machine.files() == first for machine in machines[1:])

    wait_for(same, timeout, "the machines to hold the same files: " + "; ".join(
        f"{m.name}={sorted(m.files())}" for m in machines))


def set_time(path: Path, seconds: float) -> None:
    """Give ``path`` this modification time (fractions of a second kept)."""
    ns = int(seconds * 1e9)
    os.utime(path, ns=(ns, ns))


def settle() -> None:
    """Let a modification time move past the one a test set (coarse clocks)."""
    time.sleep(0.05)
