"""write_memory: add an entry to long-term memory (MEMORY.md, shown in every later cycle)."""

from __future__ import annotations

from ..memory import MEM_TYPES
from .base import Tool, ToolContext, ToolResult, string


def write_memory(box: ToolContext, a: dict) -> ToolResult:
    box.planner.memory.append(a["mem_type"], a["content"])
    box.planner.record("memory", mem_type=a["mem_type"], content=a["content"][:300])
    return ToolResult(f"remembered ({a['mem_type']})")


TOOL = Tool(
    name="write_memory",
    description="Add an entry to long-term memory (MEMORY.md, shown in every later cycle).",
    properties={
        "mem_type": {"type": "string", "enum": list(MEM_TYPES)},
        "content": string("the fact, lesson, pattern or decision", minLength=1, maxLength=4000),
    },
    required=["mem_type", "content"],
    run=write_memory,
)
