"""``python main.py status``, the run file behind it, and the summary's counts (issue 12)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import MAIN, run_main, tree, wait_for, write


def status(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python main.py status ARGS`` in a subprocess (as a user would run it beside a watcher)."""
    return subprocess.run([sys.executable, str(MAIN), "status", *args], check=False,
                          capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


def status_json(tmp_path: Path, *args: str) -> dict:
    done = status(tmp_path, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def pair(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    for name, text in files.items():
        write(a / name, text)
    b.mkdir(exist_ok=True)
    return a, b, tmp_path / "state.sqlite"


def test_status_of_a_set_never_synced_lists_what_a_sync_would_do(tmp_path):
    a, b, state = pair(tmp_path, {"x.txt": "x", "d/y.txt": "y"})
    document = status_json(tmp_path, str(a), str(b), "--state", str(state))
    assert document["version"] == 1
    assert document["engine"] == {"running": False, "pid": None, "since": None, "mode": None}
    assert document["last_round"] is None
    pending = {(item["op"], item["path"]) for item in document["pending"]}
    assert pending == {("copy", "x.txt"), ("copy", "d/y.txt"), ("mkdir", "d")}
    assert [view["available"] for view in document["locations"]] == [True, True]
    assert tree(b) == {} and not state.exists()  # changes nothing, not even the state


def test_status_after_a_sync_shows_the_last_round_versions_and_what_is_pending(tmp_path):
    a, b, state = pair(tmp_path, {"x.txt": "one"})
    assert run_main("--once", "--state", str(state), str(a), str(b)) == 0
    write(a / "x.txt", "two, longer")
    assert run_main("--once", "--state", str(state), str(a), str(b)) == 0
    write(a / "new.txt", "new")
    document = status_json(tmp_path, str(a), str(b), "--state", str(state))
    assert document["last_round"]["result"] == "ok"
    assert document["last_round"]["stats"]["copied"] == 1
    assert document["last_round"]["summary"].startswith("1 copied")
    assert [(item["op"], item["path"], item["target"]) for item in document["pending"]] == [
        ("copy", "new.txt", f"folder:{b}")]
    versions = {view["key"]: view["versions"] for view in document["locations"]}
    assert versions[f"folder:{b}"] == {"count": 1, "bytes": 3}
    assert versions[f"folder:{a}"] == {"count": 0, "bytes": 0}
    assert document["state"]["bytes"] > 0 and document["state"]["path"] == str(state)
    text = status(tmp_path, str(a), str(b), "--state", str(state)).stdout
    assert "engine: not running" in text and "copy new.txt" in text
    assert "1 old version kept (3 B)" in text
    assert not (b / "new.txt").exists()


def test_status_while_a_watcher_runs(tmp_path, watching):
    a, b, _ = pair(tmp_path, {"x.txt": "x"})
    run = watching(str(a), str(b))
    run.wait_output("watching")
    state = tmp_path / "watch-state.sqlite"
    document = status_json(tmp_path, str(a), str(b), "--state", str(state))
    engine = document["engine"]
    assert engine["running"] is True and engine["pid"] == run.process.pid
    assert engine["mode"] == "watch" and engine["since"]
    assert document["pending"] == []
    assert document["last_round"]["result"] == "ok"
    # The watcher keeps syncing while status looks (status took no lock).
    write(a / "later.txt", "later")
    wait_for(lambda: (b / "later.txt").exists(), message="a change synced after status")
    wait_for(lambda: any(item["path"] == "later.txt" for item in status_json(
        tmp_path, "--state", str(state))["recent"]), message="the copy in recent actions")
    assert run.stop() == 0
    after = status_json(tmp_path, str(a), str(b), "--state", str(state))
    assert after["engine"]["running"] is False


def test_a_killed_watcher_is_not_reported_as_running(tmp_path, watching):
    a, b, _ = pair(tmp_path, {"x.txt": "x"})
    run = watching(str(a), str(b))
    run.wait_output("watching")
    state = tmp_path / "watch-state.sqlite"
    run.process.kill()
    run.process.wait()
    saved = json.loads(Path(str(state) + ".run.json").read_text())
    assert saved["engine"]["running"] is True  # it had no chance to say otherwise
    document = status_json(tmp_path, str(a), str(b), "--state", str(state))
    assert document["engine"]["running"] is False


def test_status_shows_an_unresolved_conflict(tmp_path):
    a, b, state = pair(tmp_path, {"notes.txt": "base"})
    assert run_main("--once", "--state", str(state), str(a), str(b)) == 0
    write(a / "notes.txt", "edit in a", mtime=1_700_000_000)
    write(b / "notes.txt", "edit in b!", mtime=1_700_000_100)
    assert run_main("--once", "--conflict", "manual", "--state", str(state), str(a),
                    str(b)) == 1
    document = status_json(tmp_path, str(a), str(b), "--state", str(state))
    assert [(item["path"], item["locations"]) for item in document["conflicts"]] == [
        ("notes.txt", sorted([f"folder:{a}", f"folder:{b}"]))]
    assert document["last_round"]["result"] == "failed"
    assert document["last_round"]["stats"]["unresolved"] == 1
    text = status(tmp_path, str(a), str(b), "--state", str(state)).stdout
    assert "unresolved conflicts: 1" in text and "notes.txt" in text


def test_status_shows_paused_deletions_of_a_watcher(tmp_path, watching):
    files = {f"photos/{i}.jpg": str(i) for i in range(20)}
    a, b, _ = pair(tmp_path, files)
    run = watching(str(a), str(b))
    wait_for(lambda: tree(a) == tree(b), message="first round")
    run.wait_output("watching")
    for i in range(15):
        (a / "photos" / f"{i}.jpg").unlink()
    run.wait_output("is paused")
    state = tmp_path / "watch-state.sqlite"

    def paused() -> list:
        return status_json(tmp_path, str(a), str(b), "--state", str(state))[
            "paused_deletions"]

    wait_for(lambda: len(paused()) == 15, message="15 paused deletions in status")
    assert {item["path"] for item in paused()} == {f"photos/{i}.jpg" for i in range(15)}
    assert all(item["locations"] == [f"folder:{b}"] for item in paused())
    text = status(tmp_path, str(a), str(b), "--state", str(state)).stdout
    assert "paused deletions (apply with --once --force, or put the files back): 15" in text
    assert len(list((b / "photos").iterdir())) == 20  # nothing deleted meanwhile
    assert run.stop() == 0


def test_status_bad_input_exits_2(tmp_path):
    done = status(tmp_path, str(tmp_path / "only-one"))
    assert done.returncode == 2 and "two or more" in done.stderr
    done = status(tmp_path, "nonsense:://x", "folder:y")
    assert done.returncode == 2 and "invalid location" in done.stderr


def sync_process(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python main.py --once ARGS`` in a subprocess; its log is in ``stderr``."""
    return subprocess.run([sys.executable, str(MAIN), "--once", *args], check=False,
                          capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


def summary_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if "summary:" in line]
    assert lines, done.stderr
    return lines[-1]


def test_the_summary_counts_refusals_unresolved_conflicts_and_problems(tmp_path):
    a, b, state = pair(tmp_path, {f"f{i}.txt": str(i) for i in range(12)})
    assert run_main("--once", "--state", str(state), str(a), str(b)) == 0
    for i in range(12):
        (a / f"f{i}.txt").unlink()
    done = sync_process(tmp_path, "--state", str(state), str(a), str(b))
    assert done.returncode == 1
    assert "1 round refused by the mass-delete guard" in summary_line(done)
    # A file in one location and a folder in the other is an error the summary counts.
    c, d = tmp_path / "c", tmp_path / "d"
    write(c / "clash", "file")
    write(d / "clash" / "inner.txt", "folder")
    done = sync_process(tmp_path, "--state", str(tmp_path / "s2.sqlite"), str(c), str(d))
    assert done.returncode == 1
    logged = len(re.findall(r"^\S+ error: ", done.stderr, re.MULTILINE))
    assert logged == 2, done.stderr  # the clash, and the copy into it that failed
    assert re.search(rf"\b{logged} errors\b", summary_line(done))
    # A conflict left alone by --conflict manual is counted as unresolved.
    e, f = tmp_path / "e", tmp_path / "f"
    write(e / "n.txt", "base")
    f.mkdir()
    assert run_main("--once", "--state", str(tmp_path / "s3.sqlite"), str(e), str(f)) == 0
    write(e / "n.txt", "edit in e", mtime=1_700_000_000)
    write(f / "n.txt", "edit in f!", mtime=1_700_000_100)
    done = sync_process(tmp_path, "--conflict", "manual", "--state",
                        str(tmp_path / "s3.sqlite"), str(e), str(f))
    assert done.returncode == 1
    assert "1 conflict unresolved" in summary_line(done)
    assert "0 errors" in summary_line(done)  # a conflict for the user is not an error


def test_the_summary_counts_a_location_that_went_away(tmp_path, watching):
    a, b, _ = pair(tmp_path, {"x.txt": "x"})
    run = watching(str(a), str(b))
    run.wait_output("watching")
    b.rename(tmp_path / "b-away")
    run.wait_output("is unavailable")
    state = tmp_path / "watch-state.sqlite"
    wait_for(lambda: not status_json(tmp_path, "--state", str(state))["locations"][1][
        "available"], message="b unavailable in status")
    assert run.stop() == 0
    assert "1 location unavailable" in run.output().splitlines()[-1], run.output()


def test_watch_mode_logs_a_summary_per_round_that_changed_something(tmp_path, watching):
    a, b, _ = pair(tmp_path, {"x.txt": "x"})
    run = watching(str(a), str(b))
    run.wait_output("watching")
    write(a / "y.txt", "yy")
    wait_for(lambda: (b / "y.txt").exists(), message="y.txt synced")
    run.wait_output("round: 1 copied, 2 B moved")
    assert run.stop() == 0
    # Rounds that changed nothing log no such line.
    assert run.output().count("round: ") == 2, run.output()


def test_run_file_is_ascii_json_even_with_undecodable_names(tmp_path):
    a, b, state = pair(tmp_path, {})
    a.mkdir()
    name = os.fsencode(str(a)) + b"/caf\xe9.txt"
    with open(name, "wb") as handle:
        handle.write(b"x")
    assert run_main("--once", "--state", str(state), str(a), str(b)) == 0
    saved = json.loads(Path(str(state) + ".run.json").read_text(encoding="ascii"))
    assert saved["recent"] == [] or all("time" in item for item in saved["recent"])
    document = status_json(tmp_path, str(a), str(b), "--state", str(state))
    assert document["pending"] == []


def dashboard_url(run) -> str:
    run.wait_output("dashboard: http")
    found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", run.output())
    assert found, run.output()
    return found.group(1)


def test_the_dashboard_of_a_watcher_in_chromium(tmp_path, watching):
    from tests.test_dashboard import browser_dom

    a, b, _ = pair(tmp_path, {"x.txt": "x"})
    run = watching(str(a), "ftp://user:s3cret-pw@127.0.0.1:9/none", str(b),
                   "--dashboard", "127.0.0.1:0")
    url = dashboard_url(run)
    run.wait_output("watching")
    write(a / "from-a.txt", "hello")
    wait_for(lambda: (b / "from-a.txt").exists(), message="from-a.txt synced")
    with urllib.request.urlopen(url + "api/status", timeout=10) as response:
        api = json.loads(response.read())
    state = tmp_path / "watch-state.sqlite"
    command = status_json(tmp_path, "--state", str(state))
    assert set(api) == set(command)  # the same document as status --json
    assert api["engine"]["running"] and api["engine"]["pid"] == run.process.pid
    assert [view["available"] for view in api["locations"]] == [True, False, True]
    dom = browser_dom(url)
    page = re.sub(r"<[^>]+>", " ", dom)
    assert "from-a.txt" in page  # a recent action, shown after the page's own refresh
    assert str(a) in page and str(b) in page
    assert "s3cret-pw" not in dom and "s3cret-pw" not in json.dumps(api)
    assert run.stop() == 0


def test_dashboard_needs_watch_mode_and_a_good_address(tmp_path):
    a, b, _ = pair(tmp_path, {"x.txt": "x"})
    done = sync_process(tmp_path, "--dashboard", "8080", str(a), str(b))
    assert done.returncode == 2 and "--dashboard shows a running watcher" in done.stderr
    assert tree(b) == {}
    done = subprocess.run([sys.executable, str(MAIN), "--dashboard", "99999", str(a), str(b)],
                          check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "99999" in done.stderr and tree(b) == {}


def test_pruning_old_versions_is_logged_without_verbose(tmp_path):
    a, b, state = pair(tmp_path, {"x.txt": "0"})
    for round_number in range(1, 4):
        done = sync_process(tmp_path, "--keep-versions", "1", "--state", str(state), str(a),
                            str(b))
        assert done.returncode == 0, done.stderr
        write(a / "x.txt", "edit " * round_number)
    done = sync_process(tmp_path, "--keep-versions", "1", "--state", str(state), str(a),
                        str(b))
    assert done.returncode == 0, done.stderr
    assert re.search(rf"pruned 1 old version in folder:{re.escape(str(b))} "
                     r"\(--keep-versions 1, --keep-days 30\)", done.stderr), done.stderr


def test_status_on_an_unreadable_state_file_says_so(tmp_path):
    a, b, state = pair(tmp_path, {"x.txt": "x"})
    state.write_bytes(b"this is no sqlite database" * 100)
    done = status(tmp_path, str(a), str(b), "--state", str(state))
    assert done.returncode == 2, done.stderr
    assert f"cannot read the state file {state}" in done.stderr
    assert "Traceback" not in done.stderr
    assert state.read_bytes().startswith(b"this is no sqlite")  # left as it was
