"""Task-file change detection: the file is hashed every cycle; a change is diffed against the
last snapshot, recorded in `.aura/state/changelog.jsonl` (`aura changelog`), and the diff waits
in the state for the next model cycle, which must replan.

A content hash, not the mtime: touching the file or copying it over unchanged is no change, and
a change within the mtime's resolution is still seen.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from pathlib import Path

from aura.runtime.fsutil import append_line, atomic_write_text, read_jsonl

MAX_DIFF_LINES = 60
_REQUIREMENT = ("#", "- [ ]", "- [x]", "- [X]", "* [ ]")


def batch_prefix(index: int) -> str:
    """A, B, ..., Z, AA, AB, ...: the id prefix of the tasks planned for each task-file version."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def summarize(diff: list[str]) -> str:
    """'2 requirement lines added, 1 removed; 1 other line changed' from unified-diff lines."""
    added = [ln[1:] for ln in diff if ln.startswith("+") and not ln.startswith("+++")]
    removed = [ln[1:] for ln in diff if ln.startswith("-") and not ln.startswith("---")]

    def req(lines: list[str]) -> int:
        return sum(1 for ln in lines if ln.strip().startswith(_REQUIREMENT) or ln.strip()[:3].rstrip(".").isdigit())

    parts = []
    if req(added) or req(removed):
        parts.append(f"{req(added)} requirement line(s) added, {req(removed)} removed")
    other = len(added) + len(removed) - req(added) - req(removed)
    if other:
        parts.append(f"{other} other line(s) changed")
    return "; ".join(parts) or "whitespace only"


class TaskFileChangelog:
    def __init__(self, state_dir: Path):
        self.ledger = state_dir / "changelog.jsonl"
        self.snapshot = state_dir / "task_file.snapshot.md"

    def check(self, state: dict, cycle: int) -> dict | None:
        """Hash the task file; on a change record it and leave the diff in state["pending_task_diff"]."""
        path = state.get("task_file")
        if not path:
            return None
        try:
            data = Path(path).read_bytes()
        except OSError:
            return None
        digest = hashlib.sha256(data).hexdigest()
        previous = state.get("task_file_hash") or ""
        if digest == previous:
            return None
        text = data.decode("utf-8", "replace")
        old = self._snapshot() if previous else None
        entry: dict = {
            "ts": time.time(),
            "cycle": cycle,
            "hash": digest,
            "previous_hash": previous or None,
            "file": str(path),
        }
        if old is None:
            entry.update(kind="new", summary=f"task file first seen ({len(text.splitlines())} lines)")
        else:
            diff = list(difflib.unified_diff(old.splitlines(), text.splitlines(), "before", "after", n=1, lineterm=""))
            entry.update(
                kind="changed",
                summary=summarize(diff),
                diff=diff[:MAX_DIFF_LINES],
                truncated=len(diff) > MAX_DIFF_LINES,
            )
            batch = state.setdefault("task_batch", {"index": 0})
            batch["index"] = int(batch.get("index", 0)) + 1
            state["pending_task_diff"] = {
                "hash": digest,
                "summary": entry["summary"],
                "diff": entry["diff"],
                "cycle": cycle,
            }
            state["planning_needed"] = "the task file changed"
            state.setdefault("llm", {})["goal_closed"] = False
        batch = state.setdefault("task_batch", {"index": 0})
        batch["prefix"] = batch_prefix(int(batch.get("index", 0)))
        state["task_file_hash"] = digest
        atomic_write_text(self.snapshot, text)
        append_line(self.ledger, json.dumps(entry, ensure_ascii=False))
        return entry

    def _snapshot(self) -> str | None:
        try:
            return self.snapshot.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    def entries(self) -> list[dict]:
        return read_jsonl(self.ledger)
