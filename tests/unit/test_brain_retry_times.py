"""When the next retry is due: the brain asks after every cycle, so the answer comes from the tasks
held back (a retry after a failure or a wait for resources, a parking), not from a walk of the tree;
on a real project folder, the supervisor not running."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aura.brain.core import BrainCore
from aura.brain.local_planner import LocalPlanner
from aura.brain.main import BrainDaemon
from aura.brain.parking import ParkDecision, park
from aura.runtime.config import load_config
from aura.runtime.paths import ProjectPaths
from aura.runtime.vocab import IN_PROGRESS, PENDING


def _core(root: Path, home: Path) -> BrainCore:
    paths = ProjectPaths.for_root(root)
    cfg = load_config(root, environ={"HOME": str(home)})
    daemon = BrainDaemon(paths, cfg)
    made = BrainCore(paths, cfg, daemon.log, lambda kind, **data: None, daemon.ctx)
    made.state["task_file"] = str(root / "task.md")
    return made


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "task.md").write_text("# Retries\n\n" + "".join(f"- [ ] item {i} `true`\n" for i in range(4)))
    return folder


@pytest.fixture
def core(root: Path, tmp_path: Path) -> Iterator[BrainCore]:
    made = _core(root, tmp_path)
    tf = made.task_file()
    assert tf is not None
    LocalPlanner().sync(made, tf)
    made.save()
    try:
        yield made
    finally:
        made.supervisor.close()


def _items(core: BrainCore) -> list[dict]:
    return [t for t in core.tasks.values() if t["title"].startswith("item ")]


def test_the_earliest_retry_or_parking_is_found_and_a_started_task_leaves_it(core: BrainCore) -> None:
    a, b, c, _ = _items(core)
    assert core.next_retry_at() is None
    for task in (a, b, c):
        core.set_status(task, IN_PROGRESS, "started", "")
    core.attempt_failed(a, "it broke", "", retry_in=300)
    park(b, ParkDecision(True, "rate limit", time.time() + 60, None))
    core.set_status(b, PENDING, "parked", "")
    core.attempt_failed(c, "it broke", "")  # no delay: may start at once
    assert core.next_retry_at() == pytest.approx(b["parked_until"])
    core.set_status(b, IN_PROGRESS, "resumed", "")
    assert core.next_retry_at() == pytest.approx(a["retry_at"])
    a["retry_at"] = time.time() - 1  # its time came
    assert core.next_retry_at() is None


def test_a_task_held_back_when_the_brain_stopped_is_found_after_a_restart(
    core: BrainCore, root: Path, tmp_path: Path
) -> None:
    task = _items(core)[1]
    core.set_status(task, IN_PROGRESS, "started", "")
    core.attempt_failed(task, "it broke", "", retry_in=120)
    core.save()
    core.snapshot()
    again = _core(root, tmp_path)
    try:
        assert again.next_retry_at() == pytest.approx(task["retry_at"])
    finally:
        again.supervisor.close()
