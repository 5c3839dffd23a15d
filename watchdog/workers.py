"""The watchdog's view of the worker registry, rebuilt only where something changed.

The registry grows by one folder per worker over a run of days, and almost every folder
belongs to a worker that ended long ago. Each sample therefore lists the supervisor's index of
the live workers (aura.runtime.records, LIVE_INDEX), and only when its mtime changed, never
looks at an ended worker again while its entry stays (a record that left the live states never
returns to them), and re-reads a live worker's record only when its file changed. What it keeps
is only for the workers in the index, so it does not grow with the workers a run has had. A
registry with no index yet (written before there was one) is listed whole instead, until the
supervisor makes one. A timestamp younger than RACY_NS is not trusted to reveal a change (two
writes inside one clock tick share an mtime), so such a file is read again until it is older.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from aura.runtime.fsutil import RACY_NS, FolderWatch, read_json, stat_key
from aura.runtime.pidfile import is_alive
from aura.runtime.records import START_FACTS, WORKER_RECORD, WorkerRecords
from aura.runtime.vocab import LIVE_STATES

from .nodes import NodeFigures
from .policy import WorkerWindow
from .sampler import TreeSample, TreeTracker, read_tree, start_ticks


class RegistryView:
    """Live workers' records, from the registry folder, with per-file change detection."""

    def __init__(self, registry: WorkerRecords):
        self.registry = registry
        self.root = str(registry.root)
        self._index = FolderWatch(registry.live_index)
        self._dir = FolderWatch(self.root)
        self._ids: list[str] = []
        self._records: dict[str, tuple[tuple[int, int, int], dict]] = {}
        self._ended: set[str] = set()

    def live(self) -> dict[str, dict]:
        """worker id -> record (the same dict object while its file is unchanged)."""
        now_ns = time.time_ns()
        self._refresh_ids()
        out: dict[str, dict] = {}
        for wid in self._ids:
            if wid in self._ended:
                continue
            rec = self._record(wid, now_ns)
            if rec is None:
                continue
            if rec.get("state") not in LIVE_STATES:
                self._ended.add(wid)
                self._records.pop(wid, None)
                continue
            if not rec.get("worker_pid"):
                rec = self._with_start_report(wid, rec)
            if rec.get("worker_pid"):
                out[wid] = rec
        return out

    def _refresh_ids(self) -> None:
        changed, listing = self._index.changed(), self.registry.live_ids
        if changed is None:
            changed, listing = self._dir.changed(), self.registry.ids
        else:
            self._dir.forget()
        if changed is None:
            self._ids = []
            return
        if not changed:
            return
        self._ids = listing() or []
        present = set(self._ids)
        self._ended &= present
        for gone in set(self._records) - present:
            del self._records[gone]

    def _record(self, wid: str, now_ns: int) -> dict | None:
        path = f"{self.root}/{wid}/{WORKER_RECORD}"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        key = stat_key(st)
        cached = self._records.get(wid)
        if cached is not None and cached[0] == key and now_ns - st.st_mtime_ns >= RACY_NS:
            return cached[1]
        rec = read_json(path)
        if not isinstance(rec, dict):
            return None
        if cached is not None and cached[1] == rec:
            rec = cached[1]  # unchanged content: keep the object, so callers keep their caches
        self._records[wid] = (key, rec)
        return rec

    def _with_start_report(self, wid: str, rec: dict) -> dict:
        """A record written before the launch report: fill the pids from the shim's launch.json."""
        report = self.registry.start_report(wid) or {}
        return {**rec, **{k: report[k] for k in START_FACTS if report.get(k) is not None}}


@dataclass
class Watched:
    """What the watchdog keeps per worker between samples."""

    rec: dict
    tracker: TreeTracker = field(default_factory=TreeTracker)
    window: WorkerWindow = field(default_factory=WorkerWindow)
    root: tuple[int, int, bool] | None = None  # (pid, start ticks, include the root)
    limits: dict[str, float] | None = None
    limits_gen: int = -1
    sample: TreeSample | None = None
    sampled_at: float = 0.0
    node: NodeFigures | None = None  # a worker on another node: its shim's samples, never local pids

    def resolve_root(self) -> None:
        """Where the tree hangs: under the shim (which adopts orphans), else the worker itself.

        Checked once with the recorded start time (the PID-reuse guard); later samples only
        compare the start ticks that `read_tree` reads anyway."""
        self.root = None
        rec = self.rec
        for key, include in (("shim", False), ("worker", True)):
            pid = rec.get(f"{key}_pid")
            if isinstance(pid, int) and is_alive(pid, rec.get(f"{key}_create_time")):
                ticks = start_ticks(pid)
                if ticks is not None:
                    self.root = (pid, ticks, include)
                    return

    def read(self) -> dict | None:
        """The tree's processes with their stats; None when the worker's processes are gone."""
        if self.root is None:
            self.resolve_root()
        for _ in range(2):  # the shim may have died since: resolve once more (to the worker)
            if self.root is None:
                return None
            pid, ticks, include = self.root
            stats = read_tree(pid, include, ticks)
            if stats is not None:
                return stats
            self.resolve_root()
        return None
