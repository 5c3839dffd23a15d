"""One pass of the watchdog over the live workers: read, measure, judge, hand over to the stops.

The hot path: each worker's processes are read once, NVML once for all workers, the disk once;
the figures a request may want (`usage`) are built on request, not here.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import psutil

from aura.runtime.eventkinds import DISK_LOW
from aura.runtime.limits import GUARD_OFF
from aura.runtime.records import WORKER_USAGE
from aura.runtime.usagehistory import UsageHistory
from aura.runtime.vocab import SLURM

from .disk import DiskGuard
from .gpu import (
    GIB,
    GpuSampler,
    GpuSnapshot,
    best_free_bytes,
    tree_usage,
    visible_total_bytes,
)
from .kills import Kills
from .nodes import NodeFigures
from .policy import Policy, Violation, reserve_victim
from .sampler import TreeSample
from .workers import RegistryView, Watched

RESERVE_MIN_RSS = 128 * 1024**2  # a worker this small is never the victim of a reserve shortfall


class Watchdog(Protocol):
    """What a pass reads of the daemon: the policy in force and the parts it drives."""

    policy: Policy
    watched: dict[str, Watched]
    gpu: GpuSampler
    disk: DiskGuard
    kills: Kills
    history: UsageHistory
    log: Any

    def publish(self, kind: str, **data: Any) -> dict | None: ...

    def limits_of(self, w: Watched) -> dict[str, float]: ...


class Sampling:
    def __init__(self, dog: Watchdog, view: RegistryView):
        self.dog = dog
        self.view = view
        self.last_sample_at: float | None = None
        self.max_gap_s = 0.0
        self.cost_s = 0.0
        self.gpu_notes_logged = 0

    def once(self) -> None:
        """One pass: each worker process read once, NVML once for all workers, then the policy."""
        started = time.monotonic()
        now = time.time()
        if self.last_sample_at is not None:
            self.max_gap_s = max(self.max_gap_s, now - self.last_sample_at)
        dog, watched = self.dog, self.dog.watched
        workers = self.view.live()
        if dog.kills.jobs:
            dog.kills.forget_ended(workers)
        gpu_snap = dog.gpu.sample() if dog.gpu.available else None
        samples: dict[str, TreeSample] = {}
        remote: list[str] = []
        for wid, rec in workers.items():
            w = watched.get(wid)
            if w is None or w.rec is not rec:
                w = self._watch(wid, rec, w)
            if w.node is not None:
                remote.append(wid)
                self._take_node_sample(w, wid, samples, now)
                continue
            stats = w.read()
            if not stats:
                continue
            sample = w.tracker.sample(stats)
            if gpu_snap is not None:
                sample.gpu_mem_bytes, sample.gpu_util_percent = tree_usage(gpu_snap, stats)
            w.sample, w.sampled_at = sample, now
            samples[wid] = sample
        self.evaluate(samples, gpu_snap, now)
        self._check_disk(samples, remote, now)
        add = dog.history.add
        for wid, s in samples.items():
            add(wid, now, s.cpu_percent, s.rss_bytes, s.gpu_mem_bytes, s.gpu_util_percent)
        for gone in set(watched).difference(samples, remote):
            dog.history.end(gone, watched.pop(gone).rec.get("task_id"))
        if gpu_snap is not None and len(gpu_snap.notes) > self.gpu_notes_logged:
            self.log_gpu_notes()
        self.last_sample_at = now
        self.cost_s = time.monotonic() - started

    def _watch(self, wid: str, rec: dict, old: Watched | None) -> Watched:
        """Start watching a worker, or take in its changed record (keeping its window)."""
        if old is None:
            w = Watched(rec)
            if rec.get("limits"):
                self.dog.log.info("worker_limits", worker=wid, task=rec.get("task_id"), overrides=rec["limits"])
        else:
            w, w.rec, w.limits_gen = old, rec, -1
        if rec.get("executor") == SLURM:
            w.node = w.node or NodeFigures(f"{self.view.root}/{wid}/{WORKER_USAGE}")
        else:
            w.resolve_root()
        self.dog.watched[wid] = w
        return w

    def _take_node_sample(self, w: Watched, wid: str, samples: dict[str, TreeSample], now: float) -> None:
        """A worker on another node: its shim's newest sample, when there is a new one; none when
        the last is stale (`usage` then says why)."""
        assert w.node is not None
        sample = w.node.take(now, self.dog.policy.poll_s)
        if sample is not None:
            w.sample, w.sampled_at = sample, now
            samples[wid] = sample
        elif w.node.missing:
            w.sample = None

    # -- the policy ----------------------------------------------------------------------------
    def evaluate(self, samples: dict[str, TreeSample], gpu_snap: GpuSnapshot | None, now: float) -> None:
        """Every limit of every worker against its window; the worst violation goes to the stops."""
        dog = self.dog
        gpu_total = visible_total_bytes(gpu_snap) if gpu_snap is not None else 0
        metrics = {wid: _metrics(s, gpu_total) for wid, s in samples.items()}
        self._attach_reserves(samples, metrics, gpu_snap)
        policy = dog.policy
        worst: tuple[float, str, Violation] | None = None
        for wid in samples:
            w = dog.watched[wid]
            for v in w.window.add(now, metrics[wid], dog.limits_of(w), policy):
                if worst is None or v.severity > worst[0]:
                    worst = (v.severity, wid, v)
        if worst is not None and policy.mode != GUARD_OFF:
            w = dog.watched[worst[1]]
            dog.kills.on_violation(worst[1], w, worst[2], policy, dog.limits_of(w))

    def _attach_reserves(
        self, samples: dict[str, TreeSample], metrics: dict[str, dict], gpu_snap: GpuSnapshot | None
    ) -> None:
        """A reserve shortfall is charged to one victim: the biggest worker (one victim at a time),
        under the reserve in force for it (a task may have its own)."""
        dog = self.dog
        # a worker on another node does not use this machine's memory or GPUs
        wid = reserve_victim({w: s.rss_bytes for w, s in samples.items() if s.host is None}, RESERVE_MIN_RSS)
        if wid is not None and dog.limits_of(dog.watched[wid])["AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"] > 0:
            metrics[wid]["system_free_gb"] = psutil.virtual_memory().available / GIB
        if gpu_snap is None:
            return
        wid = reserve_victim({w: s.gpu_mem_bytes for w, s in samples.items() if s.host is None}, 1)
        free = best_free_bytes(gpu_snap)
        if (
            wid is not None
            and free is not None
            and dog.limits_of(dog.watched[wid])["AURA_WORKER_MIN_GPU_MEMORY_FREE_GB"] > 0
        ):
            metrics[wid]["gpu_free_gb"] = free / GIB

    # -- the disk: the data folder's free space and each worker's output ----------------------
    def _check_disk(self, samples: dict[str, TreeSample], remote: list[str], now: float) -> None:
        """Every live worker's output files (those on other nodes too: they are in the shared data
        folder); which local processes write the disk, for the local ones."""
        dog = self.dog
        workers = {wid: (dog.watched[wid].rec, s.pids) for wid, s in samples.items()}
        for wid in remote:
            workers[wid] = (dog.watched[wid].rec, [])
        change, stops = dog.disk.check(workers, now)
        if change is not None:
            info = dog.disk.status()
            report = dog.log.warning if change == DISK_LOW else dog.log.info
            report(change, free_mb=info["free_mb"], reserve_mb=info["reserve_mb"], path=info["path"])
            dog.publish(change, **info)
        for stop in stops:
            dog.kills.on_disk_stop(stop, dog.watched.get(stop.worker_id), dog.policy.mode)
        dog.kills.retry_unwritten()

    # -- the GPU --------------------------------------------------------------------------------
    def log_gpu_notes(self) -> None:
        """Say each GPU degradation once in this log ("GPU per-process data unavailable: why")."""
        notes = self.dog.gpu.notes
        for note in notes[self.gpu_notes_logged :]:
            self.dog.log.warning("gpu_note", note=note)
        self.gpu_notes_logged = len(notes)


def _metrics(sample: TreeSample, gpu_total: int) -> dict[str, float | None]:
    if sample.host is not None:  # sampled on its node: that node's GPUs, when it could read them
        gpu_total = sample.gpu_total or 0
    return {
        "cpu_percent": sample.cpu_percent,
        "mem_percent": sample.mem_percent,
        "rss_gb": sample.rss_bytes / GIB,
        "gpu_util_percent": sample.gpu_util_percent,
        "gpu_mem_percent": (100.0 * sample.gpu_mem_bytes / gpu_total) if gpu_total else None,
        "gpu_mem_gb": sample.gpu_mem_bytes / GIB if gpu_total else None,
        "system_free_gb": None,
        "gpu_free_gb": None,
    }
