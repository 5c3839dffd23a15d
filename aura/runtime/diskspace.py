"""Free space on the run's data folder, and the output caps that protect it.

Every record Aura keeps (task tree, exit records, pid files, logs, events) lives in the data folder,
so a full file system there stops a run from knowing what happened. Free space there is a reserve,
like free memory: below AURA_MIN_DISK_FREE_MB the watchdog reports it and stops the worker that is
filling it, and the brain starts nothing new until the space is back. Each worker's output files are
capped by AURA_WORKER_MAX_OUTPUT_MB; an output cut down keeps its head and tail with a marker line.
Both settings may be changed at run time with `aura limits` (kept in the watchdog's limits.json).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import KEYS, ConfigError
from .eventkinds import DISK_LOW, DISK_OK
from .records import run_time_limits

MB = 1024 * 1024
RESERVE_KEY = "AURA_MIN_DISK_FREE_MB"
OUTPUT_KEY = "AURA_WORKER_MAX_OUTPUT_MB"
DISK_KEYS = (RESERVE_KEY, OUTPUT_KEY)
KEEP_BYTES = 1 * MB  # head and tail kept of an output that is cut down (at most a quarter of the cap each)
FULL_BYTES = 1 * MB  # below this much free, a write failure is put down to the disk in messages
RECOVER_MARGIN = 0.05  # the reserve counts as met again at 5 % above it, so a disk at the edge does not flap


def free_bytes(path: Path | str) -> int | None:
    """Bytes an unprivileged writer may still use on `path`'s file system (None: cannot tell)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def mb(n: float | None) -> float | None:
    return None if n is None else round(n / MB, 1)


def parse_mb(key: str, value: Any, source: str = "aura limits") -> float:
    """A setting in MB (0 disables it), checked by the settings table: ConfigError, in Aura's words,
    names the key, the value and what is allowed."""
    from .settings_check import value_problem

    raw = str(value).strip()
    line = value_problem(key, raw, source)
    if line:
        raise ConfigError(line)
    return float(raw) if raw else float(KEYS[key].default)  # type: ignore[arg-type]


def disk_settings(cfg: Any, watchdog_dir: Path | None = None) -> dict[str, float]:
    """The reserve and the output cap in MB: the configuration, then `aura limits` changes."""
    overrides = run_time_limits(watchdog_dir) if watchdog_dir is not None else {}
    return {key: parse_mb(key, overrides.get(key, cfg.text(key))) for key in DISK_KEYS}


def keep_bytes(cap: int) -> int:
    """How much of the head, and of the tail, an output cut down keeps."""
    return min(KEEP_BYTES, cap // 4) if cap > 0 else KEEP_BYTES


def full_note(data_dir: Path | str, reserve: int = 0) -> str | None:
    """A phrase naming the disk when the data folder's file system is (nearly) out of space."""
    free = free_bytes(data_dir)
    if free is None or free >= max(reserve, FULL_BYTES):
        return None
    return f"the data folder's file system is full ({free / MB:.1f} MB free in {data_dir})"


@dataclass
class DiskState:
    """Whether free space is below the reserve, with a small margin before it counts as back."""

    reserve: int  # bytes; 0 disables the reserve
    low: bool = False
    since: float | None = None
    free: int | None = None
    checked_at: float | None = None

    def update(self, free: int | None, now: float | None = None) -> str | None:
        """Take a new reading; the event kind DISK_LOW or DISK_OK when the state changed."""
        now = time.time() if now is None else now
        self.free, self.checked_at = free, now
        if self.reserve <= 0 or free is None:
            low = False
        elif self.low:
            low = free < self.reserve * (1 + RECOVER_MARGIN)
        else:
            low = free < self.reserve
        if low == self.low:
            return None
        self.low, self.since = low, now
        return DISK_LOW if low else DISK_OK

    def describe(self, path: Path | str) -> str:
        free = "?" if self.free is None else f"{self.free / MB:.1f}"
        return (
            f"only {free} MB free on the file system of {path}; the reserve {RESERVE_KEY} is {self.reserve / MB:g} MB"
        )

    def as_dict(self, path: Path | str) -> dict:
        return {
            "path": str(path),
            "free_mb": mb(self.free),
            "reserve_mb": self.reserve / MB,
            "low": self.low,
            "since": self.since,
            "checked_at": self.checked_at,
        }


def trim_middle(path: Path | str, keep_head: int, keep_tail: int, why: str) -> int:
    """Cut the middle out of a file, keeping about `keep_head` and `keep_tail` bytes (at line ends where
    there is one nearby) with a marker line saying how many bytes were dropped and why. Works on a full
    disk: the tail is rewritten inside the blocks the file already has, then the file is truncated.
    Returns the bytes dropped (0: nothing to cut). Only for a file nobody writes any more."""
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size <= keep_head + keep_tail:
            return 0
        head_end = _line_end_before(fd, keep_head)
        tail_start = _line_start_after(fd, max(head_end, size - keep_tail), size)
        dropped = tail_start - head_end
        lead = b"" if head_end == 0 or os.pread(fd, 1, head_end - 1) == b"\n" else b"\n"
        marker = (
            lead
            + (
                f"[aura: {dropped} bytes of output dropped here ({why}); the first {head_end} and the "
                f"last {size - tail_start} bytes are kept]\n"
            ).encode()
        )
        if dropped <= len(marker):
            return 0
        tail = os.pread(fd, size - tail_start, tail_start)
        os.pwrite(fd, marker + tail, head_end)
        os.ftruncate(fd, head_end + len(marker) + len(tail))
        os.fsync(fd)
        return dropped
    finally:
        os.close(fd)


def _line_end_before(fd: int, offset: int, look: int = 4096) -> int:
    """`offset`, moved back to just after a newline within `look` bytes before it, if there is one."""
    start = max(0, offset - look)
    chunk = os.pread(fd, offset - start, start)
    cut = chunk.rfind(b"\n")
    return start + cut + 1 if cut >= 0 else offset


def _line_start_after(fd: int, offset: int, size: int, look: int = 4096) -> int:
    """`offset`, moved on to just after the next newline within `look` bytes, if there is one."""
    chunk = os.pread(fd, min(look, size - offset), offset)
    cut = chunk.find(b"\n")
    return offset + cut + 1 if cut >= 0 and offset + cut + 1 < size else offset


def status_line(brain: dict, watchdog: dict | None, data_dir: Path) -> str:
    """`aura status`'s line about the data folder's free space and whether new work waits for it."""
    info = brain.get("disk") or (watchdog or {}).get("disk")
    if not info:
        free = free_bytes(data_dir)
        return f"Disk     {'?' if free is None else f'{free / MB:.1f}'} MB free in {data_dir}"
    reserve = f"reserve {info.get('reserve_mb'):g} MB" if info.get("reserve_mb") else "no reserve set"
    line = f"Disk     {info.get('free_mb')} MB free in {info.get('path') or data_dir} ({reserve})"
    if info.get("paused"):
        line = f"Disk     LOW: {info['paused']}; no new workers start until space is back"
    elif info.get("low"):
        line = f"Disk     LOW: {info.get('free_mb')} MB free in {info.get('path') or data_dir} ({reserve})"
    return line
