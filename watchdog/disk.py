"""The watchdog's disk checks: free space on the data folder's file system, and each worker's output.

Per sample it costs one statvfs, plus one stat per output file of each worker (the output and the
error log). Over AURA_WORKER_MAX_OUTPUT_MB a worker is stopped (outcome `output_limit`). While free
space is below AURA_MIN_DISK_FREE_MB, and only then, it also looks at the regular files each worker's
processes hold open on that file system (/proc/PID/fd), and the worker whose files grew the most
since the previous sample is stopped (outcome `disk_low`): one victim at a time, like a free-memory
reserve. A worker that writes nothing, or only a trickle (under MIN_VICTIM_RATE), is never the victim
of a shortfall others caused.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aura.runtime.diskspace import (
    MB,
    OUTPUT_KEY,
    RESERVE_KEY,
    DiskState,
    free_bytes,
    keep_bytes,
    parse_mb,
)
from aura.runtime.vocab import DISK_LOW, OUTPUT_LIMIT

Key = tuple[int, int]  # (st_dev, st_ino)
MIN_VICTIM_RATE = 64 * 1024  # bytes per second a worker's files must grow by to be the one filling the disk


@dataclass
class Stop:
    """A worker the disk checks stop: its reason code (the outcome), a reason, and the numbers behind it."""

    worker_id: str
    code: str  # the outcome: OUTPUT_LIMIT or DISK_LOW
    limit: str
    reason: str
    evidence: dict


@dataclass
class _Files:
    """What a worker's files took at the previous sample: its output files together, and (while the
    disk is low) each other file its processes hold open on the data folder's file system."""

    output_bytes: int = 0  # apparent size of the output and error log (the cap)
    output_used: int = -1  # bytes allocated to them (the growth); -1: not measured yet
    opened: dict[Key, int] = field(default_factory=dict)
    growth: int = 0
    rate: float = 0.0  # growth per second since the previous sample
    at: float = 0.0
    grew: dict[str, int] = field(default_factory=dict)


class DiskGuard:
    def __init__(self, data_dir: Path, settings: dict[str, float]):
        self.data = Path(data_dir)
        self.state = DiskState(0)
        self.cap = 0
        self.configure(settings)
        self.files: dict[str, _Files] = {}
        self.dev = _dev(self.data)

    def configure(self, settings: dict[str, float]) -> None:
        self.settings = {k: parse_mb(k, v) for k, v in settings.items()}
        self.state.reserve = int(self.settings[RESERVE_KEY] * MB)
        self.cap = int(self.settings[OUTPUT_KEY] * MB)

    # -- one sample --------------------------------------------------------------------------------
    def check(
        self, workers: dict[str, tuple[dict, list[int]]], now: float | None = None
    ) -> tuple[str | None, list[Stop]]:
        """Take a reading; returns the reserve's change (the event kind DISK_LOW or DISK_OK, or None) and the
        workers to stop. `workers` maps a live worker's id to (its record, the pids of its tree)."""
        now = time.time() if now is None else now
        change = self.state.update(free_bytes(self.data), now)
        stops: list[Stop] = []
        for wid, (rec, pids) in workers.items():
            files = self.files.get(wid)
            if files is None:
                files = self.files[wid] = _Files()
            self._measure(files, rec, pids if self.state.low else (), now)
            if self.cap and files.output_bytes > self.cap:
                stops.append(self._over_cap(wid, files))
        for gone in set(self.files) - set(workers):
            del self.files[gone]
        victim = self._victim() if self.state.low else None
        if victim is not None:
            stops.append(victim)
        return change, stops

    def _measure(self, files: _Files, rec: dict, pids: Iterable[int], now: float) -> None:
        """Output sizes (one stat per file); while the disk is low, also what grew since last time."""
        low = self.state.low
        size = used = 0
        outputs: list[Key] = []
        for path in (rec.get("output"), rec.get("error_log")):
            if not path:
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            size += st.st_size
            used += st.st_blocks * 512
            if low:
                outputs.append((st.st_dev, st.st_ino))
        grown = used - files.output_used if files.output_used >= 0 else 0
        elapsed, files.at = now - files.at, now
        files.output_bytes, files.output_used = size, used
        if not low:  # the usual case: the baseline, nothing more
            files.growth, files.rate = 0, 0.0
            if files.opened:
                files.opened = {}
            return
        grew = {"output and error log": grown} if grown > 0 else {}
        opened: dict[Key, int] = {}
        for key, (taken, name) in _open_files(pids, self.dev).items():
            if key in outputs:
                continue
            opened[key] = taken
            before = files.opened.get(key)
            if before is not None and taken > before:
                grew[name] = taken - before
        files.opened, files.grew = opened, grew
        files.growth = sum(grew.values())
        files.rate = files.growth / elapsed if elapsed > 0 else 0.0

    def _over_cap(self, wid: str, files: _Files) -> Stop:
        limit = self.settings[OUTPUT_KEY]
        return Stop(
            wid,
            OUTPUT_LIMIT,
            OUTPUT_KEY,
            f"its output reached {files.output_bytes / MB:.1f} MB, over {OUTPUT_KEY}={limit:g} MB",
            {"output_bytes": files.output_bytes, "cap_bytes": self.cap, "keep_bytes": keep_bytes(self.cap)},
        )

    def _victim(self) -> Stop | None:
        """The worker whose files grew the most since the previous sample, if any grew fast enough."""
        growing = {wid: f for wid, f in self.files.items() if f.growth > 0 and f.rate >= MIN_VICTIM_RATE}
        if not growing:
            return None
        wid = max(growing, key=lambda w: growing[w].growth)
        f = growing[wid]
        return Stop(
            wid,
            DISK_LOW,
            RESERVE_KEY,
            f"it was filling the data folder's disk: {self.state.describe(self.data)}; "
            f"its files grew {f.growth / MB:.1f} MB since the last sample ({f.rate / MB:.2f} MB/s)",
            {
                "free_bytes": self.state.free,
                "reserve_bytes": self.state.reserve,
                "growth_bytes": f.growth,
                "growth_bytes_per_s": round(f.rate),
                "grew": dict(sorted(f.grew.items(), key=lambda kv: -kv[1])[:10]),
                "keep_bytes": keep_bytes(self.cap),
            },
        )

    # -- what the watchdog reports -----------------------------------------------------------------
    def status(self) -> dict:
        return {**self.state.as_dict(self.data), "max_output_mb": self.settings[OUTPUT_KEY]}

    def output_bytes(self, wid: str) -> int | None:
        f = self.files.get(wid)
        return f.output_bytes if f is not None else None

    def refusal(self) -> str | None:
        """Why no new worker may start now (the preflight), or None: a fresh reading, kept apart
        from the sampled state so the sample still reports the change."""
        if not self.state.reserve:
            return None
        reading = DiskState(self.state.reserve)
        reading.update(free_bytes(self.data))
        return f"{reading.describe(self.data)}" if reading.low else None


def _dev(path: Path) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def _open_files(pids: Iterable[int], dev: int | None) -> dict[Key, tuple[int, str]]:
    """Regular files on device `dev` that the processes hold open: inode -> (allocated bytes, path)."""
    out: dict[Key, tuple[int, str]] = {}
    if dev is None:
        return out
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for fd in entries:
            try:
                st = os.stat(f"{folder}/{fd}")
            except OSError:
                continue
            if st.st_dev == dev and stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key not in out:
                    try:
                        name = os.readlink(f"{folder}/{fd}")
                    except OSError:
                        name = "?"
                    out[key] = (st.st_blocks * 512, name)
    return out
