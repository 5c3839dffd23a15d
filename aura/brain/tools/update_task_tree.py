"""update_task_tree: change a task's status. `completed` needs evidence the brain checks itself; on
ROOT it declares the goal done (or given up, with blocked or failed)."""

from __future__ import annotations

from typing import Any

from aura.runtime.vocab import WAITING_FOR_USER

from ..state import ROOT, STATUSES, TERMINAL
from .base import Tool, ToolContext, ToolError, ToolResult, string

CLOSING = ("archived", "blocked", "failed")  # statuses that also close the task's open subtasks


def update_task_tree(box: ToolContext, a: dict) -> ToolResult:
    core = box.core
    task = box.task(a["task_id"])
    new, reason, evidence = a["new_status"], a["reason"], a["evidence"]
    if new == "in_progress":
        raise ToolError("tasks become in_progress only through spawn_task")
    if new == WAITING_FOR_USER:
        raise ToolError("tasks wait for the user only through ask_user")
    if task["id"] == ROOT:
        return root_status(box, new, reason, evidence)
    if task["status"] == "in_progress" and new != "completed":
        raise ToolError(f"{task['id']} has a running worker ({task.get('worker_id')}); kill_task first")
    if new == "completed":
        return claim_done(box, task, reason, evidence)
    targets = [task] + (open_descendants(core, task) if new in CLOSING else [])
    for t in targets:
        core.set_status(t, new, reason, evidence, by="model")
        if new == "blocked":
            core.publish("task_blocked", task_id=t["id"], reason=reason)
    if new == "pending":
        core.state.setdefault("llm", {})["goal_closed"] = False
    return ToolResult(f"{', '.join(t['id'] for t in targets)} -> {new}")


def open_descendants(core: Any, task: dict) -> list[dict]:
    """The subtasks still open under `task`; a running one refuses the change."""
    out, stack = [], list(task.get("children", []))
    while stack:
        t = core.tasks.get(stack.pop())
        if t is None:
            continue
        stack.extend(t.get("children", []))
        if t["status"] == "in_progress":
            raise ToolError(f"{t['id']} under {task['id']} is running; kill_task it first")
        if t["status"] not in TERMINAL:
            out.append(t)
    return out


def claim_done(box: ToolContext, task: dict, reason: str, evidence: str) -> ToolResult:
    core = box.core
    proof = core.verify_done(task, box.planner.cfg.number("AURA_ACCEPTANCE_TIMEOUT"))
    if not proof.ok:
        why = "; ".join(proof.problems) or "no evidence"
        box.planner.record("done_refused", task_id=task["id"], claim=reason, claimed_evidence=evidence, reason=why)
        raise ToolError(
            f"refused: {task['id']} stays {task['status']}: {why}. Give it evidence the brain can "
            "check (a worker that exits 0, the named artifacts written by this attempt, result.md "
            "with `Status: done`, passing acceptance commands)"
        )
    problem = core.accept(task, proof, by="model", claim=f"{evidence} | checked by the brain: ", reason=reason)
    if problem and task["status"] == WAITING_FOR_USER:
        return ToolResult(f"{task['id']} passed its checks; {task.get('reason')}")
    if problem:
        raise ToolError(f"refused: {task['id']} was not merged: {problem}; it goes back for another attempt")
    return ToolResult(f"{task['id']} completed; the brain checked: {task.get('evidence', '')[:600]}")


def root_status(box: ToolContext, new: str, reason: str, evidence: str) -> ToolResult:
    if new == "completed":
        ok, detail = box.planner.confirm_goal(reason, evidence)
        if not ok:
            raise ToolError(f"refused: the goal is not done: {detail}")
        return ToolResult(f"goal done: {detail}")
    if new in ("blocked", "failed"):
        return ToolResult(box.planner.close_goal(new, reason, evidence))
    raise ToolError("ROOT takes completed (goal done), blocked or failed (give up, with the reason)")


TOOL = Tool(
    name="update_task_tree",
    description="Change a task's status with reason and evidence. `completed` is accepted only on evidence "
    "the brain checks itself (exit record, artifacts written by this attempt, result.md, "
    "acceptance commands); ROOT completed declares the goal done.",
    properties={
        "task_id": string("task id, or ROOT", minLength=1),
        "new_status": {"type": "string", "enum": [s for s in STATUSES if s != WAITING_FOR_USER]},
        "reason": string("why", minLength=1),
        "evidence": string("what shows it (files, exit codes, outputs)", minLength=1),
    },
    required=["task_id", "new_status", "reason", "evidence"],
    run=update_task_tree,
)
