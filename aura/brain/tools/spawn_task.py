"""spawn_task: start a Layer 2 worker on a leaf task (a shell command, or an agent CLI on its description)."""

from __future__ import annotations

import time

from aura.runtime.vocab import WAITING_FOR_USER

from ..state import ROOT, not_before
from ..workerspec import spawn_spec
from .base import Tool, ToolContext, ToolError, ToolResult, string

BACKENDS = ["shell", "claude", "ds_code", "opencode", "codex"]
TASK_FIELDS = (
    "description",
    "command",
    "artifacts",
    "accept_commands",
    "budget_minutes",
    "backend",
    "expects_change",
    "executor",
)


def spawn_task(box: ToolContext, a: dict) -> ToolResult:
    refusal = box.planner.spawn_refusal()
    if refusal:
        raise ToolError(f"not started: {refusal}")
    core = box.core
    task = box.task(a["task_id"])
    check_spawnable(task)
    if core.capacity() <= 0:
        raise ToolError(
            f"not started: {len(core.running())} workers are running "
            f"(AURA_MAX_CONCURRENT_TASKS={box.planner.cfg.integer('AURA_MAX_CONCURRENT_TASKS')}); "
            "wait for one to end or kill one"
        )
    for key in TASK_FIELDS:
        if key in a:
            task[key] = a[key]
    task["kind"] = "command" if task.get("command") else "agent"
    spec = spawn_spec(task, box.planner.cfg, box.root, core.paths.task_dir(task["id"]))
    if task.get("backend") and not task.get("command"):
        spec["backend"] = task["backend"]
    rec = core.spawn(task, spec)  # the core adds the remaining budget as the worker's own cap
    return outcome(box, task, rec, a.get("reason"), spec.get("backend"))


def check_spawnable(task: dict) -> None:
    if task["id"] == ROOT:
        raise ToolError("ROOT is the goal, not a task; decompose it and spawn a leaf")
    if task.get("children"):
        raise ToolError(f"{task['id']} has subtasks ({', '.join(task['children'][:6])}); spawn a leaf")
    if task["status"] == "in_progress":
        raise ToolError(f"{task['id']} is already running (worker {task.get('worker_id')})")
    if task["status"] == WAITING_FOR_USER:
        raise ToolError(f"{task['id']} {task.get('reason')}; it waits until the user answers")
    if task["status"] in ("completed", "archived"):
        raise ToolError(f"{task['id']} is {task['status']}; reopen it with update_task_tree first if needed")


def outcome(box: ToolContext, task: dict, rec: dict | None, reason: str | None, backend: str | None) -> ToolResult:
    """What the model is told: started, saved for the next reconcile, waiting, refused or ended at once."""
    box.planner.record(
        "spawn",
        task_id=task["id"],
        worker_id=task.get("worker_id"),
        reason=reason or "",
        backend=backend,
    )
    if rec is None:
        if task["status"] == "in_progress":
            return ToolResult(
                f"{task['id']}: spawn of {task.get('worker_id')} is saved; the supervisor did not "
                "answer, it is re-sent at the next reconcile"
            )
        if task["status"] == WAITING_FOR_USER:
            return ToolResult(f"{task['id']} {task.get('reason')}; it starts once the user approves")
        if task["status"] == "pending" and not_before(task) > time.time():
            return ToolResult(
                f"{task['id']} waits until {time.ctime(not_before(task))}: {task.get('reason')}", ok=False
            )
        return ToolResult(f"{task['id']} did not start: {task.get('reason') or 'refused'}", ok=False)
    if rec.get("state") == "exited":
        return ToolResult(
            f"worker {rec['worker_id']} ended at once ({rec.get('outcome')}); {task['id']} is now "
            f"{task['status']}: {task.get('reason')}",
            ok=task["status"] == "completed",
        )
    return ToolResult(
        f"started worker {rec['worker_id']} (pid {rec.get('worker_pid')}, backend "
        f"{rec.get('backend')}) for {task['id']}"
    )


TOOL = Tool(
    name="spawn_task",
    description="Start a Layer 2 worker on a leaf task of the tree (it becomes in_progress). With `command` "
    "it runs that shell command; otherwise an agent CLI works from the task description.",
    properties={
        "task_id": string("an existing leaf task", minLength=1),
        "description": string("replaces the task's description (carry the context the worker needs)"),
        "command": string("shell command to run instead of an agent"),
        "artifacts": {"type": "array", "items": {"type": "string"}, "description": "files it must write"},
        "accept_commands": {"type": "array", "items": {"type": "string"}},
        "budget_minutes": {"type": "number", "minimum": 0.1, "description": "time budget (default AURA_TASK_BUDGET)"},
        "backend": {"type": "string", "enum": BACKENDS, "description": "worker CLI (default AURA_LAYER2_BACKEND)"},
        "executor": {
            "type": "string",
            "enum": ["local", "slurm"],
            "description": "where the worker runs (default AURA_EXECUTOR): this machine or a Slurm job",
        },
        "expects_change": {
            "type": "boolean",
            "description": "git mode: false for an agent task that only reads or reports (default true: "
            "an agent attempt that changed nothing and wrote no named artifact is refused)",
        },
        "reason": string("why now"),
    },
    required=["task_id"],
    run=spawn_task,
)
