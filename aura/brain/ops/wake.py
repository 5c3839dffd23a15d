"""wake: run a brain cycle now (`aura wake REASON`); the reason is logged and handed to the planner.

Request: {reason: str = "aura wake"}
Reply: {woken: true, cycle: int}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.runtime.ops import Arg, operation

if TYPE_CHECKING:
    from ..main import BrainDaemon


@operation("wake", "brain", Arg("reason", str, "aura wake"))
def wake(brain: BrainDaemon, args: dict) -> dict:
    reason = args["reason"]
    brain.log.info("wake", reason=reason)
    brain.request_cycle(f"wake: {reason}", 0)
    return {"woken": True, "cycle": brain.core.state.get("total_cycles", 0) + 1 if brain.core else None}
