"""Samples worker process trees: CPU from CPU-time deltas, resident memory.

This is the watchdog's hot path, so on Linux it reads `/proc` directly and reads each
process once per sample: one `stat` read gives CPU times, RSS, start time and the thread
count, and the tree is walked through `/proc/<pid>/task/<tid>/children` in the same pass
(a single-threaded process needs no directory listing), so the cost grows with the
workers' trees, not with every process on the machine. Elsewhere it uses psutil.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

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
    threads: int = 1


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


def _read_proc(path: str) -> bytes:
    """A small /proc file with raw os calls (about half the cost of a Python file object).

    /proc hands out a page at a time, so reading stops at the first chunk shorter than that."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = chunk = os.read(fd, 65536)
        while len(chunk) >= 4000:
            chunk = os.read(fd, 65536)
            data += chunk
        return data
    finally:
        os.close(fd)


def _read_stat_linux(pid: int) -> ProcStat | None:
    try:
        data = _read_proc(f"/proc/{pid}/stat")
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        if fields[0] in (b"Z", b"X"):
            return None
        return ProcStat(
            cpu_s=(int(fields[11]) + int(fields[12])) / CLK_TCK,
            rss=int(fields[21]) * PAGE,
            start=int(fields[19]),
            threads=int(fields[17]),
        )
    except (IndexError, ValueError):
        return None


def _children_linux(pid: int, threads: int = 0) -> list[int] | None:
    """Children of every thread of `pid`; None when the kernel lacks the children files.

    With `threads == 1` the only thread is `pid` itself, so its file is read directly."""
    if threads == 1:
        tids = [str(pid)]
    else:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return []
    out: list[int] = []
    for tid in tids:
        try:
            out.extend(int(x) for x in _read_proc(f"/proc/{pid}/task/{tid}/children").split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread (or process) ended meanwhile
            return None
        except (OSError, ValueError):
            continue
    return out


_LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")
_HAS_CHILDREN_FILES = _LINUX and os.path.exists(f"/proc/self/task/{os.getpid()}/children")


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
    if not _HAS_CHILDREN_FILES:
        return _read_tree_psutil(root, include_root, root_start)
    root_stat = read_stat(root)
    if root_stat is None or (root_start is not None and root_stat.start != root_start):
        return None
    out: dict[int, ProcStat] = {root: root_stat} if include_root else {}
    known = {root}
    stack = [(root, root_stat)]
    while stack:
        pid, st = stack.pop()
        kids = _children_linux(pid, st.threads)
        if kids is None:
            return _read_tree_psutil(root, include_root, root_start)
        for kid in kids:
            if kid in known:
                continue
            known.add(kid)
            kst = read_stat(kid)
            if kst is not None:
                out[kid] = kst
                stack.append((kid, kst))
    return out


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


read_stat = _read_stat_linux if _LINUX else _read_stat_psutil


def start_ticks(pid: int) -> int | None:
    """The process's start time in the unit `read_tree(root_start=...)` compares."""
    st = read_stat(pid)
    return st.start if st is not None else None


@dataclass
class TreeTracker:
    """Keeps the previous sample of one worker's processes to turn CPU times into a rate."""

    last_t: float = 0.0
    last: dict[int, ProcStat] = field(default_factory=dict)

    def sample(self, stats: dict[int, ProcStat], now: float | None = None) -> TreeSample:
        """CPU % of the tree since the previous call, from the stats `read_tree` returned."""
        now = time.monotonic() if now is None else now
        cpu = 0.0
        if self.last_t:
            dt = now - self.last_t
            used = 0.0
            uptime: float | None = None
            for pid, st in stats.items():
                prev = self.last.get(pid)
                if prev is not None and prev.start == st.start:
                    used += max(0.0, st.cpu_s - prev.cpu_s)
                    continue
                if uptime is None:
                    uptime = _uptime()
                if self._born_since_last(st, uptime, now):
                    used += st.cpu_s
            cpu = 100.0 * used / (dt * NCPU) if dt > 0 else 0.0
        self.last_t, self.last = now, stats
        return TreeSample(
            t=time.time(),
            pids=list(stats),
            cpu_percent=round(cpu, 2),
            rss_bytes=sum(s.rss for s in stats.values()),
            nprocs=len(stats),
        )

    def _born_since_last(self, st: ProcStat, uptime: float, now: float) -> bool:
        """A process that appeared since the last sample: its whole CPU time is new (Linux ticks)."""
        if not _LINUX:
            return False
        return uptime * CLK_TCK - st.start <= (now - self.last_t) * CLK_TCK + CLK_TCK


def _uptime() -> float:
    try:
        with open("/proc/uptime", "rb") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
