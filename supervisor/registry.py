"""The worker registry on disk: one folder per worker under `.aura/run/workers/<id>/`.

`record.json` is the supervisor's (single writer); `launch.json` and `exit.json` are the
shim's. Anyone else (watchdog, CLI, brain) reads them and never writes. The watchdog and
`aura ps` read this folder directly, so they keep working while the supervisor is down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from aura.runtime.fsutil import atomic_write_json, read_json
from aura.runtime.paths import ProjectPaths, safe_name

LIVE_STATES = ("starting", "running", "orphaned")


class Registry:
    def __init__(self, paths: ProjectPaths):
        self.paths = paths
        self.root = paths.workers_dir

    def dir(self, worker_id: str) -> Path:
        return self.root / safe_name(worker_id)

    def ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        except FileNotFoundError:
            return []

    def record(self, worker_id: str) -> dict | None:
        rec = read_json(self.dir(worker_id) / "record.json")
        return rec if isinstance(rec, dict) else None

    def launch(self, worker_id: str) -> dict | None:
        rec = read_json(self.dir(worker_id) / "launch.json")
        return rec if isinstance(rec, dict) else None

    def exit(self, worker_id: str) -> dict | None:
        rec = read_json(self.dir(worker_id) / "exit.json")
        return rec if isinstance(rec, dict) else None

    def managed(self, worker_id: str) -> dict | None:
        """The shim's note that the worker ended and registered children are kept (shim.py)."""
        rec = read_json(self.dir(worker_id) / "managed.json")
        return rec if isinstance(rec, dict) else None

    def save(self, rec: dict) -> None:
        atomic_write_json(self.dir(rec["worker_id"]) / "record.json", rec)

    def records(self) -> Iterator[dict]:
        for wid in self.ids():
            rec = self.record(wid)
            if rec is not None:
                yield rec


def merged_view(reg: Registry, rec: dict) -> dict:
    """A record with the shim's launch facts filled in (for readers while the supervisor is down)."""
    out = dict(rec)
    if not out.get("worker_pid"):
        launch = reg.launch(rec["worker_id"]) or {}
        for key in ("worker_pid", "worker_create_time", "pgid", "shim_pid", "shim_create_time"):
            if launch.get(key) is not None:
                out[key] = launch[key]
    if out.get("state") in LIVE_STATES:
        exit_rec = reg.exit(rec["worker_id"])
        if exit_rec is not None:
            out["exit"] = exit_rec
            out["state"] = "exited"
    return out
