"""The Python API (``import filesync``): sync once, watch in a thread, status (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import filesync
from tests.conftest import ROOT, tree, wait_for, write


def test_the_api_from_a_script(tmp_path):
    """A program that imports filesync the way the README shows, in its own process."""
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "photos" / "1.jpg", "one")
    write(a / "skip.tmp", "temporary")
    b.mkdir()
    script = tmp_path / "backup.py"
    script.write_text(f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
import filesync

report = filesync.sync([{str(a)!r}, "folder:{b}"], state={str(tmp_path / 's.db')!r},
                       exclude=["*.tmp"])
print(json.dumps({{"identical": report.identical, "copied": report.stats.copied,
                  "actions": [(e["action"], e["path"]) for e in report.actions],
                  "errors": report.errors}}))
""")
    done = subprocess.run([sys.executable, str(script)], check=False, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == {"identical": True, "copied": 1, "errors": [],
                       "actions": [["mkdir", "photos"], ["copy", "photos/1.jpg"]]}
    assert tree(b) == {"photos": None, "photos/1.jpg": "one"}


def test_sync_reports_conflicts_and_errors(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "n.txt", "base")
    b.mkdir()
    state = tmp_path / "s.db"
    assert filesync.sync([str(a), str(b)], state=state).identical
    write(a / "n.txt", "edit in a", mtime=1_700_000_000)
    write(b / "n.txt", "edit in b!", mtime=1_700_000_100)
    write(a / "clash", "a file")
    write(b / "clash" / "inner.txt", "a folder")
    report = filesync.sync([str(a), str(b)], state=state, conflict="manual")
    assert report.exit_status == 1 and not report.identical
    assert report.conflicts == ["n.txt"]
    assert any("'clash' is a file" in message for message in report.errors), report.errors
    assert report.stats.unresolved == 1


def test_bad_arguments_raise_before_anything_changes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "x.txt", "x")
    with pytest.raises(filesync.FilesyncError, match="invalid location"):
        filesync.sync([str(a), "nonsense://x"])
    with pytest.raises(filesync.FilesyncError, match="--interval"):
        filesync.sync([str(a), str(b)], interval="soon")
    with pytest.raises(filesync.FilesyncError, match=r"unrecognized arguments|--colour"):
        filesync.sync([str(a), str(b)], colour="blue")
    with pytest.raises(filesync.FilesyncError, match="two"):
        filesync.sync([str(a)])
    with pytest.raises(filesync.FilesyncError, match=r"status\(\)"):
        filesync.sync([str(a), str(b)], dry_run=True)
    assert not b.exists()


def test_watch_in_the_background_then_stop(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "first.txt", "1")
    b.mkdir()
    before = threading.active_count()
    with filesync.watch([str(a), str(b)], state=tmp_path / "s.db", interval=0.2) as running:
        wait_for(lambda: (b / "first.txt").exists(), message="first round")
        write(a / "later.txt", "later")
        wait_for(lambda: (b / "later.txt").exists(), message="a change while watching")
        document = running.status()
        assert document["engine"]["running"] and document["engine"]["mode"] == "watch"
        assert {item["path"] for item in document["recent"]} >= {"first.txt", "later.txt"}
        assert running.running
    report = running.wait()
    assert not running.running and threading.active_count() <= before
    assert report.exit_status == 0 and report.stats.copied == 2
    assert [event["path"] for event in report.actions] == ["first.txt", "later.txt"]


def test_status_of_a_set(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "x.txt", "x")
    b.mkdir()
    state = tmp_path / "s.db"
    document = filesync.status([str(a), str(b)], state=state)
    assert [(item["op"], item["path"]) for item in document["pending"]] == [("copy", "x.txt")]
    filesync.sync([str(a), str(b)], state=state)
    document = filesync.status([str(a), str(b)], state=state)
    assert document["pending"] == [] and document["last_round"]["result"] == "ok"
    with pytest.raises(filesync.FilesyncError):
        filesync.status([str(a)])


def test_the_cli_still_starts_without_the_api_getting_in_the_way():
    done = subprocess.run([sys.executable, str(Path(ROOT) / "main.py"), "--version"],
                          check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("filesync ")
