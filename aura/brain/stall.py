"""Noticing a run that makes no progress: nothing started, nothing ended, no model call answered
for AURA_NO_PROGRESS_MINUTES. The brain checks once a cycle and notifies once per stall; the
clock lives in state.json, so a brain restart neither resets it nor counts as progress.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from aura.runtime.config import Config
from aura.runtime.vocab import IN_PROGRESS, WAITING_FOR_USER

from .state import ROOT


def signature(state: dict) -> str:
    """What changes when the run moves: each task's status and spawns, and the model calls made.
    The tasks in the table's order, which a reload keeps: sorting them cost more than the rest."""
    tasks = state.get("tasks") or {}
    moves = "\n".join([f"{tid}\t{t.get('status')}\t{t.get('spawns', 0)}" for tid, t in tasks.items() if tid != ROOT])
    calls = ((state.get("costs") or {}).get("brain") or {}).get("calls", 0)
    return hashlib.sha256(f"{moves}\n{calls}".encode()).hexdigest()[:16]


def check(state: dict, cfg: Config, now: float | None = None) -> dict[str, Any] | None:
    """The `no_progress` event to publish now, or None. A finished run or a spent budget is
    stopped on purpose and never counts as stalled."""
    now = time.time() if now is None else now
    clock = state.setdefault("stall", {})
    sig = signature(state)
    if clock.get("sig") != sig:
        clock.update(sig=sig, since=now, notified=False)
        return None
    minutes = cfg.number("AURA_NO_PROGRESS_MINUTES")
    idle = now - float(clock.get("since") or now)
    stopped = (state.get("run") or {}).get("finished") or (state.get("budget") or {}).get("state") == "reached"
    if minutes <= 0 or stopped or clock.get("notified") or idle < minutes * 60:
        return None
    clock["notified"] = True
    tasks = (state.get("tasks") or {}).items()
    running = sorted(tid for tid, t in tasks if t.get("status") == IN_PROGRESS)
    waiting = sorted(tid for tid, t in tasks if t.get("status") == WAITING_FOR_USER)
    span = f"{idle / 60:.0f} min" if idle >= 60 else f"{idle:.0f} s"
    return {
        "idle_minutes": round(idle / 60, 2),
        "running": running,
        "waiting_for_user": waiting,
        "message": f"no progress for {span}: nothing started or ended and no model call answered"
        + (f" (still running: {', '.join(running)})" if running else "")
        + (f"; waiting for a person's answer: {', '.join(waiting)} (aura questions)" if waiting else ""),
    }
