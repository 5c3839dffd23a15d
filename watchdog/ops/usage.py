"""usage: each watched worker's latest figures, with the guard mode, GPU and disk state (`aura ps`,
the brain's view of its running workers).

Request: {worker_ids: [str] = null (every watched worker)}
Reply: {workers: {id: {sampled_at, cpu_percent, rss_bytes, mem_percent, nprocs, gpu_mem_bytes,
    gpu_util_percent, avg, strikes, task_id, output_bytes, limits, overrides}}, sampled_at: float (null
    before the first sample), mode: str, gpu: {available, source, reason, notes}, disk: {...}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.runtime.ops import Arg, operation

from ..workers import Watched

if TYPE_CHECKING:
    from ..main import WatchdogDaemon


@operation("usage", "watchdog", Arg("worker_ids", list, None))
def usage(dog: WatchdogDaemon, args: dict) -> dict:
    ids = args["worker_ids"]
    workers = {
        wid: figures(dog, w) for wid, w in dog.watched.items() if w.sample is not None and (ids is None or wid in ids)
    }
    return {
        "workers": workers,
        "sampled_at": dog.sampling.last_sample_at,
        "mode": dog.policy.mode,
        "gpu": {**dog.gpu_status(), "notes": list(dog.gpu.notes)},
        "disk": dog.disk.status(),
    }


def figures(dog: WatchdogDaemon, w: Watched) -> dict:
    """One worker's latest figures, built on request rather than at every sample."""
    s = w.sample
    assert s is not None
    return {
        "sampled_at": w.sampled_at,
        "cpu_percent": s.cpu_percent,
        "rss_bytes": s.rss_bytes,
        "mem_percent": round(s.mem_percent, 3),
        "nprocs": s.nprocs,
        "gpu_mem_bytes": s.gpu_mem_bytes,
        "gpu_util_percent": s.gpu_util_percent,
        "avg": {k: round(v, 4) for k, v in w.window.averages().items()},
        "strikes": {k: n for k, n in w.window.strikes.items() if n},
        "task_id": w.rec.get("task_id"),
        "output_bytes": dog.disk.output_bytes(w.rec.get("worker_id") or ""),
        "limits": dog.limits_of(w),
        "overrides": w.rec.get("limits") or {},
    }
