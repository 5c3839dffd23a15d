"""A kill -9 of the brain in the middle of a burst of status changes loses nothing it acknowledged.

Why: the brain writes the task tree's changes to a journal and the whole tree only once a second
(aura/brain/state.py). A status change it published, or a spawn it asked the supervisor for, must
come back from snapshot + journal after a kill at any instant: a lost one would be done twice
(the same attempt started again, a completion recorded twice)."""

from __future__ import annotations

from collections import Counter

from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.harness import Project, wait_for

ITEMS = 60


def _state(p: Project) -> dict:
    return read_json(p.paths.state_dir / "state.json") or {}


def test_a_brain_killed_mid_burst_comes_back_from_snapshot_and_journal(project: Project) -> None:
    project.env.update(AURA_MAX_CONCURRENT_TASKS="8")
    project.write_task("# Burst\n\n" + "".join(f"- [ ] item {i} `true`\n" for i in range(ITEMS)))
    project.up()
    wait_for(lambda: len(project.worker_dirs()) >= 16, 60, what="a burst of spawns")
    first = project.kill9("brain")
    wait_for(lambda: project.daemon_pid("brain") not in (None, first), 30, what="the brain's restart")
    st = wait_for(lambda: (s := _state(project)).get("run", {}).get("finished") and s, 90, what="the run's end")

    tasks = [t for tid, t in st["tasks"].items() if tid != "ROOT"]
    assert len(tasks) == ITEMS and all(t["status"] == "completed" for t in tasks)
    assert all(t["workers"] == [f"{t['id']}-1"] for t in tasks), "an attempt was started twice"
    changes = Counter(
        (d["task_id"], d["new"])
        for d in read_jsonl(project.paths.state_dir / "decisions.jsonl")
        if d.get("kind") == "status" and d.get("task_id") != "ROOT"
    )
    twice = sorted(k for k, n in changes.items() if n > 1)
    assert not twice, f"status changes made again after the restart (lost, then redone): {twice}"
