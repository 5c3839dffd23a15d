"""`aura logs`: the daemons' JSON-line logs, merged by time and printed readably."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from .runtime.logs import format_line, format_record
from .runtime.paths import ProjectPaths

TAIL_BYTES = 256 << 10


def _tail_records(path: str, n: int) -> list[tuple[str, str]]:
    """The last `n` lines of a log as (timestamp, raw line)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            raw = fh.read().decode("utf-8", "replace").splitlines()[-n:]
    except FileNotFoundError:
        return []
    out = []
    for line in raw:
        try:
            ts = str(json.loads(line).get("timestamp", ""))
        except (ValueError, AttributeError):
            ts = ""
        out.append((ts, line))
    return out


def print_logs(
    paths: ProjectPaths, names: list[str], lines: int, follow: bool, raw: bool, echo: Callable[[str], None]
) -> None:
    files = {n: str(paths.logfile(n)) for n in names}
    merged = sorted((rec for f in files.values() for rec in _tail_records(f, lines)), key=lambda r: r[0])
    show = (lambda s: echo(s.rstrip("\n"))) if raw else (lambda s: echo(format_line(s)))
    for _, line in merged[-lines:]:
        show(line)
    if not follow:
        return
    offsets = {f: (os.path.getsize(f) if os.path.exists(f) else 0) for f in files.values()}
    try:
        while True:
            for f in files.values():
                offsets[f] = _print_new(f, offsets[f], show)
            time.sleep(0.25)
    except KeyboardInterrupt:
        return


def _print_new(path: str, offset: int, show: Callable[[str], None]) -> int:
    try:
        size = os.path.getsize(path)
    except OSError:
        return offset
    if size < offset:
        offset = 0
    if size == offset:
        return offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    complete = data[: data.rfind(b"\n") + 1]
    for line in complete.decode("utf-8", "replace").splitlines():
        show(line)
    return offset + len(complete)


__all__ = ["print_logs", "format_record"]
