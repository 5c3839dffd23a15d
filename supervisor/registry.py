"""The worker registry: the supervisor's writing side of the worker folders and of the index of
the live ones (aura.runtime.records names them and reads them for everyone)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from aura.runtime.flusher import Flusher
from aura.runtime.fsutil import PRIVATE, atomic_write_bytes, json_bytes, make_dirs
from aura.runtime.paths import ProjectPaths, safe_name
from aura.runtime.records import WORKER_RECORD, WorkerRecords
from aura.runtime.vocab import LIVE_STATES


class Registry(WorkerRecords):
    """The worker folders, with `record.json` written by the supervisor alone.

    A new worker's record is renamed into place before its shim starts (`save`), so a supervisor
    killed at any instant after leaves a record to re-adopt it from. Later changes are written by
    the flusher's thread (`save_later`): a supervisor killed before one lands leaves the previous
    record, and re-adoption brings it up to date from the shim's own launch and exit records, as
    it does for a worker that started or ended while the supervisor was down.

    The live index (run/live/) names every worker whose record is in a live state, so the watchdog
    lists it instead of every worker folder the run has made. An entry is made before the worker's
    first record is written, and removed as its end is made (`unindex`), before anyone is told of
    the end. `reindex` sets the index from the records at start-up, so what a kill left between an
    entry and its record does not last. An entry is never fsynced: after a crash of the machine no
    worker runs, and the next start-up's `reindex` removes what the crash left."""

    def __init__(self, paths: ProjectPaths, flusher: Flusher | None = None):
        super().__init__(paths)
        self.flusher = flusher or Flusher()

    def record(self, worker_id: str) -> dict | None:
        """The latest record: the bytes still on their way to the disk, else the file."""
        data = self.flusher.pending(self.path(worker_id))
        return json.loads(data) if data is not None else super().record(worker_id)

    def save(self, rec: dict) -> None:
        path = self.path(rec["worker_id"])
        self._index(rec)
        atomic_write_bytes(path, json_bytes(rec, compact=True), sync=False)
        self.flusher.add(path)

    def save_later(self, rec: dict) -> None:
        self.flusher.write(self.path(rec["worker_id"]), json_bytes(rec, compact=True))

    def unindex(self, worker_id: str) -> None:
        """The worker ended: out of the live index, before anyone can see it ended."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.live_index / safe_name(worker_id))

    def reindex(self, live: Iterable[str]) -> None:
        """The live index made to hold exactly the workers `live` (every live record there is)."""
        make_dirs(self.live_index, 0o700)
        wanted = {safe_name(wid) for wid in live}
        for name in set(os.listdir(self.live_index)) - wanted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.live_index / name)
        for name in wanted:
            self._touch(name)

    def _index(self, rec: dict) -> None:
        if rec.get("state") in LIVE_STATES:
            self._touch(safe_name(rec["worker_id"]))
        else:
            self.unindex(rec["worker_id"])

    def _touch(self, name: str) -> None:
        path = self.live_index / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE)
        except FileNotFoundError:  # no index folder yet: made here, not looked for at every spawn
            make_dirs(self.live_index, 0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE)
        os.close(fd)

    def not_saved(self) -> dict[str, OSError]:
        """Worker ids whose later write failed since the last call, with the error."""
        return {path.parent.name: exc for path, exc in self.flusher.failed().items()}

    def path(self, worker_id: str) -> Path:
        return self.dir(worker_id) / WORKER_RECORD
