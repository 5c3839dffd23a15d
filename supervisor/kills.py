"""Stopping workers: SIGTERM on request, SIGKILL for what is left after the grace period, and every
worker at `aura down --stop-workers`."""

from __future__ import annotations

import time
from collections.abc import Callable

from aura.runtime.vocab import KILLED, QUEUED

from .executors.base import Executor
from .states import WorkerTable

Finish = Callable[[str, dict], None]  # (worker id, exit record): record the worker's end


class Kills:
    def __init__(self, workers: WorkerTable, executor: Executor, grace: float):
        self.workers = workers
        self.executor = executor
        self.grace = grace
        self.deadlines: dict[str, float] = {}  # worker id -> when SIGKILL follows (monotonic)

    def request(self, wid: str, reason: str, code: str, grace: float, by: str) -> dict:
        rec = self.workers[wid]
        if not self.executor.terminate(rec):
            return {"killed": False, "worker_id": wid, "message": "worker process already gone"}
        kill = {"requested_at": time.time(), "reason": reason, "reason_code": code, "by": by}
        self.workers.record_change(
            rec,
            "worker_killed",
            log_as="worker_kill",
            kill=kill,
            logged={"reason": reason, "by": by, "grace_s": grace},
            published={"reason": reason, "by": by, "reason_code": code},
        )
        self.deadlines[wid] = time.monotonic() + grace
        return {"killed": True, "worker_id": wid, "signal": "SIGTERM", "grace_s": grace}

    def forget(self, wid: str) -> None:
        self.deadlines.pop(wid, None)

    def escalate(self) -> None:
        """SIGKILL the workers still running after their grace period."""
        now = time.monotonic()
        for rec in self.workers.active():
            wid = rec["worker_id"]
            due = self.deadlines.get(wid)
            if due is not None and now >= due:
                self.deadlines.pop(wid, None)
                if self.executor.force_kill(rec):
                    self.workers.log.warning(
                        "worker_sigkill", worker=wid, reason="still running after the grace period"
                    )

    def stop_all(self, finish: Finish) -> None:
        """SIGTERM every worker, wait the grace, SIGKILL the rest, then take in their exit records. A
        cluster job still in its queue is cancelled there (it has no shim to write a record)."""
        for rec in [w for w in self.workers.live() if w.get("state") == QUEUED]:
            self.executor.terminate(rec)
            finish(rec["worker_id"], {"exit_code": None, "signal": None, "error": "cancelled while queued: aura down"})
        live = self.workers.active()
        for rec in live:
            self.workers.record_change(
                rec,
                None,
                kill={
                    "requested_at": time.time(),
                    "reason": "aura down --stop-workers",
                    "reason_code": KILLED,
                    "by": "supervisor",
                },
            )
            self.executor.terminate(rec)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and self.executor.any_running(live):
            time.sleep(0.05)
        for rec in live:
            self.executor.force_kill(rec)
        end = time.monotonic() + 3.0
        registry = self.workers.registry
        for rec in live:  # let each shim write its exit record, then take it in
            while time.monotonic() < end and registry.exit(rec["worker_id"]) is None:
                time.sleep(0.02)
            exit_rec = registry.exit(rec["worker_id"])
            if exit_rec is not None:
                finish(rec["worker_id"], exit_rec)
