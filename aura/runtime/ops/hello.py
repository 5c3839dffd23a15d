"""hello: who the daemon is (name, version, protocol, pid, start time) and its own status fields.

Request: {}
Reply: {daemon: str, version: str, protocol: [int, int], pid: int, started_at: float, managed: bool, ...}
"""

from __future__ import annotations

from typing import Any

from . import ANY_DAEMON, operation


@operation("hello", ANY_DAEMON)
def hello(daemon: Any, args: dict) -> dict:
    return daemon.hello()
