"""The toolbox: runs one call of the model, whatever it sent. A bad call (unknown tool, wrong types,
missing or unknown arguments, a path outside the project) never raises out of `Toolbox.run`: it
becomes an error result the model reads and can correct."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from .base import Planner, ToolError, ToolResult
from .catalogue import BY_NAME, NAMES, offered
from .filecache import FileCache


class Toolbox:
    """One per planner: the project folder, the read cache, and the dispatch (a ToolContext)."""

    def __init__(self, planner: Planner):
        self.planner = planner
        cfg = planner.cfg
        self.root: Path = planner.core.paths.root
        self.cache = FileCache(cfg.number("AURA_FILE_CACHE_TTL"), cfg.flag("AURA_FILE_CACHE"))

    def run(self, name: str, args: Any) -> ToolResult:
        """Dispatch one call; every failure becomes an error result, never an exception."""
        tool = BY_NAME.get(name)
        if tool is None:
            return ToolResult(f"unknown tool {name!r}; available: {', '.join(NAMES)}", ok=False)
        if not offered(tool, self.planner.cfg):
            return ToolResult(f"{name} is not configured (no {tool.needs_key})", ok=False)
        try:
            return tool.run(self, tool.checker.check(args))
        except ToolError as exc:
            return ToolResult(f"{name}: {exc}", ok=False)
        except Exception as exc:  # a bug in a tool is the tool's failure, not the brain's
            self.planner.log.error("tool_crashed", tool=name, error=repr(exc), trace=traceback.format_exc()[-1500:])
            return ToolResult(f"{name} failed: {type(exc).__name__}: {exc}", ok=False)

    @property
    def core(self) -> Any:
        return self.planner.core

    def task(self, task_id: str) -> dict:
        task = self.core.tasks.get(task_id)
        if task is None:
            raise ToolError(f"there is no task {task_id!r}; the tree's ids are listed in the snapshot")
        return task
