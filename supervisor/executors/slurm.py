"""Workers as Slurm batch jobs: the shim runs inside the job on a compute node and writes its start
report and exit record into the worker's folder, which must be on a filesystem the nodes share.

Start: `sbatch --parsable` answers with a job id at once; the worker is `queued` (with Slurm's
reason) until the shim's start report appears, then `running`. One `squeue` call per poll covers
every job. End: the shim's exit record, or, for a job that ended without one (cancelled while
pending, a node that failed, Slurm's time limit), Slurm's own state from `scontrol show job`.
Signals go through `scancel`: SIGTERM to the batch shell and every step, then SIGKILL.
"""

from __future__ import annotations

import math
import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from aura.runtime import slurm
from aura.runtime.exitfile import has_exit
from aura.runtime.fsutil import atomic_write_text, read_json
from aura.runtime.loop import Daemon
from aura.runtime.paths import project_id
from aura.runtime.records import START_FACTS, WORKER_START_REPORT, run_time_limits
from aura.runtime.vocab import QUEUED, RUNNING

from .base import Ended, Executor, StartOrder, StartReport
from .local import shim_command

POLL_S = 1.0
RECORD_WAIT_S = 10.0  # the longest an exit record waits for Slurm to finish its job
JOB_SCRIPT = "job.sh"
QueueNews = Callable[[str, dict], None]  # (worker id, {slurm_state, slurm_reason, node}) while queued


class SlurmExecutor(Executor):
    name = "slurm"
    on_this_machine = False

    def __init__(
        self, loop: Daemon, grace: float, on_start_report: StartReport, on_end: Ended, on_queue_news: QueueNews
    ):
        super().__init__(on_start_report, on_end)
        self.loop = loop
        self.grace = grace
        self.on_queue_news = on_queue_news
        self.queued: dict[str, dict] = {}  # worker id -> {job_id, dir}: waiting for the shim's start report
        self.watched: dict[str, dict] = {}  # worker id -> {job_id, dir}: running, waiting for its end
        self.news: dict[str, tuple[str, str, str]] = {}
        self.last_error = ""
        self._polling = False
        self._node_cpus: int | None = None

    # -- starting ---------------------------------------------------------------------------------
    def ready(self) -> str | None:
        """None when a job can be submitted now; else why not (slurmctld down or unreachable)."""
        return slurm.controller_up()

    def start(self, order: StartOrder) -> None:
        script = order.worker_dir / JOB_SCRIPT
        atomic_write_text(script, job_script(order, min(self.grace, 5.0), self.sample_every()), mode=0o700)
        try:
            known = slurm.jobs_named(job_name(self.loop.paths.root, order.worker_id))
            job_id = known[0] if known else slurm.submit(script, self.options(order), self.job_env(order))
        except slurm.SlurmError as exc:
            raise OSError(str(exc)) from None
        self.queued[order.worker_id] = {"job_id": job_id, "dir": order.worker_dir, "since": time.time()}
        self._ensure_polling()
        self.loop.call_later(
            0, lambda: self.on_start_report(order.worker_id, {"ok": True, "in_queue": True, "job_id": job_id})
        )

    def sample_every(self) -> float:
        """The watchdog's poll in force (`aura limits` may have changed it): the node samples at it."""
        key = "AURA_WORKER_RESOURCE_POLL_SECONDS"
        changed = run_time_limits(self.loop.paths.watchdog_dir).get(key, "")
        try:
            every = float(changed)
        except ValueError:
            every = 0.0
        return every if every > 0 and math.isfinite(every) else self.loop.cfg.number(key)

    def options(self, order: StartOrder) -> list[str]:
        """sbatch's options: the job's name, output and folder, and the worker's limits as requests."""
        cfg = self.loop.cfg
        limits = order.limits
        out = [
            f"--job-name={job_name(self.loop.paths.root, order.worker_id)}",
            f"--output={order.worker_dir / 'slurm-%j.out'}",
            f"--chdir={order.cwd}",
            "--export=ALL",
            "--no-requeue",  # Slurm never runs a worker again behind Aura's back; the retry policy decides
        ]
        if order.budget_s:
            out.append(f"--time={slurm.duration(order.budget_s + self.grace + 60)}")
        mem_gb = float(limits.get("AURA_WORKER_MAX_SYSTEM_MEMORY_GB", cfg.number("AURA_WORKER_MAX_SYSTEM_MEMORY_GB")))
        if mem_gb > 0:
            out.append(f"--mem={math.ceil(mem_gb * 1024)}M")
        cpu_pct = float(limits.get("AURA_WORKER_MAX_CPU_PERCENT", cfg.number("AURA_WORKER_MAX_CPU_PERCENT")))
        if cpu_pct > 0:
            out.append(f"--cpus-per-task={max(1, round(cpu_pct / 100 * self.node_cpus()))}")
        if cfg.integer("AURA_SLURM_GPUS"):
            out.append(f"--gpus={cfg.integer('AURA_SLURM_GPUS')}")
        return out + slurm.site_options(cfg)

    def node_cpus(self) -> int:
        """The CPUs a share of AURA_WORKER_MAX_CPU_PERCENT is taken of: the partition's smallest node,
        asked once (this machine's count when Slurm cannot say)."""
        if self._node_cpus is None:
            try:
                self._node_cpus = slurm.node_cpus(self.loop.cfg.text("AURA_SLURM_PARTITION")) or 0
            except slurm.SlurmError as exc:
                self.loop.log.warning("slurm_node_cpus_unknown", error=str(exc))
                self._node_cpus = 0
        return self._node_cpus or os.cpu_count() or 1

    def job_env(self, order: StartOrder) -> dict[str, str]:
        """The worker's environment for the job, with what Slurm's own commands need (SLURM_CONF, PATH)."""
        keep = {k: v for k, v in os.environ.items() if k.startswith("SLURM_") or k in ("PATH", "MUNGE_SOCKET")}
        return {**keep, **order.env}

    def facts(self, report: dict) -> dict:
        facts = {k: report.get(k) for k in (*START_FACTS, "started_at")}
        facts.update(
            job_id=report.get("job_id"),
            executor=self.name,
            node=report.get("host"),
            slurm_state="RUNNING",
            slurm_reason="",
        )
        return facts

    # -- watching ---------------------------------------------------------------------------------
    def track_queued(self, rec: dict) -> None:
        """A queued job found again after a supervisor restart."""
        since = float(rec.get("created_at") or time.time())
        self.queued[rec["worker_id"]] = {"job_id": rec["job_id"], "dir": self._dir(rec), "since": since}
        self._ensure_polling()

    def watch(self, rec: dict) -> None:
        wid = rec["worker_id"]
        if rec.get("state") == QUEUED:
            self.track_queued(rec)
            return
        self.queued.pop(wid, None)
        self.watched[wid] = {"job_id": rec["job_id"], "dir": self._dir(rec)}
        self._ensure_polling()

    def _dir(self, rec: dict) -> Path:
        return Path(self.loop.paths.worker_dir(rec["worker_id"]))

    def _ensure_polling(self) -> None:
        if not self._polling:
            self._polling = True
            self.loop.call_every(POLL_S, self.poll)

    def poll(self) -> None:
        """One squeue call for every job: queued ones that started, jobs that ended."""
        jobs = {**self.queued, **self.watched}
        if not jobs:
            return
        try:
            states = slurm.queue(sorted({j["job_id"] for j in jobs.values()}))
        except slurm.SlurmError as exc:
            if str(exc) != self.last_error:
                self.loop.log.warning("slurm_unavailable", error=str(exc))
            self.last_error = str(exc)
            return
        self.last_error = ""
        for wid, job in list(self.queued.items()):
            self._look_at_queued(wid, job, states.get(job["job_id"]))
        for wid, job in list(self.watched.items()):
            state = states.get(job["job_id"])
            if state is not None and state.pending:
                self._requeued(wid, job)
            elif state is None or not state.running or self._recorded_long_ago(job):
                self.on_end(wid)

    @staticmethod
    def _recorded_long_ago(job: dict) -> bool:
        """The shim's exit record is there, but Slurm still lists the job as running or completing: its
        end is taken once Slurm says how the job ended (a preemption, a failed node), or after a while."""
        if not has_exit(job["dir"]):
            return False
        seen = job.setdefault("exit_seen", time.monotonic())
        return time.monotonic() - seen > RECORD_WAIT_S

    def _requeued(self, wid: str, job: dict) -> None:
        """A running job back in the queue (its node failed or it was preempted, and the site or
        AURA_SLURM_ARGS allowed a requeue): cancelled, so its worker never runs a second time."""
        job["requeued"] = True
        try:
            slurm.cancel(job["job_id"])
        except slurm.SlurmError as exc:
            self.loop.log.warning("scancel_failed", worker=wid, error=str(exc))
        self.on_end(wid)

    def _look_at_queued(self, wid: str, job: dict, state: slurm.JobState | None) -> None:
        report_path = job["dir"] / WORKER_START_REPORT
        if report_path.exists():
            report = read_json(report_path) or {}
            self.queued.pop(wid, None)
            ok = bool(report.get("worker_pid")) and not report.get("error")
            self.on_start_report(wid, {**report, "ok": ok, "job_id": job["job_id"], "executor": self.name})
            return
        if state is None or not (state.pending or state.running):
            self.queued.pop(wid, None)  # it ended before its shim started: cancelled while pending, ...
            fields = slurm.show_job(job["job_id"]) or {
                "JobId": job["job_id"],
                "JobState": state.state if state else "?",
            }
            self.on_start_report(wid, {"ok": False, "error": slurm.ended_exit(fields)["error"], "executor": self.name})
            return
        timeout = self.loop.cfg.number("AURA_SLURM_QUEUE_TIMEOUT")
        waited = time.time() - float(job["since"])
        if state.pending and timeout and waited > timeout:
            self.queued.pop(wid, None)
            slurm.cancel(job["job_id"])
            why = f"Slurm job {job['job_id']} was still queued after {timeout:g}s ({state.reason or 'no reason given'})"
            self.on_start_report(wid, {"ok": False, "error": f"{why}; cancelled (AURA_SLURM_QUEUE_TIMEOUT)"})
            return
        news = (state.state, state.reason, state.node)
        if self.news.get(wid) != news:
            self.news[wid] = news
            self.on_queue_news(wid, {"slurm_state": state.state, "slurm_reason": state.reason, "node": state.node})

    def collect(self, worker_id: str) -> dict | None:
        """Stop watching; for a job that ended without the shim's exit record, Slurm's word on it."""
        job = self.watched.pop(worker_id, None) or self.queued.pop(worker_id, None)
        self.news.pop(worker_id, None)
        if job is None:
            return None
        try:
            fields = slurm.show_job(job["job_id"])
        except slurm.SlurmError:
            fields = None
        if job.get("requeued"):
            fields = {**(fields or {}), "JobId": job["job_id"], "JobState": "REQUEUED"}
        if not fields:
            return None
        ended = slurm.ended_exit(fields)
        if has_exit(job["dir"]):  # the shim's record stands; Slurm's word is kept when it says more
            return {"slurm_state": ended["slurm_state"], "note": ended["error"]} if slurm.abnormal(fields) else None
        return ended

    # -- finding again after a restart ------------------------------------------------------------
    def find(self, rec: dict) -> dict | None:
        """A submission whose answer was lost: the job, found by its name, so it is never sent twice."""
        try:
            known = slurm.jobs_named(job_name(self.loop.paths.root, rec["worker_id"]))
        except slurm.SlurmError:
            return None
        return {"job_id": known[0]} if known else None

    def _state(self, rec: dict) -> slurm.JobState | None:
        job = self.job_of(rec)
        if job is None:
            return None
        try:
            return slurm.queue([job]).get(job)
        except slurm.SlurmError:
            return slurm.JobState(job, "UNKNOWN")  # slurmctld down: assume it still runs

    def supervised(self, rec: dict) -> bool:
        state = self._state(rec)
        return state is not None and (state.running or state.pending or state.state == "UNKNOWN")

    def orphan(self, rec: dict, start_report: dict) -> dict | None:
        return None  # a job's processes on its node cannot be followed from here

    def running(self, rec: dict) -> bool:
        state = self._state(rec)
        return state is not None and (state.running or state.pending)

    def any_running(self, recs: list[dict]) -> bool:
        jobs = [job for job in (self.job_of(rec) for rec in recs) if job]
        try:
            states = slurm.queue(jobs)
        except slurm.SlurmError:
            return bool(jobs)  # slurmctld down: assume they still run
        return any(state.running or state.pending for state in states.values())

    # -- signals ------------------------------------------------------------------------------------
    def job_of(self, rec: dict) -> str | None:
        """The record's job id, or the one this executor submitted before the record could say it."""
        wid = rec["worker_id"]
        job = rec.get("job_id") or (self.queued.get(wid) or self.watched.get(wid) or {}).get("job_id")
        return str(job) if job else None

    def terminate(self, rec: dict) -> bool:
        if self.job_of(rec) is None:
            return False
        if rec.get("state") != RUNNING:  # queued: nothing runs yet to be told
            return self._cancel(rec, None)
        return self._cancel(rec, "TERM")

    def force_kill(self, rec: dict) -> bool:
        return self._cancel(rec, "KILL") if self.job_of(rec) else False

    def _cancel(self, rec: dict, signal_name: str | None) -> bool:
        job = self.job_of(rec)
        if job is None:
            return False
        try:
            return slurm.cancel(job, signal_name)
        except slurm.SlurmError as exc:
            self.loop.log.warning("scancel_failed", worker=rec["worker_id"], error=str(exc))
            return False

    def close(self) -> None:
        self.queued.clear()
        self.watched.clear()


def job_name(root: Path, worker_id: str) -> str:
    return f"aura-{project_id(root)[:8]}-{worker_id}"


def job_script(order: StartOrder, grace: float, sample_every: float) -> str:
    """The batch script: the shim, started by the node's Python of the same path (a shared install),
    sampling its worker for the watchdog every `sample_every` seconds."""
    argv = shim_command(order, grace, "--sample-every", f"{sample_every:g}")
    return "#!/bin/sh\n# Aura worker " + order.worker_id + "\nexec " + " ".join(shlex.quote(a) for a in argv) + "\n"
