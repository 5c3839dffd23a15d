"""Signalling a worker's process group (each worker leads a session of its own)."""

from __future__ import annotations

import os


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


def terminate_worker(rec: dict) -> bool:
    """SIGTERM a worker's group and its shim: the shim then stops every descendant, the children
    the worker registered to outlive it included. False when neither was there."""
    import signal

    from .pidfile import is_alive  # not at import time: the shim imports this module without psutil

    sent = signal_group(rec.get("pgid") or rec.get("worker_pid"), signal.SIGTERM)
    shim = rec.get("shim_pid")
    if shim and rec.get("state") != "orphaned" and is_alive(shim, rec.get("shim_create_time")):
        try:
            os.kill(shim, signal.SIGTERM)
            sent = True
        except OSError:
            pass
    return sent
