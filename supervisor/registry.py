"""The worker registry: the supervisor's writing side of the worker folders (aura.runtime.records
names them and reads them for everyone)."""

from __future__ import annotations

from aura.runtime.fsutil import atomic_write_json
from aura.runtime.records import WORKER_RECORD, WorkerRecords


class Registry(WorkerRecords):
    """The worker folders, with `record.json` written by the supervisor alone."""

    def save(self, rec: dict) -> None:
        atomic_write_json(self.dir(rec["worker_id"]) / WORKER_RECORD, rec)
