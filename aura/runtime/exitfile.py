"""Where a worker's exit record is on disk, and how it is read: the shim writes it (its writing side
is supervisor/exitrecord.py), everyone else reads it here.

The shim writes the record into the blocks of `exit.reserve`, flushes it, then renames the reserve
to `exit.json` without waiting for the rename to reach the disk. A machine that went down between
the two keeps the whole record under the reserve's name, so a folder with no `exit.json` and a
reserve that holds a record has an exit record all the same. A reserve still blank (spaces) or
caught half-written holds none.

Imported by the shim (`python -I -S`): the standard library and aura.runtime.fsutil only.
"""

from __future__ import annotations

from pathlib import Path

from .fsutil import read_json

WORKER_EXIT = "exit.json"
EXIT_RESERVE = "exit.reserve"  # the blocks the exit record is written into, set aside at the start
RESERVE_BYTES = 8192


def exit_record(folder: Path) -> dict | None:
    """The worker's exit record, or None: it has not ended (or its shim could write no record)."""
    rec = read_json(folder / WORKER_EXIT)
    if rec is None:
        rec = _reserve_record(folder)
    return rec if isinstance(rec, dict) else None


def has_exit(folder: Path) -> bool:
    """Did the shim write an exit record here? (an `exit.json` torn by a crash counts: it was)"""
    return (folder / WORKER_EXIT).exists() or _reserve_record(folder) is not None


def _reserve_record(folder: Path) -> dict | None:
    """The record in the reserve; None while it is blank (no JSON once unpadded) or half-written."""
    rec = read_json(folder / EXIT_RESERVE)
    return rec if isinstance(rec, dict) else None
