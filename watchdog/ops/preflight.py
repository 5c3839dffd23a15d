"""preflight: may a new worker start? The supervisor asks before each spawn.

Refused when a free-memory or free-disk reserve is not met (`short`: it may be met later; the
reason names the reserve) or the task's own limits are malformed. The reply carries the limits
that will be in force for the worker, so the supervisor can place it (CPU affinity).

Request: {worker_id: str = "", task_id: str = "", limits: {AURA_*: value} = {}}
Reply: {ok: bool, reason: str, limits: {AURA_*: float}, mode: str, short: bool (when refused for a reserve)}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psutil

from aura.runtime.limits import GUARD_OFF
from aura.runtime.ops import Arg, operation

from ..gpu import GIB
from ..policy import check_task_limits

if TYPE_CHECKING:
    from ..main import WatchdogDaemon


@operation("preflight", "watchdog", Arg("worker_id", str, ""), Arg("task_id", str, ""), Arg("limits", dict, {}))
def preflight(dog: WatchdogDaemon, args: dict) -> dict:
    task_limits = args["limits"]
    problems = check_task_limits(task_limits)
    if problems:
        return {"ok": False, "reason": "bad per-task limits: " + "; ".join(problems)}
    limits = dog.policy.for_worker(task_limits)
    reply = {"ok": True, "reason": "reserves met", "limits": limits, "mode": dog.policy.mode}
    if dog.policy.mode == GUARD_OFF:
        return {**reply, "reason": "resource guard off"}
    refusal = reserve_refusal(dog, limits)
    return {**reply, "ok": False, "reason": refusal, "short": True} if refusal else reply


def reserve_refusal(dog: WatchdogDaemon, limits: dict[str, float]) -> str | None:
    """Why the reserves in force for the new worker are not met now, or None."""
    disk = dog.disk.refusal()
    if disk:
        return disk
    reserve = limits["AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"]
    if reserve > 0:
        free = psutil.virtual_memory().available / GIB
        if free < reserve:
            return (
                f"only {free:.2f} GB of RAM free; the reserve AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB is {reserve:g} GB"
            )
    gpu_reserve = limits["AURA_WORKER_MIN_GPU_MEMORY_FREE_GB"]
    if gpu_reserve > 0:
        ok, why = dog.gpu.preflight_free_ok(gpu_reserve)
        if not ok:
            return f"{why} (AURA_WORKER_MIN_GPU_MEMORY_FREE_GB)"
    return None
