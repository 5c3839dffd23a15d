"""The worker registry: the supervisor's writing side of the worker folders (aura.runtime.records
names them and reads them for everyone)."""

from __future__ import annotations

import json
from pathlib import Path

from aura.runtime.flusher import Flusher
from aura.runtime.fsutil import atomic_write_bytes, json_bytes
from aura.runtime.paths import ProjectPaths
from aura.runtime.records import WORKER_RECORD, WorkerRecords


class Registry(WorkerRecords):
    """The worker folders, with `record.json` written by the supervisor alone.

    A new worker's record is renamed into place before its shim starts (`save`), so a supervisor
    killed at any instant after leaves a record to re-adopt it from. Later changes are written by
    the flusher's thread (`save_later`): a supervisor killed before one lands leaves the previous
    record, and re-adoption brings it up to date from the shim's own launch and exit records, as
    it does for a worker that started or ended while the supervisor was down."""

    def __init__(self, paths: ProjectPaths, flusher: Flusher | None = None):
        super().__init__(paths)
        self.flusher = flusher or Flusher()

    def record(self, worker_id: str) -> dict | None:
        """The latest record: the bytes still on their way to the disk, else the file."""
        data = self.flusher.pending(self.path(worker_id))
        return json.loads(data) if data is not None else super().record(worker_id)

    def save(self, rec: dict) -> None:
        path = self.path(rec["worker_id"])
        atomic_write_bytes(path, json_bytes(rec, compact=True), sync=False)
        self.flusher.add(path)

    def save_later(self, rec: dict) -> None:
        self.flusher.write(self.path(rec["worker_id"]), json_bytes(rec, compact=True))

    def not_saved(self) -> dict[str, OSError]:
        """Worker ids whose later write failed since the last call, with the error."""
        return {path.parent.name: exc for path, exc in self.flusher.failed().items()}

    def path(self, worker_id: str) -> Path:
        return self.dir(worker_id) / WORKER_RECORD
