"""Before and right after a worker starts: the watchdog's preflight, and the cores it may use.

The preflight asks the watchdog whether a spawn fits its limits and free-memory reserves. Under a
CPU ceiling (AURA_WORKER_MAX_CPU_PERCENT) a local worker is pinned to the share of cores the
ceiling allows, choosing the cores least used by other pinned workers so workers spread over
distinct cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psutil

from aura.ipc import envelope as env
from aura.ipc.client import Client, DaemonUnavailable, RemoteError
from aura.ipc.envelope import IpcError
from aura.runtime.paths import ProjectPaths

PREFLIGHT_TIMEOUT = 1.0  # seconds the spawn waits for the watchdog's preflight answer
CPU_CEILING = "AURA_WORKER_MAX_CPU_PERCENT"


class Preflight:
    """The watchdog's say on a spawn."""

    def __init__(self, paths: ProjectPaths, ctx: Any, log: Any, publish: Callable[..., Any]):
        self.paths = paths
        self.ctx = ctx
        self.log = log
        self.publish = publish
        self._watchdog: Client | None = None

    def ask_many(self, asks: list[tuple[str, dict]]) -> list[dict | IpcError | None]:
        """The watchdog's answer to each (worker id, spec), the questions sent together: its reply,
        or the IpcError that refuses the spawn (reserve_short, its reason naming the reserve, when a
        free-memory reserve is not met; spawn_refused when it can never pass). A watchdog that is
        down or slow does not stop the work: a spawn goes ahead after PREFLIGHT_TIMEOUT (None) and
        the log says so."""
        if self._watchdog is None:
            self._watchdog = Client(
                self.paths.endpoint("watchdog"), "watchdog", timeout=PREFLIGHT_TIMEOUT, retries=0, ctx=self.ctx
            )
        questions = [
            ("preflight", {"worker_id": wid, "task_id": spec["task_id"], "limits": spec["limits"]})
            for wid, spec in asks
        ]
        try:
            replies: list[Any] = self._watchdog.call_many(questions)
        except DaemonUnavailable as exc:
            replies = [exc] * len(asks)
        return [self._judged(wid, spec, reply) for (wid, spec), reply in zip(asks, replies, strict=True)]

    def _judged(self, wid: str, spec: dict, reply: Any) -> dict | IpcError | None:
        if isinstance(reply, (DaemonUnavailable, RemoteError)):
            self.log.warning("preflight_skipped", worker=wid, reason=str(reply))
            return None
        if reply.get("ok"):
            return reply
        reason = str(reply.get("reason") or "no reason given")
        self.log.warning("spawn_refused", worker=wid, task=spec["task_id"], reason=reason)
        self.publish("spawn_refused", worker_id=wid, task_id=spec["task_id"], reason=reason)
        return IpcError(
            env.RESERVE_SHORT if reply.get("short") else env.SPAWN_REFUSED,
            f"resource preflight refused the spawn: {reason}",
        )


def cpu_ceiling(spec: dict, preflight: dict | None, cfg: Any) -> float:
    """The worker's CPU ceiling in force: the watchdog's answer (run-time changes included), else
    the configuration with the task's own override."""
    limits = (preflight or {}).get("limits")
    value: Any = (
        limits.get(CPU_CEILING) if isinstance(limits, dict) else spec["limits"].get(CPU_CEILING, cfg.text(CPU_CEILING))
    )
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def pins(ceiling: float) -> bool:
    """Whether a worker under this CPU ceiling is pinned to a share of the cores (below 100 %)."""
    return 0 < ceiling < 100


class CpuPinning:
    """Pins local processes (their children inherit it) to a share of this daemon's cores."""

    def __init__(self, log: Any):
        self.log = log
        self._note: str | None = None

    def pin(self, wid: str, pid: int, ceiling: float, in_use: list[int]) -> list[int] | None:
        """Pin the worker `pid` and its children under a ceiling below 100 %; the cores, or None."""
        if not pins(ceiling):
            return None
        cpus = self.pick(ceiling, in_use)
        if cpus is None:
            return None
        try:
            kids = [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            kids = []
        try:
            for each in (pid, *kids):
                os.sched_setaffinity(each, cpus)
        except ProcessLookupError:  # it ended before it could be placed: nothing to pin, nothing failed
            self.log.debug("cpu_affinity_not_needed", worker=wid, reason="the worker has ended")
            return None
        except OSError as exc:  # not ours to pin
            self.log.warning("cpu_affinity_failed", worker=wid, error=str(exc))
            return None
        return sorted(cpus)

    def pick(self, ceiling: float, in_use: list[int]) -> set[int] | None:
        """floor(n * ceiling / 100) cores (at least one) of those this daemon may use, the least used
        first; None, said once in the log, where the platform cannot pin."""
        if not hasattr(os, "sched_setaffinity"):
            self._cannot("this platform has no CPU affinity call (sched_setaffinity)")
            return None
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < 2:
            self._cannot(f"only {len(allowed)} CPU available: nothing to spread workers over")
            return None
        want = max(1, int(len(allowed) * ceiling / 100))
        load = {c: 0 for c in allowed}
        for c in in_use:
            if c in load:
                load[c] += 1
        return set(sorted(allowed, key=lambda c: (load[c], c))[:want])

    def _cannot(self, reason: str) -> None:
        if self._note != reason:
            self._note = reason
            self.log.info("cpu_affinity_skipped", reason=reason)
