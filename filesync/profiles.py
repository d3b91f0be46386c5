"""Sync sets written down in files: location lists (``--file``) and profiles (``--profile``).

Both are UTF-8 text, one item per line. ``#`` at the start of a line or after whitespace
starts a comment (so ``ftp://u:p#w@h/x`` keeps its ``#``). A relative local path is taken
relative to the folder of the file that names it, so a list or profile means the same
wherever filesync is started. A profile also holds options, one per line, written as on the
command line (``--interval 5``, ``--exclude=*.tmp``, ``--one-way``).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from filesync.locations import parse_location
from filesync.locations.spec import FolderSpec, ZipSpec, mask_secrets
from filesync.result import Err, Ok, Result

#: A profile name: looked up as ``NAME.conf`` in the configuration folder.
PROFILE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
#: Options a profile may not hold, with why.
NOT_IN_PROFILE = {
    "--profile": "a profile cannot include another profile; put everything in this one",
    "--file": "list the locations in the profile itself, one per line",
    "--help": "it belongs on the command line",
    "-h": "it belongs on the command line",
    "--version": "it belongs on the command line",
}
#: Options whose value is a file: in a profile, a relative one is relative to its folder.
PATH_OPTIONS = frozenset({"--state", "--exclude-from", "--log", "--ca-file"})

_COMMENT = re.compile(r"(?:^|\s)#.*$")
_OPTION = re.compile(r"^(-[^\s=]*)(?:=(.*)|\s+(.*))?$")
_OPTION_NAME = re.compile(r"^--?[A-Za-z]")


def strip_comment(line: str) -> str:
    """``line`` without its comment and surrounding whitespace."""
    return _COMMENT.sub("", line).strip()


def _numbered_lines(path: Path, what: str) -> Result[list[tuple[int, str]]]:
    """The lines of ``path`` that hold something, with their numbers (from 1)."""
    try:
        # utf-8-sig: a byte-order mark some editors write is not part of the first line.
        # Bytes that are not UTF-8 (a path in another encoding) are kept as the file
        # system's own undecodable names are, so such a path still names its folder.
        text = path.read_text(encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        return Err(f"cannot read {what} file {str(path)!r}: {exc.strerror or exc}")
    numbered = ((number, strip_comment(line))
                for number, line in enumerate(text.splitlines(), start=1))
    return Ok([(number, line) for number, line in numbered if line])


def _folder_of(path: Path) -> str:
    return os.path.dirname(os.path.abspath(path))


def resolve_location(text: str, base: str, where: str) -> Result[str]:
    """The location string ``text`` with a relative local path made absolute from ``base``.

    ``folder:``, ``zip:`` and bare paths come back as ``folder:ABSOLUTE`` or
    ``zip:ABSOLUTE`` (the same location from any current directory); FTP, FTPS and S3
    strings come back untouched. ``where`` (``FILE:LINE``) starts the error message.
    """
    parsed = parse_location(text, base)
    if not parsed.ok:
        return Err(f"{where}: invalid location {mask_secrets(text)!r}: {parsed.message}")
    spec = parsed.value
    if isinstance(spec, (FolderSpec, ZipSpec)):
        return Ok(spec.key)
    return Ok(text)


def given_locations(args: argparse.Namespace) -> Result[list[str]]:
    """A command's locations: its LOCATION arguments, then those of its ``--file`` list."""
    texts = list(args.locations)
    if args.file:
        listed = read_location_file(args.file)
        if not listed.ok:
            return listed
        texts += listed.value
    return Ok(texts)


def read_location_file(path: str) -> Result[list[str]]:
    """The locations listed in the file ``path`` (``--file``), checked and resolved."""
    file = Path(os.path.expanduser(path))
    lines = _numbered_lines(file, "location")
    if not lines.ok:
        return lines
    base = _folder_of(file)
    locations: list[str] = []
    for number, text in lines.value:
        resolved = resolve_location(text, base, f"{path}:{number}")
        if not resolved.ok:
            return resolved
        locations.append(resolved.value)
    return Ok(locations)


def config_home() -> Path:
    """``$XDG_CONFIG_HOME``, or ``~/.config`` when it is unset, empty or relative."""
    configured = os.environ.get("XDG_CONFIG_HOME", "")
    # The XDG base directory specification says a relative value is to be ignored.
    if os.path.isabs(configured):
        return Path(configured)
    return Path(os.path.expanduser("~")) / ".config"


def profile_path(value: str) -> Result[Path]:
    """The file ``--profile VALUE`` names: a path (with ``/`` or ending ``.conf``) or a name."""
    if "/" in value or os.sep in value or value.endswith(".conf"):
        return Ok(Path(os.path.expanduser(value)))
    if not PROFILE_NAME.match(value):
        return Err(f"--profile {value!r} is neither a profile name (letters, digits, '-', "
                   "'_' and '.') nor a path to a profile file (containing '/' or ending in "
                   "'.conf')")
    return Ok(config_home() / "filesync" / f"{value}.conf")


def _option_tokens(text: str, base: str, checker: argparse.ArgumentParser) -> Result[list[str]]:
    """The command-line arguments one option line of a profile stands for, checked."""
    match = _OPTION.match(text)
    if match is None or not _OPTION_NAME.match(match.group(1)):
        return Err(f"{text.split(maxsplit=1)[0]!r} is not an option; an option line starts "
                   "with --NAME, e.g. --interval 5")
    name = match.group(1)
    value = match.group(2) if match.group(2) is not None else match.group(3)
    if name in NOT_IN_PROFILE:
        return Err(f"{name} cannot be used in a profile: {NOT_IN_PROFILE[name]}")
    if value and name in PATH_OPTIONS:
        value = os.path.join(base, os.path.expanduser(value))
    if value is None:
        tokens = [name]
    elif name.startswith("--"):
        # One NAME=VALUE token, so a value starting with '-' is not taken for an option.
        tokens = [f"{name}={value}"]
    else:
        tokens = [name, value]
    try:
        _, unknown = checker.parse_known_args(tokens)
    except argparse.ArgumentError as exc:
        return Err(str(exc))
    if unknown:
        # Only the name: the rest of an unknown line might be a password put in by mistake.
        return Err(f"unknown option {name!r} (give its full name; python main.py --help "
                   "lists them)")
    return Ok(tokens)


def profile_arguments(value: str, parser: argparse.ArgumentParser) -> Result[list[str]]:
    """The command-line arguments the profile ``value`` stands for, in the file's order.

    ``parser`` (a fresh one: it is changed to raise instead of exit, and to refuse
    abbreviated option names) checks every option line, so a mistake is reported with the
    file and line. Locations are resolved as in ``--file`` lists.
    """
    located = profile_path(value)
    if not located.ok:
        return located
    path = located.value
    if not path.exists():
        return Err(f"profile {value!r} not found: {path} does not exist; create it with one "
                   "location per line and options such as '--interval 5' on lines of "
                   "their own (see \"Profiles\" in README.md)")
    lines = _numbered_lines(path, "profile")
    if not lines.ok:
        return lines
    parser.exit_on_error = False
    parser.allow_abbrev = False
    base = _folder_of(path)
    arguments: list[str] = []
    for number, text in lines.value:
        where = f"{path}:{number}"
        if text.startswith("-"):
            tokens = _option_tokens(text, base, parser)
            if not tokens.ok:
                return Err(f"{where}: {tokens.message}")
            arguments += tokens.value
        else:
            resolved = resolve_location(text, base, where)
            if not resolved.ok:
                return resolved
            arguments.append(resolved.value)
    return Ok(arguments)
