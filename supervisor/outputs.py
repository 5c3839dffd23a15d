"""A finished worker's output files: cut down to their head and tail when they grew too big.

The watchdog stops a worker whose output passes AURA_WORKER_MAX_OUTPUT_MB, or that is filling the
data folder's file system below AURA_MIN_DISK_FREE_MB (watchdog/disk.py); the supervisor, which owns
the output files, cuts them down once the worker has ended and its output has been read for the last
time. An output over the cap, or any large output while the disk is below its reserve, is cut down
the same way, however the worker ended.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aura.runtime.diskspace import (
    MB,
    OUTPUT_KEY,
    RESERVE_KEY,
    disk_settings,
    free_bytes,
    keep_bytes,
    trim_middle,
)
from aura.runtime.paths import ProjectPaths
from aura.runtime.vocab import DISK_OUTCOMES


class TrimRule:
    """The output cap and the disk reserve, read once for a burst of exits (the limits file and
    the free space are the same for all of them)."""

    def __init__(self, cfg: Any, paths: ProjectPaths):
        self.settings = disk_settings(cfg, paths.watchdog_dir)
        self.cap = int(self.settings[OUTPUT_KEY] * MB)
        self.reserve = int(self.settings[RESERVE_KEY] * MB)
        self.data = paths.data
        self._low: bool | None = None

    def disk_low(self) -> bool:
        if self._low is None:
            self._low = bool(self.reserve) and (free_bytes(self.data) or 0) < self.reserve
        return self._low


def trim_outputs(rec: dict, kill: dict | None, rule: TrimRule) -> dict:
    """Cut down the ended worker's output and error log where they must be; {} or {"why": reason,
    "dropped": {file name: bytes dropped}}."""
    files = [p for p in (rec.get("output"), rec.get("error_log")) if p]
    sizes = {p: _size(p) for p in files}
    code = (kill or {}).get("reason_code")
    if code in DISK_OUTCOMES:  # stopped for its output or the disk: its output is cut down
        why = f"the watchdog stopped the worker: {(kill or {}).get('reason')}"
    elif rule.cap and sum(sizes.values()) > rule.cap:
        why = f"the output passed {OUTPUT_KEY}={rule.settings[OUTPUT_KEY]:g} MB"
    elif rule.disk_low():
        reserve = f"{RESERVE_KEY}={rule.settings[RESERVE_KEY]:g} MB"
        why = f"the data folder's disk was below its reserve {reserve} when it ended"
    else:
        return {}
    keep = int((kill or {}).get("keep_bytes") or keep_bytes(rule.cap))
    dropped = {}
    for path in files:
        if sizes[path] > 2 * keep:
            try:
                n = trim_middle(path, keep, keep, why)
            except OSError:
                continue
            if n:
                dropped[Path(path).name] = n
    return {"why": why, "dropped": dropped} if dropped else {}


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
