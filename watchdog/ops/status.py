"""status: the watchdog's state: guard mode, workers watched, sampling health, GPU, disk, peers.

Request: {}
Reply: {daemon: "watchdog", pid: int, ..., mode: str, workers_watched: int, last_sample_at: float (null
    before the first sample), max_sample_gap_s: float, last_sample_cost_ms: float, gpu: {available, source,
    reason}, disk: {...}, peers: {...} (null under a service manager)}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.runtime.ops import operation

if TYPE_CHECKING:
    from ..main import WatchdogDaemon


@operation("status", "watchdog")
def status(dog: WatchdogDaemon, args: dict) -> dict:
    return dog.hello()
