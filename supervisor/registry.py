"""The worker registry: the supervisor's writing side of the worker folders and of the index of
the live ones (aura.runtime.records names them and reads them for everyone)."""

from __future__ import annotations

import contextlib
import functools
import heapq
import json
import os
from collections.abc import Iterable
from pathlib import Path

from aura.runtime.flusher import Flusher
from aura.runtime.fsutil import PRIVATE, atomic_write_bytes, json_bytes, make_dirs, read_json, write_json_even_if_full
from aura.runtime.paths import ProjectPaths, safe_name
from aura.runtime.pidfile import boot_id
from aura.runtime.records import LIVE_INDEX_BOOT, WORKER_RECORD, WorkerRecords
from aura.runtime.vocab import LIVE_STATES


class Registry(WorkerRecords):
    """The worker folders, with `record.json` written by the supervisor alone.

    A new worker's record is renamed into place before its shim starts (`save`), so a supervisor
    killed at any instant after leaves a record to re-adopt it from. Later changes are written by
    the flusher's thread (`save_later`): a supervisor killed before one lands leaves the previous
    record, and re-adoption brings it up to date from the shim's own launch and exit records, as
    it does for a worker that started or ended while the supervisor was down.

    The live index (run/live/) names every worker whose record on disk is in a live state, so the
    watchdog lists it instead of every worker folder the run has made, and a starting supervisor
    reads the records it names instead of every record. An entry is made before the worker's
    first record is written, and removed only once a record of its end is durable (in the
    flusher's thread), so a kill of the supervisor at any instant leaves no live record unnamed.
    An entry is never fsynced: a crash of the machine may lose one, so the index is trusted only
    in the boot it was last set from every record in (`records_at_start`)."""

    def __init__(self, paths: ProjectPaths, flusher: Flusher | None = None):
        super().__init__(paths)
        self.flusher = flusher or Flusher()
        self.boot_mark = paths.run_dir / LIVE_INDEX_BOOT

    def record(self, worker_id: str) -> dict | None:
        """The latest record: the bytes still on their way to the disk, else the file."""
        data = self.flusher.pending(self.path(worker_id))
        return json.loads(data) if data is not None else super().record(worker_id)

    def save(self, rec: dict) -> None:
        path, live = self.path(rec["worker_id"]), rec.get("state") in LIVE_STATES
        if live:
            self._touch(safe_name(rec["worker_id"]))
        atomic_write_bytes(path, json_bytes(rec, compact=True), sync=False)
        self.flusher.add(path)
        if not live:
            self.unindex(rec["worker_id"])

    def save_later(self, rec: dict) -> None:
        wid = rec["worker_id"]
        then = None if rec.get("state") in LIVE_STATES else functools.partial(self.unindex, wid)
        self.flusher.write(self.path(wid), json_bytes(rec, compact=True), then)

    def unindex(self, worker_id: str) -> None:
        """The worker's end is on disk: out of the live index. An entry that cannot be removed
        costs a reader one record that says the worker ended, and goes at the next start-up."""
        with contextlib.suppress(OSError):
            os.unlink(self.live_index / safe_name(worker_id))

    def records_at_start(self, keep_ended: int) -> list[dict]:
        """Every live record and the latest `keep_ended` ended ones, by when they ended: what a
        starting supervisor holds. The index names every live record unless a crash of the machine
        came since it was set from all of them, and only then is every record read."""
        boot = boot_id()
        names = self.live_ids() if read_json(self.boot_mark) == boot else None
        if names is None:
            records = list(self.records())
        else:
            records = [r for r in map(self.record, {*names, *self._latest_ended(keep_ended, names)}) if r]
        self.reindex(r["worker_id"] for r in records if r.get("state") in LIVE_STATES)
        if names is None:
            write_json_even_if_full(self.boot_mark, boot)
        return sorted(records, key=lambda r: float(r.get("ended_at") or 0))

    def _latest_ended(self, n: int, live: list[str]) -> list[str]:
        """The `n` folders written last outside the index (a folder's time is its latest rename)."""
        skip, stamped = set(live), []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name not in skip:
                    with contextlib.suppress(OSError):
                        stamped.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
        return [name for _, name in heapq.nlargest(n, stamped)]

    def reindex(self, live: Iterable[str]) -> None:
        """The live index made to hold exactly the workers `live` (every live record there is)."""
        make_dirs(self.live_index, 0o700)
        wanted = {safe_name(wid) for wid in live}
        for name in set(os.listdir(self.live_index)) - wanted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.live_index / name)
        for name in wanted:
            self._touch(name)

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
