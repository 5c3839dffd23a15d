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
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from aura.runtime.fsutil import PRIVATE, datasync, make_parent
from aura.runtime.vocab import TASK_ENDED

Op = list  # [path] or [path, value]
FIELD_DEPTH = 2  # below the state's keys and one more level (a task), changed dicts are diffed by field
SETTLE_S = 60.0  # an ended task is compared at every sweep this long after it ended (its merge, its costs)
SWEEP = 512  # ... and after that this many settled tasks a sweep, in turn, so each sweep costs the same


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)


def dumps(obj: Any) -> str:
    """Compact JSON from the C encoder (an indent would force the pure-Python one), through one
    encoder made once: `json.dumps` with arguments makes a new one per call, which costs as much
    as encoding a task."""
    return _ENCODER.encode(obj)


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


class Saved:
    """The tree as last saved, for the next save to compare with. An open task is held as its JSON
    text, so a change to it is written field by field; an ended task, which rarely changes again
    and makes up most of a long run's tree, only as a digest of that text, so the brain holds it
    once (the live dict) and not twice. A change to an ended task is written as the whole task."""

    def __init__(self, state: dict) -> None:
        self.texts: dict[str, str] = {}
        self.sums: dict[str, int] = {}
        self.settling: dict[str, float] = {}  # ended within SETTLE_S: id -> when (monotonic)
        self.turn: list[str] = []  # the settled tasks the sweeps go through, and where they are in it
        self.at = 0
        tasks = state.get("tasks")
        for tid, task in tasks.items() if isinstance(tasks, dict) else ():
            self._keep(tid, task, dumps(task))
        self.settling.clear()  # a loaded tree's ended tasks are settled
        self.rest: dict = json.loads(dumps(_rest(state)))

    def __len__(self) -> int:
        return len(self.texts) + len(self.sums)

    def changes(self, state: dict, touched: set[str] | None = None, encoded: dict[str, str] | None = None) -> list[Op]:
        """The operations that turn the saved tree into `state`, and `state` is now the saved one.
        With `touched` (and as many tasks as saved) only those tasks are compared, so a status
        change costs the same at 10 tasks and at 10,000; a change to another task waits for the
        next sweep or comparison of all of them. No task is ever removed from the tree (archiving is
        a status), so an unchanged count means the same tasks: comparing the ids themselves would
        cost a walk over all of them on every save. `encoded` receives the ended tasks' texts made
        on the way, for the snapshot that follows to write without encoding them again."""
        tasks = _tasks(state)
        if touched is None or len(tasks) != len(self):
            return self._compare(state, list(tasks), encoded, self._forget(tasks))
        return self._compare(state, [tid for tid in touched if tid in tasks], encoded)

    def sweep(self, state: dict) -> list[Op]:
        """`changes` for what a save may not have been told of, at a cost that does not follow the
        tree: every open task, every task that ended within SETTLE_S, and the next SWEEP of the
        settled ones in turn, so a change to any task reaches the journal within a round of sweeps
        (a round is one sweep per SWEEP settled tasks). A flush that folds compares them all."""
        tasks = _tasks(state)
        if len(tasks) != len(self):
            return self._compare(state, list(tasks), None, self._forget(tasks))
        now = time.monotonic()
        for tid, ended in list(self.settling.items()):
            if now - ended > SETTLE_S:
                del self.settling[tid]
        if self.at >= len(self.turn):
            self.turn, self.at = list(self.sums), 0
        settled = self.turn[self.at : self.at + SWEEP]
        self.at += SWEEP
        picked = dict.fromkeys([*self.texts, *self.settling, *settled])
        return self._compare(state, [tid for tid in picked if tid in tasks], None)

    def _forget(self, tasks: dict) -> list[str]:
        """The saved tasks the tree no longer has, forgotten."""
        gone = list((self.texts.keys() | self.sums.keys()) - tasks.keys())
        for tid in gone:
            self.texts.pop(tid, None)
            self.sums.pop(tid, None)
            self.settling.pop(tid, None)
        return gone

    def _compare(
        self, state: dict, compared: list[str], encoded: dict[str, str] | None, gone: Iterable[str] = ()
    ) -> list[Op]:
        rest = _rest(state)
        ops = diff(self.rest, rest)
        ops += [[["tasks", tid]] for tid in gone]
        tasks = _tasks(state)
        for tid in compared:
            task = tasks[tid]
            text = dumps(task)
            before = self.texts.get(tid)
            if before is not None:
                if before != text:
                    diff({tid: json.loads(before)}, {tid: task}, ("tasks",), ops)
            elif self.sums.get(tid) != _digest(text):
                ops.append([["tasks", tid], task])
            self._keep(tid, task, text)
            if encoded is not None and tid in self.sums:
                encoded[tid] = text
        if ops:
            self.rest = json.loads(dumps(rest))
        return ops

    def snapshot(self, state: dict, encoded: dict[str, str] | None = None) -> Iterator[bytes]:
        """The tree's JSON in pieces, for a snapshot to be written without the whole of it in memory
        at once: the keys beside the tasks as they are now, then in the order of `state`'s tasks the
        saved text of each open task and each ended task as `encoded` holds it, else as it is now."""
        made = encoded or {}
        tasks = state.get("tasks")
        if not isinstance(tasks, dict):
            yield dumps(state).encode("utf-8")
            return
        rest = dumps(_rest(state))
        yield f'{rest[:-1]}{"," if len(rest) > 2 else ""}"tasks":{{'.encode()
        sep = ""
        for tid, task in tasks.items():
            text = self.texts.get(tid)
            if text is None and tid in self.sums:
                text = made.get(tid) or dumps(task)
            if text is not None:
                yield f"{sep}{json.dumps(tid)}:{text}".encode()
                sep = ","
        yield b"}}"

    def _keep(self, tid: str, task: Any, text: str) -> None:
        if isinstance(task, dict) and task.get("status") in TASK_ENDED:
            digest = _digest(text)
            if self.sums.get(tid) != digest:  # it ended, or changed since: it settles anew
                self.settling[tid] = time.monotonic()
            self.sums[tid] = digest
            self.texts.pop(tid, None)
        else:
            self.texts[tid] = text
            self.sums.pop(tid, None)


def _digest(text: str) -> int:
    """The text's 64-bit hash: two different texts share one about once in 2**64 comparisons."""
    return hash(text)


def _tasks(state: dict) -> dict:
    table = state.get("tasks")
    return table if isinstance(table, dict) else {}


def _rest(state: dict) -> dict:
    """The tree's keys beside its task table (all of them, when `tasks` is no table)."""
    if not isinstance(state.get("tasks"), dict):
        return state
    return {k: v for k, v in state.items() if k != "tasks"}


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
            datasync(self.fd)
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
