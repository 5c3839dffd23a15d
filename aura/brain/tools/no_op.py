"""no_op: the model ends its cycle (nothing more to do until something changes)."""

from __future__ import annotations

from .base import Tool, ToolContext, ToolResult, string


def no_op(box: ToolContext, a: dict) -> ToolResult:
    return ToolResult(f"Sleeping. Reason: {a['reason']}", ends_cycle=True)


TOOL = Tool(
    name="no_op",
    description="End this cycle: nothing more to do until something changes.",
    properties={"reason": string("why", minLength=1), "next_check_focus": string("what to look at next time")},
    required=["reason"],
    run=no_op,
)
