"""write_file: the model writes a text file into the project (never the brain's files or the task file)."""

from __future__ import annotations

from aura.runtime.fsutil import atomic_write_text

from .base import Tool, ToolContext, ToolError, ToolResult, string
from .sandbox import check_writable, in_work_tree, inside_project, is_private

PROJECT_FILE_MODE = 0o644  # a file the model writes into the project is the user's, like any other
PRIVATE_FILE_MODE = 0o600
MAX_WRITE_BYTES = 1 << 20


def write_file(box: ToolContext, a: dict) -> ToolResult:
    paths = box.core.paths
    path = inside_project(box.root, a["path"])
    check_writable(paths, path, box.core.state.get("task_file"))
    data = a["content"].encode("utf-8")
    if len(data) > MAX_WRITE_BYTES:
        raise ToolError(f"content is {len(data)} bytes; the limit is {MAX_WRITE_BYTES}")
    if path.is_dir():
        raise ToolError(f"{a['path']} is a folder")
    rel = path.relative_to(box.root.resolve())
    target = in_work_tree(box.core, path)
    atomic_write_text(target, a["content"], mode=PRIVATE_FILE_MODE if is_private(paths, path) else PROJECT_FILE_MODE)
    box.cache.forget(target)
    if target != path:
        box.core.git.commit_brain_write(str(rel))
    box.planner.record("file_written", path=str(rel), bytes=len(data))
    return ToolResult(f"wrote {len(data)} bytes to {rel}")


TOOL = Tool(
    name="write_file",
    description="Write a text file inside the project (not under .aura/ except .aura/memory/, not the task file).",
    properties={"path": string("project-relative path", minLength=1), "content": string("the whole new content")},
    required=["path", "content"],
    run=write_file,
)
