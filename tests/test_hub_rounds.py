"""A hub that sat a full round out is caught up on by a full round, not by a small one."""

from __future__ import annotations

import dataclasses
import threading

from filesync import hubs as hubs_module
from filesync.engine import Engine, Options
from filesync.locations.memory import MemoryLocation
from filesync.result import Err, ErrorKind
from filesync.state import StateStore


class SharedMemory(MemoryLocation):
    """A memory location that counts as a hub (remote, with an atomic claim)."""

    capabilities = dataclasses.replace(MemoryLocation.capabilities, remote=True)


def test_a_missed_hub_stays_missed_until_a_full_round(tmp_path, monkeypatch):
    hub, local = SharedMemory("hub"), MemoryLocation("local")
    opened = StateStore.open(tmp_path / "s.db", [hub.key, local.key])
    assert opened.ok
    engine = Engine([hub, local], opened.value[0], Options(), threading.Event())
    assert engine.hubs.keys == [hub.key]
    real_acquire = hubs_module.acquire
    monkeypatch.setattr(hubs_module, "acquire", lambda *_args, **_kwargs: Err(
        "held by another filesync run", ErrorKind.UNAVAILABLE))
    engine.run_round()
    assert engine.hubs.missed_round
    monkeypatch.setattr(hubs_module, "acquire", real_acquire)
    with engine.hubs.round():
        engine.run_round(["x"], engine.stat_paths(["x"]))
    assert engine.hubs.missed_round, "a round over one path does not make up for it"
    engine.run_round()
    assert not engine.hubs.missed_round
    engine.store.close()
