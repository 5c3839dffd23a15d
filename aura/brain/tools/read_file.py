"""read_file: a bounded read of a project file (a line range, its head, its tail, or both)."""

from __future__ import annotations

from .base import Tool, ToolContext, ToolError, ToolResult, string
from .filecache import MAX_READ_CHARS, excerpt
from .sandbox import in_work_tree, inside_project


def read_file(box: ToolContext, a: dict) -> ToolResult:
    path = in_work_tree(box.core, inside_project(box.root, a["path"]))
    if path.is_dir():
        raise ToolError(f"{a['path']} is a folder; use list_directory")
    if not path.exists():
        raise ToolError(f"{a['path']} does not exist")
    text = box.cache.read(path, a.get("mode", "auto"))
    max_chars = a.get("max_chars", 2000)
    if a.get("start_line") or a.get("end_line"):
        lines = text.splitlines()
        start = max(1, a.get("start_line") or 1)
        end = a.get("end_line") or len(lines)
        text = "\n".join(f"{i}: {ln}" for i, ln in enumerate(lines[start - 1 : end], start))
    return ToolResult(excerpt(text, max_chars, a.get("mode", "auto")) or "(empty file)")


TOOL = Tool(
    name="read_file",
    description="Read a file inside the project (bounded). Use the snapshot first; read only what you need.",
    properties={
        "path": string("project-relative path", minLength=1),
        "max_chars": {"type": "integer", "minimum": 1, "maximum": MAX_READ_CHARS, "description": "default 2000"},
        "mode": {"type": "string", "enum": ["auto", "head", "tail", "full"], "description": "auto: head and tail"},
        "start_line": {"type": "integer", "minimum": 0},
        "end_line": {"type": "integer", "minimum": 0},
    },
    required=["path"],
    run=read_file,
)
