"""How the local executor watches a shim (supervisor/executors/local.py), with real processes."""

from __future__ import annotations

import subprocess
import sys

from aura.supervisor.executors import local
from aura.supervisor.executors.local import LocalExecutor


class _Loop:
    """The little of the daemon's loop that watching a shim uses: timers, recorded."""

    def __init__(self) -> None:
        self.later: list = []
        self.every: list = []
        self.log = None

    def call_later(self, delay: float, fn: object) -> None:
        self.later.append((delay, fn))

    def call_every(self, interval: float, fn: object) -> None:
        self.every.append((interval, fn))


def test_a_shim_reaped_before_it_is_watched_ends_at_once_not_at_the_next_poll() -> None:
    """The fork server reaps a shim as soon as it ends: one whose worker ran for no time can be gone
    before the supervisor opens a pidfd on it. That is an end to take in now; polling for it would
    add up to a quarter of a second to every such worker."""
    shim = subprocess.Popen([sys.executable, "-c", "pass"])
    shim.wait()  # ended and reaped: its pid names nothing
    loop = _Loop()
    ended: list[str] = []
    executor = LocalExecutor(loop, 1.0, lambda *_: None, ended.append)  # type: ignore[arg-type]
    executor.watch({"worker_id": "w", "state": "running", "shim_pid": shim.pid, "shim_create_time": 1.0})
    assert executor.polled == {} and loop.every == [] and [d for d, _ in loop.later] == [0]
    loop.later[0][1]()
    assert ended == ["w"]
    assert local.POLL_INTERVAL > 0.1  # what the end would otherwise have waited for
