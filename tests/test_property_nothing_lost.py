"""Property: after random edits and syncs across three folders, all agree and nothing is lost."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import run_main, tree

NAMES = ("f1.txt", "f2.txt", "d/f3.txt", "d/e/f4.txt")
LOCATIONS = ("a", "b", "c")
T0 = 1_700_000_000

edit = st.tuples(st.just("write"), st.sampled_from(LOCATIONS), st.sampled_from(NAMES),
                 st.integers(0, 3))
delete = st.tuples(st.just("delete"), st.sampled_from(LOCATIONS), st.sampled_from(NAMES),
                   st.just(0))
sync_step = st.tuples(st.just("sync"), st.just(""), st.just(""), st.just(0))
steps = st.lists(st.one_of(edit, edit, delete, sync_step), min_size=1, max_size=25)


def everything_kept(roots: list[Path]) -> set[str]:
    """Every content still live or among the kept versions, in any location."""
    found: set[str] = set()
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and path.name != "marker":
                found.add(path.read_text())
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_random_edits_and_syncs_lose_nothing(plan):
    with tempfile.TemporaryDirectory() as temp:
        base = Path(temp)
        roots = [base / name for name in LOCATIONS]
        for root in roots:
            root.mkdir()
        args = ["--once", "-q", "--keep-versions", "1000", "--state", str(base / "s.sqlite"),
                *(f"folder:{root}" for root in roots)]
        clock = 0
        for number, (kind, where, name, padding) in enumerate(plan):
            if kind == "sync":
                sync_and_check(args, roots)
                continue
            path = base / where / name
            if kind == "delete":
                path.unlink(missing_ok=True)
                continue
            clock += 1
            path.parent.mkdir(parents=True, exist_ok=True)
            # Distinct content and mtime per write: size+mtime equality stays meaningful.
            path.write_text(f"step {number} wrote {where}/{name}" + "." * padding)
            os.utime(path, (T0 + clock, T0 + clock))
        sync_and_check(args, roots)
        assert tree(roots[0]) == tree(roots[1]) == tree(roots[2])


def sync_and_check(args: list[str], roots: list[Path]) -> None:
    """Sync once: every content live before it must be live or kept as a version after it.

    (What users overwrite or delete themselves between syncs is theirs to lose.)
    """
    live_before = {t for root in roots for t in tree(root).values() if t}
    assert run_main(*args) == 0
    missing = live_before - everything_kept(roots)
    assert not missing, f"contents lost: {missing}"
