"""`.aura/state/progress.md`: the run at a glance, rendered each time the brain compares its whole
tree (a second after a change at most)."""

from __future__ import annotations

import time
from pathlib import Path

from aura.runtime.fsutil import atomic_write_text
from aura.runtime.vocab import ARCHIVED, BLOCKED, COMPLETED, IN_PROGRESS, PENDING, TASK_FAILED, TASK_KILLED

from .state import counts, walk

ICONS = {
    PENDING: "[ ]",
    IN_PROGRESS: "[~]",
    COMPLETED: "[x]",
    BLOCKED: "[!]",
    TASK_FAILED: "[F]",
    ARCHIVED: "[-]",
    TASK_KILLED: "[K]",
}


def render(state: dict, recent: list[dict]) -> str:
    c = counts(state)
    lines = [
        f"# Progress: {state.get('mission') or '(no mission)'}",
        "",
        f"Updated {time.strftime('%Y-%m-%d %H:%M:%S')} · cycle {state.get('total_cycles', 0)} · "
        + " · ".join(f"{k} {v}" for k, v in c.items() if v),
        "",
    ]
    run = state.get("run") or {}
    if run.get("finished"):
        lines += [
            f"**Run finished** at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run.get('finished_at', 0)))}",
            "",
        ]
    lines += ["## Tasks", ""]
    for depth, task in walk(state):
        if depth == 0:
            continue
        reason = f" — {task['reason']}" if task.get("reason") else ""
        lines.append(
            f"{'  ' * (depth - 1)}- {ICONS.get(task['status'], '[?]')} **{task['id']}** "
            f"{task.get('title', '')[:100]}{reason[:160]}"
        )
    lines += ["", "## Recent decisions", ""]
    for d in reversed(recent[-15:]):
        if d.get("kind") == "status":
            when = time.strftime("%H:%M:%S", time.localtime(d.get("ts", 0)))
            lines.append(
                f"- {when} {d.get('task_id')}: {d.get('old')} → {d.get('new')} — {d.get('reason', '')[:120]}"
                f" (evidence: {str(d.get('evidence', ''))[:160]})"
            )
    return "\n".join(lines) + "\n"


def write(path: Path, state: dict, recent: list[dict]) -> None:
    atomic_write_text(path, render(state, recent), sync=False)  # a view, rendered anew a second later
