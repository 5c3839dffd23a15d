"""Structured logs: one JSON object per line, one file per daemon under `.aura/logs/`."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from .fsutil import open_private

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _Tee:
    """Write each log line to the file and, under a service manager, to stderr (the journal)."""

    def __init__(self, *streams: Any):
        self.streams = streams

    def write(self, text: str) -> None:
        for s in self.streams:
            try:
                s.write(text)
                s.flush()
            except (OSError, ValueError):
                pass

    def flush(self) -> None:
        pass


class _LogFile:
    """The daemon's log file, one write(2) per line. A line that cannot be written (a full disk) is
    dropped rather than raised into the caller, whose work must go on; the next line that can be
    written is preceded by a record of how many were lost."""

    def __init__(self, path: Path):
        self.fd = open_private(path)
        self.dropped = 0

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        if self.dropped:
            note = {
                "timestamp": datetime.now().isoformat(),
                "level": "warning",
                "event": "log_lines_dropped",
                "count": self.dropped,
                "why": "the disk was full",
            }
            data = (json.dumps(note) + "\n").encode() + data
        try:
            os.write(self.fd, data)
        except OSError:
            self.dropped += text.count("\n") or 1
        else:
            self.dropped = 0

    def flush(self) -> None:
        pass


def setup_logging(path: Path, daemon: str, level: str = "info", to_stderr: bool = False) -> Any:
    """Configure structlog for this process and return a logger bound to the daemon's name."""
    fh = _LogFile(path)  # private: logs quote prompts and errors
    sink: Any = _Tee(fh, sys.stderr) if to_stderr else fh
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=False),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level.lower(), logging.INFO)),
        logger_factory=structlog.WriteLoggerFactory(file=sink),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger().bind(daemon=daemon)


def format_record(rec: dict) -> str:
    """One log record as a readable line: `HH:MM:SS daemon LEVEL event key=value ...`."""
    ts = str(rec.get("timestamp", ""))
    try:
        ts = datetime.fromisoformat(ts).strftime("%H:%M:%S")
    except ValueError:
        pass
    level = str(rec.get("level", "")).upper()
    extras = " ".join(
        f"{k}={_short(v)}" for k, v in rec.items() if k not in ("timestamp", "level", "event", "daemon", "exception")
    )
    line = f"{ts} {rec.get('daemon', '?'):<10} {level:<7} {rec.get('event', '')}"
    if extras:
        line += f"  {extras}"
    if rec.get("exception"):
        line += "\n" + str(rec["exception"]).rstrip()
    return line


def format_line(raw: str) -> str:
    try:
        rec = json.loads(raw)
    except ValueError:
        return raw.rstrip("\n")
    return format_record(rec) if isinstance(rec, dict) else raw.rstrip("\n")


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
