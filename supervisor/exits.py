"""A worker's end: heard from its executor, read from the shim's exit record (or from what can be
known without one), and recorded with its outcome, its final progress and its trimmed output.

Ends heard are taken in after the loop's round (`ended` queues, `take_in` works), in rounds of
their own: each collects up to REAP_BATCH ended shims (the executor reaps those that are the
supervisor's children; the fork server reaps its own), then marks up to TAKE_BATCH of them ended
(the kill folder and the limits read once for them), and only then (`tell`, in later rounds, so
requests waiting meanwhile are answered first) writes, logs and publishes up to TELL_BATCH ends,
handing each batch's record writes to the flusher in one go. So the loop keeps pace with the shims
however many end at once, and a request that arrives during a burst waits for one round at most."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aura.runtime.diskspace import full_note
from aura.runtime.paths import ProjectPaths
from aura.runtime.records import KillNames, watchdog_kill
from aura.runtime.vocab import EXITED, LIVE_STATES, LOST, ORPHANED, SHELL

from .backends import get_backend
from .executors.base import Executor
from .kills import Kills
from .monitor import OutputMonitor
from .outputs import TrimRule, trim_outputs
from .states import News, WorkerTable

Later = Callable[[float, Callable[[], Any]], None]
Guard = Callable[[Callable[[], Any]], None]
REAP_BATCH = 64  # shims reaped per round of the loop
TAKE_BATCH = 16  # ends marked per round of the loop: a burst never holds a request long
TELL_BATCH = 16  # ends announced per round of the loop, for the same reason


@dataclass
class _Burst:
    """What every exit of a burst reads alike, read once for all of them."""

    kills: frozenset[str]  # the kill records there are (records.KillNames)
    trim: TrimRule


class Exits:
    def __init__(
        self,
        workers: WorkerTable,
        executor: Executor,
        kills: Kills,
        monitor: OutputMonitor,
        cfg: Any,
        paths: ProjectPaths,
        later: Later,
        guard: Guard,
    ):
        self.workers = workers
        self.executor = executor
        self.kills = kills
        self.monitor = monitor
        self.cfg = cfg
        self.paths = paths
        self.later = later
        self.guard = guard
        self.ready: dict[str, None] = {}  # heard, not reaped: an ordered set (a pidfd reads ready until reaped)
        self.reaped: dict[str, dict | None] = {}  # reaped, not marked: what the executor alone knows of each end
        self.untold: list[News] = []
        self.kill_names = KillNames(paths)
        self._round_due = False

    def ended(self, wid: str) -> None:
        """What the executor watched has ended: the worker, or (orphaned) at least its shim. Taken
        in once this round of the loop is done, with the others that ended in it."""
        self.ready[wid] = None
        self._next_round()

    def _next_round(self) -> None:
        if not self._round_due:
            self._round_due = True
            self.later(0, self.take_in)

    def take_in(self) -> None:
        """Reap up to REAP_BATCH of the ends heard (cheap, and it frees their shims soonest), then
        mark up to TAKE_BATCH of those reaped ended; the rest in later rounds, so a request waits for
        one round at most (`list` shows the others exiting meanwhile: executors/workerends.py). One
        that fails is logged and the rest are still taken in."""
        self._round_due = False
        for wid in list(itertools.islice(self.ready, REAP_BATCH)):
            del self.ready[wid]
            self.guard(functools.partial(self._reap, wid, self.reaped))
        reaped = {wid: self.reaped.pop(wid) for wid in list(itertools.islice(self.reaped, TAKE_BATCH))}
        if self.ready or self.reaped:
            self._next_round()
        if not reaped:
            return
        burst = self._burst()
        with self.workers.holding_news() as news:
            for wid in reaped:
                self.guard(functools.partial(self._take_one, wid, reaped[wid], burst))
        if news:
            if not self.untold:
                self.later(0, self.tell)
            self.untold += news

    def tell(self) -> None:
        """Write, log and publish up to TELL_BATCH of the ends taken in, then let the loop answer
        requests before the next batch (under a burst, rounds of `take_in` come between)."""
        self._announce(TELL_BATCH)
        if self.untold:
            self.later(0, self.tell)

    def tell_all(self) -> None:
        """Every end heard or taken in, announced now (the daemon is stopping: no later round)."""
        while self.ready or self.reaped:
            self.take_in()
        self._announce(len(self.untold))

    def _announce(self, n: int) -> None:
        """The first `n` ends taken in, their record writes handed over together; one that fails is
        logged and the rest are still told."""
        untold, self.untold = self.untold[:n], self.untold[n:]
        with self.workers.registry.flusher.held():
            for news in untold:
                self.guard(functools.partial(self.workers.announce, news))

    def _reap(self, wid: str, reaped: dict[str, dict | None]) -> None:
        """Stop watching the worker and reap its shim (what its exit status says, if anything)."""
        reaped[wid] = self.executor.collect(wid)

    def _burst(self) -> _Burst:
        return _Burst(self.kill_names(), TrimRule(self.cfg, self.paths))

    def _take_one(self, wid: str, recovered: dict | None, burst: _Burst) -> None:
        rec = self.workers.get(wid)
        if rec is None or rec.get("state") not in LIVE_STATES:
            return
        exit_rec = self.workers.registry.exit(wid)
        if exit_rec is not None and recovered is not None and recovered.get("note"):  # Slurm ended it
            self.finish(wid, {**exit_rec, "slurm_state": recovered["slurm_state"]}, note=recovered["note"], burst=burst)
        elif exit_rec is not None:
            self.finish(wid, exit_rec, burst=burst)
        elif recovered is not None and recovered.get("slurm_state"):  # a cluster job that ended without one
            note = f"the shim wrote no exit record; Slurm says the job ended {recovered['slurm_state']}"
            self.finish(wid, {**recovered, "ended_at": time.time(), "recovered_from": "slurm"}, note=note, burst=burst)
        elif recovered is not None:  # the shim could not write the record: its exit status carries it
            disk = full_note(self.paths.data)
            note = "exit record recovered from the shim's exit status (it could not be written" + (
                f": {disk})" if disk else ")"
            )
            exit_rec = {**recovered, "ended_at": time.time(), "recovered_from": "shim exit status"}
            self.finish(wid, exit_rec, note=note, burst=burst)
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
                burst=burst,
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

    def finish(
        self, wid: str, exit_rec: dict, note: str | None = None, lost: bool = False, burst: _Burst | None = None
    ) -> None:
        """Record the worker's end: its outcome (the backend's rule, or `lost`), the kill that ended
        it, its last progress, and its output cut down where it grew too big."""
        rec = self.workers[wid]
        backend = get_backend(rec.get("backend", SHELL))
        progress = self.monitor.finish(rec)
        kill = rec.get("kill") or watchdog_kill(self.paths, wid, burst.kills if burst else None)
        if kill and not rec.get("kill"):
            rec["kill"] = kill
        trimmed = trim_outputs(rec, kill, burst.trim if burst else TrimRule(self.cfg, self.paths))
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
