"""status: the run as the brain sees it (`aura status`): mission, planner, task tree, costs, budget.

Request: {}
Reply: {mission: str, task_file: str, planner: str, cycles: int, last_cycle_at: float,
    counts: {status: int}, run: dict, tree: [str], tree_rows: [dict], safe_mode: dict,
    supervisor_ok: bool, pid: int, started_at: float, disk: dict, costs: dict, budget: dict,
    llm: dict, git: {enabled, branch, base, head, user_branch, merged: [task id], disk_bytes, bring_in},
    questions: [{id, kind, text, options, task_id, ...}] (the open ones)}
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aura.runtime.ops import operation

from .. import costs as costmod
from .. import questions as qmod
from ..gitwork import status_of
from ..state import STATUS_LLM_FIELDS, counts, tree_lines, tree_rows

if TYPE_CHECKING:
    from ..main import BrainDaemon


@operation("status", "brain")
def status(brain: BrainDaemon, args: dict) -> dict:
    core = brain.core
    assert core is not None
    state = core.state
    if core.git.enabled:
        core.git.disk_bytes()  # refreshed at most once a minute
    return {
        "mission": state.get("mission"),
        "task_file": state.get("task_file"),
        "planner": getattr(brain.planner, "name", None),
        "cycles": state.get("total_cycles", 0),
        "last_cycle_at": brain.last_cycle_at,
        "counts": counts(state),
        "run": state.get("run"),
        "tree": tree_lines(state),
        "tree_rows": tree_rows(state),
        "safe_mode": state.get("safe_mode"),
        "supervisor_ok": core.supervisor_ok,
        "pid": os.getpid(),
        "started_at": brain.started_at,
        "disk": brain.disk.status(),
        "costs": costmod.summary(state),
        "budget": state.get("budget"),
        "llm": {k: v for k, v in (state.get("llm") or {}).items() if k in STATUS_LLM_FIELDS},
        "git": status_of(state.get("git") or {}),
        "questions": [qmod.shown(q) for q in qmod.open_questions(state)],
    }
