"""The brain starts nothing new while the data folder's disk is short of space, and says so.

Short means free space below AURA_MIN_DISK_FREE_MB (read every few seconds: one statvfs), or the
task tree could not be saved for lack of space. While short, spawns are refused with the reason,
`aura status` shows it, and the notification hooks hear `disk_low`; once the space is back the brain
resumes by itself (`disk_ok`, and a cycle at once). A save that fails on a full disk is one log line:
the last good state.json stays in place and the save is retried at the next check and cycle.
"""

from __future__ import annotations

import time
from typing import Any

from aura.runtime.diskspace import MB, RESERVE_KEY, DiskState, disk_settings, free_bytes
from aura.runtime.eventkinds import Kind
from aura.runtime.fsutil import disk_full
from aura.runtime.paths import ProjectPaths

CHECK_EVERY = 2.0  # seconds between checks of the free space


def save_quietly(
    store: Any,
    state: dict,
    log: Any,
    last_error: str | None,
    whole: bool = False,
    touched: set[str] | None = None,
    lazily: bool = False,
) -> str | None:
    """Save the task tree (`whole`: as a new snapshot, `lazily` as StateStore.flush takes it;
    `touched`: the tasks to compare); on a full disk log it once (no traceback) and return the
    error, else None."""
    try:
        if whole:
            store.flush(state, lazily)
        else:
            store.save(state, touched)
    except OSError as exc:
        if not disk_full(exc):
            raise
        if last_error is None:
            log.error("state_not_saved", error=str(exc), kept="the last good state.json", retry="next check")
        return str(exc)
    if last_error is not None:
        log.info("state_saved", after="the disk had room again")
    return None


class DiskPause:
    def __init__(self, paths: ProjectPaths, cfg: Any, log: Any):
        self.paths = paths
        self.cfg = cfg
        self.log = log
        self.state = DiskState(0)
        self.paused: str | None = None  # why no new worker starts, while the disk is short
        self.since: float | None = None
        self.save_error: str | None = None

    def check(self, save_error: str | None) -> str | None:
        """A new reading; 'disk_low' or 'disk_ok' when the brain pauses or resumes."""
        try:
            self.state.reserve = int(disk_settings(self.cfg, self.paths.watchdog_dir)[RESERVE_KEY] * MB)
        except ValueError:
            pass  # a bad value is refused where it is set; keep the last good one
        self.state.update(free_bytes(self.paths.data))
        self.save_error = save_error
        reason = None
        if self.state.low:
            reason = self.state.describe(self.paths.data)
        elif save_error:
            reason = f"the task tree could not be saved ({save_error})"
        change = None
        if reason and not self.paused:
            change, self.since = Kind.DISK_LOW, time.time()
        elif self.paused and not reason:
            change = Kind.DISK_OK
        self.paused = reason
        return change

    def status(self) -> dict:
        return {
            **self.state.as_dict(self.paths.data),
            "paused": self.paused,
            "paused_since": self.since,
            "save_error": self.save_error,
        }

    def announce(self, change: str, decisions: Any, notifier: Any, cycle: int) -> dict:
        """Log, record and notify a pause or a resume; returns the event's data."""
        info = self.status()
        if change == Kind.DISK_LOW:
            data = {"message": f"disk low: {self.paused}; no new workers start until space is back", **info}
            self.log.warning("spawns_paused", reason=self.paused, free_mb=info["free_mb"])
        else:
            data = {
                "message": f"disk space is back ({info['free_mb']} MB free in {info['path']}); new workers start again",
                **info,
            }
            self.log.info("spawns_resumed", free_mb=info["free_mb"])
        decisions.record(change, cycle=cycle, by="brain", reason=data["message"])
        notifier.notify(change, data)
        return data
