"""The supervisor's periodic work: each second, records a full disk held back, time budgets and
overdue kills; every two seconds, the workers' output (progress, stuck and loop flags, jobs they
registered to outlive them)."""

from __future__ import annotations

import time

from aura.runtime.eventkinds import Kind
from aura.runtime.vocab import TIMED_OUT

from .executors.base import Executor
from .kills import Kills
from .monitor import OutputMonitor
from .states import WorkerTable


class Housekeeping:
    def __init__(self, workers: WorkerTable, executor: Executor, kills: Kills, monitor: OutputMonitor):
        self.workers = workers
        self.executor = executor
        self.kills = kills
        self.monitor = monitor

    def each_second(self) -> None:
        self.workers.retry_unsaved()
        now = time.time()
        for rec in self.workers.active():
            if rec.get("deadline") and now > rec["deadline"] and not rec.get("kill"):
                minutes = (rec.get("budget_s") or 0) / 60
                self.kills.request(
                    rec["worker_id"],
                    f"time budget of {minutes:g} min exceeded",
                    TIMED_OUT,
                    self.kills.grace,
                    "supervisor",
                )
        self.kills.escalate()
        self.executor.reap()

    def scan_outputs(self) -> None:
        for rec in self.workers.active():
            wid = rec["worker_id"]
            if "managed" not in rec:
                self._note_jobs(rec)
            self.monitor.scan(rec)
            for kind, data in self.monitor.transitions(rec):
                self.workers.log.warning(kind, worker=wid, quiet_s=data.get("quiet_s"), repeat=data.get("repeat_count"))
                self.workers.publish(kind, **data)
            stop = self.monitor.should_stop(rec)
            if stop and not rec.get("kill"):
                self.kills.request(wid, stop[0], stop[1], self.kills.grace, "supervisor")

    def _note_jobs(self, rec: dict) -> None:
        """The worker ended and left children it registered: the task runs on until they end."""
        note = self.workers.registry.jobs(rec["worker_id"])
        if note is None:
            return
        rec.pop("deadline", None)  # the time budget bounds the agent, not the jobs it registered
        kids = [
            {"pid": c.get("pid"), "kind": c.get("kind"), "log_path": c.get("log_path")}
            for c in note.get("children") or []
        ]
        self.workers.record_change(
            rec,
            Kind.WORKER_MANAGED,
            managed=note,
            logged={"worker_exit": note.get("worker_exit"), "children": kids},
            published={"worker_exit": note.get("worker_exit"), "children": kids},
        )
