"""The kernel's name for this process, so a worker's `pkill python` cannot hit Aura.

`pkill NAME` and `killall NAME` (without -f) match the kernel's short process name (`comm`,
/proc/PID/comm, at most 15 bytes), which for a Python daemon is `python3`. Renaming the process
in place (`prctl(PR_SET_NAME)` on Linux, nothing elsewhere) needs no copied interpreter and no
re-exec.

PR_SET_NAME names the calling thread; called from the main thread it names the process, and
threads started afterwards inherit the name, so call it early.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

PR_SET_NAME = 15
MAX_LEN = 15  # TASK_COMM_LEN - 1


@functools.cache
def libc() -> Any:
    """The C library already loaded (no find_library subprocess); loaded once, so a shim forked by
    the fork server (supervisor/forkserver.py) finds it ready."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def set_process_name(name: str) -> bool:
    """Set the kernel process name (truncated to 15 bytes); True when it was set. Never raises."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        raw = str(name).encode("utf-8", "replace")[:MAX_LEN]
        if not raw or b"\0" in raw:
            return False
        buf = ctypes.create_string_buffer(raw)
        return libc().prctl(PR_SET_NAME, buf, 0, 0, 0) == 0
    except Exception:  # no libc, no prctl, a sandbox refusing it: the name is a nicety
        return False
