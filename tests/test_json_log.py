"""--json-log / --log-format json: one JSON object per line, with each action's fields."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import MAIN, write

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
BAD_NAME = b"bad\xff\xc3\xa9.txt"  # not UTF-8 (0xff), then a valid "é"


def run_json(tmp_path: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    """Run ``python main.py ARGS``; every stderr line must be a JSON object."""
    done = subprocess.run([sys.executable, str(MAIN), "--state",
                           str(tmp_path / "state.sqlite"), *args],
                          capture_output=True, timeout=60, check=False)
    # Strict: the lines are valid UTF-8 (in fact ASCII) whatever the names were.
    text = done.stderr.decode("ascii")
    lines = text.splitlines()
    assert lines, "nothing logged"
    parsed = [json.loads(line) for line in lines]
    for record in parsed:
        assert isinstance(record, dict)
        assert TIME.fullmatch(record["time"]), record
        assert record["level"] in ("debug", "info", "warning", "error", "critical")
        assert isinstance(record["message"], str) and record["message"]
    return done.returncode, parsed


def actions(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["action"], r["path"]): r for r in records if "action" in r}


def test_every_line_is_json_and_actions_carry_their_fields(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "top.txt", "top")
    write(a / "sub" / "inner.txt", "inner")
    log_file = tmp_path / "filesync.log"
    status, records = run_json(tmp_path, "--once", "--json-log", "--log", str(log_file),
                               str(a), str(b))
    assert status == 0
    found = actions(records)
    source, target = f"folder:{a}", f"folder:{b}"
    assert found[("copy", "top.txt")] == {
        **found[("copy", "top.txt")], "source": source, "target": target,
        "from_path": None, "message": f"copy top.txt  {source} -> {target}"}
    assert found[("copy", "sub/inner.txt")]["target"] == target
    assert found[("mkdir", "sub")]["target"] == target
    assert found[("mkdir", "sub")]["message"] == f"mkdir sub  in {target}"
    assert any(r["message"].startswith("summary: 2 copied") for r in records)
    # The log file gets the same JSON lines.
    in_file = [json.loads(line) for line in log_file.read_text("ascii").splitlines()]
    assert actions(in_file).keys() == found.keys()
    assert all(TIME.fullmatch(r["time"]) for r in in_file)

    (a / "top.txt").unlink()
    status, records = run_json(tmp_path, "--once", "--log-format", "json", str(a), str(b))
    assert status == 0
    deleted = actions(records)[("delete", "top.txt")]
    assert deleted["target"] == target and deleted["source"] is None
    assert deleted["message"] == f"delete top.txt  in {target}"


def test_errors_are_json_lines_too(tmp_path):
    status, records = run_json(tmp_path, "--once", "--json-log", str(tmp_path / "a"),
                               str(tmp_path / "no" / "such" / "b"))
    assert status == 2
    assert [r["level"] for r in records] == ["error"]


def test_an_undecodable_name_still_gives_valid_json(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    with open(os.path.join(os.fsencode(a), BAD_NAME), "wb") as handle:
        handle.write(b"x")
    status, records = run_json(tmp_path, "--once", "--json-log", str(a), str(b))
    assert status == 0
    copied = [r for r in records if r.get("action") == "copy"]
    assert len(copied) == 1
    # The undecodable byte as backslash text (as in the text log), the rest as it is.
    assert copied[0]["path"] == "bad\\udcff\u00e9.txt"
    assert "bad\\udcff\u00e9.txt" in copied[0]["message"]
    assert (os.fsencode(b) + b"/" + BAD_NAME) in [os.path.join(os.fsencode(b), name)
                                                   for name in os.listdir(os.fsencode(b))]


def test_text_stays_the_default(tmp_path):
    a = tmp_path / "a"
    write(a / "x.txt", "x")
    done = subprocess.run([sys.executable, str(MAIN), "--once", "--state",
                           str(tmp_path / f"s{time.monotonic_ns()}.sqlite"), str(a),
                           str(tmp_path / "b")], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0
    assert "copy x.txt" in done.stderr and "{" not in done.stderr
