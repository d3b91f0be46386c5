"""Write docs/dashboard.png: the dashboard for a realistic sample set, in headless Chromium.

Run from the repository root: ``python tests/dashboard_screenshot.py [OUTPUT.png]``.
Needs Debian's ``chromium`` (``bash tests/setup.sh`` installs it).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from filesync.dashboard import Dashboard  # noqa: E402 - after the path set-up above

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")

HOME_A = "folder:/home/ann/Photos"
HOME_B = "folder:/media/backup/Photos"
FTP = "ftp://ann@nas.local/photos"


def sample_document() -> dict[str, Any]:
    """Two folders and an unavailable FTP server, a round being applied, some history."""
    def action(time: str, kind: str, path: str, source: str, target: str) -> dict[str, Any]:
        return {"time": f"2026-11-30T12:{time}Z", "action": kind, "path": path,
                "source": source, "target": target, "message": f"{kind} {path}"}

    return {
        "version": 1,
        "generated_at": "2026-11-30T12:04:10Z",
        "state": {"path": "/home/ann/.local/state/filesync/3f9a1c.sqlite", "bytes": 188416},
        "engine": {"running": True, "pid": 48213, "since": "2026-11-30T08:15:02Z",
                   "mode": "watch"},
        "last_round": {
            "finished_at": "2026-11-30T12:03:41Z", "result": "ok",
            "summary": "14 copied, 1 renamed, 2 deleted, 0 errors, 1 conflict, "
                       "2 old versions kept",
            "stats": {"copied": 14, "renamed": 1, "deleted": 2, "errors": 0, "conflicts": 1,
                      "bytes_moved": 96_468_992, "versions_kept": 2}},
        "locations": [
            {"key": HOME_A, "display": "/home/ann/Photos", "kind": "folder",
             "available": True, "message": None,
             "versions": {"count": 12, "bytes": 41_943_040}},
            {"key": HOME_B, "display": "/media/backup/Photos", "kind": "folder",
             "available": True, "message": None,
             "versions": {"count": 3, "bytes": 7_340_032}},
            {"key": FTP, "display": "ftp://ann@nas.local/photos", "kind": "ftp",
             "available": False,
             "message": "connection refused (nas.local:21); retried every round",
             "versions": None},
        ],
        "pending": [
            {"op": "copy", "path": f"2026/11/IMG_{n:04d}.jpg", "source": HOME_A,
             "target": FTP, "from_path": None} for n in range(4521, 4525)
        ] + [{"op": "rename", "path": "2026/11/party/cake.jpg", "source": HOME_A,
              "target": FTP, "from_path": "2026/11/IMG_4490.jpg"}],
        "conflicts": [
            {"path": "2026/albums/holiday.txt", "locations": [HOME_A, HOME_B],
             "detail": "changed in both; --conflict manual leaves it alone"}],
        "paused_deletions": [
            {"path": "2025/raw/DSC_0001.NEF", "locations": [HOME_B]}],
        "progress": {
            "files_done": 7, "files_total": 12, "bytes_done": 183_500_800,
            "bytes_total": 301_989_888, "rate": 11_744_051.2, "eta": 10.1,
            "in_flight": [
                {"path": "2026/11/VID_0032.mp4", "target": HOME_B,
                 "bytes_done": 62_914_560, "bytes_total": 104_857_600},
                {"path": "2026/11/IMG_4519.jpg", "target": HOME_B,
                 "bytes_done": 1_048_576, "bytes_total": 4_404_019},
            ]},
        "recent": [
            action("03:20", "copy", "2026/11/IMG_4511.jpg", HOME_A, HOME_B),
            action("03:22", "copy", "2026/11/IMG_4512.jpg", HOME_A, HOME_B),
            action("03:30", "delete", "2026/11/IMG_4420 (blurred).jpg", HOME_A, HOME_B),
            action("03:35", "rename", "2026/11/party/balloons.jpg", HOME_A, HOME_B),
            action("03:41", "conflict", "2026/albums/holiday.txt", HOME_A, HOME_B),
            action("04:02", "copy", "2026/11/IMG_4517.jpg", HOME_A, HOME_B),
            action("04:05", "copy", "2026/11/IMG_4518.jpg", HOME_A, HOME_B),
        ],
    }


def screenshot(output: Path) -> None:
    """Serve the sample document and let Chromium draw the page into ``output``."""
    document = sample_document()
    with Dashboard(("127.0.0.1", 0), lambda: document) as dashboard, \
            tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             "--window-size=1200,900", "--virtual-time-budget=1500",
             f"--screenshot={output}", str(dashboard.url)],
            check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    screenshot(target.resolve())
    print(f"{target}: {target.stat().st_size} bytes")
