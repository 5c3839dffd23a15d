"""limits: the limits in force (`aura limits`): the configuration with the run-time changes on top.

Request: {}
Reply: {limits: {AURA_*: value}, overrides: {AURA_*: str}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.runtime.ops import operation

if TYPE_CHECKING:
    from ..main import WatchdogDaemon


@operation("limits", "watchdog")
def limits(dog: WatchdogDaemon, args: dict) -> dict:
    return {"limits": {**dog.policy.as_dict(), **dog.disk.settings}, "overrides": dog.overrides}
