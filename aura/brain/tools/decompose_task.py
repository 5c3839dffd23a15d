"""decompose_task: add subtasks under a task (ROOT for the top-level categories)."""

from __future__ import annotations

from typing import Any

from aura.runtime.paths import safe_name

from ..state import ROOT
from .base import Tool, ToolContext, ToolError, ToolResult, string

SUBTASK_FIELDS = (
    "description",
    "acceptance_criteria",
    "artifacts",
    "command",
    "accept_commands",
    "budget_minutes",
    "expects_change",
)

SUBTASK = {
    "type": "object",
    "properties": {
        "id": string("optional id; root children take the current batch prefix (A1, A2 ...), others <parent>.<n>"),
        "description": string("what to do, with the context a fresh worker needs", minLength=1),
        "acceptance_criteria": string("what proves it done"),
        "artifacts": {
            "type": "array",
            "items": {"type": "string"},
            "description": "files (project-relative) it must write",
        },
        "command": string("a shell command that does the task (runs with the shell backend)"),
        "accept_commands": {
            "type": "array",
            "items": {"type": "string"},
            "description": "commands that must exit 0 before it counts as done",
        },
        "budget_minutes": {"type": "number", "minimum": 0.1, "description": "time budget of each attempt"},
        "expects_change": {"type": "boolean", "description": "git mode: false for a task that only reads or reports"},
    },
    "required": ["description"],
}


def decompose_task(box: ToolContext, a: dict) -> ToolResult:
    core = box.core
    parent = box.task(a["parent_task_id"])
    if parent["status"] in ("in_progress", "completed", "archived") and parent["id"] != ROOT:
        raise ToolError(f"{parent['id']} is {parent['status']}; subtasks go under an open task")
    added = []
    for sub in a["subtasks"]:
        tid = new_id(core, parent, sub.get("id"))
        extra = {k: sub[k] for k in SUBTASK_FIELDS if k in sub}
        title = sub["description"].strip().splitlines()[0][:100]
        core.add_task(
            tid,
            title,
            parent=parent["id"],
            kind="command" if sub.get("command") else "agent",
            batch=batch_prefix(core),
            **extra,
        )
        added.append(tid)
    box.planner.record("decomposed", parent=parent["id"], added=added)
    return ToolResult(f"added under {parent['id']}: {', '.join(added)}")


def batch_prefix(core: Any) -> str:
    return (core.state.get("task_batch") or {}).get("prefix") or "A"


def new_id(core: Any, parent: dict, wanted: str | None) -> str:
    """Keep a usable unique id; otherwise the next <prefix><n> (root) or <parent>.<n>."""
    if wanted and safe_name(wanted) == wanted and wanted not in core.tasks and wanted != ROOT:
        return wanted
    base = batch_prefix(core) if parent["id"] == ROOT else parent["id"] + "."
    n = 1
    while f"{base}{n}" in core.tasks:
        n += 1
    return f"{base}{n}"


TOOL = Tool(
    name="decompose_task",
    description="Add subtasks under a task (ROOT for top-level categories).",
    properties={
        "parent_task_id": string("parent id, or ROOT", minLength=1),
        "subtasks": {"type": "array", "items": SUBTASK, "minItems": 1, "maxItems": 30},
    },
    required=["parent_task_id", "subtasks"],
    run=decompose_task,
)
