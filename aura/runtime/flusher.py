"""Record writes and fsyncs off the daemon's loop: a thread renames records into place and makes
them durable, so a burst of worker exits does not queue behind the file system.

Two kinds of work: `write` (the latest bytes for a path: written to a temp file and renamed over it
by the thread, later bytes for the same path replacing earlier ones not yet written; with `then`, a
call the thread makes once those bytes are durable) and `add` (a file the caller already renamed
into place: only fsynced). A write that fails is kept for
`failed`, which the owner's loop reads to retry it and say so. Until a write has landed, `pending`
has its bytes, for a reader that would otherwise find the file one version behind.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from .fsutil import atomic_write_bytes, fsync_dir, fsync_path


class Flusher:
    """Writes and fsyncs handed to it, in a thread; `drain` waits for all of them."""

    def __init__(self) -> None:
        self._writes: dict[Path, bytes] = {}
        self._then: dict[Path, list[Callable[[], None]]] = {}  # called once the path's write is durable
        self._inflight: dict[Path, bytes] = {}  # taken by the thread, maybe not in place yet
        self._syncs: set[Path] = set()
        self._failed: dict[Path, OSError] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._holds = 0  # writes are handed over when the last `held` ends

    def write(self, path: Path, data: bytes, then: Callable[[], None] | None = None) -> None:
        """`then` is called in the thread once `data`, or later bytes for `path`, is durable; not
        if the write fails (whoever writes it again hands it in again). It must not raise: the
        thread would die with it."""
        with self._cond:
            self._writes[path] = data
            if then is not None:
                self._then.setdefault(path, []).append(then)
            self._wake()

    def pending(self, path: Path) -> bytes | None:
        """The latest bytes handed in for `path` that may not be in place yet, if any."""
        with self._cond:
            data = self._writes.get(path)
            return data if data is not None else self._inflight.get(path)

    def add(self, path: Path) -> None:
        with self._cond:
            self._syncs.add(path)
            self._wake()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hand the thread the writes of a burst at its end, in one go: woken per write, it would
        take the interpreter's lock from the loop for each one while the burst is still coming."""
        with self._cond:
            self._holds += 1
        try:
            yield
        finally:
            with self._cond:
                self._holds -= 1
                if self._pending():
                    self._wake()

    def failed(self) -> dict[Path, OSError]:
        """The writes that failed since the last call (the caller writes them again)."""
        with self._cond:
            out, self._failed = self._failed, {}
            return out

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every write and fsync handed in so far is done (a stopping daemon calls this)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending() and not self._busy, timeout)

    def _pending(self) -> bool:
        return bool(self._writes or self._syncs)

    def _wake(self) -> None:
        if self._holds:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
            self._thread.start()
        self._cond.notify_all()  # the thread, and any `drain` waiting

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending() and not self._holds)
                writes, self._writes = self._writes, {}
                thens, self._then = self._then, {}
                self._inflight = writes
                syncs, self._syncs = self._syncs, set()
                self._busy = True
            failed = {}
            try:
                for path, data in writes.items():
                    try:
                        atomic_write_bytes(path, data, sync=False)
                        syncs.add(path)
                    except OSError as exc:
                        failed[path] = exc
                sync_files(syncs)
                for path, calls in thens.items():
                    if path not in failed:
                        for call in calls:
                            call()
            finally:
                with self._cond:
                    self._failed.update(failed)
                    self._inflight = {}
                    self._busy = False
                    self._cond.notify_all()


def sync_files(paths: set[Path]) -> None:
    """fsync each file, then each of their folders once (the renames)."""
    for path in paths:
        fsync_path(path)  # a file removed meanwhile is skipped
    for folder in {p.parent for p in paths}:
        fsync_dir(folder)
