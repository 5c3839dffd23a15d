"""shutdown: stop the daemon cleanly after this reply (`aura down`); the supervisor also stops its
workers when asked to.

Request: {reason: str = "shutdown requested", stop_workers: bool = false}
Reply: {stopping: true, pid: int}
"""

from __future__ import annotations

import os
from typing import Any

from . import ANY_DAEMON, Arg, operation


@operation("shutdown", ANY_DAEMON, Arg("reason", str, "shutdown requested"), Arg("stop_workers", bool, False))
def shutdown(daemon: Any, args: dict) -> dict:
    daemon.shutdown_requested(args["reason"] or "shutdown requested", args["stop_workers"])
    return {"stopping": True, "pid": os.getpid()}
