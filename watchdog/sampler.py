"""Samples worker process trees: CPU from CPU-time deltas, resident memory.

This is the watchdog's hot path, so on Linux it reads `/proc` directly through
`aura.runtime.proctree` (each process read once per sample, the tree walked in the same pass,
the cost growing with the workers' trees, not with every process on the machine). Elsewhere,
or where the kernel has no children files, it uses psutil.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

from aura.runtime import proctree
from aura.runtime.proctree import HAS_CHILDREN_FILES, LINUX, CpuMeter, NoChildrenFiles, ProcStat

NCPU = psutil.cpu_count() or 1
TOTAL_RAM = psutil.virtual_memory().total

__all__ = ["NCPU", "TOTAL_RAM", "ProcStat", "TreeSample", "TreeTracker", "read_tree", "start_ticks", "tree_pids"]


@dataclass
class TreeSample:
    t: float
    pids: list[int]
    cpu_percent: float  # of the whole machine (the node's, for a worker on another node)
    rss_bytes: int
    nprocs: int
    gpu_mem_bytes: int = 0
    gpu_util_percent: float | None = None
    mem_total: int = TOTAL_RAM  # the base of mem_percent: this machine's RAM, or the node's
    gpu_total: int | None = None  # the node's visible GPU memory, for a worker on another node
    host: str | None = None  # the node that sampled it; None: this machine

    @property
    def mem_percent(self) -> float:
        return 100.0 * self.rss_bytes / self.mem_total


def tree_pids(root: int, include_root: bool = True) -> list[int]:
    """`root` and all its descendants (for callers that need only the pids)."""
    stats = read_tree(root, include_root)
    return list(stats) if stats is not None else []


def read_tree(root: int, include_root: bool = True, root_start: int | None = None) -> dict[int, ProcStat] | None:
    """Every live process of the tree under `root` with its stat, each read once.

    None when the root is gone, or when `root_start` is given and the root's start time
    differs (its PID was reused). Without `include_root` the root is read (to walk and to
    check it) but left out of the result.
    """
    if not HAS_CHILDREN_FILES:
        return _read_tree_psutil(root, include_root, root_start)
    try:
        return proctree.read_tree(root, include_root, root_start)
    except NoChildrenFiles:
        return _read_tree_psutil(root, include_root, root_start)


def _read_tree_psutil(root: int, include_root: bool, root_start: int | None) -> dict[int, ProcStat] | None:
    root_stat = read_stat(root)
    if root_stat is None or (root_start is not None and root_stat.start != root_start):
        return None
    try:
        kids = [c.pid for c in psutil.Process(root).children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    out: dict[int, ProcStat] = {root: root_stat} if include_root else {}
    for pid in kids:
        st = read_stat(pid)
        if st is not None:
            out[pid] = st
    return out


def _read_stat_psutil(pid: int) -> ProcStat | None:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            ct = proc.cpu_times()
            return ProcStat(
                cpu_s=ct.user + ct.system,
                rss=proc.memory_info().rss,
                start=int(proc.create_time() * 100),
                threads=proc.num_threads(),
            )
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


read_stat = proctree.read_stat if LINUX else _read_stat_psutil


def start_ticks(pid: int) -> int | None:
    """The process's start time in the unit `read_tree(root_start=...)` compares."""
    st = read_stat(pid)
    return st.start if st is not None else None


class TreeTracker(CpuMeter):
    """Keeps the previous sample of one worker's processes to turn CPU times into a rate."""

    def sample(self, stats: dict[int, ProcStat], now: float | None = None) -> TreeSample:
        """CPU % of the tree since the previous call, from the stats `read_tree` returned."""
        cpu = self.percent(stats, time.monotonic() if now is None else now, NCPU)
        return TreeSample(
            t=time.time(),
            pids=list(stats),
            cpu_percent=round(cpu, 2),
            rss_bytes=sum(s.rss for s in stats.values()),
            nprocs=len(stats),
        )
