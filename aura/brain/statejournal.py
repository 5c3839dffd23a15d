"""The task tree's changes between two snapshots, one line per save in `state.journal`.

A save appends only what changed since the last one (a task, a field of a task, a top-level key)
with a single write and an fdatasync, so its cost follows the change, not the tree. Each line is a
JSON list of operations: `[path, value]` sets, `[path]` deletes. Replay applies the lines in order on
the snapshot; a torn or unreadable line ends the replay (nothing after it was acknowledged whole).
Replaying a line the snapshot already holds is harmless: each operation sets an absolute value.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from aura.runtime.fsutil import PRIVATE, make_parent

Op = list  # [path] or [path, value]
FIELD_DEPTH = 2  # below the state's keys and one more level (a task), changed dicts are diffed by field


def dumps(obj: Any) -> str:
    """Compact JSON (the C encoder; an indent would force the pure-Python one)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, default=str)


def diff(old: dict, new: dict, path: tuple = (), out: list[Op] | None = None) -> list[Op]:
    """The operations that turn `old` into `new`. The first two levels are walked key by key; below
    them a value is compared whole (in C) and only a changed dict is walked further, so a save
    compares each task once and writes only the fields that changed."""
    ops: list[Op] = [] if out is None else out
    depth = len(path)
    ops.extend([[*path, key]] for key in old if key not in new)  # first: a key may come back as another type
    for key, value in new.items():
        here = [*path, key]
        if key not in old:
            ops.append([here, value])
            continue
        before = old[key]
        if depth < FIELD_DEPTH - 1 and isinstance(before, dict) and isinstance(value, dict):
            diff(before, value, tuple(here), ops)
        elif before != value:
            if depth < FIELD_DEPTH + 1 and isinstance(before, dict) and isinstance(value, dict):
                diff(before, value, tuple(here), ops)
            else:
                ops.append([here, value])
    return ops


def diff_tasks(old: dict, new: dict, touched: set[str]) -> list[Op]:
    """`diff` with the task table compared only at the `touched` tasks (when no task was added or
    removed): a status change then costs the same at 10 tasks and at 10,000."""
    ops = diff({k: v for k, v in old.items() if k != "tasks"}, {k: v for k, v in new.items() if k != "tasks"})
    before, after = old.get("tasks"), new.get("tasks")
    if not (isinstance(before, dict) and isinstance(after, dict) and before.keys() == after.keys()):
        return diff({"tasks": before}, {"tasks": after}, (), ops) if before != after else ops
    for tid in touched:
        if tid in after:
            diff({tid: before[tid]}, {tid: after[tid]}, ("tasks",), ops)
    return ops


def apply(state: dict, ops: list[Op]) -> None:
    """Apply operations in order; a path whose parent is missing or not a dict is created as dicts."""
    for op in ops:
        path = op[0]
        target = state
        for key in path[:-1]:
            nxt = target.get(key)
            if not isinstance(nxt, dict):
                nxt = target[key] = {}
            target = nxt
        if len(op) > 1:
            target[path[-1]] = op[1]
        else:
            target.pop(path[-1], None)


def replay(path: Path, state: dict) -> tuple[int, int]:
    """Apply every whole line of the journal to `state`; (lines applied, bytes they span). The
    bytes after them (a torn tail) are to be cut off before the journal is appended to again."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0, 0
    applied, good = 0, 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            ops = json.loads(line)
        except ValueError:
            break
        if not isinstance(ops, list):
            break
        apply(state, ops)
        applied += 1
        good += len(line)
    return applied, good


class SnapshotText:
    """The whole tree's JSON, with each task's text kept from one snapshot to the next: only the
    tasks the journal's operations named are encoded again."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.stale: set[str] | None = None  # None: every task

    def changed(self, ops: list[Op]) -> None:
        for op in ops:
            path = op[0]
            if path[0] != "tasks":
                continue
            if len(path) == 1:
                self.stale = None
            elif self.stale is not None:
                self.stale.add(path[1])

    def text(self, state: dict) -> str:
        tasks = state.get("tasks")
        if not isinstance(tasks, dict):
            return dumps(state)
        if self.stale is None:
            self.parts = {}
        for tid in tasks if self.stale is None else self.stale:
            if tid in tasks:
                self.parts[tid] = dumps(tasks[tid])
            else:
                self.parts.pop(tid, None)
        self.stale = set()
        if self.parts.keys() != tasks.keys():  # a change no operation named: encode them all
            self.parts = {tid: dumps(t) for tid, t in tasks.items()}
        rest = dumps({k: v for k, v in state.items() if k != "tasks"})
        body = ",".join(f"{json.dumps(tid)}:{self.parts[tid]}" for tid in tasks)
        return f'{rest[:-1]}{"," if len(rest) > 2 else ""}"tasks":{{{body}}}}}'


class Journal:
    """The append side: one descriptor kept open, one write and one fdatasync per save."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None
        self.size = 0

    def open(self, keep: int | None = None) -> None:
        """Open for appending, cutting the file to `keep` bytes (its whole lines) when given."""
        if self.fd is None:
            make_parent(self.path, PRIVATE)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)
        if keep is not None:
            os.ftruncate(self.fd, keep)
        self.size = os.fstat(self.fd).st_size

    def append(self, line: str) -> None:
        """Write one line whole or not at all: a failed write (a full disk) is cut off again."""
        self.open()
        assert self.fd is not None
        data = (line + "\n").encode("utf-8")
        try:
            written = os.write(self.fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write to the state journal")
            os.fdatasync(self.fd)
        except OSError:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass
            raise
        self.size += len(data)

    def clear(self) -> None:
        """Empty it, once a snapshot holds everything it said."""
        self.open(keep=0)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
