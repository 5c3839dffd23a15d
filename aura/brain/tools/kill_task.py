"""kill_task: stop a task's running worker; the task becomes killed only if the kill happened."""

from __future__ import annotations

from .. import questions
from .base import Tool, ToolContext, ToolError, ToolResult, string


def kill_task(box: ToolContext, a: dict) -> ToolResult:
    task = box.task(a["task_id"])
    reason = a.get("reason") or "killed by the model"
    if task["status"] != "in_progress":
        raise ToolError(f"the kill did not happen: {task['id']} is {task['status']}, not running")
    if questions.needs_approval(box.core, task, "kill"):
        q = questions.ask(
            box.core,
            f"kill the worker of {task['id']} ({task.get('title', '')[:120]}): {reason}",
            options=["approve", "deny"],
            task_id=task["id"],
            blocking=False,
            by="model",
            kind=questions.APPROVAL,
            action="kill",
        )
        return ToolResult(f"the kill of {task['id']} waits for the user's approval ({q['id']}); it runs on meanwhile")
    questions.use_approval(task, "kill")
    result = box.core.kill(task, reason)
    if not result.get("killed"):
        raise ToolError(
            f"the kill did not happen: {result.get('message') or 'no reason given'}; "
            f"{task['id']} stays {task['status']}"
        )
    box.core.set_status(
        task,
        "killed",
        reason,
        f"the supervisor sent {result.get('signal', 'a signal')} to worker {task.get('worker_id')}",
        by="model",
    )
    return ToolResult(f"{task['id']}: worker {task.get('worker_id')} is being stopped; task killed")


TOOL = Tool(
    name="kill_task",
    description="Stop a task's running worker; the task becomes killed only if the kill happened.",
    properties={"task_id": string("task whose worker to stop", minLength=1), "reason": string("why")},
    required=["task_id"],
    run=kill_task,
)
