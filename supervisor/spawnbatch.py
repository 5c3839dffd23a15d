"""Spawns that arrive together are preflighted together: their questions go to the watchdog in one
batch after the loop's round (it answers them back to back), then each worker is started. One
round trip for a burst, not one each, and a watchdog that does not answer holds a burst for
PREFLIGHT_TIMEOUT once, not once per spawn.

The same worker id asked for twice before its start is one worker: the later request is answered
with its record (`existing`), as `spawn` answers an id it already knows.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aura.ipc.envelope import INTERNAL, IpcError
from aura.ipc.server import Deferred

from .placement import Preflight, cpu_ceiling

Start = Callable[[str, dict, Any, float, Deferred], "dict | Deferred"]  # Starter.start


@dataclass
class _Waiting:
    """A spawn waiting for its preflight: what starts it, and every request for it."""

    spec: dict
    plan: Any
    asked: list[Deferred] = field(default_factory=list)


class SpawnBatch:
    def __init__(
        self,
        preflight: Preflight,
        start: Start,
        find: Callable[[str], dict | None],
        view: Callable[[dict], dict],
        answer: Callable[[Deferred, dict], None],
        refuse: Callable[[Deferred, str, str], None],
        later: Callable[[float, Callable[[], Any]], None],
        cfg: Any,
        log: Any,
    ):
        self.preflight = preflight
        self.start = start
        self.find = find
        self.view = view
        self.answer = answer
        self.refuse = refuse
        self.later = later
        self.cfg = cfg
        self.log = log
        self.waiting: dict[str, _Waiting] = {}

    def add(self, wid: str, spec: dict, plan: Any) -> Deferred:
        """The spawn's answer, once it has been preflighted with the others of its round and started."""
        asked = Deferred()
        waiting = self.waiting.get(wid)
        if waiting is None:
            if not self.waiting:
                self.later(0, self.flush)
            waiting = self.waiting[wid] = _Waiting(spec, plan)
        waiting.asked.append(asked)
        return asked

    def flush(self) -> None:
        """Preflight every spawn waiting, together, then start each; one that fails is refused and
        the rest still start."""
        batch, self.waiting = self.waiting, {}
        if not batch:
            return
        answers = self.preflight.ask_many([(wid, w.spec) for wid, w in batch.items()])
        for (wid, waiting), answer in zip(batch.items(), answers, strict=True):
            self._start_one(wid, waiting, answer)

    def _start_one(self, wid: str, waiting: _Waiting, preflight: dict | IpcError | None) -> None:
        first, *again = waiting.asked
        try:
            if isinstance(preflight, IpcError):
                raise preflight
            started = self.start(wid, waiting.spec, waiting.plan, cpu_ceiling(waiting.spec, preflight, self.cfg), first)
        except IpcError as exc:
            for asked in waiting.asked:
                self.refuse(asked, exc.code, exc.message)
            return
        except Exception as exc:  # a bug in one start is logged and answered; the others still start
            self.log.error("spawn_failed_internal", worker=wid, error=repr(exc), trace=traceback.format_exc()[-2000:])
            for asked in waiting.asked:
                self.refuse(asked, INTERNAL, f"spawn failed: {exc}")
            return
        if not isinstance(started, Deferred):
            self.answer(first, started)
        for asked in again:
            rec = self.find(wid)
            if rec is not None:
                self.answer(asked, {**self.view(rec), "existing": True})
            else:
                self.refuse(asked, INTERNAL, f"worker {wid} was not recorded")
        if again:
            self.log.info("spawn_asked_again", worker=wid, times=len(again))
