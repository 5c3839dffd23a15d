"""The tools, in the order the model sees them. The list is part of the cached prompt prefix: its
order and every definition must stay stable from one cycle (and one release) to the next."""

from __future__ import annotations

from typing import Any

from . import (
    ask_user,
    decompose_task,
    kill_task,
    list_directory,
    list_running_tasks,
    no_op,
    read_file,
    spawn_task,
    update_project_context,
    update_task_tree,
    web_fetch,
    web_search,
    write_file,
    write_memory,
)
from .base import Tool

TOOLS: tuple[Tool, ...] = tuple(
    m.TOOL
    for m in (
        spawn_task,
        kill_task,
        list_running_tasks,
        update_task_tree,
        decompose_task,
        update_project_context,
        write_memory,
        read_file,
        write_file,
        list_directory,
        web_fetch,
        web_search,
        no_op,
        ask_user,
    )
)
BY_NAME: dict[str, Tool] = {t.name: t for t in TOOLS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def offered(tool: Tool, cfg: Any) -> bool:
    """Whether the tool is configured (a tool that needs a key is offered only with it)."""
    return not tool.needs_key or bool(cfg.text(tool.needs_key))


def definitions(cfg: Any) -> list[dict]:
    """Tool definitions in a fixed order (a stable prompt prefix); web_search only with a key."""
    return [t.definition() for t in TOOLS if offered(t, cfg)]


def validate(name: str, args: Any) -> dict:
    """Check a call's arguments against the tool's schema; ToolError says every problem."""
    return BY_NAME[name].checker.check(args)
