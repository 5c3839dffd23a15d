"""Retries and attempts through `aura up`: a backend that cannot start is named before anything runs
(or its task is blocked at once, never spawned to fail), a spawn that fails before its worker runs is
retried within seconds rather than a whole cycle interval, and attempts are numbered once everywhere.

Real daemons, real workers, the real CLI; the cycle interval is 300 s in these tests, so anything that
waits for the next interval times out."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.harness import Project, wait_for

LIMIT_GB = 0.2
HOG = "import time; b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(120)"


def path_without(tmp_path: Path, *binaries: str) -> str:
    """The test's PATH minus every folder holding one of `binaries`, so they are not installed."""
    keep = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not any((Path(d) / b).exists() for b in binaries)
    ]
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return os.pathsep.join([str(empty), *keep])


def finished(p: Project) -> dict | None:
    st = p.status()
    return st if ((st.get("brain") or {}).get("run") or {}).get("finished") else None


def status_changes(p: Project, task_id: str) -> list[dict]:
    return [
        d
        for d in read_jsonl(p.paths.state_dir / "decisions.jsonl")
        if d.get("kind") == "status" and d.get("task_id") == task_id
    ]


@pytest.mark.parametrize(
    "body,backend,needs",
    [
        ("# Summarise the notes\n\nRead notes/ and write a summary.\n", "claude", "no checklist"),
        ("# Two steps\n\n- [ ] make it `true`\n- [ ] ask the agent to review it\n", "claude", "line 4"),
        ("# Two steps\n\n- [ ] make it `true`\n- [ ] ask the agent to review it\n", "shell", "line 4"),
    ],
)
def test_up_refuses_a_run_whose_task_file_needs_a_backend_that_cannot_start(
    project: Project, tmp_path: Path, body: str, backend: str, needs: str
) -> None:
    project.env.update(AURA_LAYER2_BACKEND=backend, PATH=path_without(tmp_path, "claude"))
    project.write_task(body)
    proc = project.aura("up", "-d", "task.md", check=False)
    assert proc.returncode != 0
    said = proc.stderr.strip()
    assert len(said.splitlines()) == 1 and "Traceback" not in said, said
    assert needs in said and "Nothing was started" in said and "AURA_LAYER2_BACKEND" in said
    if backend == "claude":
        assert "`claude` CLI, which is not on PATH" in said and "AURA_CLAUDE_BIN" in said
    else:
        assert "AURA_LAYER2_BACKEND=shell runs only commands" in said
    assert not any(project.daemon_pid(n) for n in ("supervisor", "watchdog", "brain"))


def test_a_spawn_that_fails_before_its_worker_runs_is_retried_within_seconds(project: Project) -> None:
    """The supervisor cannot start the worker (its sandbox is missing): retried in seconds, then blocked.
    A reserve that is short is a wait, not a failure (test_watchdog_daemon)."""
    project.env.update(AURA_CYCLE_INTERVAL="300", AURA_WORKER_ISOLATION="bwrap", AURA_BWRAP_BIN="/no/such/bwrap")
    why = "/no/such/bwrap"
    project.write_task("# Quick\n\n- [ ] quick `true`\n")
    project.up()
    wait_for(lambda: finished(project), 60, what="the run to end without waiting a 300 s cycle interval")
    tid = next(
        t["id"]
        for t in read_json(project.paths.state_dir / "state.json")["tasks"].values()
        if t.get("command") == "true"
    )
    changes = status_changes(project, tid)
    assert [d["new"] for d in changes] == ["in_progress", "pending", "in_progress", "blocked"], changes
    assert re.fullmatch(
        r"attempt 1 failed: could not start the worker: .*; retrying once in \d+(\.\d+)?s", changes[1]["reason"]
    ), changes[1]["reason"]
    assert why in changes[1]["reason"] and why in changes[3]["reason"]
    assert changes[2]["reason"] == "attempt 2 started"
    assert changes[3]["reason"].startswith("attempt 2 failed: ")


def test_resource_kills_number_attempts_once_and_the_fix_is_blocked_not_spawned(
    project: Project, tmp_path: Path
) -> None:
    """The resource-fix subtask under the `local` planner with no `claude` installed: blocked at once with
    the reason (not sent to a CLI that is not there and retried a cycle later); the retry after the first
    kill is attempt 2 in the decisions, events, history, status, ps and the worker's task.md; the run's
    figures count what the tree shows."""
    project.env.update(
        AURA_CYCLE_INTERVAL="300",
        AURA_LAYER2_BACKEND="claude",
        AURA_WORKER_MAX_SYSTEM_MEMORY_GB=str(LIMIT_GB),
        PATH=path_without(tmp_path, "claude"),
    )
    project.write_task(f'# Escalate\n\n- [ ] hog `python3 -c "{HOG}"`\n')
    up = project.up()
    assert "resource-fix subtask" in up.stdout and "`claude` CLI" in up.stdout  # a warning, not a refusal
    st = wait_for(lambda: finished(project), 90, what="the run to end without waiting a 300 s cycle interval")
    state = read_json(project.paths.state_dir / "state.json")
    task = next(t for t in state["tasks"].values() if t.get("title", "").startswith("hog"))
    tid, fix = task["id"], state["tasks"][task["id"] + ".fix"]
    assert fix["status"] == "blocked" and not fix.get("workers"), fix
    assert fix["reason"].startswith("not started: the claude backend needs the `claude` CLI, which is not on PATH")
    assert "AURA_CLAUDE_BIN" in fix["reason"] and "AURA_LAYER2_BACKEND" in fix["reason"]

    changes = status_changes(project, tid)
    assert [(d["new"], d.get("attempt")) for d in changes] == [
        ("in_progress", 1),
        ("pending", 1),
        ("in_progress", 2),
        ("blocked", 2),
    ], changes
    assert [d["reason"] for d in changes if d["new"] == "in_progress"] == ["attempt 1 started", "attempt 2 started"]
    events = [
        e["data"]
        for e in read_jsonl(project.paths.journal("brain"))
        if e.get("kind") == "task_status" and e["data"].get("task_id") == tid
    ]
    assert [e.get("attempt") for e in events] == [1, 1, 2, 2]
    task_md = (project.paths.task_dir(tid) / "task.md").read_text()
    assert f"Attempt 2 of this task (worker {tid}-2)." in task_md
    assert "The previous attempt ended: killed by the watchdog" in task_md
    history = project.aura("history").stdout
    assert "attempt 2 started" in history and history.count("attempt 1 started") == 1
    ps = project.aura("ps", "-a").stdout
    assert f"{tid}-1 " in ps and f"{tid}-2 " in ps

    # two tasks blocked in the tree (the task and its fix): the run's figures say two as well
    assert st["brain"]["counts"]["blocked"] == 2 and st["brain"]["counts"]["completed"] == 0
    done = [e["data"] for e in read_jsonl(project.paths.journal("brain")) if e.get("kind") == "run_finished"]
    assert done and done[-1]["blocked"] == 2
    text = project.aura("status", check=False).stdout
    assert text.count("[blocked]") == 2 and "blocked 2" in text
    assert f"{tid} [blocked]" in text and "why: killed by the watchdog twice" in text
    assert "why: not started: the claude backend needs" in text
    assert json.loads(project.aura("status", "--json", check=False).stdout)["brain"]["tree_rows"]
