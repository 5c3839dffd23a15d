"""Where the file tools may read and write: inside the project folder, never a file that may hold keys,
never the brain's own files (its data folder, wherever `--data-dir` put it, except its memory folder)
or the user's task file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aura.runtime.paths import DATA_DIRNAME, ProjectPaths

from .errors import ToolError

SECRET_NAMES = ("config.env",)


def inside_project(root: Path, rel: str) -> Path:
    """Resolve `rel` (symlinks too) and refuse anything outside the project folder."""
    root = root.resolve()
    path = Path(rel).expanduser()
    path = (path if path.is_absolute() else root / path).resolve()
    if path != root and root not in path.parents:
        raise ToolError(f"{rel} is outside the project folder {root}; file tools work inside it only")
    if path.name in SECRET_NAMES:
        raise ToolError(f"{rel} may hold API keys; it is not readable or writable by the model")
    return path


def check_writable(paths: ProjectPaths, path: Path, task_file: str | None) -> None:
    """Refuse a write into the run's data folder (its memory folder excepted), into the project's
    `.aura/` (the project's settings, or another run's data), or over the task file."""
    root = paths.root.resolve()
    data = paths.data.resolve()
    if _within(path, data) and not _within(path, paths.memory_dir.resolve(), strictly=True):
        raise ToolError(
            f"the brain's own files under {_shown(data, root)}/ are not writable "
            f"(except {_shown(paths.memory_dir.resolve(), root)}/)"
        )
    project_dir = (root / DATA_DIRNAME).resolve()
    if project_dir != data and _within(path, project_dir):
        raise ToolError(
            f"{DATA_DIRNAME}/ holds the project's settings and other runs' files; it is not writable "
            f"(this run's memory is {_shown(paths.memory_dir.resolve(), root)}/)"
        )
    if task_file and path == Path(task_file).resolve():
        raise ToolError("the task file is the user's: it is not writable by the model")


def is_private(paths: ProjectPaths, path: Path) -> bool:
    """A file under the data folder (the memory folder) is Aura's, private to the user."""
    return paths.data.resolve() in path.resolve().parents


def _within(path: Path, folder: Path, strictly: bool = False) -> bool:
    return folder in path.parents or (not strictly and path == folder)


def _shown(folder: Path, root: Path) -> str:
    return str(folder.relative_to(root)) if root in folder.parents else str(folder)


def in_work_tree(core: Any, path: Path) -> Path:
    """Git mode: a project path (outside the data folder) means the run's merged work, the
    integration worktree, never the user's own tree."""
    git = getattr(core, "git", None)
    if git is None or not git.enabled:
        return path
    root, data = core.paths.root.resolve(), core.paths.data.resolve()
    if path == data or data in path.parents:
        return path
    return (git.work_root() / path.relative_to(root)).resolve()
