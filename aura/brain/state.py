"""The task tree in `.aura/state/state.json`, written only by the brain.

A save appends what changed to `state.journal` (statejournal.py): one short line, so its cost
follows the change, not the tree (a tree under SMALL_TREE_BYTES is rewritten whole instead). `flush`
writes the whole tree as the new `state.json` snapshot (atomically, keeping the previous one as
`state.json.bak`) and empties the journal. While it runs, the brain flushes only once the journal
has grown to 1/FOLD_RATIO of the snapshot (and at the run's end and its own stop), so `state.json`
alone trails the run: `read_state`, which every reader in Aura uses, gives the live tree. `load`
replays the journal on the snapshot (a torn last line is ignored) and folds it in. A corrupted
snapshot is restored from the backup, and if both are bad the brain starts from an empty tree in
safe mode and keeps the bad files aside for a human.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aura.runtime.fsutil import atomic_write_chunks, read_json
from aura.runtime.vocab import PENDING, REASON_SHOWN, TASK_ENDED, TASK_STATUSES

from . import statejournal

SCHEMA = 1
STATUSES, TERMINAL = TASK_STATUSES, TASK_ENDED  # the names the brain tools import
ROOT = "ROOT"
SMALL_TREE_BYTES = 16 * 1024  # below this a save rewrites state.json whole: as cheap as a journal line
FOLD_RATIO = 8  # a lazy flush writes a snapshot once the journal holds this fraction of its bytes


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
        self.journal = statejournal.Journal(state_dir / "state.journal")
        self.saved: statejournal.Saved | None = None  # the tree as the snapshot and the journal hold it
        self.pending = 0  # journal lines not yet in a snapshot
        self.changes = 0  # saves that changed something, since the store was made
        self.unwritten = False  # a change is only in memory: a small tree's snapshot failed
        self.held: list[str] = []  # journal lines an append failed to write (a full disk), written next
        self.snapshot_bytes = 0

    def load(self) -> LoadResult:
        if not self.path.exists() and not self.bak.exists():
            return LoadResult(new_state(), "new")
        primary = read_json(self.path)
        if _valid(primary):
            self.snapshot_bytes = self.path.stat().st_size
            applied, good = statejournal.replay(self.journal.path, primary)
            self.journal.open(keep=good)  # a torn tail is cut off before the next append
            self.pending = applied
            share_strings(primary)
            self.saved = statejournal.Saved(primary)
            if applied:
                self.flush(primary)
            return LoadResult(primary, "primary")
        self._keep_aside(self.journal.path)  # it continues the bad snapshot, not the backup
        backup = read_json(self.bak)
        if _valid(backup):
            problem = "state.json was unreadable; restored from state.json.bak"
            self._keep_aside(self.path)
            share_strings(backup)
            self.flush(backup)
            return LoadResult(backup, "backup", problem)
        kept = [str(p) for p in (self._keep_aside(self.path), self._keep_aside(self.bak)) if p]
        return LoadResult(
            new_state(),
            "reset",
            "state.json and state.json.bak were both unreadable; started an empty task tree "
            f"(the bad files are kept as {', '.join(kept) or 'nothing'})",
        )

    def save(self, state: dict, touched: set[str] | None = None) -> None:
        """Make the tree's changes since the last save durable: one journal line, or, while the
        tree is small (SMALL_TREE_BYTES), a new snapshot. With `touched`, only those tasks are
        compared (and every key beside the tasks); a change elsewhere waits for the next `flush`."""
        if self.saved is None:
            self.flush(state)
            return
        self._write(state, self.saved.changes(state, touched), None)

    def _write(self, state: dict, ops: list, encoded: dict[str, str] | None) -> None:
        assert self.saved is not None
        small = self.snapshot_bytes < SMALL_TREE_BYTES
        if ops:
            state["updated_at"] = time.time()
            ops.append([["updated_at"], state["updated_at"]])
            self.saved.rest["updated_at"] = state["updated_at"]
            self.changes += 1
            if small:
                self.unwritten = True
            else:
                self.held.append(statejournal.dumps(ops))
        if self.held and not small:
            self._append_held()
        if self.unwritten:
            self._snapshot(state, encoded)

    def _append_held(self) -> None:
        """Append the lines not yet in the journal in one write. The comparison already counts
        their changes as saved, so a line that failed is kept and written first next time (or
        folded into the next snapshot), never dropped."""
        self.journal.append("\n".join(self.held))
        self.pending += len(self.held)
        self.held.clear()

    def flush(self, state: dict, lazily: bool = False) -> None:
        """Compare the whole tree, then write it as the new snapshot (unless state.json holds it
        already) and empty the journal it now holds. `lazily`, only once the journal holds
        1/FOLD_RATIO of the snapshot's bytes: a busy run's snapshots then cost a bounded share of
        the bytes its changes write, whatever the tree's size; until then a lazy flush journals
        what a sweep finds (statejournal.Saved.sweep), at a cost that does not follow the tree."""
        if self.saved is None:
            self.saved = statejournal.Saved(state)
            self._snapshot(state)
            return
        if lazily and self.journal.size * FOLD_RATIO < self.snapshot_bytes:
            self._write(state, self.saved.sweep(state), None)
            return
        encoded: dict[str, str] = {}  # the comparison's texts, for the snapshot
        self._write(state, self.saved.changes(state, None, encoded), encoded)
        if self.pending or self.held:
            self._snapshot(state, encoded)

    def _snapshot(self, state: dict, encoded: dict[str, str] | None = None) -> None:
        """Stream the tree into a new state.json, a task at a time (an ended task's text from
        `encoded` when the comparison just made it), so the brain never holds the whole text."""
        state["updated_at"] = state.get("updated_at") or time.time()
        assert self.saved is not None
        keep = self.bak.with_name(f".{self.bak.name}.{os.getpid()}.tmp")
        keep.unlink(missing_ok=True)
        if self.path.exists():
            os.link(self.path, keep)  # the previous snapshot, kept without copying it
        try:
            size = atomic_write_chunks(self.path, self.saved.snapshot(state, encoded))
        except BaseException:
            keep.unlink(missing_ok=True)
            raise
        if keep.exists():
            os.replace(keep, self.bak)  # only now: a full disk must not free the old backup's room
        self.journal.clear()
        self.pending = 0
        self.held.clear()
        self.unwritten = False
        self.snapshot_bytes = size

    def close(self) -> None:
        self.journal.close()

    def _keep_aside(self, path: Path) -> Path | None:
        if not path.exists():
            return None
        target = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        os.replace(path, target)
        return target


def read_state(state_dir: Path) -> dict | None:
    """The live tree as a reader outside the brain can know it: the snapshot with the journal
    replayed on it (nothing is written); None when there is no readable snapshot."""
    state = read_json(state_dir / "state.json")
    if not _valid(state):
        return None
    statejournal.replay(state_dir / "state.journal", state)
    return state


def share_strings(state: dict) -> None:
    """Make equal strings among the tasks' fields one object. A parsed tree holds a copy of each
    value per task ("completed", the parent's id, a command), which would make a loaded tree half
    as big again as the same tree built by the brain."""
    seen: dict[str, str] = {}
    for task in state["tasks"].values():
        if isinstance(task, dict):
            for key, value in task.items():
                if type(value) is str:
                    task[key] = seen.setdefault(value, value)


def _valid(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("tasks"), dict) and ROOT in obj["tasks"]


# -- tree helpers ---------------------------------------------------------------------------------


def add_task(state: dict, task: dict) -> dict:
    """Put `task` in the table and under its parent; a task added again keeps its one place there
    (its parent's children are searched only then: a run adds thousands of tasks under the root)."""
    tasks = state["tasks"]
    known = task["id"] in tasks
    tasks[task["id"]] = task
    parent = tasks.get(task.get("parent") or ROOT)
    if parent is not None and not (known and task["id"] in parent["children"]):
        parent["children"].append(task["id"])
    return task


def walk(state: dict, start: str = ROOT) -> Iterator[tuple[int, dict]]:
    """Depth-first (depth, task) pairs in the tree's order, the root first."""
    tasks = state["tasks"]
    stack = [(0, start)]
    pop, push = stack.pop, stack.extend
    while stack:
        depth, tid = pop()
        task = tasks.get(tid)
        if task is None:
            continue
        yield depth, task
        children = task.get("children")
        if children:
            below = depth + 1
            push([(below, c) for c in reversed(children)])


def leaves(state: dict) -> list[dict]:
    return [t for d, t in walk(state) if d > 0 and not t.get("children")]


def counts(state: dict) -> dict[str, int]:
    """Tasks by status, as the tree shows them: every task below the root, except a parent that is
    still open (its work is its subtasks, counted themselves). A parent that ended (blocked after
    two resource kills, completed) counts like any task, so the run's figures match the tree. One
    pass over the table, not a walk of the tree: the brain counts at every cycle."""
    out = {s: 0 for s in TASK_STATUSES}
    for tid, t in state["tasks"].items():
        status = t["status"]
        if tid == ROOT or (t.get("children") and status not in TASK_ENDED):
            continue
        out[status] = out.get(status, 0) + 1
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
    """The tree for `aura status` and `aura top`: depth, id, status, title, attempt, since when it has
    its status, and the reason of every task that ended without completing or waits to start (a
    retry, a rate limit, a short reserve)."""
    now = time.time()
    return [
        {
            "depth": d,
            "id": t["id"],
            "status": t["status"],
            "title": t.get("title", ""),
            "attempt": attempt_no(t),
            "since": t.get("updated_at"),
            "reason": t.get("reason")
            if t["status"] in REASON_SHOWN or (t["status"] == PENDING and not_before(t) > now)
            else None,
        }
        for d, t in walk(state)
        if d
    ]
