"""What a worker is given: its task.md, and the spawn request for its backend."""

from __future__ import annotations

import itertools
from pathlib import Path

from aura.runtime.config import Config
from aura.runtime.fsutil import atomic_write_text, make_dirs
from aura.runtime.vocab import PENDING, SHELL

from .questions import WORKER_FILE, task_md_lines
from .state import ROOT, attempt_no

RESULT_MD_GUIDE = """\
When you finish (or give up), write `{result}` with a status line and a short report:

    Status: done            (or: partial / failed / blocked)
    ## What was done
    ## Files changed or created
    ## How it was checked

Aura checks this file, the files the task names and its acceptance commands itself; a
status of done without the evidence is refused.
"""


LONG_JOBS_GUIDE = """\
If the task needs a job that runs longer than you should stay (a training run, a long
benchmark), start it as your own child process, send its output to a log file in your
workspace, and register it in `{registry}`:

    {{"managed_subprocesses": [{{"pid": 12345, "started_at": "2026-01-01T12:00:00+00:00",
                               "kind": "training", "log_path": "{task_dir}/train_progress.log"}}]}}

Aura then keeps this task running after you exit, counts the log's growth as progress, holds
the job to the resource limits, and records how it ended. Write checkpoints so a restarted job
can resume. Anything you leave running that is not registered is stopped when you exit. Do not
detach jobs from yourself (no nohup, setsid, screen, tmux or cron), and never kill processes by
name (no pkill or killall python: other programs, Aura's included, run under that name).
"""
QUESTION_GUIDE = """\
If you cannot go on without a decision only a person can make (which data set, whether something
may be deleted, which of two designs), write the question to `{path}`: the question first, then
each option on its own line starting with `- `. Then stop and exit. Aura asks the person running
it; your next attempt (or your resumed session) gets the answer. Decide yourself whatever you can.
"""
SIBLINGS_SHOWN = 12


def render_task_md(state: dict, task: dict, cfg: Config, task_dir: Path) -> str:
    lines = [f"# Task {task['id']}: {task.get('title', '')}", ""]
    lines += _attempt_section(task)
    lines += ["## Goal of the whole project", "", state.get("mission") or "(no mission)", ""]
    lines += _context_section(state)
    lines += _hierarchy_section(state, task)
    if task.get("description"):
        lines += ["## Details", "", task["description"], ""]
    if task.get("acceptance_criteria"):
        lines += ["## Done means", "", str(task["acceptance_criteria"]), ""]
    lines += task_md_lines(task)
    if task.get("artifacts"):
        lines += ["## Evidence this task must leave", ""] + [f"- `{a}`" for a in task["artifacts"]] + [""]
    lines += _siblings_section(state, task)
    lines += _resource_section(task, cfg)
    budget = float(task.get("budget_minutes") or cfg.number("AURA_TASK_BUDGET"))
    lines += [
        "## Constraints",
        "",
        f"- Time budget: {budget:g} minutes for you (enforced: you are stopped after it; "
        "jobs you registered are not bound by it).",
        f"- Turn limit: {cfg.integer('AURA_MAX_TURNS')} model turns (agent workers).",
        f"- Your workspace is {task_dir}: keep scratch files there; `output.jsonl`/`output.txt` and "
        "`error.log` in it are Aura's records of your output.",
        "",
    ]
    lines += _git_section(task, cfg)
    lines += ["## Long-running jobs", "", LONG_JOBS_GUIDE.format(registry=task_dir / "process.json", task_dir=task_dir)]
    lines += ["## Asking the person running Aura", "", QUESTION_GUIDE.format(path=task_dir / WORKER_FILE)]
    lines += ["## Output", "", RESULT_MD_GUIDE.format(result=task_dir / "result.md")]
    return "\n".join(lines)


def _git_section(task: dict, cfg: Config) -> list[str]:
    """Git mode: where the worker is, that it may commit, and why the previous attempt did not merge."""
    known = task.get("git") or {}
    if not known.get("worktree"):
        return []
    out = [
        "## Where you work (git)",
        "",
        f"You work in {known.get('workdir') or known['worktree']}, in a git worktree of the project on its own branch "
        f"`{known.get('branch')}`, made for this attempt from the run's current work. Other workers have "
        "their own worktrees; nothing you do here touches theirs or the user's. You may commit here; "
        "Aura commits what you leave uncommitted and merges your branch once it has checked your "
        "evidence. Files git ignores are not merged: name them as evidence for Aura to keep them.",
        "",
    ]
    conflict = task.get("merge_conflict") or {}
    if conflict:
        out += [
            "## Why the previous attempt was not merged",
            "",
            "Your worktree starts from the newer work it could not be merged with (commit "
            f"{str(conflict.get('head', ''))[:10]}). Redo the change on top of it.",
            "",
        ]
        if conflict.get("files"):
            out += ["Conflicting files: " + ", ".join(f"`{f}`" for f in conflict["files"]), ""]
        if conflict.get("hunks"):
            out += ["The conflicting hunks:", "", "```diff", str(conflict["hunks"]).rstrip(), "```", ""]
        for problem in conflict.get("failed_checks") or []:
            out.append(f"- {problem}")
        if conflict.get("failed_checks"):
            out.append("")
    return out


def _attempt_section(task: dict) -> list[str]:
    """Which attempt this is (the same number as in `aura history`, `status` and the worker id), and
    how the one before it ended."""
    n = attempt_no(task)
    if not n:
        return []
    out = [f"Attempt {n} of this task (worker {task.get('worker_id')})."]
    if n > 1 and task.get("reason"):
        out.append(f"The previous attempt ended: {task['reason']}")
    return out + [""]


def _context_section(state: dict) -> list[str]:
    ctx = {k: v for k, v in (state.get("project_context") or {}).items() if k != "updated_at" and v}
    if not ctx:
        return []
    return ["## Project context", "", *[f"- {k}: {str(v)[:500]}" for k, v in ctx.items()], ""]


def _hierarchy_section(state: dict, task: dict) -> list[str]:
    """Where the task sits: the path from the top of the tree down to it."""
    path, seen = [], set()
    node = state["tasks"].get(task.get("parent") or ROOT)
    while node and node.get("id") != ROOT and node["id"] not in seen:
        seen.add(node["id"])
        path.append(f"{node['id']}: {node.get('title', '')}")
        node = state["tasks"].get(node.get("parent") or ROOT)
    if not path:
        return []
    return ["## Part of", "", " > ".join(reversed(path)), ""]


def _siblings_section(state: dict, task: dict) -> list[str]:
    """The other tasks under the same parent, so a worker neither redoes nor undoes their work."""
    tasks = state["tasks"]
    parent = task.get("parent") or ROOT
    children = (tasks.get(parent) or {}).get("children") or ()
    others = len(children) - 1  # add_task lists each task under its parent once; no search of the list
    if others <= 0:
        return []
    ids = itertools.islice((c for c in children if c != task["id"]), SIBLINGS_SHOWN)
    peers = [tasks[c] for c in ids if c in tasks]  # the first few of its parent's list: no walk of the tree
    out = ["## Other tasks beside this one", ""]
    for t in peers:
        why = f" ({str(t['reason'])[:160]})" if t.get("reason") and t.get("status") != PENDING else ""
        out.append(f"- {t['id']} [{t.get('status', PENDING)}] {t.get('title', '')}{why}")
    if others > SIBLINGS_SHOWN:
        out.append(f"- and {others - SIBLINGS_SHOWN} more")
    return out + [""]


def _resource_section(task: dict, cfg: Config) -> list[str]:
    """The resource limits in force for this task, so a worker can stay inside them."""
    from aura.runtime.limits import LIMIT_KEYS, guard_mode

    overrides = task.get("limits") or {}
    enforced = guard_mode(str(overrides.get(LIMIT_KEYS[0], cfg.text(LIMIT_KEYS[0])))) == "on"
    active = [
        f"- {key} = {float(value):g}"
        for key in LIMIT_KEYS[1:]
        if enforced and (value := overrides.get(key, cfg.number(key)))
    ]
    retry = (
        [
            "A previous attempt was killed for exceeding its resource limits. Use less: smaller batches, "
            "fewer processes or threads, less data in memory.",
            "",
        ]
        if task.get("resource_retry_required")
        else []
    )
    if not active and not retry:
        return []
    out = ["## Resource limits", "", *retry]
    if active:
        out += [
            "The watchdog stops a worker (you and your jobs together) whose use stays over one of these "
            "for several samples in a row; a task killed twice is blocked:",
            *active,
            "",
        ]
    return out


def write_task_md(task_dir: Path, state: dict, task: dict, cfg: Config) -> Path:
    make_dirs(task_dir, 0o700)
    path = task_dir / "task.md"
    # Not fsynced: it is rendered anew for every attempt, and no worker outlives the machine.
    atomic_write_text(path, render_task_md(state, task, cfg, task_dir), sync=False)
    return path


def spawn_spec(task: dict, cfg: Config, project_root: Path, task_dir: Path) -> dict:
    """Backend, command, limits and executor for one attempt of a task."""
    spec = _spec(task, cfg, project_root, task_dir)
    if task.get("executor"):
        spec["executor"] = task["executor"]
    return spec


def _spec(task: dict, cfg: Config, project_root: Path, task_dir: Path) -> dict:
    limits = dict(task.get("limits") or {})
    mounts = artifact_folders(task, project_root)
    if task.get("command"):
        return {
            "backend": SHELL,
            "command": task["command"],
            "cwd": str(project_root),
            "limits": limits,
            "mounts": mounts,
            "budget_s": float(task.get("budget_minutes") or cfg.number("AURA_TASK_BUDGET")) * 60,
        }
    prompt = agent_prompt(task_dir, project_root)
    return {
        "backend": cfg.text("AURA_LAYER2_BACKEND"),
        "prompt": prompt,
        "cwd": str(project_root),
        "limits": limits,
        "mounts": mounts,
        "budget_s": float(task.get("budget_minutes") or cfg.number("AURA_TASK_BUDGET")) * 60,
    }


def agent_prompt(task_dir: Path, work_root: Path) -> str:
    return (
        f"Read the task file {task_dir / 'task.md'} and carry out the task it describes. "
        f"Work in the project folder {work_root}."
    )


def retarget_spec(spec: dict, task: dict, project_root: Path, worktree: Path) -> dict:
    """The same attempt, run in its own git worktree instead of the project folder."""
    out = {**spec, "cwd": str(worktree), "mounts": artifact_folders(task, worktree)}
    if "prompt" in spec:
        out["prompt"] = str(spec["prompt"]).replace(f"Work in the project folder {project_root}.", "").strip()
        out["prompt"] = f"{out['prompt']} Work in the project folder {worktree}."
    return out


def artifact_folders(task: dict, project_root: Path) -> list[str]:
    """The folders of the files a task names: what a sandboxed worker may write besides its workspace."""
    root = project_root.resolve()
    out: list[str] = []
    for rel in task.get("artifacts") or []:
        folder = (root / rel).resolve().parent
        if (folder == root or root in folder.parents) and str(folder) not in out:
            out.append(str(folder))
    return out
