"""Daemon pid files and the PID-reuse guard.

A PID alone is never trusted: a record holds the PID *and* the process start time, and a
process counts as the same one only when both match.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil

from .fsutil import read_json, write_json_even_if_full

START_TIME_TOLERANCE = 0.05  # seconds; psutil reports the same float for the same process


def start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def is_alive(pid: int | None, created: float | None) -> bool:
    """True when `pid` runs, is not a zombie, and started at `created`."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - float(created)) > START_TIME_TOLERANCE:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def write_pidfile(path: Path, **fields: Any) -> dict:
    pid = os.getpid()
    rec = {"pid": pid, "create_time": start_time(pid), "updated_at": time.time(), **fields}
    write_json_even_if_full(path, rec)  # a daemon stopping on a full disk must still say "stopped"
    return rec


def live_record(path: Path) -> dict | None:
    """The pid file's record when its process is alive and running, else None."""
    rec = read_json(path)
    if not isinstance(rec, dict) or rec.get("state") != "running":
        return None
    return rec if is_alive(rec.get("pid"), rec.get("create_time")) else None
