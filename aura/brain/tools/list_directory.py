"""list_directory: a project folder's entries with file sizes (folders first, bounded)."""

from __future__ import annotations

from .base import Tool, ToolContext, ToolError, ToolResult, string
from .sandbox import in_work_tree, inside_project

MAX_LIST = 200


def list_directory(box: ToolContext, a: dict) -> ToolResult:
    path = in_work_tree(box.core, inside_project(box.root, a.get("path") or "."))
    if not path.is_dir():
        raise ToolError(f"{a.get('path')} is not a folder")
    rows = []
    for child in sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name))[:MAX_LIST]:
        try:
            rows.append(f"{child.name}/" if child.is_dir() else f"{child.name}  {child.stat().st_size} B")
        except OSError:
            rows.append(f"{child.name}  (unreadable)")
    more = sum(1 for _ in path.iterdir()) - len(rows)
    return ToolResult("\n".join(rows + ([f"… {more} more"] if more > 0 else [])) or "(empty folder)")


TOOL = Tool(
    name="list_directory",
    description="List a folder inside the project with file sizes.",
    properties={"path": string("project-relative path (default: the project folder)")},
    required=[],
    run=list_directory,
)
