"""usage: each watched worker's latest figures, with the guard mode, GPU and disk state (`aura ps`,
the brain's view of its running workers).

A worker on another node (a Slurm job) also has `host` and `node_sampled_at` (its shim's sample
there), or, without a fresh sample, `missing` (why) in place of the figures.

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
        wid: figures(dog, w) if w.sample is not None else missing(dog, w)
        for wid, w in dog.watched.items()
        if (w.sample is not None or w.node is not None) and (ids is None or wid in ids)
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
    out = {
        "sampled_at": w.sampled_at,
        "cpu_percent": s.cpu_percent,
        "rss_bytes": s.rss_bytes,
        "mem_percent": round(s.mem_percent, 3),
        "nprocs": s.nprocs,
        "gpu_mem_bytes": s.gpu_mem_bytes,
        "gpu_util_percent": s.gpu_util_percent,
        **judged(dog, w),
    }
    if s.host is not None:
        out.update(host=s.host, node_sampled_at=s.t)
    return out


def missing(dog: WatchdogDaemon, w: Watched) -> dict:
    """A worker on another node without a fresh sample: why, and what the watchdog still knows."""
    assert w.node is not None
    return {"missing": w.node.missing, "host": w.node.host or None, **judged(dog, w)}


def judged(dog: WatchdogDaemon, w: Watched) -> dict:
    return {
        "avg": {k: round(v, 4) for k, v in w.window.averages().items()},
        "strikes": {k: n for k, n in w.window.strikes.items() if n},
        "task_id": w.rec.get("task_id"),
        "output_bytes": dog.disk.output_bytes(w.rec.get("worker_id") or ""),
        "limits": dog.limits_of(w),
        "overrides": w.rec.get("limits") or {},
    }
