"""A worker's exit record: durable before the shim exits, cheap in a burst, kept on a full disk.

The shim writes `exit.reserve` (RESERVE_BYTES of spaces) before it starts the worker, while there is
room, and makes it durable once the worker runs (`sync_reserve`). When the worker has ended, the
record is written into the reserve's blocks in place, padded to the same size, flushed with
fdatasync, and the reserve renamed to `exit.json`. Nothing is allocated and the size does not
change, so the flush is a data write with no journal commit to wait for (many shims ending at once
do not queue behind the file system's commits), and it works on a full disk (a rename needs no
space). The rename reaches the disk at the file system's next commit: a machine that goes down
before it keeps the whole record under the reserve's name, which the readers take in
(aura.runtime.exitfile).

A record too big for the reserve is written atomically beside it; on a full disk, trimmed to fit the
reserve. When even that fails, the shim's own exit status carries the worker's (encode / decode
below), which the supervisor reads when it reaps the shim it started. A shim that cannot reserve the
space does not start the worker at all, and says why.

Imported by the shim (`python -I -S`): standard library, aura.runtime.fsutil and aura.runtime.exitfile only.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from aura.runtime.exitfile import EXIT_RESERVE, RESERVE_BYTES, WORKER_EXIT
from aura.runtime.fsutil import atomic_write_json, disk_full, fsync_path, rewrite_in_place

BULKY = ("managed", "registered_not_kept")  # dropped from a record too big for the reserve
ESSENTIAL = ("exit_code", "signal", "error", "started_at", "ended_at", "duration_s", "written_via")

# The shim's exit status when no exit record could be written at all:
CODE_BASE = 64  # 64..125: the worker exited with 0..61
NONZERO_UNKNOWN = 126  # the worker exited with a code above 61 (which one is lost)
SIGNAL_BASE = 160  # 161..224: the worker ended by signal 1..64
MAX_CODE = NONZERO_UNKNOWN - CODE_BASE - 1


def disk_message(folder: Path | str, what: str) -> str:
    return f"the disk is full: no space left in {folder} ({what})"


def reserve(folder: Path) -> None:
    """Set aside the blocks the exit record will need; OSError (ENOSPC) when there is no room."""
    path = folder / EXIT_RESERVE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it becomes exit.json: private, as every record
    try:
        data = b" " * RESERVE_BYTES
        if os.write(fd, data) < len(data):  # written is allocated (or, delayed, reserved): no fsync needed
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    os.close(fd)


def sync_reserve(folder: Path) -> None:
    """Make the reserve's blocks durable while the worker runs, so its exit record is a data-only
    write (an fsync at the end would otherwise commit their allocation too)."""
    fsync_path(folder / EXIT_RESERVE)


def write(folder: Path, record: dict) -> str:
    """Write `exit.json`: into the reserve's blocks ('reserve'), else atomically ('file'), else,
    on a full disk, trimmed into the reserve ('reserve'). OSError when none worked."""
    spare = folder / EXIT_RESERVE
    data = _compact(record)
    if len(data) <= RESERVE_BYTES:
        try:
            rewrite_in_place(spare, data)
            os.replace(spare, folder / WORKER_EXIT)
            return "reserve"
        except OSError:
            pass  # no reserve (a worker removed it): written beside it
    try:
        atomic_write_json(folder / WORKER_EXIT, record)
    except OSError as exc:
        if not disk_full(exc) or not spare.exists():
            raise
        rewrite_in_place(spare, _fit({**record, "written_via": "space reserved at launch (the disk was full)"}))
        os.replace(spare, folder / WORKER_EXIT)
        return "reserve"
    try:
        os.unlink(spare)
    except OSError:
        pass
    return "file"


def _fit(record: dict) -> bytes:
    """The record as compact JSON within RESERVE_BYTES: the bulky lists go first, then all but the exit."""
    data = _compact(record)
    if len(data) > RESERVE_BYTES:
        data = _compact({**{k: v for k, v in record.items() if k not in BULKY}, "left_out": list(BULKY)})
    if len(data) > RESERVE_BYTES:
        data = _compact({k: (str(record[k])[:500] if k == "error" else record[k]) for k in ESSENTIAL if k in record})
    return data


def _compact(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()


def encode(exit_code: int | None, signal: int | None) -> int:
    """The shim's exit status that carries the worker's, for when no record could be written."""
    if signal:
        return SIGNAL_BASE + min(int(signal), 64)
    if exit_code is not None and 0 <= exit_code <= MAX_CODE:
        return CODE_BASE + exit_code
    return NONZERO_UNKNOWN


def decode(shim_status: int | None) -> dict | None:
    """The worker's exit from its shim's exit status, or None when the status does not carry it
    (the record was written, or the shim itself failed)."""
    if shim_status is None:
        return None
    if CODE_BASE <= shim_status <= CODE_BASE + MAX_CODE:
        return {"exit_code": shim_status - CODE_BASE, "signal": None}
    if shim_status == NONZERO_UNKNOWN:
        return {"exit_code": None, "signal": None, "error": "exited with a non-zero code (which one was lost)"}
    if SIGNAL_BASE < shim_status <= SIGNAL_BASE + 64:
        return {"exit_code": None, "signal": shim_status - SIGNAL_BASE}
    return None
