"""The append-only decision log: every status change with its reason and evidence."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path

from aura.runtime.fsutil import append_line, disk_full, json_lines

KEEP_RECENT = 100  # entries kept in memory for `recent`, so a cycle never rereads the whole log
TAIL_BYTES = 256 * 1024  # how much of the log's end is read at start for them


class DecisionLog:
    def __init__(self, state_dir: Path):
        self.path = state_dir / "decisions.jsonl"
        self.dropped = 0  # entries a full disk kept out of the log (the decision itself still stands)
        self._recent: deque[dict] | None = None

    def record(self, kind: str, **fields: object) -> dict:
        entry = {"ts": time.time(), "kind": kind, **fields}
        try:
            append_line(self.path, json.dumps(entry, default=str, ensure_ascii=False))
        except OSError as exc:
            if not disk_full(exc):
                raise
            self.dropped += 1
        if self._recent is not None:
            self._recent.append(entry)
        return entry

    def recent(self, n: int = 30) -> list[dict]:
        """The last `n` entries (up to KEEP_RECENT), from memory after the first call."""
        if self._recent is None:
            self._recent = deque(_tail(self.path), maxlen=KEEP_RECENT)
        return list(self._recent)[-n:]


def _tail(path: Path) -> list[dict]:
    """The whole entries in the log's last TAIL_BYTES; a torn or corrupt line is skipped."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - TAIL_BYTES))
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    whole = lines[1:] if size > TAIL_BYTES else lines  # the first line may be cut
    return [obj for obj in json_lines(whole) if isinstance(obj, dict)][-KEEP_RECENT:]
