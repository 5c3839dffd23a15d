"""What the model sees each cycle, laid out for prompt caching.

Order (the API's cache key order is tools, then system, then messages):

1. tools and the system prompt: fixed for the run; breakpoint 1;
2. the mission and the task file: change only when the user edits the file; breakpoint 2;
3. long-term memory, newest first: changes only when something is remembered; breakpoint 3;
4. the cycle's snapshot: everything volatile, last, never cached;
5. within a cycle, each tool round is appended; the newest block carries breakpoint 4, so the
   next round reads the previous one back.

The prefix is append-only: nothing before the snapshot depends on the time, the cycle number or
the tree. The TTL is an hour (AURA_PROMPT_CACHE_TTL) because the default 5-minute cache expires
right when a 300 s cycle wakes up. DeepSeek ignores the markers and caches exact prefixes, which
the same layout serves.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aura.runtime.config import Config
from aura.runtime.vocab import COMPLETED, IN_PROGRESS, PENDING, TASK_DONE, TASK_ENDED

from . import costs as costmod
from . import questions
from .state import ROOT, attempt_no, counts, walk
from .worker_usage import DOWN as WATCHDOG_DOWN
from .worker_usage import describe as describe_usage

TASK_FILE_MAX_CHARS = 6000
TREE_MAX_LINES = 150
NEWS_MAX = 40
CRITERIA_MAX_CHARS = 300
ACCEPT_SHOWN = 3
RESULT_PREVIEW_CHARS = 1000
RESULTS_MAX_CHARS = 6000
SNAPSHOT_MAX_CHARS = 40000

SYSTEM_PROMPT = """\
You are Aura's brain, the Layer 1 orchestrator of a long-running autonomous agent. You are not a chatbot:
you wake up (on a timer, when a worker ends, when the task file changes, or when the user runs `aura wake`),
assess the snapshot, decide, act through tools, and end the cycle with `no_op`. Between cycles you remember
nothing except what the snapshot, the task tree, MEMORY.md and the decision log carry.

## How to work
1. Assess from the snapshot first. Read files only when the snapshot is not enough; never read whole logs.
2. Plan: you own semantic planning; the code does not parse the task file into tasks. Call
   update_project_context once, then decompose ROOT into top-level tasks (ids with the current batch
   prefix: A1, A2 ...; after a task-file change the prefix moves to B, C ...), and break broad tasks into
   leaves a single worker can finish. Give each leaf what proves it done: `artifacts` (files it must
   write), `accept_commands` (commands that must exit 0) or both. Preserve existing work when replanning.
3. Act: spawn_task on ready leaves, using free capacity in parallel (at most {max_workers} workers run at
   once). Give `command` for work a shell command can do; otherwise a {backend} agent works from the task
   description, so carry the context it needs into it (and never mention result.md there: Aura adds it).
4. Verify: NEVER trust a task's self-report. A status change needs a reason AND evidence. `completed` is
   accepted only on evidence the brain checks itself (the worker's exit record, the named artifacts
   written by this attempt, result.md's `Status:` line, acceptance commands). A refusal tells you what is
   missing: fix that, do not argue.
5. React: a worker killed by the watchdog for resources is retried once smaller (smaller batches, fewer
   threads, less data), then a resource-fix subtask is due. A task running long with no verifiable output:
   kill it or replan. A failed attempt: read its reason, change the approach, not just retry.
6. Finish: when every task is done, mark ROOT completed with the evidence; the brain runs the task file's
   acceptance commands before it agrees. If the goal cannot be reached, mark ROOT blocked with the reason.
   The mission does not end until the goal is achieved or declared blocked.
7. Remember: write_memory for lessons that should outlive this cycle (what failed and why, what works).

## Rules
- Epistemics: separate facts (files, exit codes) from inference; prefer falsifiable checks; look for
  more than one cause; continuously verify and correct.
- Budget: each cycle allows at most {max_rounds} model calls and {max_tools} tool calls; aim for about
  {hint_normal} tool calls in a normal cycle and {hint_planning} when planning. When nothing needs you,
  call no_op at once without reading anything.
- `no_op` ends the cycle immediately; calls after it in the same reply are not run.
- Files: file tools work inside the project folder only; .aura/ (except .aura/memory/) and the task file
  are not writable.
- Spending: the run has a dollar budget for both layers; at the limit nothing new starts.
"""

REVIEW_PROMPT = """\
You are Aura's Reflection Engine. You evaluate; you do not decide or act. From the run's state below,
write a short review (under 2000 characters) with these headings: ## Progress, ## Strategy, ## Patterns,
## Recommendations (3-5 concrete bullets for the orchestrator's next cycles).
"""


def cache_marker(cfg: Config) -> dict | None:
    if not cfg.flag("AURA_EXPLICIT_PROMPT_CACHE"):
        return None
    ttl = cfg.text("AURA_PROMPT_CACHE_TTL").strip()
    return {"type": "ephemeral", "ttl": ttl} if ttl in ("1h", "5m") else {"type": "ephemeral", "ttl": "1h"}


def _marked(block: dict, marker: dict | None) -> dict:
    return {**block, "cache_control": dict(marker)} if marker else block


def system_blocks(cfg: Config, marker: dict | None) -> list[dict]:
    text = SYSTEM_PROMPT.format(
        max_workers=cfg.integer("AURA_MAX_CONCURRENT_TASKS"),
        backend=cfg.text("AURA_LAYER2_BACKEND"),
        max_rounds=cfg.integer("AURA_MAX_API_ROUNDS_PER_CYCLE"),
        max_tools=cfg.integer("AURA_MAX_TOOL_CALLS_PER_CYCLE"),
        hint_normal=cfg.integer("AURA_TOOL_CALL_BUDGET_NORMAL"),
        hint_planning=cfg.integer("AURA_TOOL_CALL_BUDGET_PLANNING"),
    )
    return [_marked({"type": "text", "text": text}, marker)]


def mission_text(state: dict, task_text: str | None) -> str:
    lines = [f"# Mission\n\n{state.get('mission') or '(no mission)'}\n", f"# Task file ({state.get('task_file')})\n"]
    text = task_text or "(unreadable)"
    if len(text) > TASK_FILE_MAX_CHARS:
        head = TASK_FILE_MAX_CHARS * 2 // 3
        text = text[:head] + "\n… [middle of the task file omitted] …\n" + text[-(TASK_FILE_MAX_CHARS - head) :]
    lines.append(text.rstrip())
    return "\n".join(lines)


def first_message(
    state: dict, task_text: str | None, memory_text: str, snapshot_text: str, marker: dict | None
) -> dict:
    """The cycle's user message: stable blocks first (each a breakpoint), the snapshot last."""
    blocks = [_marked({"type": "text", "text": mission_text(state, task_text)}, marker)]
    if memory_text:
        blocks.append(
            _marked({"type": "text", "text": "# Long-term memory (MEMORY.md, newest first)\n\n" + memory_text}, marker)
        )
    blocks.append({"type": "text", "text": snapshot_text})
    return {"role": "user", "content": blocks}


def with_rolling_marker(messages: list[dict], marker: dict | None) -> list[dict]:
    """A copy whose newest block (after the first message) carries the moving breakpoint."""
    if not marker or len(messages) < 2:
        return messages
    out = copy.deepcopy(messages)
    last = out[-1]
    if isinstance(last.get("content"), list) and last["content"]:
        last["content"][-1] = _marked(last["content"][-1], marker)
    return out


# -- the snapshot ---------------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def tree_section(state: dict) -> list[str]:
    lines = []
    for depth, task in walk(state):
        if depth == 0:
            lines.append(f"- ROOT [{task['status']}] the goal")
            continue
        bits = [f"{'  ' * depth}- {task['id']} [{task['status']}] {task.get('title', '')[:100]}"]
        if attempt_no(task):
            bits.append(f"(attempt {attempt_no(task)})")
        if task.get("artifacts"):
            bits.append("artifacts: " + ", ".join(task["artifacts"][:5]))
        if task.get("command"):
            bits.append(f"cmd: `{task['command'][:80]}`")
        if task.get("reason") and task["status"] != PENDING or task.get("attempts"):
            bits.append(f"— {task.get('reason', '')[:100]}")
        if task["status"] == COMPLETED and task.get("evidence"):
            bits.append(f"| evidence: {task['evidence'][:120]}")
        diff = (task.get("git") or {}).get("diff_summary")
        if diff and task["status"] != IN_PROGRESS:
            bits.append(f"| diff: {diff}")
        lines.append(" ".join(bits))
        if task["status"] not in TASK_DONE:
            lines += _done_means(task, "  " * depth + "    ")
    if len(lines) > TREE_MAX_LINES:
        done = [ln for ln in lines if any(f"[{s}]" in ln for s in TASK_DONE)]
        lines = [ln for ln in lines if ln not in done[: len(lines) - TREE_MAX_LINES]]
    return lines


def _done_means(task: dict, indent: str) -> list[str]:
    """What proves an open task done: its acceptance criteria and commands (bounded)."""
    out = []
    if task.get("acceptance_criteria"):
        out.append(f"{indent}done when: {_clip(str(task['acceptance_criteria']), CRITERIA_MAX_CHARS)}")
    commands = [str(c) for c in task.get("accept_commands") or []]
    if commands:
        shown = "; ".join(f"`{_clip(c, 120)}`" for c in commands[:ACCEPT_SHOWN])
        more = f" (+{len(commands) - ACCEPT_SHOWN} more)" if len(commands) > ACCEPT_SHOWN else ""
        out.append(f"{indent}accept: {shown}{more}")
    return out


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


DIFFSTAT_SHOWN = 12


def results_section(state: dict, task_dir: Callable[[str], Path]) -> list[str]:
    """The start of each finished attempt's result.md, newest first, within RESULTS_MAX_CHARS."""
    done = [t for _, t in walk(state) if t.get("worker_id") and t["status"] != IN_PROGRESS and t["id"] != ROOT]
    done.sort(key=lambda t: float(t.get("finished_at") or t.get("updated_at") or 0), reverse=True)
    out: list[str] = []
    used = left_out = 0
    for task in done:
        path = task_dir(task["id"]) / "result.md"
        try:
            with open(path, "rb") as fh:
                head = fh.read(RESULT_PREVIEW_CHARS * 4).decode("utf-8", "replace")
            size = path.stat().st_size
        except OSError:
            continue
        preview = head[:RESULT_PREVIEW_CHARS].strip()
        if used + len(preview) > RESULTS_MAX_CHARS:
            left_out += 1
            continue
        used += len(preview)
        cut = f" (first {RESULT_PREVIEW_CHARS} characters of {size} bytes)" if size > RESULT_PREVIEW_CHARS else ""
        out += [f"### {task['id']} [{task['status']}] result.md{cut}", preview]
        stat = str((task.get("git") or {}).get("diffstat") or "").splitlines()
        if stat:
            files, total = stat[:-1], stat[-1]
            more = [f"  ... {len(files) - DIFFSTAT_SHOWN} more files"] if len(files) > DIFFSTAT_SHOWN else []
            out += [f"diffstat of {task.get('worker_id')} against its base:", *files[:DIFFSTAT_SHOWN], *more, total]
    if left_out:
        out.append(
            f"({left_out} more result.md previews not shown: the section is capped at {RESULTS_MAX_CHARS} "
            "characters; read_file .aura/workspace/tasks/<id>/result.md for the rest)"
        )
    return out


def running_section(core: Any, now: float, usage: dict[str, dict] | None = None, strikes_to_kill: int = 0) -> list[str]:
    out = []
    for task in core.running():
        w = core.workers.get(task.get("worker_id") or "", {})
        p = w.get("progress") or {}
        flags = "".join(f" [{f.upper()}]" for f in ("stuck", "loop") if p.get(f))
        out.append(
            f"- {task['id']} worker {task.get('worker_id')} {w.get('state', 'not at the supervisor')}{flags}, "
            f"{int(now - (w.get('started_at') or now))}s, output {p.get('output_bytes', 0)} B"
            + (f", {p['turns']} turns" if p.get("turns") else "")
            + (f", last tool {p['last_tool']}" if p.get("last_tool") else "")
            + f"; {describe_usage(usage, task.get('worker_id'), strikes_to_kill)}"
            + _jobs_note(w)
        )
    return out


def _jobs_note(worker: dict) -> str:
    """The agent has exited and the jobs it registered run on (supervisor/jobs.py)."""
    kids = (worker.get("managed") or {}).get("children") or []
    if not kids:
        return ""
    jobs = ", ".join(f"{c.get('kind') or 'job'} pid {c.get('pid')} (log {c.get('log_path') or '-'})" for c in kids)
    return f"; the agent exited, registered jobs still running: {jobs}"


def news_section(news: list[dict]) -> list[str]:
    out = []
    for d in news[-NEWS_MAX:]:
        if d.get("kind") == "status":
            out.append(
                f"- {_when(d.get('ts'))} {d.get('task_id')}: {d.get('old')} -> {d.get('new')} — "
                f"{str(d.get('reason', ''))[:160]} [evidence: {str(d.get('evidence', ''))[:160]}]"
            )
        elif d.get("kind") == "task_added":
            out.append(
                f"- {_when(d.get('ts'))} task {d.get('task_id')} added under {d.get('parent')}: {d.get('title')}"
            )
        else:
            out.append(f"- {_when(d.get('ts'))} {d.get('kind')}: {d.get('text') or d.get('reason') or ''}"[:300])
    if len(news) > NEWS_MAX:
        out.insert(0, f"- ({len(news) - NEWS_MAX} earlier changes not shown)")
    return out


def snapshot(
    core: Any,
    cfg: Config,
    *,
    cycle: int,
    reasons: list[str],
    news: list[dict],
    planning: str | None,
    notices: list[str],
    recent: list[dict],
    session: str,
    usage: dict[str, dict] | None = None,
) -> str:
    """The volatile part: compact, everything the model needs to decide this cycle, at most
    SNAPSHOT_MAX_CHARS. `usage` is the watchdog's figures per worker (None: it did not answer)."""
    state, now = core.state, time.time()
    c = counts(state)
    lines = [f"# Cycle {cycle} · {time.strftime('%Y-%m-%d %H:%M:%S')} · woken by: {', '.join(reasons)}"]
    lines += [f"NOTICE: {n}" for n in notices]
    lines += [_budget_line(state), ""]
    diff = state.get("pending_task_diff")
    if diff:
        lines += [f"## Task file changed: {diff['summary']}", "```diff", *diff["diff"], "```", ""]
    lines += ["## What changed since your last cycle", *(news_section(news) or ["- nothing new"]), ""]
    lines += questions.context_lines(state)
    lines += [
        f"Planning needed: {'yes (' + planning + ')' if planning else 'no'}",
        f"Batch prefix for new top-level tasks: {(state.get('task_batch') or {}).get('prefix', 'A')}",
        "",
    ]
    ctx = {k: v for k, v in (state.get("project_context") or {}).items() if k != "updated_at" and v}
    if ctx:
        lines += ["## Project context", *[f"- {k}: {str(v)[:300]}" for k, v in ctx.items()], ""]
    lines += ["## Task tree", *tree_section(state), ""]
    running = running_section(core, now, usage, cfg.integer("AURA_WORKER_RESOURCE_VIOLATION_STRIKES"))
    lines += [
        f"## Workers: {len(running)} running of {cfg.integer('AURA_MAX_CONCURRENT_TASKS')} allowed",
        *running,
        *([f"({WATCHDOG_DOWN})"] if usage is None and running else []),
        "Leaves: " + ", ".join(f"{k} {v}" for k, v in c.items() if v) if any(c.values()) else "Leaves: none yet",
        "",
    ]
    results = results_section(state, core.paths.task_dir)
    if results:
        lines += ["## Finished attempts: result.md previews", *results, ""]
    if recent:
        lines += [
            "## Recent model decisions",
            *[f"- {_when(d.get('ts'))} {d.get('text', '')[:200]}" for d in recent],
            "",
        ]
    if session:
        lines += ["## Last session", session.strip()[:500], ""]
    return _capped("\n".join(lines)) + "\nDecide and act; end with no_op."


def _capped(text: str) -> str:
    if len(text) <= SNAPSHOT_MAX_CHARS:
        return text
    cut = text.rfind("\n", 0, SNAPSHOT_MAX_CHARS)
    cut = cut if cut > 0 else SNAPSHOT_MAX_CHARS
    return (
        text[:cut] + f"\n… [snapshot cut at {SNAPSHOT_MAX_CHARS} characters: {len(text) - cut} more not shown; "
        "read_file or list_running_tasks for the rest]"
    )


def _budget_line(state: dict) -> str:
    s = costmod.summary(state)
    budget = state.get("budget") or {}
    spend = f"Spent ${s['total_usd']:.4f} (brain ${s['brain_usd']:.4f}, workers ${s['workers_usd']:.4f})"
    if budget.get("limit_usd"):
        return f"{spend} of the ${budget['limit_usd']:.2f} budget ({budget.get('percent')}%, {budget.get('state')})"
    return spend + "; no budget set"


def open_leaves(state: dict) -> list[dict]:
    return [t for d, t in walk(state) if d > 0 and not t.get("children") and t["status"] not in TASK_ENDED]


def has_plan(state: dict) -> bool:
    return bool(state["tasks"][ROOT].get("children"))


def review_context(core: Any, memory_text: str, recent: list[dict]) -> str:
    state = core.state
    lines = [
        f"# Mission\n{state.get('mission')}",
        f"Cycles so far: {state.get('total_cycles')}",
        "## Task tree",
        *tree_section(state),
        "## Recent decisions",
    ]
    for d in recent[-20:]:
        if d.get("kind") == "status":
            lines.append(f"- {d.get('task_id')}: {d.get('old')} -> {d.get('new')} — {str(d.get('reason', ''))[:120]}")
        elif d.get("kind") in ("done_refused", "model_cycle", "no_op"):
            lines.append(f"- {d.get('kind')}: {str(d.get('reason') or d.get('text') or '')[:160]}")
    lines += ["## Memory (newest first)", memory_text[:1500] or "(empty)"]
    return "\n".join(lines)
