"""Starting a worker: its folders, environment and record, then the executor's start, and the
spawn's answer once the shim has reported the worker running (or failing to start).

The answer is deferred, not waited for: the loop keeps serving (other spawns, exits, kills) while
shims start, so many workers start in parallel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aura.ipc.envelope import IpcError
from aura.ipc.server import Deferred
from aura.runtime.diskspace import full_note
from aura.runtime.fsutil import disk_full, make_dirs
from aura.runtime.paths import ProjectPaths
from aura.runtime.vocab import LOCAL, QUEUED, RUNNING, STARTING

from . import exitrecord
from .backends import get_backend
from .executors.base import Executor, StartOrder
from .exits import Exits
from .monitor import OutputMonitor
from .placement import pins
from .states import WorkerTable
from .workerenv import worker_env

SPAWN_FAILED = "spawn_failed"


@dataclass
class _Pending:
    """A spawn whose shim has not reported yet."""

    deferred: Deferred
    spec: dict
    cpu_ceiling: float


class Starter:
    def __init__(
        self,
        workers: WorkerTable,
        executor: Executor,
        exits: Exits,
        monitor: OutputMonitor,
        cfg: Any,
        paths: ProjectPaths,
        view: Callable[[dict], dict],
        answer: Callable[[Deferred, dict], None],
    ):
        self.workers = workers
        self.executor = executor
        self.exits = exits
        self.monitor = monitor
        self.cfg = cfg
        self.paths = paths
        self.view = view  # a record as a client sees it
        self.answer = answer  # resolve a deferred reply
        self.pending: dict[str, _Pending] = {}
        self.queued: dict[str, _Pending] = {}  # answered as queued; waiting for the shim on a node
        self.base_env: dict[str, str] | None = None  # worker_env, filtered from the environment once

    def start(
        self, wid: str, spec: dict, plan: Any, cpu_ceiling: float, answer: Deferred | None = None
    ) -> dict | Deferred:
        """Write the record and start the worker; its record once the start is reported (through
        `answer`, where the request's reply was already deferred)."""
        task_dir = Path(spec["task_dir"])
        wdir = self.workers.registry.dir(wid)
        try:
            make_dirs(task_dir, 0o700)
            make_dirs(wdir, 0o700)
        except OSError as exc:
            if not disk_full(exc):
                raise
            raise IpcError(
                SPAWN_FAILED,
                "could not start the worker: " + exitrecord.disk_message(self.paths.data, "no room for its folders"),
            ) from None
        out, err = task_dir / plan.stdout_name, task_dir / plan.stderr_name
        if self.base_env is None:  # the supervisor's environment and settings are fixed once it runs
            self.base_env = worker_env(self.cfg)
        env_vars = dict(self.base_env)
        env_vars.update(plan.env)
        env_vars.update(spec["env"])
        env_vars.update(
            {
                "AURA_TASK_ID": spec["task_id"],
                "AURA_WORKER_ID": wid,
                "AURA_TASK_DIR": str(task_dir),
                "AURA_PROJECT_ROOT": str(self.paths.root),
            }
        )
        rec = {
            "worker_id": wid,
            "task_id": spec["task_id"],
            "backend": spec["backend"],
            "argv": plan.argv,
            "cwd": plan.cwd,
            "task_dir": str(task_dir),
            "output": str(out),
            "error_log": str(err),
            "budget_s": spec["budget_s"],
            "limits": spec["limits"],
            "meta": spec["meta"],
            "executor": spec.get("executor") or "local",
            "created_at": time.time(),
            "state": STARTING,
            **plan.record,
        }
        if plan.max_turns:
            rec["max_turns_enforced"] = plan.max_turns
        if spec.get("max_budget_usd"):
            rec["max_budget_usd"] = spec["max_budget_usd"]  # the cap the brain gave it, from the run's budget left
        if not self.workers.add(rec):  # no room for its record: a worker nobody could re-adopt is not started
            raise IpcError(
                SPAWN_FAILED, "could not start the worker: " + exitrecord.disk_message(wdir, "no room for its record")
            )
        order = StartOrder(
            worker_id=wid,
            worker_dir=wdir,
            task_dir=task_dir,
            cwd=plan.cwd,
            argv=plan.argv,
            stdout=out,
            stderr=err,
            env=env_vars,
            executor=rec["executor"],
            budget_s=float(spec["budget_s"] or 0),
            limits=dict(spec["limits"]),
        )
        try:
            self.executor.start(order)
        except OSError as exc:
            what = (
                "could not start the shim"
                if rec["executor"] in (None, LOCAL)
                else f"could not submit its {rec['executor']} job"
            )
            self.exits.finish(wid, {"exit_code": None, "signal": None, "error": f"{what}: {exc}"})
            return self.view(rec)
        pending = _Pending(deferred=answer or Deferred(), spec=spec, cpu_ceiling=cpu_ceiling)
        self.pending[wid] = pending
        return pending.deferred

    def start_reported(self, wid: str, report: dict | None) -> None:
        """The shim reported (or did not, in time): record the start and answer the spawn. A cluster
        job reports twice: queued (the spawn is answered then), and once its shim runs on a node."""
        pending = self.pending.pop(wid, None)
        if pending is None:
            pending = self.queued.pop(wid, None)
        if pending is None:
            rec = self.workers.get(wid)
            if rec is not None and rec.get("state") == QUEUED and report is not None:
                self._queued_reported(rec, report)  # queued before a supervisor restart
            return
        if report is not None and report.get("in_queue"):
            rec = self.workers[wid]
            self.workers.change_state(
                rec,
                QUEUED,
                "worker_queued",
                job_id=report["job_id"],
                logged={"task": pending.spec["task_id"], "job_id": report["job_id"]},
                published={"job_id": report["job_id"]},
            )
            self.queued[wid] = pending
            self.executor.watch(rec)
            self.answer(pending.deferred, self.view(rec))
            return
        if report is None:
            report = self.workers.registry.start_report(wid) or {}
            report.setdefault("ok", bool(report.get("worker_pid")))
            disk = full_note(self.paths.data)
            report.setdefault("error", "the shim did not report a launch" + (f": {disk}" if disk else ""))
        rec = self.workers[wid]
        if not report.get("ok"):
            self.exits.finish(
                wid,
                self.workers.registry.exit(wid)
                or {"exit_code": None, "signal": None, "error": report.get("error", "launch failed")},
            )
        else:
            self._running(rec, report, pending.spec)
            self._place(rec, pending.cpu_ceiling)
        if not pending.deferred.done:
            self.answer(pending.deferred, self.view(rec))

    def _queued_reported(self, rec: dict, report: dict) -> None:
        wid = rec["worker_id"]
        if report.get("ok"):
            spec = {"budget_s": rec.get("budget_s"), "task_id": rec.get("task_id"), "backend": rec.get("backend")}
            self._running(rec, report, spec)
        else:
            self.exits.finish(
                wid,
                self.workers.registry.exit(wid) or {"exit_code": None, "signal": None, "error": report.get("error")},
            )

    def _running(self, rec: dict, report: dict, spec: dict) -> None:
        facts = self.executor.facts(report)
        if spec["budget_s"]:
            facts["deadline"] = facts["started_at"] + spec["budget_s"]
        pid = facts["worker_pid"]
        self.workers.change_state(
            rec,
            RUNNING,
            "worker_started",
            **facts,
            logged={"task": spec["task_id"], "pid": pid, "backend": spec["backend"]},
            published={"pid": pid, "backend": spec["backend"]},
        )
        self.executor.watch(rec)
        self.monitor.track(rec, get_backend(spec["backend"]))

    def _place(self, rec: dict, ceiling: float) -> None:
        if not pins(ceiling):  # the cores in use are counted over every live worker: only when needed
            return
        in_use = [c for w in self.workers.live() for c in w.get("cpus") or ()]
        cpus = self.executor.place(rec, ceiling, in_use)
        if cpus is not None:
            self.workers.record_change(
                rec, "worker_pinned", cpus=cpus, logged={"cpus": cpus, "ceiling_percent": ceiling}
            )
