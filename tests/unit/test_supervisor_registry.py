"""What a starting supervisor reads of the registry (aura.supervisor.registry.Registry.records_at_start).

Why: a run of days makes thousands of worker folders, and a supervisor restarted by its service
manager must take its live workers back without reading every one of them first. It reads the
records the live index names, which is safe only while the index names every live record on disk:
in the boot of the machine it was set in, and with an entry removed only once the end is on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import aura.runtime.records as records_module
from aura.runtime.fsutil import atomic_write_json, read_json
from aura.runtime.paths import ProjectPaths
from aura.runtime.pidfile import boot_id
from aura.supervisor.registry import Registry

ENDED = 300
KEEP = 64


def _registry(tmp_path: Path) -> Registry:
    paths = ProjectPaths.for_root(tmp_path)
    paths.ensure()
    return Registry(paths)


def _ended(registry: Registry, n: int) -> None:
    """`n` ended workers' folders, each written a second after the one before, in an order unlike their names."""
    for i in range(n):
        wid = f"old{(i * 7919) % n:04d}"
        atomic_write_json(registry.path(wid), {"worker_id": wid, "state": "exited", "ended_at": 1000.0 + i})
        os.utime(registry.dir(wid), ns=(0, (1000 + i) * 10**9))


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = records_module.read_json
    monkeypatch.setattr(records_module, "read_json", lambda p: reads.append(Path(p).parent.name) or real(p))
    return reads


def _live(registry: Registry) -> list[str]:
    return sorted(os.listdir(registry.live_index))


def test_the_first_start_in_a_boot_reads_every_record_then_only_the_live_and_the_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _registry(tmp_path)
    _ended(registry, ENDED)
    registry.save({"worker_id": "w/1", "state": "running"})
    reads = _count_reads(monkeypatch)

    first = registry.records_at_start(KEEP)  # no mark of a boot yet: a registry older than the mark
    assert len(reads) == ENDED + 1 and len(first) == ENDED + 1
    assert read_json(registry.boot_mark) == boot_id() and _live(registry) == ["w_1"]

    reads.clear()
    again = registry.records_at_start(KEEP)
    assert len(reads) == KEEP + 1  # the live worker and the latest ended ones, not every folder
    assert again[0]["worker_id"] == "w/1"  # the live first, then by when they ended
    assert [r["ended_at"] for r in again[1:]] == [1000.0 + i for i in range(ENDED - KEEP, ENDED)]


def test_after_a_crash_of_the_machine_every_record_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _registry(tmp_path)
    _ended(registry, 10)
    registry.records_at_start(KEEP)
    atomic_write_json(registry.path("lost"), {"worker_id": "lost", "state": "running"})  # its entry lost in the crash
    atomic_write_json(registry.boot_mark, "a boot before the crash")

    found = registry.records_at_start(KEEP)
    assert "lost" in {r["worker_id"] for r in found} and _live(registry) == ["lost"]
    assert read_json(registry.boot_mark) == boot_id()


def test_a_worker_ended_in_memory_but_not_on_disk_is_still_found_live_by_the_next_supervisor(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    registry.records_at_start(KEEP)
    rec = {"worker_id": "w1", "state": "running"}
    registry.save(rec)
    with registry.flusher.held():  # the supervisor is killed before its thread writes the end
        registry.save_later({**rec, "state": "exited", "outcome": "succeeded"})
        found = Registry(registry.paths).records_at_start(KEEP)
        assert [(r["worker_id"], r["state"]) for r in found] == [("w1", "running")] and _live(registry) == ["w1"]
    assert registry.flusher.drain() and _live(registry) == []


def test_entries_a_kill_left_behind_are_removed(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    registry.records_at_start(KEEP)
    registry.save({"worker_id": "ended", "state": "running"})
    atomic_write_json(registry.path("ended"), {"worker_id": "ended", "state": "exited"})  # killed before the unlink
    (registry.live_index / "unwritten").touch()  # killed between the entry and the first record

    found = registry.records_at_start(KEEP)
    assert [(r["worker_id"], r["state"]) for r in found] == [("ended", "exited")] and _live(registry) == []
