"""The watchdog's stops: decide, record, signal, finish.

Like earlyoom and systemd-oomd: one victim at a time, a cool-down after each resource kill,
SIGTERM to the worker's group (and its shim) then SIGKILL after AURA_KILL_GRACE_SECONDS, a dry-run
mode that only says what it would stop, and one record per stop with the numbers that justified
it, written before the signal so that whoever sees the worker end can read why. A record that a
full disk keeps from being written is kept here and written again at each sample.

A worker on another node (a Slurm job) is stopped through Slurm, never by a local pid: `scancel
--signal=TERM` to the job's processes, then `--signal=KILL` after the grace, unless its shim has
written its exit record by then. A `scancel` that fails (slurmctld away) is tried again.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aura.runtime import slurm
from aura.runtime.eventkinds import RESOURCE_VIOLATION, WORKER_RESOURCE_KILLED
from aura.runtime.exitfile import has_exit
from aura.runtime.fsutil import atomic_write_json, disk_full
from aura.runtime.limits import GUARD_DRY_RUN, GUARD_OFF
from aura.runtime.paths import ProjectPaths
from aura.runtime.procgroup import group_alive, signal_group, signal_shim
from aura.runtime.records import kill_record_path
from aura.runtime.vocab import DISK_LOW, SLURM

from .disk import Stop
from .policy import Policy, Violation
from .workers import Watched

SCANCEL_RETRY_S = 5.0
JOB_END_WAIT_S = 300.0  # after Slurm's KILL, the longest a stop waits for the job to end (KillWait is 30 s by default)


@dataclass
class JobStop:
    """The stop of a worker that runs as a Slurm job."""

    job_id: str
    worker_dir: Path  # once the shim's exit record is there, the worker has ended
    kill_due: float
    term_sent: bool = False
    retry_at: float = 0.0  # after a scancel that failed
    kill_sent_at: float | None = None


class Kills:
    """The stops under way (SIGTERM sent, SIGKILL due) and the rules for starting another."""

    def __init__(self, paths: ProjectPaths, log: Any, publish: Callable[..., Any], grace_s: float):
        self.paths = paths
        self.log = log
        self.publish = publish
        self.grace_s = grace_s
        self.pending: dict[str, tuple[float, int]] = {}  # worker id -> (SIGKILL due, pgid)
        self.jobs: dict[str, JobStop] = {}  # worker id -> the stop of a Slurm job under way
        self.cooldown_until = 0.0
        self.unwritten: dict[str, dict] = {}  # kill records a full disk kept from being written
        self.would_stop: set[tuple[str, str]] = set()  # dry-run disk stops already said

    # -- deciding ------------------------------------------------------------------------------
    def on_violation(
        self, wid: str, w: Watched, violation: Violation, policy: Policy, limits: dict[str, float]
    ) -> None:
        """The worst violation of a sample: kill its worker, unless another stop is under way or the
        cool-down after the last kill runs."""
        now = time.monotonic()
        if self.pending or self.jobs or now < self.cooldown_until:
            return
        numbers = {
            "average": round(violation.average, 4),
            "threshold": violation.threshold,
            "strikes": violation.strikes,
        }
        published = {"limit": violation.key, "average": violation.average, "threshold": violation.threshold}
        if policy.mode == GUARD_DRY_RUN:
            self._would_stop(wid, w.rec, violation.describe(), numbers, published)
        else:
            record = resource_record(wid, w, violation, policy, limits)
            self._kill(
                wid, w.rec, record, "worker_resource_kill", {**numbers, "samples": len(record["samples"])}, published
            )
            self.cooldown_until = now + policy.cooldown_s
        w.window.clear_strikes()

    def on_disk_stop(self, stop: Stop, w: Watched | None, mode: str) -> None:
        """A worker over its output cap, or the one filling the disk: stopped like a resource kill."""
        wid = stop.worker_id
        if mode == GUARD_OFF or wid in self.pending or wid in self.jobs or w is None:
            return
        if stop.code == DISK_LOW and (self.pending or self.jobs):
            return  # one victim at a time
        rec = w.rec
        if mode == GUARD_DRY_RUN:
            if (wid, stop.code) not in self.would_stop:
                self.would_stop.add((wid, stop.code))
                self._would_stop(
                    wid, rec, stop.reason, {"limit": stop.limit}, {"limit": stop.limit, "reason_code": stop.code}
                )
            return
        record = {
            "worker_id": wid,
            "task_id": rec.get("task_id"),
            "reason": stop.reason,
            "reason_code": stop.code,
            "limit": stop.limit,
            **stop.evidence,
            "killed_at": time.time(),
            "dry_run": False,
            "pid": rec.get("worker_pid"),
            "pgid": _pgid(rec),
        }
        self._kill(
            wid,
            rec,
            record,
            "worker_disk_kill" if stop.code == DISK_LOW else "worker_output_kill",
            {},
            {"limit": stop.limit, "reason_code": stop.code},
        )

    # -- the transition: record, signal, log, publish ------------------------------------------
    def _kill(self, wid: str, rec: dict, record: dict, logged_as: str, logged: dict, published: dict) -> None:
        """The one way a worker is stopped: its record written (kept on a full disk), SIGTERM to its
        group and its shim, the SIGKILL due after the grace, one log line and the event."""
        pgid, task, reason = record["pgid"], rec.get("task_id"), record["reason"]
        remote = rec.get("executor") == SLURM
        if remote:  # its pid and group are the node's
            record.update(executor=SLURM, job_id=rec.get("job_id"), node=rec.get("node"))
        self.write_record(wid, record)
        if remote:
            where = self._stop_job(wid, rec)
        else:
            signal_group(pgid, signal.SIGTERM)
            signal_shim(rec)
            self.pending[wid] = (time.monotonic() + self.grace_s, pgid)
            where = {"pgid": pgid}
        self.log.warning(logged_as, worker=wid, task=task, reason=reason, **logged, **where)
        self.publish(WORKER_RESOURCE_KILLED, worker_id=wid, task_id=task, reason=reason, **published)

    def _stop_job(self, wid: str, rec: dict) -> dict:
        """A Slurm worker: SIGTERM to its job's processes through scancel; the KILL is due after the grace."""
        job = JobStop(
            str(rec.get("job_id") or ""),
            self.paths.worker_dir(wid),
            time.monotonic() + self.grace_s,
        )
        self.jobs[wid] = job
        if job.job_id and self._scancel(wid, job, "TERM") is False:
            self.jobs.pop(wid, None)  # Slurm no longer knows it: it has ended
        return {"job_id": job.job_id, "node": rec.get("node"), "via": "scancel"}

    def _would_stop(self, wid: str, rec: dict, reason: str, logged: dict, published: dict) -> None:
        """Dry run: say what would be stopped, stop nothing."""
        task = rec.get("task_id")
        self.log.warning("would_kill", worker=wid, task=task, reason=reason, **logged)
        self.publish(RESOURCE_VIOLATION, worker_id=wid, task_id=task, reason=reason, **published, dry_run=True)

    def write_record(self, wid: str, record: dict) -> None:
        """Written before the signal; on a full disk kept and retried at each sample."""
        try:
            atomic_write_json(kill_record_path(self.paths, wid), record)
        except OSError as exc:
            if not disk_full(exc):
                raise
            if wid not in self.unwritten:
                self.log.error("kill_record_not_written", worker=wid, error=str(exc), retry="at each sample")
            self.unwritten[wid] = record
        else:
            self.unwritten.pop(wid, None)

    def retry_unwritten(self) -> None:
        for wid, record in list(self.unwritten.items()):
            self.write_record(wid, record)

    # -- finishing -----------------------------------------------------------------------------
    def finish(self) -> None:
        """Forget the stops whose group is gone; SIGKILL the groups that outlived the grace."""
        now = time.monotonic()
        if self.jobs:
            self._finish_jobs(now)
        for wid, (due, pgid) in list(self.pending.items()):
            if not group_alive(pgid):
                self.pending.pop(wid, None)
            elif now >= due:
                signal_group(pgid, signal.SIGKILL)
                self.log.warning("worker_sigkill", worker=wid, reason="still running after the grace period")
                self.pending.pop(wid, None)

    def _scancel(self, wid: str, job: JobStop, signal_name: str) -> bool | None:
        """True: sent; False: Slurm no longer knows the job (it ended); None: it failed (tried again later)."""
        try:
            sent = slurm.cancel(job.job_id, signal_name)
        except slurm.SlurmError as exc:
            job.retry_at = time.monotonic() + SCANCEL_RETRY_S
            self.log.warning("scancel_failed", worker=wid, job_id=job.job_id, signal=signal_name, error=str(exc))
            return None
        if signal_name == "TERM":
            job.term_sent = True
        return sent

    def _finish_jobs(self, now: float) -> None:
        """A Slurm stop ends when the shim's exit record appears or the worker leaves the live states
        (`forget_ended`): Slurm's KILL is a cancel, whose last SIGKILL comes only after the
        cluster's KillWait, and until then the worker is not judged again."""
        for wid, job in list(self.jobs.items()):
            if not job.job_id or has_exit(job.worker_dir):
                self.jobs.pop(wid, None)
            elif now < job.retry_at:
                continue
            elif not job.term_sent:
                if self._scancel(wid, job, "TERM") is False:
                    self.jobs.pop(wid, None)
            elif job.kill_sent_at is None and now >= job.kill_due:
                sent = self._scancel(wid, job, "KILL")
                if sent is False:
                    self.jobs.pop(wid, None)  # Slurm no longer knows it: it has ended
                elif sent:
                    job.kill_sent_at = now
                    self.log.warning(
                        "worker_sigkill", worker=wid, job_id=job.job_id, reason="still running after the grace period"
                    )
            elif job.kill_sent_at is not None and now - job.kill_sent_at > JOB_END_WAIT_S:
                self.jobs.pop(wid, None)
                self.log.warning("job_outlived_kill", worker=wid, job_id=job.job_id, waited_s=JOB_END_WAIT_S)

    def forget_ended(self, live: Collection[str]) -> None:
        """Drop the Slurm stops of workers no longer live (the supervisor saw their jobs end)."""
        for wid in [w for w in self.jobs if w not in live]:
            self.jobs.pop(wid, None)


def resource_record(wid: str, w: Watched, v: Violation, policy: Policy, limits: dict[str, float]) -> dict:
    """The kill record of a resource kill: the numbers, the strike run and the samples behind it."""
    return {
        "worker_id": wid,
        "task_id": w.rec.get("task_id"),
        "reason": v.describe(),
        "limit": v.key,
        "metric": v.metric,
        "average": v.average,
        "threshold": v.threshold,
        "strikes": v.strikes,
        "strike_averages": [{"t": round(t, 6), "average": round(a, 4)} for t, a in v.run],
        "window_s": policy.window_s,
        "poll_s": policy.poll_s,
        "limits": limits,
        "overrides": w.rec.get("limits") or {},
        "samples": w.window.evidence(_evidence_start(w, v, policy.window_s)),
        "killed_at": time.time(),
        "dry_run": False,
        "pid": w.rec.get("worker_pid"),
        "pgid": _pgid(w.rec),
    }


def _evidence_start(w: Watched, v: Violation, window_s: float) -> float:
    """From the window of the sample before the first strike: the record then shows the run of
    strikes from its start, and that the sample before it was no strike."""
    first = v.run[0][0] if v.run else 0.0
    before = [t for t, _ in w.window.history if t < first]
    return (before[-1] if before else first) - window_s


def _pgid(rec: dict) -> int:
    """The worker's process group (it leads its own session, so its pid when none was recorded)."""
    return int(rec.get("pgid") or rec.get("worker_pid") or 0)
