"""update_project_context: set fields of the project context shown to the model every cycle."""

from __future__ import annotations

import time

from .base import Tool, ToolContext, ToolError, ToolResult, string


def update_project_context(box: ToolContext, a: dict) -> ToolResult:
    if not a:
        raise ToolError("give at least one field")
    ctx = box.core.state.setdefault("project_context", {})
    ctx.update(a)  # only the fields given change; the others keep what the model wrote before
    ctx["updated_at"] = time.time()
    box.planner.record("project_context", changed=sorted(a))
    return ToolResult(f"project context updated: {', '.join(sorted(a))}")


TOOL = Tool(
    name="update_project_context",
    description="Set the project context; only the fields given change.",
    properties={
        "final_goal": string("the end state"),
        "success_criteria": string("how success is judged"),
        "global_constraints": string("limits every task must respect"),
        "execution_environment": string("machine, tools, data"),
        "notes": string("anything else"),
    },
    required=[],
    run=update_project_context,
)
