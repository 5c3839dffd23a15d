"""Follows each worker's output file: progress for `aura ps`, and the CLI that never exits.

Agent CLIs are known to hang after printing their final `result` line; when that line has
been seen and the process is still there after RESULT_GRACE seconds, the group is stopped.
"""

from __future__ import annotations

import os
import time
from typing import Any

RESULT_GRACE = 15.0
READ_CHUNK = 1 << 20


class _Follow:
    def __init__(self, path: str, parser: Any | None):
        self.path = path
        self.parser = parser
        self.offset = 0
        self.partial = b""
        self.size = 0
        self.last_growth = time.time()
        self.result_seen_at: float | None = None

    def scan(self) -> None:
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return
        if size < self.offset:  # truncated by a new attempt
            self.offset, self.partial = 0, b""
        if size > self.size:
            self.last_growth = time.time()
        self.size = size
        if self.parser is None:
            self.offset = size
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            while True:
                chunk = fh.read(READ_CHUNK)
                if not chunk:
                    break
                self.offset += len(chunk)
                self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        data = self.partial + chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            self.parser.feed(raw.decode("utf-8", "replace"))
        if self.result_seen_at is None and self._has_result():
            self.result_seen_at = time.time()

    def _has_result(self) -> bool:
        summary = self.parser.summary() if self.parser is not None else {}
        return bool(summary.get("result"))

    def summary(self) -> dict:
        out: dict = {"output_bytes": self.size, "last_output_at": self.last_growth}
        if self.parser is not None:
            out.update(self.parser.summary())
        return out


class OutputMonitor:
    def __init__(self) -> None:
        self.follows: dict[str, _Follow] = {}

    def track(self, rec: dict, backend: Any) -> None:
        self.follows[rec["worker_id"]] = _Follow(rec["output"], backend.new_parser())

    def _get(self, rec: dict) -> _Follow | None:
        wid = rec["worker_id"]
        if wid not in self.follows and rec.get("output"):
            from .backends import get_backend
            try:
                self.track(rec, get_backend(rec.get("backend", "shell")))
            except Exception:
                return None
        return self.follows.get(wid)

    def scan(self, rec: dict) -> None:
        follow = self._get(rec)
        if follow is not None:
            follow.scan()

    def summary(self, wid: str) -> dict | None:
        follow = self.follows.get(wid)
        return follow.summary() if follow is not None else None

    def finish(self, rec: dict) -> dict | None:
        """A last full read of the output after the worker ended; stops following it."""
        follow = self._get(rec)
        if follow is None:
            return None
        follow.scan()
        if follow.partial and follow.parser is not None:
            follow.parser.feed(follow.partial.decode("utf-8", "replace"))
            follow.partial = b""
        self.follows.pop(rec["worker_id"], None)
        return follow.summary()

    def should_stop(self, rec: dict) -> str | None:
        follow = self.follows.get(rec["worker_id"])
        if follow is None or follow.result_seen_at is None:
            return None
        if time.time() - follow.result_seen_at > RESULT_GRACE:
            return f"printed its final result {RESULT_GRACE:g}s ago but did not exit"
        return None
