"""Completion summaries: one Markdown file per task that reached an end state, and a final report.

Every finished task gets one, because a person coming back after a day wants to read what it
ended as, why, the evidence, what it cost, and the tail of its report and errors. Files:
`.aura/summaries/<task>_<YYYYmmdd_HHMMSS>.md`.
"""

from __future__ import annotations

import time
from pathlib import Path

from aura.runtime.fsutil import atomic_write_text
from aura.runtime.paths import ProjectPaths, safe_name

from . import costs as costmod
from .state import attempt_no, counts, walk


def summaries_dir(paths: ProjectPaths) -> Path:
    return paths.data / "summaries"


def _tail(path: Path, chars: int) -> str | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - chars))
            return fh.read().decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def task_summary(paths: ProjectPaths, state: dict, task: dict, workers: dict[str, dict]) -> str:
    book = (state.get("costs") or {}).get("workers") or {}
    usd = sum(float(book.get(w, {}).get("usd") or 0) for w in task.get("workers", []))
    lines = [
        f"# {task['id']}: {task.get('title', '')}",
        "",
        f"- status: **{task['status']}** ({time.strftime('%Y-%m-%d %H:%M:%S')})",
        f"- reason: {task.get('reason') or '-'}",
        f"- evidence: {task.get('evidence') or '-'}",
        f"- attempts: {attempt_no(task)}; workers: {', '.join(task.get('workers') or []) or 'none'}",
        f"- worker cost: ${usd:.4f}",
        "",
    ]
    for wid in task.get("workers") or []:
        w = workers.get(wid) or {}
        ex = w.get("exit") or {}
        lines.append(
            f"- {wid}: {w.get('outcome', w.get('state', 'unknown'))}, exit {ex.get('exit_code')}"
            + (f", signal {ex['signal']}" if ex.get("signal") else "")
        )
    lines += _git_lines(task)
    if task.get("artifacts"):
        lines += ["", "## Files it named"]
        for rel in task["artifacts"]:
            p = paths.root / rel
            lines.append(f"- `{rel}`: " + (f"{p.stat().st_size} bytes" if p.exists() else "missing"))
    task_dir = paths.task_dir(task["id"])
    result = _tail(task_dir / "result.md", 2000)
    if result:
        lines += ["", "## result.md (end)", "", result]
    errors = _tail(task_dir / "error.log", 1000)
    if errors:
        lines += ["", "## error.log (end)", "", "```", errors, "```"]
    return "\n".join(lines) + "\n"


def _git_lines(task: dict) -> list[str]:
    known = task.get("git") or {}
    if not known.get("branch"):
        return []
    out = ["", "## Git", "", f"- attempt branch: `{known['branch']}` from {str(known.get('base'))[:10]}"]
    if known.get("merge_commit"):
        out.append(f"- merged as {known['merge_commit']}")
    if known.get("diffstat"):
        out += ["", "```", str(known["diffstat"]), "```"]
    return out


def write_task_summary(paths: ProjectPaths, state: dict, task: dict, workers: dict[str, dict]) -> Path:
    folder = summaries_dir(paths)
    path = folder / f"{safe_name(task['id'])}_{time.strftime('%Y%m%d_%H%M%S')}.md"
    # Not fsynced: a report, whose facts the state and the workers' records keep.
    atomic_write_text(path, task_summary(paths, state, task, workers), sync=False)
    return path


def _git_report(state: dict) -> list[str]:
    """The integration branch, what was merged into it, and the command that brings it in: Aura
    never merges into the user's branch itself."""
    info = state.get("git") or {}
    if not info.get("enabled"):
        return []
    tasks = state.get("tasks") or {}
    out = ["", "## Git", "", f"- integration branch: `{info.get('branch')}` from {str(info.get('base'))[:10]}"]
    for m in info.get("merged") or []:
        title = str((tasks.get(m.get("task_id")) or {}).get("title") or "")[:80]
        out.append(f"- merged {m.get('task_id')} ({m.get('worker_id')}) as {str(m.get('commit'))[:10]}: {title}")
    into = info.get("user_branch") or "your branch"
    out += ["", f"Bring it into {into}: `git checkout {into} && git merge {info.get('branch')}`"]
    return out


def write_final_report(paths: ProjectPaths, state: dict) -> Path:
    c = counts(state)
    s = costmod.summary(state)
    lines = [
        f"# Final report: {state.get('mission') or ''}",
        "",
        f"- finished: {time.strftime('%Y-%m-%d %H:%M:%S')} after {state.get('total_cycles', 0)} cycles",
        "- tasks: " + ", ".join(f"{k} {v}" for k, v in c.items() if v),
        f"- cost: ${s['total_usd']:.4f} (brain ${s['brain_usd']:.4f} in {s['brain_calls']} calls, "
        f"workers ${s['workers_usd']:.4f})",
        "",
        "## Tasks",
        "",
    ]
    for depth, task in walk(state):
        if depth:
            lines.append(f"{'  ' * (depth - 1)}- {task['id']} [{task['status']}] {task.get('title', '')[:100]}")
    lines += _git_report(state)
    path = summaries_dir(paths) / "final_report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
