"""The append-only decision log: every status change with its reason and evidence."""

from __future__ import annotations

import json
import time
from pathlib import Path

from aura.runtime.fsutil import append_line, disk_full, read_jsonl


class DecisionLog:
    def __init__(self, state_dir: Path):
        self.path = state_dir / "decisions.jsonl"
        self.dropped = 0  # entries a full disk kept out of the log (the decision itself still stands)

    def record(self, kind: str, **fields: object) -> dict:
        entry = {"ts": time.time(), "kind": kind, **fields}
        try:
            append_line(self.path, json.dumps(entry, default=str, ensure_ascii=False))
        except OSError as exc:
            if not disk_full(exc):
                raise
            self.dropped += 1
        return entry

    def recent(self, n: int = 30) -> list[dict]:
        return read_jsonl(self.path)[-n:]
