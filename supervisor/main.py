"""The supervisor daemon: starts, stops, lists and re-adopts Layer 2 workers.

It owns the worker registry. A worker's exit reaches it event-driven (executors/local.py: a pidfd
per shim in the poll loop), so the brain hears of it in milliseconds rather than at the next poll
of a circus- or supervisord-style loop. This module wires the parts together:

    states.py        the workers' records and the one way they change (change_state)
    executors/       where a worker runs: base.py the interface, local.py a process under its shim
    starting.py      a spawn's record, start and deferred answer
    placement.py     the watchdog's preflight and CPU pinning
    exits.py         a worker's end and outcome
    adoption.py      workers a previous supervisor left behind
    kills.py         SIGTERM, SIGKILL after the grace, every worker at `down --stop-workers`
    housekeeping.py  budgets, record retries and output scans, on timers
    ops/             the requests it answers (spawn, kill, list, get)
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aura.ipc.server import Deferred
from aura.runtime.loop import Daemon
from aura.runtime.peers import PeerKeeper
from aura.runtime.vocab import EXITING, QUEUED, RUNNING

from .adoption import Adoption
from .executors.dispatch import Dispatch
from .executors.local import SHIM, LocalExecutor
from .executors.slurm import SlurmExecutor
from .exits import Exits
from .housekeeping import Housekeeping
from .jobs import EndedKeeps
from .kills import Kills
from .monitor import OutputMonitor
from .placement import Preflight
from .registry import Registry
from .spawnbatch import SpawnBatch
from .starting import Starter
from .states import WorkerTable

__all__ = ["SHIM", "SupervisorDaemon"]


class SupervisorDaemon(Daemon):
    name = "supervisor"
    ops_package = "aura.supervisor.ops"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.grace = self.cfg.number("AURA_KILL_GRACE_SECONDS")
        self.workers = WorkerTable(Registry(self.paths), self.log, self.publish)
        self.monitor = OutputMonitor(self.cfg)
        local = LocalExecutor(self, self.grace, on_start_report=self._start_reported, on_end=self._ended)
        self.executor = Dispatch(local, {"slurm": self._slurm})
        self.kills = Kills(self.workers, self.executor, self.grace)
        self.exits = Exits(
            self.workers, self.executor, self.kills, self.monitor, self.cfg, self.paths, self.call_later, self.guard
        )
        self.adoption = Adoption(self.workers, self.executor, self.exits, self.call_later)
        self.preflight = Preflight(self.paths, self.ctx, self.log, self.publish)
        self.starter = Starter(
            self.workers,
            self.executor,
            self.exits,
            self.monitor,
            self.cfg,
            self.paths,
            view=self.public,
            answer=self._answer,
        )
        self.spawns = SpawnBatch(
            self.preflight,
            self.starter.start,
            self.workers.find,
            view=self.public,
            answer=self._answer,
            refuse=self._refuse,
            later=self.call_later,
            cfg=self.cfg,
            log=self.log,
        )
        self.housekeeping = Housekeeping(self.workers, self.executor, self.kills, self.monitor)
        self.keeps = EndedKeeps()
        self.peers: PeerKeeper | None = None
        self.stop_workers_on_exit = False

    # -- daemon hooks -------------------------------------------------------------------------
    def shutdown_requested(self, reason: str, stop_workers: bool) -> None:
        self.stop_workers_on_exit = stop_workers
        super().shutdown_requested(reason, stop_workers)

    def setup(self) -> None:
        self.executor.setup()
        self.adoption.adopt_all()
        if not self.managed:
            self.peers = PeerKeeper(self, ["brain", "watchdog"])
            self.peers.start()
        self.call_every(1.0, self.housekeeping.each_second)
        self.call_every(2.0, self.housekeeping.scan_outputs)

    def teardown(self) -> None:
        self.guard(self.exits.tell_all)  # ends heard in the loop's last round; the rest of the stop still runs
        if self.stop_workers_on_exit:
            self.kills.stop_all(self.exits.finish)
        self.executor.close()
        self.workers.registry.flusher.drain()

    def status_fields(self) -> dict:
        return {
            "workers_live": len(self.workers.live()),
            "workers_known": len(self.workers),
            "peers": self.peers.summary() if self.peers else None,
        }

    # -- what the parts share -----------------------------------------------------------------
    def public(self, rec: dict, keys: list[str] | None = None, ending: Collection[str] = ()) -> dict:
        """A worker's record as clients see it (only `keys`, where given): without its environment,
        with its live progress, and `exiting` where it is among `ending` (`list` and `get` ask for
        it; a spawn's answer tells the start as recorded)."""
        out = dict(rec) if keys is None else {k: rec[k] for k in keys if k in rec}
        out.pop("env", None)
        if out.get("state") == RUNNING and rec["worker_id"] in ending:
            out["state"] = EXITING
        if keys is None or "progress" in keys:
            live = self.monitor.summary(rec["worker_id"])
            if live:
                out["progress"] = live
        return out

    def ending(self) -> set[str]:
        """Running workers whose process has ended while their end is not taken in yet; not one that
        registered jobs, whose shim may keep them (jobs.py): its task runs on in them."""
        running = {wid for wid, rec in self.workers.items() if rec.get("state") == RUNNING}
        return self.keeps.without_jobs({wid: self.workers[wid] for wid in self.executor.ending(running)})

    def _start_reported(self, wid: str, report: dict | None) -> None:
        self.starter.start_reported(wid, report)

    def _ended(self, wid: str) -> None:
        self.exits.ended(wid)

    def _slurm(self) -> SlurmExecutor:
        return SlurmExecutor(self, self.grace, self._start_reported, self._ended, self._queue_news)

    def _queue_news(self, wid: str, fields: dict) -> None:
        """Slurm's state, reason and node of a queued job, kept in its record for `aura ps`."""
        rec = self.workers.get(wid)
        if rec is not None and rec.get("state") == QUEUED:
            self.workers.record_change(rec, "worker_queue_news", **fields, logged=fields)

    def _answer(self, deferred: Deferred, reply: dict) -> None:
        if self.server is not None:
            self.server.resolve(deferred, reply)

    def _refuse(self, deferred: Deferred, code: str, message: str) -> None:
        if self.server is not None:
            self.server.reject(deferred, code, message)
