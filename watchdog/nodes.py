"""A worker on another node (a Slurm job): its figures come from its shim's samples, not from /proc.

The watchdog cannot see a node's processes (a local pid of the same number is someone else's), so
the shim there samples its worker at the watchdog's poll and replaces `usage.json` in the worker's
folder on the shared data folder (supervisor/nodesample.py). Each pass reads that file (opened
every time: a stat alone can be stale on NFS, an open revalidates it) and hands over a sample only
when it is new, so one node sample is one sample of the window however the two polls fall. A sample
older than STALE_POLLS polls is not used, and `missing` says why there are no figures.
"""

from __future__ import annotations

import json

from .sampler import TOTAL_RAM, TreeSample

STALE_POLLS = 3


class NodeFigures:
    """Reads one worker's `usage.json`; `missing` is why there is no fresh figure ("" when there is)."""

    def __init__(self, path: str):
        self.path = path
        self.fed: float | None = None  # sampled_at of the last sample handed over
        self.missing = "no sample from the node yet"
        self.host = ""

    def take(self, now: float, poll_s: float) -> TreeSample | None:
        """The node's latest sample when it is new since the last call and fresh; else None (and
        `missing` says why when the figures are missing, not merely unchanged)."""
        figures = self._read()
        if figures is None:
            return None
        self.host = str(figures.get("host") or "")
        where = f"the node {self.host}" if self.host else "the node"
        if figures.get("error"):
            self.missing = f"{where} cannot sample the worker: {figures['error']}"
            return None
        try:
            sampled_at = float(figures["sampled_at"])
            every = float(figures.get("every") or poll_s)
            age = now - sampled_at
            if age > STALE_POLLS * max(poll_s, every):
                self.missing = (
                    f"the last sample from {where} is {age:.0f}s old (more than {STALE_POLLS} polls): "
                    "its shim has stopped sampling or the shared folder lags"
                )
                return None
            self.missing = ""
            if sampled_at == self.fed:
                return None
            sample = _sample(figures, sampled_at)
        except (KeyError, TypeError, ValueError):
            self.missing = f"{where} wrote a usage.json without its figures"
            return None
        self.fed = sampled_at
        return sample

    def _read(self) -> dict | None:
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            self.missing = "no sample from the node yet" if self.fed is None else "the node's usage.json is gone"
            return None
        except OSError as exc:
            self.missing = f"the node's usage.json cannot be read: {exc.strerror or exc}"
            return None
        try:
            figures = json.loads(raw)
        except ValueError:
            figures = None
        if not isinstance(figures, dict):
            self.missing = "the node's usage.json cannot be read: not a JSON object"
        return figures if isinstance(figures, dict) else None


def _sample(figures: dict, sampled_at: float) -> TreeSample:
    gpu_known = "gpu_mem_bytes" in figures
    return TreeSample(
        t=sampled_at,
        pids=[],  # the node's pids: nothing here may act on them
        cpu_percent=float(figures["cpu_percent"]),
        rss_bytes=int(figures["rss_bytes"]),
        nprocs=int(figures["nprocs"]),
        gpu_mem_bytes=int(figures["gpu_mem_bytes"]) if gpu_known else 0,
        mem_total=int(figures.get("mem_total_bytes") or TOTAL_RAM),
        gpu_total=int(figures.get("gpu_total_bytes") or 0) if gpu_known else None,
        host=str(figures.get("host") or "?"),
    )
