"""A process tree's CPU and memory, read from Linux's /proc with the standard library only.

Two readers share it: the watchdog, which samples local workers on its hot path, and the shim of a
worker on another node (a Slurm job), which samples its own worker there and runs as `python -I -S`.
Each process is read once per sample: one `stat` read gives CPU times, RSS, start time and the
thread count, and the tree is walked through `/proc/<pid>/task/<tid>/children` in the same pass (a
single-threaded process needs no directory listing), so the cost grows with the tree, not with
every process on the machine. Where the kernel has no children files, `NoChildrenFiles` says so and
the caller falls back to something slower.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")
HAS_CHILDREN_FILES = LINUX and os.path.exists(f"/proc/self/task/{os.getpid()}/children")


class NoChildrenFiles(Exception):
    """The kernel lacks /proc/<pid>/task/<tid>/children: the tree cannot be walked from /proc."""


@dataclass
class ProcStat:
    cpu_s: float  # user + system CPU seconds
    rss: int  # bytes
    start: int  # start time in clock ticks since boot (PID-reuse guard between samples)
    threads: int = 1
    reaped_cpu_s: float = 0.0  # user + system CPU seconds of its children that ended and were waited for


def read_proc(path: str) -> bytes:
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


def read_stat(pid: int) -> ProcStat | None:
    """One process's figures from /proc/<pid>/stat; None when it is gone or a zombie."""
    try:
        data = read_proc(f"/proc/{pid}/stat")
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
            reaped_cpu_s=(int(fields[13]) + int(fields[14])) / CLK_TCK,
        )
    except (IndexError, ValueError):
        return None


def children(pid: int, threads: int = 0) -> list[int]:
    """Children of every thread of `pid`. With `threads == 1` the only thread is `pid` itself, so
    its file is read directly. NoChildrenFiles when the kernel lacks the files."""
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
            out.extend(int(x) for x in read_proc(f"/proc/{pid}/task/{tid}/children").split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread (or process) ended meanwhile
            raise NoChildrenFiles(pid) from None
        except (OSError, ValueError):
            continue
    return out


def read_tree(root: int, include_root: bool = True, root_start: int | None = None) -> dict[int, ProcStat] | None:
    """Every live process of the tree under `root` with its stat, each read once.

    None when the root is gone, or when `root_start` is given and the root's start time differs
    (its PID was reused). Without `include_root` the root is read (to walk and to check it) but
    left out of the result. NoChildrenFiles when the kernel cannot show the tree."""
    root_stat = read_stat(root)
    if root_stat is None or (root_start is not None and root_stat.start != root_start):
        return None
    out: dict[int, ProcStat] = {root: root_stat} if include_root else {}
    known = {root}
    stack = [(root, root_stat)]
    while stack:
        pid, st = stack.pop()
        for kid in children(pid, st.threads):
            if kid in known:
                continue
            known.add(kid)
            kst = read_stat(kid)
            if kst is not None:
                out[kid] = kst
                stack.append((kid, kst))
    return out


def uptime() -> float:
    try:
        return float(read_proc("/proc/uptime").split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class CpuMeter:
    """Turns the CPU times of successive reads of one tree into a rate: the previous read is kept."""

    last_t: float = 0.0
    last: dict[int, ProcStat] = field(default_factory=dict)

    def percent(self, stats: dict[int, ProcStat], now: float, ncpu: int) -> float:
        """CPU % of `ncpu` CPUs used by the tree since the previous call (0 at the first). A process
        that appeared since then counts its whole CPU time; one that ended since then is not seen."""
        cpu = 0.0
        if self.last_t:
            dt = now - self.last_t
            used = 0.0
            up: float | None = None
            for pid, st in stats.items():
                prev = self.last.get(pid)
                if prev is not None and prev.start == st.start:
                    used += max(0.0, st.cpu_s - prev.cpu_s)
                    continue
                if up is None:
                    up = uptime()
                if self._born_since_last(st, up, now):
                    used += st.cpu_s
            cpu = 100.0 * used / (dt * ncpu) if dt > 0 else 0.0
        self.last_t, self.last = now, stats
        return cpu

    def _born_since_last(self, st: ProcStat, up: float, now: float) -> bool:
        """A process that appeared since the last read: its whole CPU time is new (Linux ticks)."""
        if not LINUX:
            return False
        return up * CLK_TCK - st.start <= (now - self.last_t) * CLK_TCK + CLK_TCK
