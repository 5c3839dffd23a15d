"""Which events start a brain cycle: a worker's end wakes the brain when the worker is one of the
run's tasks', not when another client spawned it through the supervisor. Real daemons, real shell
workers; the brain's cycle count says whether it woke (the interval is 5 minutes, so no other cycle
comes)."""

from __future__ import annotations

import json
import time

from aura.ipc.client import Client
from tests.support.harness import Project, wait_for

DONE = "# Nothing to run\n\n- [x] already done `true`\n"


def _spawn_and_end(p: Project, worker_id: str, task_id: str) -> None:
    sup = p.client("supervisor", timeout=30)
    spawn = {"worker_id": worker_id, "task_id": task_id, "backend": "shell", "argv": ["true"], "budget_s": 0}
    assert sup.call("spawn", spawn)["worker_id"] == worker_id
    wait_for(lambda: sup.call("get", {"worker_id": worker_id}).get("state") == "exited", 20, what=f"{worker_id} to end")
    p.remember()


def test_a_workers_end_wakes_the_brain_only_for_a_task_of_the_run(project: Project) -> None:
    p = project
    p.env["AURA_CYCLE_INTERVAL"] = "300"
    p.write_task(DONE)
    p.up()
    wait_for(lambda: (p.status()["brain"].get("run") or {}).get("finished"), 30, what="the run to finish")
    brain = p.client("brain")
    cycles = wait_for(lambda: _settled(brain), 10, what="the brain to go quiet")
    _spawn_and_end(p, "foreign-1", "another-client")
    time.sleep(1.0)  # a woken brain cycles within milliseconds
    assert brain.call("status")["cycles"] == cycles
    tasks = json.loads((p.paths.state_dir / "state.json").read_text())["tasks"]
    own = next(tid for tid, t in tasks.items() if t.get("title", "").startswith("already done"))
    _spawn_and_end(p, "own-1", own)
    wait_for(lambda: brain.call("status")["cycles"] > cycles, 10, what="a cycle for the run's own worker")


def _settled(brain: Client) -> int | None:
    """The cycle count once it stayed the same for half a second."""
    first = brain.call("status")["cycles"]
    time.sleep(0.5)
    return first if brain.call("status")["cycles"] == first else None
