"""The workers the supervisor knows, and the one way their records change.

As supervisord routes every change of a process's state through `change_state`, every change of a
worker's state goes through `WorkerTable.change_state`: it checks the change against ALLOWED (and
an end against the outcomes of aura.runtime.vocab), writes the record, logs the change and
publishes its event. A change that keeps the state (a kill asked for, cores pinned, jobs
registered) goes through `record_change`, which does the same without the check.

A new worker's record is written before its shim starts; later changes are written by the
registry's thread (supervisor/registry.py). Inside `holding_news` a change is made in memory at
once and its write, log line and event wait for `announce`: a burst of exits marks every worker
ended before it announces any of them, so a request is not kept waiting behind the announcements.
A record that a full disk keeps from being written stays in memory, is said once in the log, and is
written again by `retry_unsaved` (each second) until there is room.

Only the live workers and the last KEEP_EXITED that ended stay in memory: an older record is read
from its folder when asked for (`find`), so a run of thousands of workers does not grow the daemon.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aura.runtime.fsutil import disk_full
from aura.runtime.vocab import EXITED, LIVE_STATES, ORPHANED, OUTCOMES, QUEUED, RUNNING, STARTING

from .registry import Registry

NEW = None  # the state of a worker the table does not hold yet
ALLOWED: dict[str | None, frozenset[str]] = {
    NEW: frozenset({STARTING}),
    STARTING: frozenset({QUEUED, RUNNING, EXITED}),
    QUEUED: frozenset({QUEUED, RUNNING, EXITED}),  # QUEUED again: re-adopted while still queued
    RUNNING: frozenset({RUNNING, ORPHANED, EXITED}),  # RUNNING again: re-adopted after a restart
    ORPHANED: frozenset({ORPHANED, EXITED}),  # ORPHANED again: followed again after a restart
    EXITED: frozenset(),
}
ACTIVE = (RUNNING, ORPHANED)  # started and not ended: budgets, kills and output scans apply
KEEP_EXITED = 64  # ended workers kept in memory, the latest first to be asked about


class IllegalTransition(RuntimeError):
    """A change of state that ALLOWED does not list: a fault in the supervisor, never in a request."""


def check(old: str | None, new: str, fields: dict) -> None:
    if new not in ALLOWED.get(old, frozenset()):
        raise IllegalTransition(f"a worker may not go from {old or 'nothing'} to {new}")
    if new == EXITED and fields.get("outcome") not in OUTCOMES:
        raise IllegalTransition(f"a worker may not end with outcome {fields.get('outcome')!r}")


@dataclass(frozen=True)
class News:
    """A change made to a record, to be written, logged (as `log_as` or `event`) and published."""

    rec: dict
    event: str | None
    logged: dict | None = None
    published: dict | None = None
    level: str = "info"
    log_as: str | None = None
    ended: bool = False  # the worker ended: once told, it may leave memory (`retire`)


class WorkerTable(dict[str, dict]):
    """Every worker's record by id, as the registry holds it (or will, once the disk has room)."""

    def __init__(self, registry: Registry, log: Any, publish: Callable[..., Any]):
        super().__init__()
        self.registry = registry
        self.log = log
        self.publish = publish
        self.unsaved: set[str] = set()
        self.ended: deque[str] = deque()  # ended workers held in memory, oldest first
        self._held: list[News] | None = None

    @contextlib.contextmanager
    def holding_news(self) -> Iterator[list[News]]:
        """Changes made meanwhile are kept in the list this yields, for the caller to `announce`."""
        held: list[News] = []
        self._held = held
        try:
            yield held
        finally:
            self._held = None

    def find(self, wid: str) -> dict | None:
        """A worker's record: held in memory, else (an older ended one) read from its folder."""
        rec = self.get(wid)
        return rec if rec is not None else self.registry.record(wid)

    def on_disk_only(self) -> Iterator[dict]:
        """The records of ended workers no longer held in memory."""
        for wid in self.registry.ids():
            if wid not in self:
                rec = self.registry.record(wid)
                if rec is not None:
                    yield rec

    def hold(self, rec: dict) -> None:
        """Hold a record read at start-up: a live one, or one of the latest ended ones."""
        self[rec["worker_id"]] = rec
        if rec.get("state") not in LIVE_STATES:
            self.retire(rec["worker_id"])

    def retire(self, wid: str) -> None:
        """The worker ended: keep it among the latest ended ones, letting the oldest go from memory
        (never one whose record a full disk kept from being written)."""
        self.ended.append(wid)
        for _ in range(len(self.ended) - KEEP_EXITED):
            old = self.ended.popleft()
            if old in self.unsaved:
                self.ended.append(old)
            else:
                self.pop(old, None)

    def live(self) -> list[dict]:
        return [w for w in self.values() if w.get("state") in LIVE_STATES]

    def active(self) -> list[dict]:
        return [w for w in self.values() if w.get("state") in ACTIVE]

    def add(self, rec: dict) -> bool:
        """Hold and write a new worker's record; False (and not held) when the disk has no room for it."""
        check(NEW, rec["state"], rec)
        wid = rec["worker_id"]
        self[wid] = rec
        if self.save(rec):
            return True
        del self[wid]
        self.unsaved.discard(wid)
        return False

    def change_state(
        self,
        rec: dict,
        state: str,
        event: str,
        *,
        logged: dict | None = None,
        published: dict | None = None,
        level: str = "info",
        **fields: Any,
    ) -> bool:
        """Move a worker to `state` with `fields`, then write, log `event` and, with `published`,
        publish it. False when a full disk kept the record from being written (it is retried)."""
        check(rec.get("state"), state, fields)
        rec.update(state=state, **fields)
        return self._change(News(rec, event, logged, published, level, ended=state == EXITED))

    def record_change(
        self,
        rec: dict,
        event: str | None,
        *,
        logged: dict | None = None,
        published: dict | None = None,
        level: str = "info",
        log_as: str | None = None,
        **fields: Any,
    ) -> bool:
        """A change that keeps the worker's state: write it (in the registry's thread), log `event`
        (as `log_as` where the log names it otherwise) and, with `published`, publish it with the
        worker's and task's ids."""
        rec.update(fields)
        return self._change(News(rec, event, logged, published, level, log_as))

    def _change(self, news: News) -> bool:
        if self._held is not None:
            self._held.append(news)
        else:
            self.announce(news)
        return news.rec["worker_id"] not in self.unsaved

    def announce(self, news: News) -> None:
        rec, wid = news.rec, news.rec["worker_id"]
        try:
            self.registry.save_later(rec)
            if news.event is not None:
                getattr(self.log, news.level)(news.log_as or news.event, worker=wid, **(news.logged or {}))
                if news.published is not None:
                    self.publish(news.event, worker_id=wid, task_id=rec.get("task_id"), **news.published)
        finally:  # an ended worker whose announcement failed must still leave memory in its turn
            if news.ended:
                self.retire(wid)

    def save(self, rec: dict) -> bool:
        """Write a worker's record; on a full disk keep it in memory, retry it, and say so once."""
        wid = rec["worker_id"]
        try:
            self.registry.save(rec)
        except OSError as exc:
            if not disk_full(exc):
                raise
            if wid not in self.unsaved:
                self.log.error("record_not_saved", worker=wid, error=str(exc), retry="every second")
            self.unsaved.add(wid)
            return False
        self.unsaved.discard(wid)
        return True

    def retry_unsaved(self) -> None:
        for wid, exc in self.registry.not_saved().items():
            if wid in self and wid not in self.unsaved:
                again = disk_full(exc)
                self.log.error("record_not_saved", worker=wid, error=str(exc), retry="every second" if again else None)
                if again:
                    self.unsaved.add(wid)
        for wid in list(self.unsaved):
            if wid in self and self.save(self[wid]):
                self.log.info("record_saved", worker=wid, after="the disk had room again")
