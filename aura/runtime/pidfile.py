"""Daemon pid files and the PID-reuse guard.

A PID alone is never trusted: a record holds the PID *and* the process start time, and a
process counts as the same one only when both match.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .fsutil import read_json, write_json_even_if_full

START_TIME_TOLERANCE = 0.05  # seconds; the same process always gets the same float
PROC = Path("/proc")
HAS_PROC = PROC.joinpath("self", "stat").exists()  # Linux; elsewhere (macOS) psutil reads processes
BOOT_ID = PROC / "sys" / "kernel" / "random" / "boot_id"  # Linux: a fresh random id at each boot
BOOT_TIME_TTL = 1.0  # seconds a boot time read is used: a stepped clock (a VM resumed, NTP) moves it
_boot_time: tuple[float, float] | None = None  # (boot time, when it was read: time.monotonic())


def _proc_stat(pid: int) -> tuple[str, float] | None:
    """(state letter, start time) of `pid` from /proc, computed exactly as psutil computes it (boot
    time + start ticks), so `aura ps` and the shim need not import psutil; None: no such process."""
    global _boot_time
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            data = os.read(fd, 4096)  # a stat line is far shorter (its command name is at most 16 bytes)
        finally:
            os.close(fd)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    now = time.monotonic()
    if _boot_time is None or now - _boot_time[1] > BOOT_TIME_TTL:
        with open(PROC / "stat", "rb") as fh:
            _boot_time = (next(float(line.split()[1]) for line in fh if line.startswith(b"btime")), now)
    return fields[0].decode(), int(fields[19]) / os.sysconf("SC_CLK_TCK") + _boot_time[0]


def _psutil_stat(pid: int) -> tuple[str, float] | None:
    """The same from psutil, where there is no /proc (macOS)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return ("Z" if proc.status() == psutil.STATUS_ZOMBIE else "R"), proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def _stat(pid: int) -> tuple[str, float] | None:
    if not isinstance(pid, int) or pid <= 0:
        return None
    if HAS_PROC:
        try:
            return _proc_stat(pid)
        except (OSError, ValueError, IndexError, StopIteration):
            pass
    return _psutil_stat(pid)


def boot_id() -> str:
    """What names this boot of the machine. A file not yet flushed may be gone after a crash of the
    machine: whoever trusts its own unflushed writes must know whether a boot came between."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:  # macOS: its boot time is a kernel record, not worked out from the clock
        import psutil

        return f"{psutil.boot_time():.0f}"


def start_time(pid: int) -> float | None:
    found = _stat(pid)
    return found[1] if found else None


def is_alive(pid: int | None, created: float | None) -> bool:
    """True when `pid` runs, is not a zombie, and started at `created`."""
    found = _stat(pid) if isinstance(pid, int) else None
    if found is None:
        return False
    state, started = found
    if created is not None and abs(started - float(created)) > START_TIME_TOLERANCE:
        return False
    return state != "Z"


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
