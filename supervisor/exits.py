"""A worker's end: heard from its executor, read from the shim's exit record (or from what can be
known without one), and recorded with its outcome, its final progress and its trimmed output."""

from __future__ import annotations

import time
from typing import Any

from aura.runtime.diskspace import full_note
from aura.runtime.paths import ProjectPaths
from aura.runtime.records import watchdog_kill
from aura.runtime.vocab import EXITED, LIVE_STATES, LOST, ORPHANED, SHELL

from .backends import get_backend
from .executors.base import Executor
from .kills import Kills
from .monitor import OutputMonitor
from .outputs import trim_outputs
from .states import WorkerTable


class Exits:
    def __init__(
        self,
        workers: WorkerTable,
        executor: Executor,
        kills: Kills,
        monitor: OutputMonitor,
        cfg: Any,
        paths: ProjectPaths,
    ):
        self.workers = workers
        self.executor = executor
        self.kills = kills
        self.monitor = monitor
        self.cfg = cfg
        self.paths = paths

    def ended(self, wid: str) -> None:
        """What the executor watched has ended: the worker, or (orphaned) at least its shim."""
        rec = self.workers.get(wid)
        if rec is None or rec.get("state") not in LIVE_STATES:
            self.executor.collect(wid)
            return
        recovered = self.executor.collect(wid)
        exit_rec = self.workers.registry.exit(wid)
        if exit_rec is not None and recovered is not None and recovered.get("note"):  # Slurm ended it
            self.finish(wid, {**exit_rec, "slurm_state": recovered["slurm_state"]}, note=recovered["note"])
        elif exit_rec is not None:
            self.finish(wid, exit_rec)
        elif recovered is not None and recovered.get("slurm_state"):  # a cluster job that ended without one
            note = f"the shim wrote no exit record; Slurm says the job ended {recovered['slurm_state']}"
            self.finish(wid, {**recovered, "ended_at": time.time(), "recovered_from": "slurm"}, note=note)
        elif recovered is not None:  # the shim could not write the record: its exit status carries it
            disk = full_note(self.paths.data)
            note = "exit record recovered from the shim's exit status (it could not be written" + (
                f": {disk})" if disk else ")"
            )
            self.finish(wid, {**recovered, "ended_at": time.time(), "recovered_from": "shim exit status"}, note=note)
        elif rec.get("state") == ORPHANED:
            self.finish(
                wid,
                {
                    "exit_code": None,
                    "signal": None,
                    "ended_at": time.time(),
                    "error": "the shim died before the worker; exit status unknown",
                },
                lost=True,
            )
        else:
            self.shim_gone(wid)

    def shim_gone(self, wid: str) -> None:
        """The shim died without an exit record: follow the worker itself, or call it lost."""
        rec = self.workers[wid]
        follow = self.executor.orphan(rec, self.workers.registry.start_report(wid) or {})
        if follow is not None:
            self.workers.change_state(
                rec, ORPHANED, "worker_orphaned", level="warning", logged={"pid": follow["worker_pid"]}, **follow
            )
            self.executor.watch(rec)
        else:
            disk = full_note(self.paths.data)
            self.finish(
                wid,
                {
                    "exit_code": None,
                    "signal": None,
                    "ended_at": time.time(),
                    "error": "the worker's shim ended without an exit record" + (f"; {disk}" if disk else ""),
                },
                lost=True,
            )

    def finish(self, wid: str, exit_rec: dict, note: str | None = None, lost: bool = False) -> None:
        """Record the worker's end: its outcome (the backend's rule, or `lost`), the kill that ended
        it, its last progress, and its output cut down where it grew too big."""
        rec = self.workers[wid]
        backend = get_backend(rec.get("backend", SHELL))
        progress = self.monitor.finish(rec)
        kill = rec.get("kill") or watchdog_kill(self.paths, wid)
        if kill and not rec.get("kill"):
            rec["kill"] = kill
        trimmed = trim_outputs(rec, kill, self.cfg, self.paths)
        if trimmed:
            rec["output_trimmed"] = trimmed
            self.workers.log.warning("output_trimmed", worker=wid, why=trimmed["why"], dropped_bytes=trimmed["dropped"])
        outcome = LOST if lost else backend.outcome(exit_rec, kill, progress)
        extra: dict[str, Any] = {}
        if progress:
            extra["progress"] = progress
        if note:
            extra["note"] = note
        self.kills.forget(wid)
        self.workers.change_state(
            rec,
            EXITED,
            "worker_exited",
            exit=exit_rec,
            outcome=outcome,
            ended_at=exit_rec.get("ended_at") or time.time(),
            **extra,
            logged={
                "outcome": outcome,
                "exit_code": exit_rec.get("exit_code"),
                "signal": exit_rec.get("signal"),
                "note": note,
            },
            published={
                "outcome": outcome,
                "exit_code": exit_rec.get("exit_code"),
                "signal": exit_rec.get("signal"),
                "error": exit_rec.get("error"),
                "kill": kill,
                "note": note,
            },
        )
