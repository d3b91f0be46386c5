"""Gitignore-style exclude patterns."""

from __future__ import annotations

import pytest

from filesync.excludes import Excludes, build_excludes

CASES = [
    ("*.tmp", "a.tmp", False, True),
    ("*.tmp", "x/y/a.tmp", False, True),
    ("*.tmp", "a.tmpl", False, False),
    ("build/", "build", True, True),
    ("build/", "x/build", True, True),
    ("build/", "x/build/out.o", False, True),
    ("build/", "build", False, False),  # a file named build is not a folder
    ("**/node_modules", "a/b/node_modules/m.js", False, True),
    ("**/node_modules", "node_modules", True, True),
    ("/top.txt", "top.txt", False, True),
    ("/top.txt", "x/top.txt", False, False),
    ("docs/*.md", "docs/a.md", False, True),
    ("docs/*.md", "x/docs/a.md", False, False),
    ("docs/*.md", "docs/x/a.md", False, False),
    ("a?c", "abc", False, True),
    ("[ab]x", "bx", False, True),
    ("[!ab]x", "cx", False, True),
]


@pytest.mark.parametrize(("pattern", "path", "is_dir", "expected"), CASES)
def test_patterns(pattern, path, is_dir, expected):
    assert Excludes((pattern,)).excluded(path, is_dir) is expected


def test_a_later_negation_re_includes():
    excludes = Excludes(("*.tmp", "!keep.tmp"))
    assert excludes.excluded("a.tmp") and not excludes.excluded("keep.tmp")


def test_very_deep_paths_do_not_exhaust_the_stack():
    deep = "/".join(["d"] * 5000)
    excludes = Excludes(("nothing-matches",))
    assert not excludes.excluded(deep + "/f.txt")
    assert Excludes(("d/",)).excluded(deep + "/f.txt")


@pytest.mark.parametrize("bad", ["", "   ", "!", "/"])
def test_empty_patterns_are_refused(bad):
    assert not build_excludes([bad]).ok
