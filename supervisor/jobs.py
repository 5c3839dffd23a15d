"""Registered jobs: long-running children a worker lists in its task folder's `process.json`
(`managed_subprocesses`), so they may outlive it.

An agent that starts a training run must not have to sit and wait for it, and Aura must not
kill it as a leftover when the agent exits. The worker owns `process.json`; it lists children
as `{"pid", "started_at", "kind", "log_path"}` (the aliases `child_processes` and `subprocesses`,
`start_time`, `progress_log` and `monitor_path` are read too, so existing workers' files work).
The shim keeps a registered child only when it is one of the worker's own descendants and its
start time matches within 30 s (a PID reused by another process does not); an entry without a
start time is taken on trust. Imported by the shim, so it uses the standard library only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

FILE_NAME = "process.json"
LIST_KEYS = ("managed_subprocesses", "child_processes", "subprocesses")
START_KEYS = ("started_at", "start_time")
LOG_KEYS = ("log_path", "progress_log", "monitor_path")
START_TOLERANCE_S = 30.0


@dataclass
class RegisteredJob:
    pid: int
    kind: str = ""
    log_path: str | None = None
    started_at: float | None = None
    create_time: float | None = None


def _epoch(value: object) -> float | None:
    """A start time as seconds since the epoch: a number, or an ISO 8601 string (naive = local)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _first(entry: dict, keys: Iterable[str]) -> object:
    return next((entry[k] for k in keys if entry.get(k) not in (None, "")), None)


def may_keep(rec: dict) -> bool:
    """Might the worker's shim keep jobs past its end? (it registered some, or they are kept already)"""
    task_dir = rec.get("task_dir")
    return bool(rec.get("managed")) or (isinstance(task_dir, str) and (Path(task_dir) / FILE_NAME).exists())


class EndedKeeps:
    """`may_keep` of each ended worker, looked up once while it stays ended: its shim decided when
    the worker ended, and a poll of `list` during a burst of ends would otherwise look up every
    ended worker's file at each answer."""

    def __init__(self) -> None:
        self._known: dict[str, bool] = {}

    def without_jobs(self, ended: dict[str, dict]) -> set[str]:
        """Of the `ended` workers (id: record), those whose shim cannot keep jobs."""
        known = self._known
        self._known = {wid: known[wid] if wid in known else may_keep(rec) for wid, rec in ended.items()}
        return {wid for wid, keeps in self._known.items() if not keeps}


def read_registered(task_dir: Path) -> list[RegisteredJob]:
    """The children listed in the worker's process.json; an unreadable file lists none."""
    try:
        data = json.loads((task_dir / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    entries: list = next((data[k] for k in LIST_KEYS if isinstance(data.get(k), list)), [])
    out: list[RegisteredJob] = []
    for entry in entries:
        if isinstance(entry, int) and not isinstance(entry, bool):
            entry = {"pid": entry}
        if not isinstance(entry, dict):
            continue
        try:
            pid = int(entry.get("pid"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        log = _first(entry, LOG_KEYS)
        out.append(
            RegisteredJob(
                pid, str(entry.get("kind") or ""), str(log) if log else None, _epoch(_first(entry, START_KEYS))
            )
        )
    return out


def keep(
    registered: list[RegisteredJob], tree: set[int], start_of: Callable[[int], float | None]
) -> list[RegisteredJob]:
    """The registered children that are live descendants of the worker, started when they say."""
    kept: list[RegisteredJob] = []
    for reg in registered:
        if reg.pid not in tree or any(k.pid == reg.pid for k in kept):
            continue
        created = start_of(reg.pid)
        if created is None:
            continue
        if reg.started_at is not None and abs(created - reg.started_at) > START_TOLERANCE_S:
            continue  # a reused PID, or not the process the worker meant
        reg.create_time = created
        kept.append(reg)
    return kept


def subtrees(roots: Iterable[int], children: dict[int, list[int]]) -> set[int]:
    """`roots` and all their descendants."""
    out: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, []))
    return out


def signal_pids(pids: Iterable[int], sig: int) -> int:
    """Send `sig` to each pid; returns how many were there to receive it."""
    sent = 0
    for pid in pids:
        if pid <= 1 or pid == os.getpid():
            continue
        try:
            os.kill(pid, sig)
            sent += 1
        except OSError:
            pass
    return sent


def describe(kept: list[RegisteredJob]) -> list[dict]:
    return [asdict(k) for k in kept]
