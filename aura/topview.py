"""What `aura top` shows, gathered from the daemons once a refresh: the run, its tasks and workers,
their recent figures, the spend and the last events.

Why a model apart from the screen: the daemons come and go during a multi-day run, and each part of
the view has its own source (the brain's `status`, the supervisor's `list`, the watchdog's `usage`,
the event stream). Each refresh asks each daemon once with a short timeout; a daemon that is down is
named, and what it would have said is read from disk once (its workers' records, the brain's
state). The usage history on disk is read once per worker, to start its sparklines; after that they
grow from `usage`. Never imports the model SDK.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .runtime.paths import DAEMONS, ProjectPaths
from .runtime.vocab import EXITED, LIVE_STATES
from .statusview import brain_from_disk

SPARK_POINTS = 40  # points of history per sparkline
EVENTS_KEPT = 200
CALL_TIMEOUT_S = 0.8  # a daemon that hangs must not freeze the view
JOURNAL_TAIL_BYTES = 32 << 10  # the recent events shown at start


@dataclass
class Series:
    """A worker's recent CPU % and RSS, for its sparklines."""

    cpu: deque = field(default_factory=lambda: deque(maxlen=SPARK_POINTS))
    rss: deque = field(default_factory=lambda: deque(maxlen=SPARK_POINTS))
    last_t: float = 0.0

    def add(self, t: float, cpu: float, rss: float) -> None:
        if t > self.last_t:
            self.cpu.append(cpu)
            self.rss.append(rss)
            self.last_t = t


@dataclass
class Snapshot:
    """One refresh: the daemons' state and what each said (or what the disk says in its place)."""

    at: float
    daemons: dict[str, str]  # name -> "up", "DOWN", "NOT ANSWERING"
    brain: dict
    workers: list[dict]
    usage: dict[str, dict]
    workers_source: str


class TopModel:
    def __init__(self, paths: ProjectPaths):
        self.paths = paths
        self.series: dict[str, Series] = {}
        self.events: deque[dict] = deque(maxlen=EVENTS_KEPT)
        self._feed: Any = None
        self._ctx: Any = None

    # -- the event stream ----------------------------------------------------------------------------
    def open_events(self) -> None:
        """Subscribe to the three daemons' events, starting from the tail of their journals."""
        import os

        import zmq

        from .ipc.events import EventFeed

        self._ctx = zmq.Context()
        sources = {n: (self.paths.pub_endpoint(n), self.paths.journal(n)) for n in DAEMONS}
        self._feed = EventFeed(self._ctx, sources)
        for _, journal in sources.values():
            try:
                self._feed.offsets[journal] = max(0, os.path.getsize(journal) - JOURNAL_TAIL_BYTES)
            except OSError:
                pass
        self.events.extend(self._feed.catch_up())

    def take_events(self, catch_up: bool) -> None:
        if self._feed is None:
            return
        new = self._feed.drain()
        if catch_up:  # a SUB socket joins late and misses events while a publisher restarts
            new += self._feed.catch_up()
        self.events.extend(sorted(new, key=lambda e: e.get("ts", 0)))

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
        if self._ctx is not None:
            self._ctx.term()

    # -- one refresh -----------------------------------------------------------------------------------
    def refresh(self) -> Snapshot:
        from .control import running_daemons

        live = running_daemons(self.paths)
        daemons = {n: "up" if n in live else "DOWN" for n in DAEMONS}
        brain = self._ask("brain", "status", None, live, daemons)
        if brain is None:
            brain = brain_from_disk(self.paths)
        workers = self._ask("supervisor", "list", {"include_exited": True, "from_disk": False}, live, daemons)
        source = "supervisor"
        if workers is None:
            from .psview import workers_from_disk

            workers, source = workers_from_disk(self.paths), "disk"
        usage = self._ask("watchdog", "usage", None, live, daemons) or {}
        figures = usage.get("workers") or {}
        self._grow_series(workers, figures)
        return Snapshot(time.time(), daemons, brain, workers, figures, source)

    def _ask(self, name: str, op: str, args: dict | None, live: dict, daemons: dict[str, str]) -> Any:
        from .control import NotRunning, call
        from .ipc.client import RemoteError

        if name not in live:
            return None
        try:
            return call(self.paths, name, op, args, timeout=CALL_TIMEOUT_S)
        except (NotRunning, RemoteError):
            daemons[name] = "NOT ANSWERING"
            return None

    def _grow_series(self, workers: list[dict], figures: dict[str, dict]) -> None:
        live = [w["worker_id"] for w in workers if w.get("state") in LIVE_STATES and w["worker_id"] not in self.series]
        if live:
            self._seed(live)
        for wid, u in figures.items():
            if "cpu_percent" in u:
                self.series.setdefault(wid, Series()).add(
                    float(u.get("sampled_at") or 0), u["cpu_percent"], u.get("rss_bytes") or 0
                )

    def _seed(self, worker_ids: list[str]) -> None:
        """A worker seen for the first time: its sparklines start from the history on disk."""
        from .runtime.usagehistory import read_history

        history = read_history(self.paths, worker_ids)
        for wid in worker_ids:
            s = self.series[wid] = Series()
            for p in (history.get(wid) or {}).get("points", [])[-SPARK_POINTS:]:
                s.add(p[0], p[1], p[2])


# -- figures the screen shows ------------------------------------------------------------------------------


def run_state(brain: dict, daemons: dict[str, str]) -> str:
    """One word for the run: done, budget reached, safe mode, running (or that the brain is down)."""
    if (brain.get("run") or {}).get("finished"):
        return "done"
    if (brain.get("budget") or {}).get("state") == "reached":
        return "budget reached"
    if brain.get("safe_mode"):
        return "safe mode"
    if daemons.get("brain") != "up":
        return "brain down (from disk)"
    return "running"


def worker_state(w: dict) -> str:
    state = str((w.get("outcome") if w.get("state") == EXITED else w.get("state")) or "-")
    p = w.get("progress") or {}
    return state + ("/stuck" if p.get("stuck") else "") + ("/loop" if p.get("loop") else "")


def task_ages(workers: list[dict], now: float) -> dict[str, float]:
    """Task id -> seconds since its latest attempt started."""
    out: dict[str, float] = {}
    for w in sorted(workers, key=lambda w: w.get("created_at") or 0):
        start = w.get("started_at") or w.get("created_at")
        if w.get("task_id") and start:
            out[str(w["task_id"])] = now - float(start)
    return out


SORTS = ("cpu", "mem", "age", "task")


def sort_workers(workers: list[dict], usage: dict[str, dict], key: str) -> list[dict]:
    """Live workers first, each group by the key chosen with `s`."""

    def figure(w: dict) -> Any:
        u = usage.get(w["worker_id"]) or {}
        if key == "cpu":
            return -(u.get("cpu_percent") or 0.0)
        if key == "mem":
            return -(u.get("rss_bytes") or 0)
        if key == "age":
            return w.get("started_at") or w.get("created_at") or 0
        return str(w.get("task_id") or "")

    return sorted(workers, key=lambda w: (w.get("state") not in LIVE_STATES, figure(w)))
