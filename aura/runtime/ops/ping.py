"""ping: is the daemon's loop serving requests? (peers judge liveness by it, `aura up` readiness too)

Request: {}
Reply: {pong: true, pid: int, t: float}
"""

from __future__ import annotations

import os
import time
from typing import Any

from . import ANY_DAEMON, operation


@operation("ping", ANY_DAEMON)
def ping(daemon: Any, args: dict) -> dict:
    return {"pong": True, "pid": os.getpid(), "t": time.time()}
