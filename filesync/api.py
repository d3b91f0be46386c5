"""The Python API: sync a set once, watch it in a background thread, ask for its status.

The same engine and the same rules as ``python main.py``; options are the command line's,
written as keyword arguments (``exclude=["*.tmp"]``, ``conflict="keep-both"``,
``max_delete=20``, ``one_way=True``). Nothing is ever asked for on a terminal, no signal
handler is installed and logging is left as the program set it up (the ``filesync``
logger). Bad arguments or locations raise ``FilesyncError`` before anything is changed;
what goes wrong during a sync is in the returned ``Report``.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from filesync.cli import build_parser, prepare_run
from filesync.engine import Engine
from filesync.executor import Stats
from filesync.locations import Settings
from filesync.result import Result
from filesync.runner import EXIT_OK, run_set

log = logging.getLogger("filesync")


class FilesyncError(Exception):
    """Bad arguments or locations: nothing was changed (exit status 2 on the command line)."""


@dataclass
class Report:
    """What a sync (or a watch, once stopped) did."""

    #: The command line's exit status: 0 identical, 1 something failed or was left, 2 usage.
    exit_status: int
    #: Counts: copied, renamed, deleted, conflicts, errors, bytes_moved, ... (see ``Stats``).
    stats: Stats
    #: Every action applied, in order: dicts with action, path, source, target, from_path
    #: and message (the log line).
    actions: list[dict[str, Any]] = field(default_factory=list)
    #: Paths that met a conflict: decided (the losing edit kept) or left unresolved.
    conflicts: list[str] = field(default_factory=list)
    #: Every error reported, as the log says it.
    errors: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when every location ended identical (exit status 0)."""
        return self.exit_status == EXIT_OK


def sync(locations: Sequence[str], *, state: str | Path | None = None,
         **options: Any) -> Report:
    """Sync ``locations`` once and report what was done (like ``python main.py --once``).

    ``state`` is the state file (default: the command line's default for this set). To see
    what a sync would do without doing it, ask ``status()`` (its ``pending`` list).
    """
    run = Watch(locations, state=state, once=True, **options)
    run.start()
    return run.wait()


def watch(locations: Sequence[str], *, state: str | Path | None = None,
          **options: Any) -> Watch:
    """Start syncing ``locations`` and watching them in a background thread.

    Returns the running ``Watch``; call ``stop()`` (or use it as a context manager) to end
    it and get the report.
    """
    run = Watch(locations, state=state, **options)
    run.start()
    return run


def status(locations: Sequence[str] = (), *, state: str | Path | None = None,
           exclude: Iterable[str] | None = None) -> dict[str, Any]:
    """The status document of a set (``python main.py status --json``); changes nothing."""
    from filesync import status_report  # noqa: PLC0415 - only status needs it
    from filesync.cli_input import open_each  # noqa: PLC0415
    from filesync.state import default_state_path  # noqa: PLC0415

    if len(locations) == 1 or (not locations and state is None):
        raise FilesyncError("status needs the set's locations (two or more), or state=PATH")
    opened = open_each(list(locations), Settings(interactive=False))
    if not opened.ok:
        raise FilesyncError(opened.message)
    try:
        state_path = (Path(state).expanduser() if state is not None
                      else default_state_path([loc.key for loc in opened.value]))
        gathered = status_report.gather(state_path, opened.value,
                                         None if exclude is None else list(exclude))
    finally:
        for location in opened.value:
            location.close()
    return _unwrap(gathered)


class Watch:
    """A sync set run by the engine in a background thread this object owns."""

    def __init__(self, locations: Sequence[str], *, state: str | Path | None = None,
                 once: bool = False, **options: Any) -> None:
        arguments = [*map(str, locations), *_arguments(options)]
        if state is not None:
            arguments += ["--state", str(state)]
        if once:
            arguments.append("--once")
        args = _parse(arguments)
        if args.dry_run:
            raise FilesyncError("dry_run is not taken by the API: status() lists the changes "
                                "a sync would make (its 'pending' list)")
        if args.profile is not None:
            raise FilesyncError("profile= is not taken by the API: pass the locations and "
                                "options themselves")
        self._run = _unwrap(prepare_run(args, interactive=False))
        self._stop = threading.Event()
        self._engine: Engine | None = None
        self._ready = threading.Event()
        self._actions: list[dict[str, Any]] = []
        self._errors = _ErrorCollector()
        self._exit_status: int | None = None
        self._thread = threading.Thread(target=self._main, name="filesync-watch", daemon=True)

    def start(self) -> None:
        """Start the background thread (``watch()`` and ``sync()`` do it)."""
        log.addHandler(self._errors)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._exit_status = run_set(self._run.locations, self._run.options,
                                        self._run.state_path, self._run.once, self._stop,
                                        self._attach, progress_line=False,
                                        dashboard=self._run.dashboard)
        finally:
            for location in self._run.locations:
                location.close()
            self._ready.set()

    def _attach(self, engine: Engine) -> None:
        self._engine = engine
        engine.executor.on_action.append(self._actions.append)
        self._ready.set()

    @property
    def running(self) -> bool:
        """True until the engine has stopped (by ``stop()`` or on its own)."""
        return self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        """The live status document (as ``/api/status`` serves it)."""
        self._ready.wait(timeout=60)
        if self._engine is None:
            raise FilesyncError("the engine did not start: " + "; ".join(self._errors.messages))
        return self._engine.activity.document()

    def stop(self, timeout: float | None = None) -> Report:
        """Ask the engine to stop (the file in flight is finished), wait, and report."""
        self._stop.set()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> Report:
        """Wait for the engine to end (a once run ends by itself) and report."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the engine did not stop within {timeout} s")
        log.removeHandler(self._errors)
        stats = self._engine.stats if self._engine is not None else Stats()
        conflicts = {event["path"] for event in self._actions
                     if str(event.get("message", "")).startswith("conflict")}
        if self._engine is not None:
            conflicts.update(item["path"] for item in self._engine.activity.snapshot()[
                "conflicts"])
        return Report(self._exit_status if self._exit_status is not None else 1, stats,
                      list(self._actions), sorted(conflicts), list(self._errors.messages))

    def __enter__(self) -> Watch:
        if not self._thread.is_alive() and self._exit_status is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


class _ErrorCollector(logging.Handler):
    """Keeps the messages of every error the engine logs during one run."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _arguments(options: Mapping[str, Any]) -> list[str]:
    """Keyword arguments as command-line arguments (``max_delete=5``: ``--max-delete=5``)."""
    arguments: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            arguments.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple, set)):
            arguments += [f"{flag}={item}" for item in value]
        else:
            arguments.append(f"{flag}={value}")
    return arguments


def _parse(arguments: list[str]) -> argparse.Namespace:
    """Parse with the command line's parser, raising ``FilesyncError`` instead of exiting."""
    parser = build_parser()
    parser.exit_on_error = False
    parser.allow_abbrev = False

    def fail(message: str) -> NoReturn:
        raise FilesyncError(message)

    parser.error = fail  # type: ignore[method-assign]
    try:
        return parser.parse_intermixed_args(arguments)
    except argparse.ArgumentError as exc:
        raise FilesyncError(str(exc)) from None


def _unwrap(result: Result[Any]) -> Any:
    if not result.ok:
        raise FilesyncError(result.message)
    return result.value
