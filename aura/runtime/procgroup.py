"""Signalling a worker's process group (each worker leads a session of its own)."""

from __future__ import annotations

import os
from pathlib import Path


def signal_group(pgid: int | None, sig: int) -> bool:
    """Send `sig` to a process group; False when there is no such group (or it is not ours)."""
    if not pgid or pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_alive(pgid: int | None) -> bool:
    return signal_group(pgid, 0)


def signal_shim(rec: dict) -> bool:
    """SIGTERM a worker's shim, which then stops every descendant, the children the worker
    registered to outlive it included (supervisor/shim.py). False when it is not there."""
    import signal

    from .pidfile import is_alive  # not at import time: the shim imports this module without psutil

    shim = rec.get("shim_pid")
    if not shim or rec.get("state") == "orphaned" or not is_alive(shim, rec.get("shim_create_time")):
        return False
    try:
        os.kill(shim, signal.SIGTERM)
        return True
    except OSError:
        return False


def terminate_worker(rec: dict) -> bool:
    """SIGTERM a worker's group and its shim; False when neither was there."""
    import signal

    sent = signal_group(rec.get("pgid") or rec.get("worker_pid"), signal.SIGTERM)
    return signal_shim(rec) or sent


def processes_in(folder: Path) -> list[int]:
    """The processes whose working folder is inside `folder` (a dev server a worker left running)."""
    import psutil

    root = os.path.realpath(folder)
    found = []
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd")
        if cwd and (cwd == root or cwd.startswith(root + os.sep)):
            found.append(int(proc.info["pid"]))
    return found
