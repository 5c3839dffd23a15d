"""What a worker is given: its task.md, and the spawn request for its backend."""

from __future__ import annotations

from pathlib import Path

from aura.config import Config
from aura.fsutil import atomic_write_text

from .state import ROOT

RESULT_MD_GUIDE = """\
When you finish (or give up), write `{result}` with a status line and a short report:

    Status: done            (or: partial / failed / blocked)
    ## What was done
    ## Files changed or created
    ## How it was checked

Aura checks this file, the files the task names and its acceptance commands itself; a
status of done without the evidence is refused.
"""


def render_task_md(state: dict, task: dict, cfg: Config, task_dir: Path) -> str:
    parent = state["tasks"].get(task.get("parent") or ROOT, {})
    lines = [f"# Task {task['id']}: {task.get('title', '')}", ""]
    lines += ["## Goal of the whole project", "", state.get("mission") or "(no mission)", ""]
    if parent and parent.get("id") != ROOT:
        lines += ["## Part of", "", f"{parent['id']}: {parent.get('title', '')}", ""]
    if task.get("description"):
        lines += ["## Details", "", task["description"], ""]
    if task.get("artifacts"):
        lines += ["## Evidence this task must leave", ""] + [f"- `{a}`" for a in task["artifacts"]] + [""]
    if task.get("resource_retry_required"):
        lines += ["## Resource limits", "", "A previous attempt was killed for exceeding its resource limits. "
                  "Use less: smaller batches, fewer processes or threads, less data in memory.", ""]
    budget = float(task.get("budget_minutes") or cfg.float("AURA_TASK_BUDGET"))
    lines += ["## Constraints", "", f"- Time budget: {budget:g} minutes (enforced: the worker is stopped after it).",
              f"- Turn limit: {cfg.int('AURA_MAX_TURNS')} model turns (agent workers).",
              f"- Your workspace is {task_dir}: keep scratch files there; `output.jsonl`/`output.txt` and "
              "`error.log` in it are Aura's records of your output.",
              "- Do not start background processes that outlive you (no nohup, screen, tmux, cron).",
              "- Do not kill processes by name (no pkill/killall).", ""]
    lines += ["## Output", "", RESULT_MD_GUIDE.format(result=task_dir / "result.md")]
    return "\n".join(lines)


def write_task_md(task_dir: Path, state: dict, task: dict, cfg: Config) -> Path:
    task_dir.mkdir(parents=True, exist_ok=True)
    path = task_dir / "task.md"
    atomic_write_text(path, render_task_md(state, task, cfg, task_dir))
    return path


def spawn_spec(task: dict, cfg: Config, project_root: Path, task_dir: Path) -> dict:
    """Backend, command and limits for one attempt of a task."""
    limits = dict(task.get("limits") or {})
    mounts = artifact_folders(task, project_root)
    if task.get("command"):
        return {"backend": "shell", "command": task["command"], "cwd": str(project_root), "limits": limits,
                "mounts": mounts, "budget_s": float(task.get("budget_minutes") or cfg.float("AURA_TASK_BUDGET")) * 60}
    prompt = (f"Read the task file {task_dir / 'task.md'} and carry out the task it describes. "
              f"Work in the project folder {project_root}.")
    return {"backend": cfg.str("AURA_LAYER2_BACKEND"), "prompt": prompt, "cwd": str(project_root), "limits": limits,
            "mounts": mounts, "budget_s": float(task.get("budget_minutes") or cfg.float("AURA_TASK_BUDGET")) * 60}


def artifact_folders(task: dict, project_root: Path) -> list[str]:
    """The folders of the files a task names: what a sandboxed worker may write besides its workspace."""
    root = project_root.resolve()
    out: list[str] = []
    for rel in task.get("artifacts") or []:
        folder = (root / rel).resolve().parent
        if (folder == root or root in folder.parents) and str(folder) not in out:
            out.append(str(folder))
    return out
