"""list_running_tasks: each running worker's progress (from its stream) and the watchdog's figures."""

from __future__ import annotations

import time

from ..worker_usage import DOWN as WATCHDOG_DOWN
from ..worker_usage import describe as describe_usage
from .base import Tool, ToolContext, ToolResult


def list_running_tasks(box: ToolContext, a: dict) -> ToolResult:
    rows = []
    now = time.time()
    core = box.core
    running = core.running()
    usage = box.planner.worker_usage() if running else {}
    strikes = box.planner.cfg.integer("AURA_WORKER_RESOURCE_VIOLATION_STRIKES")
    for task in running:
        w = core.workers.get(task.get("worker_id") or "", {})
        p = w.get("progress") or {}
        flags = "".join(f" {f}" for f in ("stuck", "loop") if p.get(f))
        cost = f" cost ${p['total_cost_usd']:.4f} (its CLI's figure)" if p.get("total_cost_usd") is not None else ""
        rows.append(
            f"- {task['id']} worker {task.get('worker_id')} {w.get('state', 'unknown')}{flags} pid "
            f"{w.get('worker_pid')} age {int(now - (w.get('started_at') or now))}s output "
            f"{p.get('output_bytes', 0)} B turns {p.get('turns', '-')} tokens in/out "
            f"{p.get('input_tokens', '-')}/{p.get('output_tokens', '-')}{cost} last tool "
            f"{p.get('last_tool') or '-'}; {describe_usage(usage, task.get('worker_id'), strikes)}"
        )
    if running and usage is None:
        rows.append(f"({WATCHDOG_DOWN})")
    return ToolResult("\n".join(rows) or "no task is running")


TOOL = Tool(
    name="list_running_tasks",
    description=(
        "Running workers: pid, age, output size, turns, tokens, cost, last tool, stuck/loop, "
        "and the watchdog's CPU, RSS, GPU and strikes."
    ),
    properties={},
    required=[],
    run=list_running_tasks,
)
