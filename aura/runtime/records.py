"""The records the daemons keep about workers, by name and place, and how anyone reads them.

Each record has one writer; everyone else reads it here, never by spelling out its path:

    run/workers/<id>/record.json   the supervisor: the worker as spawned, its state, its outcome
    run/workers/<id>/launch.json   the shim's start report: the worker's pid, start time, process group
    run/workers/<id>/exit.json     the shim: how the worker ended (exit code or signal, end time);
                                   read by aura.runtime.exitfile, which knows where else it can be
    run/workers/<id>/managed.json  the shim: the worker ended, the jobs it registered run on
    run/workers/<id>/usage.json    the shim of a worker on another node: its latest sample of the worker
    run/live/<id>                  the supervisor: an empty file for each worker in a live state, so the
                                   watchdog and a starting supervisor list the live workers, not the
                                   folder of every worker the run has had
    run/live.boot                  the supervisor: the boot of the machine in which it last set the
                                   index from every record (a crash of the machine may lose entries)
    watchdog/kills/<id>.json       the watchdog: why it stopped a worker, with the samples
    watchdog/limits.json           the watchdog: the limits `aura limits` changed, kept across runs

The watchdog and `aura ps` read these folders directly, so they keep working while the supervisor
is down.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

from .exitfile import exit_record
from .fsutil import FolderWatch, read_json
from .paths import ProjectPaths, safe_name
from .vocab import EXITED, LIVE_STATES

WORKER_RECORD = "record.json"
WORKER_START_REPORT = "launch.json"  # the shim's report that the worker runs
WORKER_JOBS = "managed.json"  # the worker ended; jobs it registered (process.json) are kept
WORKER_USAGE = "usage.json"  # a node's sample of its worker (the shim's --sample-every)
START_FACTS = ("worker_pid", "worker_create_time", "pgid", "shim_pid", "shim_create_time")
LIVE_INDEX = "live"  # under run/: one empty file per live worker, named as its folder
LIVE_INDEX_BOOT = "live.boot"  # under run/: the boot of the machine the index was last set from every record in


RUN_TIME_LIMITS = "limits.json"


def run_time_limits_path(watchdog_dir: Path) -> Path:
    return watchdog_dir / RUN_TIME_LIMITS


_limits_seen: dict[Path, tuple[tuple[int, int, int], dict[str, str]]] = {}  # path -> (file identity, limits)


def run_time_limits(watchdog_dir: Path) -> dict[str, str]:
    """The limits `aura limits` changed (key -> value as given); {} when none were or the file is
    unreadable. Read again only when the file is another one (it is replaced whole, by a rename):
    the supervisor asks at every worker's end."""
    path = run_time_limits_path(watchdog_dir)
    try:
        st = os.stat(path)
    except OSError:
        return {}
    identity = (st.st_ino, st.st_mtime_ns, st.st_size)
    seen = _limits_seen.get(path)
    if seen is not None and seen[0] == identity:
        return dict(seen[1])
    rec = read_json(path)
    overrides = rec.get("overrides") if isinstance(rec, dict) else None
    limits = {str(k): str(v) for k, v in overrides.items()} if isinstance(overrides, dict) else {}
    _limits_seen[path] = (identity, limits)
    return dict(limits)


def kills_dir(paths: ProjectPaths) -> Path:
    return paths.watchdog_dir / "kills"


def kill_record_path(paths: ProjectPaths, worker_id: str) -> Path:
    return kills_dir(paths) / f"{safe_name(worker_id)}.json"


def kill_record(paths: ProjectPaths, worker_id: str) -> dict | None:
    """Why the watchdog stopped this worker, or None: it did not."""
    rec = read_json(kill_record_path(paths, worker_id))
    return rec if isinstance(rec, dict) else None


def kill_record_names(paths: ProjectPaths) -> frozenset[str]:
    """The file names of the kill records there are now: one listing answers a burst of exits,
    where a failed open per worker would not."""
    try:
        return frozenset(e.name for e in os.scandir(kills_dir(paths)))
    except OSError:
        return frozenset()


class KillNames:
    """The kill records' file names, listed again only when the kill folder changed: a burst of
    exits asks once, and a long run's folder of old records is not read for every burst."""

    def __init__(self, paths: ProjectPaths):
        self.paths = paths
        self.watch = FolderWatch(kills_dir(paths))
        self._names: frozenset[str] = frozenset()

    def __call__(self) -> frozenset[str]:
        changed = self.watch.changed()
        if changed is None:
            self._names = frozenset()
        elif changed:
            self._names = kill_record_names(self.paths)
        return self._names


def watchdog_kill(paths: ProjectPaths, worker_id: str, present: frozenset[str] | None = None) -> dict | None:
    """The watchdog's stop of this worker as a worker record's `kill` field (the record it wrote
    before signalling), or None. With `present` (the names KillNames lists), a worker without a
    record there is not looked for."""
    if present is not None and f"{safe_name(worker_id)}.json" not in present:
        return None
    rec = kill_record(paths, worker_id)
    if rec is None:
        return None
    kill = {
        "by": "watchdog",
        "reason_code": rec.get("reason_code") or "resource",
        "reason": rec.get("reason"),
        "requested_at": rec.get("killed_at"),
        "limit": rec.get("limit"),
    }
    if rec.get("keep_bytes"):
        kill["keep_bytes"] = rec["keep_bytes"]
    return kill


@functools.lru_cache(maxsize=1024)
def _worker_dir(root: Path, worker_id: str) -> Path:
    """A worker's folder: built once for the workers asked about often (the live and the latest)."""
    return root / safe_name(worker_id)


class WorkerRecords:
    """The worker folders under run/workers/, read-only (the supervisor's Registry writes them)."""

    def __init__(self, paths: ProjectPaths):
        self.paths = paths
        self.root = paths.workers_dir
        self.live_index = paths.run_dir / LIVE_INDEX

    def dir(self, worker_id: str) -> Path:
        return _worker_dir(self.root, worker_id)

    def ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        except FileNotFoundError:
            return []

    def live_ids(self) -> list[str] | None:
        """The folder names of the workers the supervisor marked live (their record may say they
        ended since: a reader checks it); None where there is no index yet, a registry written
        before there was one, whose every folder must be looked at."""
        try:
            return sorted(e.name for e in os.scandir(self.live_index))
        except FileNotFoundError:
            return None

    def _read(self, worker_id: str, name: str) -> dict | None:
        rec = read_json(self.dir(worker_id) / name)
        return rec if isinstance(rec, dict) else None

    def record(self, worker_id: str) -> dict | None:
        return self._read(worker_id, WORKER_RECORD)

    def start_report(self, worker_id: str) -> dict | None:
        return self._read(worker_id, WORKER_START_REPORT)

    def exit(self, worker_id: str) -> dict | None:
        return exit_record(self.dir(worker_id))

    def jobs(self, worker_id: str) -> dict | None:
        return self._read(worker_id, WORKER_JOBS)

    def records(self) -> Iterator[dict]:
        for wid in self.ids():
            rec = self.record(wid)
            if rec is not None:
                yield rec

    def view(self, rec: dict) -> dict:
        """A record with the shim's facts filled in: what a reader sees while the supervisor is down."""
        out = dict(rec)
        if not out.get("worker_pid"):
            report = self.start_report(rec["worker_id"]) or {}
            for key in START_FACTS:
                if report.get(key) is not None:
                    out[key] = report[key]
        if out.get("state") in LIVE_STATES:
            exit_rec = self.exit(rec["worker_id"])
            if exit_rec is not None:
                out["exit"] = exit_rec
                out["state"] = EXITED
        return out
