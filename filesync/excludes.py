"""Gitignore-style exclude patterns: ``*.tmp``, ``build/``, ``**/node_modules``, ``/top.txt``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from filesync.result import Err, Ok, Result


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    dirs_only: bool
    negate: bool


def _translate(glob: str) -> str:
    """Turn one gitignore glob (already stripped of anchors) into a regex body."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = glob[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        elif c == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _compile(pattern: str) -> _Rule:
    negate = pattern.startswith("!")
    if negate:
        pattern = pattern[1:]
    dirs_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    # A slash at the start or in the middle anchors the pattern at the location's root;
    # otherwise it matches a name at any depth, as in .gitignore.
    anchored = "/" in pattern
    pattern = pattern.lstrip("/")
    body = _translate(pattern)
    prefix = "" if anchored or pattern.startswith("**") else "(?:.*/)?"
    return _Rule(re.compile(f"^{prefix}{body}$", re.DOTALL), dirs_only, negate)


@dataclass
class Excludes:
    """A list of patterns; later patterns win, ``!pattern`` re-includes, as in .gitignore."""

    patterns: tuple[str, ...] = ()
    _rules: list[_Rule] = field(init=False, repr=False)
    _dir_cache: dict[str, bool] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._rules = [_compile(p) for p in self.patterns]

    def __bool__(self) -> bool:
        return bool(self._rules)

    def _match_self(self, path: str, is_dir: bool) -> bool:
        excluded = False
        for rule in self._rules:
            if rule.dirs_only and not is_dir:
                continue
            if rule.regex.match(path):
                excluded = not rule.negate
        return excluded

    def dir_excluded(self, path: str) -> bool:
        """True when directory ``path`` (and so everything below it) is excluded."""
        if not self._rules:
            return False
        cached = self._dir_cache.get(path)
        if cached is not None:
            return cached
        # Walk down from the outermost unknown parent (a loop, not recursion: trees can be
        # deeper than Python's recursion limit).
        unknown = [path]
        parent = path.rpartition("/")[0]
        while parent and parent not in self._dir_cache:
            unknown.append(parent)
            parent = parent.rpartition("/")[0]
        excluded = bool(parent) and self._dir_cache[parent]
        for folder in reversed(unknown):
            excluded = excluded or self._match_self(folder, True)
            self._dir_cache[folder] = excluded
        return excluded

    def excluded(self, path: str, is_dir: bool = False) -> bool:
        """True when ``path`` (relative, ``/``-separated) or one of its parents is excluded."""
        if not self._rules:
            return False
        if is_dir:
            return self.dir_excluded(path)
        parent = path.rpartition("/")[0]
        return (bool(parent) and self.dir_excluded(parent)) or self._match_self(path, False)


def validate_pattern(pattern: str) -> Result[str]:
    """Check one pattern; an empty one or one that does not compile is an error."""
    stripped = pattern.strip()
    if not stripped or stripped in ("!", "/"):
        return Err(f"empty exclude pattern {pattern!r}")
    try:
        _compile(stripped)
    except re.error as exc:
        return Err(f"exclude pattern {pattern!r} is not valid: {exc}")
    return Ok(stripped)


def read_list_file(path: str, what: str) -> Result[list[str]]:
    """Read a list file (locations, patterns): one item per line, blanks and ``#`` skipped.

    The file is UTF-8; bytes that are not (a path in another encoding) are kept as the
    file system's own undecodable names are, so such a path still names its folder.
    """
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8", errors="surrogateescape")
    except (OSError, UnicodeDecodeError) as exc:
        return Err(f"cannot read {what} file {path!r}: {exc}")
    return Ok([line.strip() for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith("#")])


def build_excludes(patterns: Iterable[str]) -> Result[Excludes]:
    """Validate ``patterns`` and return an ``Excludes`` for them."""
    checked: list[str] = []
    for pattern in patterns:
        result = validate_pattern(pattern)
        if not result.ok:
            return result
        checked.append(result.value)
    return Ok(Excludes(tuple(checked)))
