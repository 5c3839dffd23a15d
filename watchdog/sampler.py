"""Samples worker process trees: CPU from CPU-time deltas, resident memory.

This is the watchdog's hot path, so on Linux it reads `/proc` directly: each process's
`stat` once per sample (CPU times and RSS in one read), and the tree is walked through
`/proc/<pid>/task/<tid>/children` so the cost grows with the workers' trees, not with
every process on the machine. Elsewhere it uses psutil.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable

import psutil

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
NCPU = psutil.cpu_count() or 1
TOTAL_RAM = psutil.virtual_memory().total


@dataclass
class ProcStat:
    cpu_s: float  # user + system CPU seconds
    rss: int  # bytes
    start: int  # start time in clock ticks since boot (PID-reuse guard between samples)


@dataclass
class TreeSample:
    t: float
    pids: list[int]
    cpu_percent: float  # of the whole machine
    rss_bytes: int
    nprocs: int
    gpu_mem_bytes: int = 0
    gpu_util_percent: float | None = None

    @property
    def mem_percent(self) -> float:
        return 100.0 * self.rss_bytes / TOTAL_RAM


def _read_stat_linux(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = data[data.rfind(b")") + 2:].split()
    try:
        state = fields[0]
        if state in (b"Z", b"X"):
            return None
        utime, stime = int(fields[11]), int(fields[12])
        start, rss_pages = int(fields[19]), int(fields[21])
    except (IndexError, ValueError):
        return None
    return ProcStat(cpu_s=(utime + stime) / CLK_TCK, rss=rss_pages * PAGE, start=start)


def _children_linux(pid: int) -> list[int] | None:
    """Children of every thread of `pid`; None when the kernel lacks the children files."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                out.extend(int(x) for x in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue
            return None
        except (OSError, ValueError):
            continue
    return out


_LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")
_HAS_CHILDREN_FILES = _LINUX and os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def tree_pids(root: int, include_root: bool = True) -> list[int]:
    """`root` and all its descendants."""
    if _HAS_CHILDREN_FILES:
        seen, known, stack = [], {root}, [root]
        while stack:
            pid = stack.pop()
            seen.append(pid)
            kids = _children_linux(pid)
            if kids is None:
                return _tree_psutil(root, include_root)
            fresh = [k for k in kids if k not in known]
            known.update(fresh)
            stack.extend(fresh)
        return seen if include_root else seen[1:]
    return _tree_psutil(root, include_root)


def _tree_psutil(root: int, include_root: bool) -> list[int]:
    try:
        proc = psutil.Process(root)
        kids = [c.pid for c in proc.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
    return ([root] if include_root else []) + kids


def _read_stat_psutil(pid: int) -> ProcStat | None:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            ct = proc.cpu_times()
            return ProcStat(cpu_s=ct.user + ct.system, rss=proc.memory_info().rss, start=int(proc.create_time() * 100))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


read_stat = _read_stat_linux if _LINUX else _read_stat_psutil


@dataclass
class TreeTracker:
    """Keeps the previous sample of one worker's processes to turn CPU times into a rate."""

    last_t: float = 0.0
    last: dict[int, ProcStat] = field(default_factory=dict)

    def sample(self, pids: Iterable[int], now: float | None = None) -> TreeSample:
        now = time.monotonic() if now is None else now
        stats: dict[int, ProcStat] = {}
        for pid in pids:
            st = read_stat(pid)
            if st is not None:
                stats[pid] = st
        cpu = 0.0
        if self.last_t:
            dt = now - self.last_t
            used = 0.0
            for pid, st in stats.items():
                prev = self.last.get(pid)
                if prev is not None and prev.start == st.start:
                    used += max(0.0, st.cpu_s - prev.cpu_s)
                else:
                    used += st.cpu_s if self._born_since_last(st) else 0.0
            cpu = 100.0 * used / (dt * NCPU) if dt > 0 else 0.0
        self.last_t, self.last = now, stats
        return TreeSample(t=time.time(), pids=list(stats), cpu_percent=round(cpu, 2),
                          rss_bytes=sum(s.rss for s in stats.values()), nprocs=len(stats))

    def _born_since_last(self, st: ProcStat) -> bool:
        """A process that appeared since the last sample: its whole CPU time is new (Linux ticks)."""
        if not _LINUX:
            return False
        uptime_ticks = _uptime() * CLK_TCK
        return uptime_ticks - st.start <= (time.monotonic() - self.last_t) * CLK_TCK + CLK_TCK


def _uptime() -> float:
    try:
        with open("/proc/uptime", "rb") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
