"""Taking over, at start, every worker a previous supervisor left behind.

Workers outlive the supervisor (their shims are not its children in any way that matters), so a
supervisor that starts reads the registry and, for each worker still live there, finds out what
became of it: ended meanwhile (the shim wrote its exit record), still running under its shim
(watched again), running on without its shim (followed by its own pid), or gone without a word.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aura.runtime.vocab import LIVE_STATES, QUEUED, RUNNING, STARTING

from .executors.base import Executor
from .exits import Exits
from .states import KEEP_EXITED, WorkerTable

CLUSTER = "slurm"


class Adoption:
    def __init__(
        self,
        workers: WorkerTable,
        executor: Executor,
        exits: Exits,
        call_later: Callable[[float, Callable[[], Any]], None],
    ):
        self.workers = workers
        self.executor = executor
        self.exits = exits
        self.call_later = call_later

    def adopt_all(self) -> None:
        for rec in self.workers.registry.records_at_start(KEEP_EXITED):
            self.workers.hold(rec)
            if rec.get("state") in LIVE_STATES:
                self.adopt(rec["worker_id"])

    def adopt(self, wid: str) -> None:
        rec = self.workers[wid]
        if rec.get("state") not in LIVE_STATES:
            return
        registry = self.workers.registry
        exit_rec = registry.exit(wid)
        if exit_rec is not None:
            self.exits.finish(wid, exit_rec, note="ended while the supervisor was down")
            return
        report = registry.start_report(wid) or {}
        if not report and rec.get("state") == STARTING:
            found = self.executor.find(rec)
            if found is None:
                self.await_start_report(wid)
                return
            self.workers.change_state(rec, QUEUED, "worker_queued", **found, logged=found, published=found)
        if not report and rec.get("state") == QUEUED:  # still in the cluster's queue, or gone from it
            job = rec.get("job_id")
            self.workers.change_state(rec, QUEUED, "worker_adopted", logged={"job_id": job}, published={"job_id": job})
            self.executor.watch(rec)
            return
        rec.update({k: v for k, v in report.items() if k != "started_at" and v is not None})
        if report.get("error"):
            self.exits.finish(wid, {"exit_code": None, "signal": None, "error": report["error"]})
        elif rec.get("executor") == CLUSTER or self.executor.supervised(rec):
            # a cluster job that ended meanwhile is heard of at the executor's next poll, with its outcome
            pid = rec.get("worker_pid")
            self.workers.change_state(rec, RUNNING, "worker_adopted", logged={"pid": pid}, published={"pid": pid})
            self.executor.watch(rec)
        else:
            self.exits.shim_gone(wid)

    def await_start_report(self, wid: str) -> None:
        """A `starting` record with no start report: the last supervisor died mid-spawn. A shim that
        is slow to start will still run the worker, so wait for its start report until the
        executor's start timeout after the spawn; none by then means the worker never started."""
        if time.time() - float(self.workers[wid].get("created_at") or 0) < self.executor.start_timeout:
            self.call_later(0.1, lambda: self.adopt(wid))
            return
        self.exits.finish(
            wid,
            {
                "exit_code": None,
                "signal": None,
                "ended_at": time.time(),
                "error": "never started: the supervisor stopped before the worker was launched",
            },
        )
