"""The task tree in `.aura/state/state.json`, written only by the brain.

Every save replaces the file atomically, after copying the previous version to
`state.json.bak`; a corrupted primary is restored from the backup, and if both are bad the
brain starts from an empty tree in safe mode and keeps the bad files aside for a human.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aura.runtime.fsutil import atomic_write_json, read_json
from aura.runtime.vocab import PENDING, REASON_SHOWN, TASK_ENDED, TASK_STATUSES

SCHEMA = 1
STATUSES, TERMINAL = TASK_STATUSES, TASK_ENDED  # the names the brain tools import
ROOT = "ROOT"


def new_state(mission: str = "", task_file: str = "") -> dict:
    now = time.time()
    return {
        "schema": SCHEMA,
        "mission": mission,
        "task_file": task_file,
        "task_file_hash": "",
        "created_at": now,
        "updated_at": now,
        "total_cycles": 0,
        "tasks": {ROOT: new_task(ROOT, mission or "mission", parent=None)},
        "event_cursors": {},
        "run": {"finished": False},
        "project_context": {},
        "safe_mode": None,
    }


def new_task(task_id: str, title: str, parent: str | None = ROOT, **extra: Any) -> dict:
    now = time.time()
    return {
        "id": task_id,
        "title": title,
        "status": PENDING,
        "parent": parent,
        "children": [],
        "attempts": 0,
        "worker_id": None,
        "workers": [],
        "reason": "",
        "evidence": "",
        "created_at": now,
        "updated_at": now,
        **extra,
    }


@dataclass
class LoadResult:
    state: dict
    source: str  # "primary", "backup", "new", "reset"
    problem: str | None = None


class StateStore:
    def __init__(self, state_dir: Path):
        self.path = state_dir / "state.json"
        self.bak = state_dir / "state.json.bak"
        self._last_saved: dict | None = None

    def load(self) -> LoadResult:
        if not self.path.exists() and not self.bak.exists():
            return LoadResult(new_state(), "new")
        primary = read_json(self.path)
        if _valid(primary):
            self._last_saved = primary
            return LoadResult(primary, "primary")
        backup = read_json(self.bak)
        if _valid(backup):
            problem = "state.json was unreadable; restored from state.json.bak"
            self._keep_aside(self.path)
            self.save(backup)
            return LoadResult(backup, "backup", problem)
        kept = [str(p) for p in (self._keep_aside(self.path), self._keep_aside(self.bak)) if p]
        return LoadResult(
            new_state(),
            "reset",
            "state.json and state.json.bak were both unreadable; started an empty task tree "
            f"(the bad files are kept as {', '.join(kept) or 'nothing'})",
        )

    def save(self, state: dict) -> None:
        state["updated_at"] = time.time()
        if self._last_saved is not None:
            atomic_write_json(self.bak, self._last_saved)
        atomic_write_json(self.path, state)
        self._last_saved = _deep_copy(state)

    def _keep_aside(self, path: Path) -> Path | None:
        if not path.exists():
            return None
        target = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        os.replace(path, target)
        return target


def _valid(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("tasks"), dict) and ROOT in obj["tasks"]


def _deep_copy(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, default=str))


# -- tree helpers ---------------------------------------------------------------------------------


def add_task(state: dict, task: dict) -> dict:
    tasks = state["tasks"]
    tasks[task["id"]] = task
    parent = tasks.get(task.get("parent") or ROOT)
    if parent is not None and task["id"] not in parent["children"]:
        parent["children"].append(task["id"])
    return task


def walk(state: dict, start: str = ROOT) -> Iterator[tuple[int, dict]]:
    """Depth-first (depth, task) pairs in the tree's order, the root first."""
    tasks = state["tasks"]
    stack = [(0, start)]
    while stack:
        depth, tid = stack.pop()
        task = tasks.get(tid)
        if task is None:
            continue
        yield depth, task
        stack.extend((depth + 1, c) for c in reversed(task.get("children", [])))


def leaves(state: dict) -> list[dict]:
    return [t for d, t in walk(state) if d > 0 and not t.get("children")]


def counts(state: dict) -> dict[str, int]:
    """Tasks by status, as the tree shows them: every task below the root, except a parent that is
    still open (its work is its subtasks, counted themselves). A parent that ended (blocked after
    two resource kills, completed) counts like any task, so the run's figures match the tree."""
    out = {s: 0 for s in TASK_STATUSES}
    for d, t in walk(state):
        if d == 0 or (t.get("children") and t["status"] not in TASK_ENDED):
            continue
        out[t["status"]] = out.get(t["status"], 0) + 1
    return out


def not_before(task: dict) -> float:
    """When a pending task may start again: after its parking (a rate limit) and its spawn retry."""
    return max(float(task.get("parked_until") or 0), float(task.get("retry_at") or 0))


def attempt_no(task: dict) -> int:
    """The number of the task's latest attempt: 1, 2, ... once per worker started, never reused (a retry
    after a resource kill or a rate limit is the next number), and the suffix of its worker id."""
    return int(task.get("spawns") or 0)


def tree_lines(state: dict) -> list[str]:
    """The tree as indented `id [status] title` lines (for `aura status`)."""
    return [f"{'  ' * (d - 1)}{t['id']} [{t['status']}] {t.get('title', '')[:80]}" for d, t in walk(state) if d]


STATUS_LLM_FIELDS = ("model_cycles", "skipped_total", "failures_in_row", "goal_closed")  # of state["llm"]


def tree_rows(state: dict) -> list[dict]:
    """The tree for `aura status`: depth, id, status, title, attempt, and the reason of every task
    that ended without completing or waits to start (a retry, a rate limit, a short reserve)."""
    now = time.time()
    return [
        {
            "depth": d,
            "id": t["id"],
            "status": t["status"],
            "title": t.get("title", ""),
            "attempt": attempt_no(t),
            "reason": t.get("reason")
            if t["status"] in REASON_SHOWN or (t["status"] == PENDING and not_before(t) > now)
            else None,
        }
        for d, t in walk(state)
        if d
    ]
