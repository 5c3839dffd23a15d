"""A burst of starts or of endings costs the brain one save, not one each, and nothing about them is
told (decision log, brain log, events) before that save has journaled it: the brain's core
(aura/brain/core.py, `one_save`) on a real project folder, its supervisor not running."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aura.brain.core import BrainCore
from aura.brain.local_planner import LocalPlanner
from aura.brain.main import BrainDaemon
from aura.brain.state import StateStore
from aura.runtime.config import load_config
from aura.runtime.fsutil import read_jsonl
from aura.runtime.paths import ProjectPaths

ITEMS = 5
ROOM = 3


class Told:
    """The core's publish: each event, with the statuses on disk when it was published."""

    def __init__(self, paths: ProjectPaths) -> None:
        self.paths = paths
        self.events: list[tuple[str, dict, dict[str, str]]] = []

    def __call__(self, kind: str, **data: Any) -> None:
        on_disk = StateStore(self.paths.state_dir).load().state["tasks"]
        self.events.append((kind, data, {tid: t["status"] for tid, t in on_disk.items()}))


@pytest.fixture
def core(tmp_path: Path) -> Iterator[tuple[BrainCore, Told]]:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "task.md").write_text("# Burst\n\n" + "".join(f"- [ ] item {i} `true`\n" for i in range(ITEMS)))
    paths = ProjectPaths.for_root(root)
    cfg = load_config(root, environ={"HOME": str(tmp_path), "AURA_MAX_CONCURRENT_TASKS": str(ROOM)})
    daemon = BrainDaemon(paths, cfg)
    told = Told(paths)
    made = BrainCore(paths, cfg, daemon.log, told, daemon.ctx)
    made.state["task_file"] = str(root / "task.md")
    made.supervisor_ok = True
    try:
        yield made, told
    finally:
        made.supervisor.close()


def started(core: BrainCore) -> list[str]:
    planner = LocalPlanner()
    tf = core.task_file()
    assert tf is not None
    planner.sync(core, tf)
    core.save()
    before = core.store.changes
    assert planner.dispatch(core) == ROOM
    assert core.store.changes == before + 1, "the starts' intents were saved more than once"
    return [t["id"] for t in core.running()]


def test_a_burst_of_starts_is_journaled_by_one_save_before_any_of_it_is_told(core: tuple[BrainCore, Told]) -> None:
    made, told = core
    ids = started(made)
    assert len(ids) == ROOM
    on_disk = StateStore(made.paths.state_dir).load().state["tasks"]
    for tid in ids:  # the intent, worker id and request are on disk: reconcile sends it again
        assert on_disk[tid]["status"] == "in_progress" and on_disk[tid]["spawn_spec"]["worker_id"] == f"{tid}-1"
    items = [t for t in on_disk.values() if t["title"].startswith("item ")]
    assert len(items) == ITEMS and sum(t["status"] == "pending" for t in items) == ITEMS - ROOM
    starts = [(data, disk) for kind, data, disk in told.events if kind == "task_status"]
    assert [d["task_id"] for d, _ in starts] == ids
    assert all(disk[d["task_id"]] == "in_progress" for d, disk in starts), "told before it was journaled"
    decided = [e for e in read_jsonl(made.paths.state_dir / "decisions.jsonl") if e["kind"] == "status"]
    assert [e["task_id"] for e in decided] == ids


def test_a_burst_of_endings_is_journaled_by_one_save_before_any_of_it_is_told(core: tuple[BrainCore, Told]) -> None:
    made, told = core
    ids = started(made)
    told.events.clear()
    now = time.time()
    for tid in ids:  # the supervisor's records of the attempts, as its `list` answers them
        wid = made.tasks[tid]["worker_id"]
        made.workers[wid] = {
            "worker_id": wid,
            "task_id": tid,
            "state": "exited",
            "outcome": "succeeded",
            "exit": {"exit_code": 0, "signal": None, "ended_at": now},
            "started_at": now - 1,
        }
    before = made.store.changes
    made.reconcile()
    assert made.store.changes == before + 1, "the endings were saved more than once"
    on_disk = StateStore(made.paths.state_dir).load().state["tasks"]
    assert [on_disk[tid]["status"] for tid in ids] == ["completed"] * ROOM
    kinds = [(kind, data["task_id"]) for kind, data, _ in told.events]
    assert kinds == [k for tid in ids for k in (("task_status", tid), ("task_done", tid))]
    assert all(disk[data["task_id"]] == "completed" for _, data, disk in told.events), "told before it was journaled"
