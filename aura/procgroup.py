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
