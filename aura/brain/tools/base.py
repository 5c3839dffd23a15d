"""What every tool is made of: its spec (name, description, JSON schema, handler), its result, and
the two narrow views it works through (Planner: what the tools need from the planner; ToolContext:
what a handler gets from the toolbox)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import ToolError
from .filecache import FileCache
from .validation import ArgumentChecker

__all__ = ["Planner", "Tool", "ToolContext", "ToolError", "ToolResult", "string"]


@dataclass
class ToolResult:
    text: str
    ok: bool = True
    ends_cycle: bool = False


class Planner(Protocol):
    """What the tools need from the planner (kept narrow so the tools stay testable)."""

    core: Any
    cfg: Any
    memory: Any
    log: Any

    def spawn_refusal(self) -> str | None: ...
    def worker_usage(self) -> dict[str, dict] | None: ...
    def confirm_goal(self, reason: str, evidence: str) -> tuple[bool, str]: ...
    def close_goal(self, status: str, reason: str, evidence: str) -> str: ...
    def record(self, kind: str, **fields: Any) -> None: ...


class ToolContext(Protocol):
    """What a handler works with: the planner, the project folder, the read cache, the task tree."""

    planner: Planner
    root: Path
    cache: FileCache

    @property
    def core(self) -> Any: ...
    def task(self, task_id: str) -> dict: ...


Handler = Callable[[ToolContext, dict], ToolResult]


@dataclass
class Tool:
    """One tool as the model sees it (name, description, input schema) and the code that runs it.

    `needs_key`: a setting without which the tool is neither offered nor run."""

    name: str
    description: str
    properties: dict[str, Any]
    required: list[str]
    run: Handler
    needs_key: str | None = None
    checker: ArgumentChecker = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.checker = ArgumentChecker(self.input_schema())

    def input_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": self.properties, "required": self.required}

    def definition(self) -> dict[str, Any]:
        """The entry of the model's tool list (part of the cached prompt prefix: keep it stable)."""
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema()}


def string(desc: str, **kw: Any) -> dict[str, Any]:
    """A string property's schema."""
    return {"type": "string", "description": desc, **kw}
