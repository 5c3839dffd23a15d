"""Follows each worker: its output (parsed for `aura ps` and the outcome), its progress signals, and
when it is stuck, looping, over its turn cap, or done but not exiting.

Progress signals: output size, a hash of the output's
tail, new or changed files in the task workspace and working folder, error-log growth, CPU time of
the worker's whole process tree (of the container, for Docker workers), new turns, and the growth of
the logs of children the worker registered to outlive it (supervisor/jobs.py). A worker is
stuck only when all of them have been quiet for AURA_STUCK_MINUTES, so a worker that computes in
silence (CPU busy) is never stuck, and one that is silent, idle and writes nothing is reported within
that time. The same tool call repeated AURA_LOOP_REPEAT times in a row is a loop.

Agent CLIs are also known to hang after printing their final line; once it has been seen and the
process is still there after AURA_RESULT_GRACE_SECONDS, the group is stopped.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any

from aura.runtime import proctree
from aura.runtime.pidfile import start_time
from aura.runtime.vocab import ORPHANED, TURNS_EXCEEDED

from .states import ACTIVE

READ_CHUNK = 1 << 20
TAIL_BYTES = 4096
ERROR_TAIL_LINES = 5
ARTIFACT_SCAN_MAX = 5000
ARTIFACT_SCAN_EVERY = 10.0
SKIP_DIRS = {".git", ".aura", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".tox"}
OWN_FILES = {"output.jsonl", "output.txt", "error.log", "task.md", "container.id"}
CREATED_SLACK = 1.0  # seconds between a recorded start time and the process's, still the same process
SIGNALS = ("output", "tail", "errors", "artifacts", "cpu", "turns", "managed_logs")


@dataclass
class Settings:
    stuck_s: float = 600.0
    cpu_busy_percent: float = 5.0
    loop_repeat: int = 5
    result_grace: float = 15.0

    @classmethod
    def from_config(cls, cfg: Any | None) -> Settings:
        if cfg is None:
            return cls()
        return cls(
            stuck_s=cfg.number("AURA_STUCK_MINUTES") * 60,
            cpu_busy_percent=cfg.number("AURA_STUCK_CPU_PERCENT"),
            loop_repeat=cfg.integer("AURA_LOOP_REPEAT"),
            result_grace=cfg.number("AURA_RESULT_GRACE_SECONDS"),
        )


class ProgressTracker:
    """Decides "stuck" from timestamped observations; pure, so it is tested on synthetic streams.

    Each signal remembers when it last changed (CPU: when the tree last used more than
    cpu_busy_percent of a core between two observations). Quiet time is the time since the most
    recent change of any signal; stuck means quiet for at least stuck_s."""

    def __init__(self, started: float, settings: Settings):
        self.settings = settings
        self.changed = {name: started for name in SIGNALS}
        self.prev: dict[str, Any] = {}
        self.prev_cpu: tuple[float, float] | None = None
        self.cpu_percent: float | None = None

    def observe(self, now: float, **values: Any) -> None:
        """Values for any of: output, tail, errors, artifacts, turns (compared), cpu (CPU seconds)."""
        for name, value in values.items():
            if value is None:
                continue
            if name == "cpu":
                self._observe_cpu(now, float(value))
                continue
            if name in self.prev and self.prev[name] != value:
                self.changed[name] = now
            self.prev[name] = value

    def _observe_cpu(self, now: float, seconds: float) -> None:
        if self.prev_cpu is not None and now > self.prev_cpu[0]:
            self.cpu_percent = max(0.0, (seconds - self.prev_cpu[1]) / (now - self.prev_cpu[0]) * 100)
            if self.cpu_percent >= self.settings.cpu_busy_percent:
                self.changed["cpu"] = now
        self.prev_cpu = (now, seconds)

    def quiet_s(self, now: float) -> float:
        return max(0.0, now - max(self.changed.values()))

    def stuck(self, now: float) -> bool:
        return self.quiet_s(now) >= self.settings.stuck_s

    def active(self, now: float) -> list[str]:
        """The signals that moved within the stuck window (why a worker is not stuck)."""
        return [n for n, t in self.changed.items() if now - t < self.settings.stuck_s]


# -- observations of a live worker -------------------------------------------------------------------


def _size(path: str | None) -> int | None:
    if not path:
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def tail_hash(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - TAIL_BYTES))
            return hashlib.sha256(fh.read()).hexdigest()[:16]
    except OSError:
        return None


def artifacts_fingerprint(folders: list[str]) -> str:
    """A hash of (path, size, mtime) of the files under `folders` (bounded walk, Aura's own files and
    tool folders skipped): it changes when a worker creates or rewrites a file."""
    digest = hashlib.sha256()
    seen = 0
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(files):
                if name in OWN_FILES:
                    continue
                try:
                    st = os.stat(os.path.join(root, name))
                except OSError:
                    continue
                digest.update(f"{root}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "replace"))
                seen += 1
                if seen >= ARTIFACT_SCAN_MAX:
                    return digest.hexdigest()[:16]
    return digest.hexdigest()[:16]


def _tree_cpu(root_pid: int, created: float | None, with_root: bool) -> float | None:
    """CPU seconds (its reaped children's included) of the tree under `root_pid`, started at
    `created`; from /proc, reading only the tree (psutil's children() reads every process on the
    machine, once per worker per scan), psutil where there are no children files."""
    if proctree.HAS_CHILDREN_FILES:
        started = start_time(root_pid)
        if started is None or (created is not None and abs(started - float(created)) > CREATED_SLACK):
            return None
        try:
            tree = proctree.read_tree(root_pid, include_root=with_root)
        except proctree.NoChildrenFiles:
            return _tree_cpu_psutil(root_pid, created, with_root)
        return None if tree is None else sum(st.cpu_s + st.reaped_cpu_s for st in tree.values())  # None: ended
    return _tree_cpu_psutil(root_pid, created, with_root)


def _tree_cpu_psutil(root_pid: int, created: float | None, with_root: bool) -> float | None:
    import psutil

    try:
        root = psutil.Process(root_pid)
        if created is not None and abs(root.create_time() - float(created)) > CREATED_SLACK:
            return None
        total = 0.0
        for proc in root.children(recursive=True) + ([root] if with_root else []):
            try:
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total
    except (psutil.NoSuchProcess, psutil.AccessDenied, TypeError, ValueError):
        return None


def tree_cpu_seconds(rec: dict) -> float | None:
    """CPU seconds of everything the worker runs: the shim's descendants (the worker, its children,
    and orphans the shim adopted as subreaper), plus the container's cgroup for Docker workers."""
    root_pid, created = rec.get("shim_pid") or rec.get("worker_pid"), rec.get("shim_create_time")
    if rec.get("state") == ORPHANED or not rec.get("shim_pid"):
        root_pid, created = rec.get("worker_pid"), rec.get("worker_create_time")
    with_root = bool(root_pid) and root_pid == rec.get("worker_pid")
    total = _tree_cpu(int(root_pid or -1), created, with_root)
    container = rec.get("container") or {}
    if container.get("cidfile"):
        from .backends.isolation import container_usage

        usage = container_usage(container["cidfile"]) or {}
        if usage.get("cpu_seconds") is not None:
            total = (total or 0.0) + usage["cpu_seconds"]
    return total


def error_tail(path: str | None) -> str | None:
    """The last lines of a worker's stderr: the clearest reason when it failed at once."""
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()][-ERROR_TAIL_LINES:]
    return " | ".join(lines)[-600:] or None


class _Follow:
    def __init__(self, rec: dict, parser: Any | None, settings: Settings):
        self.rec = rec
        self.path = rec["output"]
        self.parser = parser
        self.settings = settings
        self.offset = 0
        self.partial = b""
        self.size = 0
        self.stat_key: tuple | None = None
        now = time.time()
        self.last_growth = now
        self.final_seen_at: float | None = None
        self.tracker = ProgressTracker(now, settings)
        self.next_artifact_scan = 0.0
        self.flags = {"stuck": False, "loop": False}
        self._last_tail: tuple[tuple | None, str | None] = (None, None)

    # -- reading the output ---------------------------------------------------------------------
    def scan(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return
        if st.st_size < self.offset:  # truncated by a new attempt
            self.offset, self.partial = 0, b""
        if st.st_size > self.size:
            self.last_growth = time.time()
        self.size = st.st_size
        if self.parser is None:
            self.offset = st.st_size
        else:
            self._read_new()
        self.stat_key = (st.st_size, st.st_mtime_ns)

    def _read_new(self) -> None:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            while True:
                chunk = fh.read(READ_CHUNK)
                if not chunk:
                    break
                self.offset += len(chunk)
                self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        assert self.parser is not None  # only a parsed output is read line by line
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            self.parser.feed(raw.decode("utf-8", "replace"))
        if self.final_seen_at is None and self.parsed().get("final"):
            self.final_seen_at = time.time()

    def parsed(self) -> dict:
        return self.parser.summary() if self.parser is not None else {}

    # -- progress -------------------------------------------------------------------------------
    def observe(self, now: float, live: bool) -> None:
        """Feed this scan's signals to the tracker (output must have been scanned just before)."""
        values: dict[str, Any] = {
            "output": self.size,
            "tail": self._tail(),
            "errors": _size(self.rec.get("error_log")),
            "turns": self.parsed().get("turns"),
            "managed_logs": self._job_logs(),
        }
        if now >= self.next_artifact_scan:
            self.next_artifact_scan = now + min(ARTIFACT_SCAN_EVERY, max(0.5, self.settings.stuck_s / 4))
            values["artifacts"] = artifacts_fingerprint(self._folders())
        if live:
            values["cpu"] = tree_cpu_seconds(self.rec)
        self.tracker.observe(now, **values)

    def _job_logs(self) -> int | None:
        """Total size of the logs of the children the worker registered: their progress."""
        children = (self.rec.get("managed") or {}).get("children") or []
        sizes = [_size(c.get("log_path")) for c in children if c.get("log_path")]
        return sum(s for s in sizes if s is not None) if sizes else None

    def _tail(self) -> str | None:
        if self._last_tail[0] != self.stat_key:
            self._last_tail = (self.stat_key, tail_hash(self.path))
        return self._last_tail[1]

    def _folders(self) -> list[str]:
        out = [self.rec["task_dir"]] if self.rec.get("task_dir") else []
        cwd = self.rec.get("cwd")
        if cwd and cwd not in out and os.path.isdir(cwd):
            out.append(cwd)
        return out

    def state(self, now: float) -> dict:
        repeat = self.parsed().get("repeat_count") or 0
        stuck = self.tracker.stuck(now)
        return {
            "stuck": stuck,
            "loop": repeat >= self.settings.loop_repeat,
            "quiet_s": round(self.tracker.quiet_s(now), 1),
            "cpu_percent": None if self.tracker.cpu_percent is None else round(self.tracker.cpu_percent, 1),
            "active_signals": self.tracker.active(now),
        }

    def summary(self) -> dict:
        out: dict = {
            "output_bytes": self.size,
            "last_output_at": self.last_growth,
            "error_bytes": _size(self.rec.get("error_log")) or 0,
        }
        out.update(self.parsed())
        out.update(self.state(time.time()))
        return out


class OutputMonitor:
    def __init__(self, cfg: Any | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_config(cfg)
        self.follows: dict[str, _Follow] = {}

    def track(self, rec: dict, backend: Any) -> None:
        self.follows[rec["worker_id"]] = _Follow(rec, backend.new_parser(), self.settings)

    def _get(self, rec: dict) -> _Follow | None:
        wid = rec["worker_id"]
        if wid not in self.follows and rec.get("output"):
            from .backends import get_backend

            try:
                self.track(rec, get_backend(rec.get("backend", "shell")))
            except Exception:
                return None
        follow = self.follows.get(wid)
        if follow is not None:
            follow.rec = rec
        return follow

    def scan(self, rec: dict) -> None:
        follow = self._get(rec)
        if follow is not None:
            follow.scan()
            follow.observe(time.time(), live=rec.get("state") in ACTIVE)

    def summary(self, wid: str) -> dict | None:
        follow = self.follows.get(wid)
        return follow.summary() if follow is not None else None

    def transitions(self, rec: dict) -> list[tuple[str, dict]]:
        """Stuck and loop flags that changed since the last call, as (event kind, data) pairs."""
        follow = self.follows.get(rec["worker_id"])
        if follow is None:
            return []
        now = time.time()
        state = follow.state(now)
        events: list[tuple[str, dict]] = []
        flags = (("stuck", "worker_stuck", "worker_unstuck"), ("loop", "worker_loop", "worker_loop_ended"))
        for flag, on, off in flags:
            if state[flag] != follow.flags[flag]:
                follow.flags[flag] = state[flag]
                events.append((on if state[flag] else off, self._event_data(rec, follow, state)))
        return events

    @staticmethod
    def _event_data(rec: dict, follow: _Follow, state: dict) -> dict:
        parsed = follow.parsed()
        return {
            "worker_id": rec["worker_id"],
            "task_id": rec.get("task_id"),
            "quiet_s": state["quiet_s"],
            "cpu_percent": state["cpu_percent"],
            "active_signals": state["active_signals"],
            "last_tool": parsed.get("last_tool"),
            "repeat_count": parsed.get("repeat_count"),
            "last_call": parsed.get("last_call"),
            "turns": parsed.get("turns"),
        }

    def finish(self, rec: dict) -> dict | None:
        """A last full read of the output after the worker ended; stops following it."""
        follow = self._get(rec)
        if follow is None:
            return None
        follow.scan()
        if follow.partial and follow.parser is not None:
            follow.parser.feed(follow.partial.decode("utf-8", "replace"))
            follow.partial = b""
        self.follows.pop(rec["worker_id"], None)
        out = follow.summary()
        out["error_tail"] = error_tail(rec.get("error_log")) if out["error_bytes"] else None
        return out

    def should_stop(self, rec: dict) -> tuple[str, str] | None:
        """(reason, reason code) when the supervisor must stop this worker: its final line came and it
        did not exit, or it went past the turn cap the supervisor enforces for it."""
        follow = self.follows.get(rec["worker_id"])
        if follow is None:
            return None
        cap = rec.get("max_turns_enforced")
        turns = follow.parsed().get("turns") or 0
        if cap and turns > cap:
            return f"went past its turn cap of {cap} ({turns} turns)", TURNS_EXCEEDED
        if (
            follow.final_seen_at is not None
            and time.time() - follow.final_seen_at > self.settings.result_grace
            and not rec.get("managed")
        ):  # the agent exited; the shim waits for its registered jobs
            return f"printed its final result {self.settings.result_grace:g}s ago but did not exit", "finished_hung"
        return None
