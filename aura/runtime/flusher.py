"""fsync off the daemon's loop: files already renamed into place, made durable by a thread.

A burst of worker exits used to spend most of the supervisor's loop in fsync (two per record
write, each waiting behind the shims' own fsyncs), so the last exit of a burst reached clients
late. The record is renamed into place at once (whole, visible to every process, safe from a
kill -9 of the daemon) and this thread fsyncs it, and each folder once per batch, soon after.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .fsutil import fsync_dir


class Flusher:
    """Makes the files handed to `add` durable in the background; `drain` waits for that."""

    def __init__(self) -> None:
        self._todo: set[Path] = set()
        self._cond = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None

    def add(self, path: Path) -> None:
        with self._cond:
            self._todo.add(path)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
                self._thread.start()
            self._cond.notify()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every file added so far is durable (a stopping daemon calls this)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._todo and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._todo))
                batch, self._todo = self._todo, set()
                self._busy = True
            try:
                sync_files(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def sync_files(paths: set[Path]) -> None:
    """fsync each file, then each of their folders once (the renames)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:  # replaced or removed meanwhile: its successor was handed in too
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
    for folder in {p.parent for p in paths}:
        fsync_dir(folder)
