"""The worker registry: the supervisor's writing side of the worker folders (aura.runtime.records
names them and reads them for everyone)."""

from __future__ import annotations

from aura.runtime.flusher import Flusher
from aura.runtime.fsutil import atomic_write_json
from aura.runtime.paths import ProjectPaths
from aura.runtime.records import WORKER_RECORD, WorkerRecords


class Registry(WorkerRecords):
    """The worker folders, with `record.json` written by the supervisor alone: renamed into place at
    once, made durable by the flusher's thread, so a burst of exits does not wait on fsyncs."""

    def __init__(self, paths: ProjectPaths, flusher: Flusher | None = None):
        super().__init__(paths)
        self.flusher = flusher or Flusher()

    def save(self, rec: dict) -> None:
        path = self.dir(rec["worker_id"]) / WORKER_RECORD
        atomic_write_json(path, rec, sync=False)
        self.flusher.add(path)
