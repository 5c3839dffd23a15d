"""The shim's sampler of its own worker, for a worker on another node (a Slurm job).

The watchdog cannot see a node's processes, so the shim there reads its worker's tree every
`--sample-every` seconds and leaves the figures in the worker's folder on the shared data folder
(`usage.json`, replaced atomically), where the watchdog reads them at its poll and judges them
as it judges a local worker's. The tree is everything under the shim (the worker's session and
group, and what left them: the shim adopts orphans), the same set the watchdog reads locally.

Standard library only (the shim runs as `python -I -S`), and imported only with `--sample-every`,
so a local worker's start pays nothing for it. GPU memory comes from NVML when `pynvml` can be
imported on the node; without it the figure is left out and `gpu` says why.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from aura.runtime import proctree
from aura.runtime.records import WORKER_USAGE


class NodeSampler:
    """Samples the tree under `root` (the shim, left out itself) and writes `usage.json`."""

    def __init__(self, folder: Path, every: float, root: int | None = None):
        self.path = folder / WORKER_USAGE
        self.tmp = folder / (WORKER_USAGE + ".tmp")
        self.every = every
        self.root = os.getpid() if root is None else root
        self.meter = proctree.CpuMeter()
        self.ncpu = os.cpu_count() or 1
        self.mem_total = mem_total()
        self.host = os.uname().nodename
        self.gpu: NodeGpu | None = None
        self.gpu_reason = ""
        self._gpu_tried = False

    def sample(self) -> dict[str, Any]:
        """One reading of the tree: CPU % of the node since the last one, RSS, processes, GPU memory."""
        now = time.monotonic()
        figures: dict[str, Any] = {"sampled_at": time.time(), "host": self.host, "every": self.every}
        if not proctree.HAS_CHILDREN_FILES:
            return {**figures, "error": "this node's kernel cannot show a process tree (no /proc children files)"}
        try:
            stats = proctree.read_tree(self.root, include_root=False) or {}
        except proctree.NoChildrenFiles:
            return {**figures, "error": "this node's kernel cannot show a process tree (no /proc children files)"}
        figures.update(
            cpu_percent=round(self.meter.percent(stats, now, self.ncpu), 2),
            rss_bytes=sum(s.rss for s in stats.values()),
            nprocs=len(stats),
            ncpu=self.ncpu,
            mem_total_bytes=self.mem_total,
        )
        self._add_gpu(figures, stats)
        return figures

    def _add_gpu(self, figures: dict[str, Any], pids: dict[int, Any]) -> None:
        if not self._gpu_tried:  # here, not at the shim's start: loading NVML takes a while
            self._gpu_tried = True
            self.gpu, self.gpu_reason = NodeGpu.open()
        if self.gpu is not None:
            try:
                figures["gpu_mem_bytes"] = self.gpu.used_by(pids)
                figures["gpu_total_bytes"] = self.gpu.total
                return
            except Exception as exc:  # noqa: BLE001 - any NVML failure: say it, go on without the GPU
                self.gpu, self.gpu_reason = None, f"NVML failed: {exc}"
        figures["gpu"] = self.gpu_reason

    def write(self, figures: dict[str, Any]) -> None:
        """Replace `usage.json` atomically (a reader sees the old sample or the new, never half of
        one); no fsync: a sample lost in a crash is replaced by the next."""
        data = json.dumps(figures).encode()
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(self.tmp, self.path)

    def once(self) -> None:
        try:
            self.write(self.sample())
        except OSError:
            pass  # a full disk or a folder gone: the watchdog sees the sample age and says so

    def start(self) -> threading.Event:
        """Sample at once and then every `every` seconds in a thread; set the event to stop it."""
        stop = threading.Event()

        def run() -> None:
            self.once()
            while not stop.wait(self.every):
                self.once()

        threading.Thread(target=run, name="aura-node-sampler", daemon=True).start()
        return stop


def mem_total() -> int:
    """The node's RAM in bytes (the base of a memory-percent limit)."""
    try:
        for line in proctree.read_proc("/proc/meminfo").splitlines():
            if line.startswith(b"MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class NodeGpu:
    """GPU memory of a set of pids on this node through NVML, the devices looked up once."""

    def __init__(self, nvml: Any, handles: list[Any], sizes: list[int], total: int):
        self.nvml = nvml
        self.handles = handles
        self.sizes = sizes  # each device's memory: a process said to hold more is a misread record
        self.total = total

    @classmethod
    def open(cls) -> tuple[NodeGpu | None, str]:
        """NVML when it can be used here; else None and why."""
        try:
            import pynvml as nvml
        except ImportError:
            return None, "pynvml is not importable on the node"
        try:
            nvml.nvmlInit()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            sizes = [int(nvml.nvmlDeviceGetMemoryInfo(h).total) for h in handles]
            visible = visible_devices(handles, nvml)
        except Exception as exc:  # noqa: BLE001 - NVMLError and a driver's other surprises
            return None, f"NVML cannot be used on the node: {exc}"
        if not handles:
            return None, "NVML shows no GPU on the node"
        total = sum(size for h, size in zip(handles, sizes, strict=True) if h in visible)
        return cls(nvml, handles, sizes, total), ""

    def used_by(self, pids: dict[int, Any]) -> int:
        """Memory the pids hold on any device (a pid on both lists of a device counts once)."""
        total = 0
        for handle, size in zip(self.handles, self.sizes, strict=True):
            held: dict[int, int] = {}
            for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                try:
                    procs = getattr(self.nvml, name)(handle)
                except self.nvml.NVMLError:
                    continue  # not supported on this device
                for p in procs:
                    used = p.usedGpuMemory
                    if p.pid in pids and isinstance(used, int) and 0 <= used <= size:
                        held[p.pid] = max(held.get(p.pid, 0), used)
            total += sum(held.values())
        return total


def visible_devices(handles: list[Any], nvml: Any) -> list[Any]:
    """The devices the job may use (CUDA_VISIBLE_DEVICES, which Slurm sets for `--gpus`, by index
    or UUID), all of them when it is unset or names something else: the base of GPU memory %."""
    wanted = [w.strip() for w in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if w.strip()]
    if not wanted:
        return handles
    picked = []
    for w in wanted:
        if w.isdigit() and int(w) < len(handles):
            picked.append(handles[int(w)])
            continue
        found = [h for h in handles if _uuid(nvml, h) == w]
        if not found:
            return handles
        picked.extend(found)
    return picked


def _uuid(nvml: Any, handle: Any) -> str:
    uuid = nvml.nvmlDeviceGetUUID(handle)
    return uuid.decode() if isinstance(uuid, bytes) else str(uuid)
