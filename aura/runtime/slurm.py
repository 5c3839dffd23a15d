"""Slurm's client commands as Aura uses them (sbatch, squeue, scancel, scontrol), and the vocabulary
that maps Slurm's job states to Aura's words. One module owns both, so the supervisor, the watchdog
and `aura ps` read Slurm the same way. Nothing here depends on accounting (`sacct` is optional).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .config import Config

COMMAND_TIMEOUT_S = 30.0

PENDING_STATES = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED")
RUNNING_STATES = ("RUNNING", "CONFIGURING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED")
# how a job that ended without the shim's exit record ended, in Aura's words
ENDED_WITHOUT_RECORD = {
    "CANCELLED": "cancelled by Slurm or a user",
    "TIMEOUT": "Slurm's time limit was reached",
    "NODE_FAIL": "its node failed",
    "PREEMPTED": "preempted",
    "OUT_OF_MEMORY": "Slurm's memory limit was reached",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "Slurm's deadline passed",
    "FAILED": "failed before the shim could record it",
    "COMPLETED": "completed without an exit record",
    "REQUEUED": "Slurm put it back in its queue (a failed node or a preemption); cancelled there, not run twice",
}
# states in which Slurm, not the worker, ended a job: kept in the record even beside the shim's exit record
ENDED_BY_SLURM = ("TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REQUEUED")


class SlurmError(Exception):
    """A Slurm command failed or is not installed; the message says which and why, in one line."""


@dataclass
class JobState:
    job_id: str
    state: str  # Slurm's word: PENDING, RUNNING, COMPLETED, ...
    reason: str = ""  # why it waits (Priority, Resources, ...)
    node: str = ""

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


def binary(name: str) -> str | None:
    return shutil.which(name)


def run(*argv: str, timeout: float = COMMAND_TIMEOUT_S, env: dict[str, str] | None = None) -> str:
    """Run one Slurm command; its stdout. SlurmError with Slurm's own words when it fails."""
    exe = binary(argv[0])
    if exe is None:
        raise SlurmError(f"`{argv[0]}` is not installed (Slurm's client commands are needed for AURA_EXECUTOR=slurm)")
    try:
        proc = subprocess.run(
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"{argv[0]} did not answer within {timeout:g}s (is slurmctld up?)") from exc
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise SlurmError(f"{argv[0]} failed: {' | '.join(said[-3:]) or f'exit {proc.returncode}'}")
    return proc.stdout


def submit(script: Path, options: list[str], env: dict[str, str]) -> str:
    """`sbatch --parsable OPTIONS SCRIPT` with `env` as the job's environment; the job id."""
    out = run("sbatch", "--parsable", *options, str(script), env=env).strip()
    job_id = out.split(";", 1)[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch answered {out!r}, not a job id")
    return job_id


def queue(job_ids: list[str]) -> dict[str, JobState]:
    """One `squeue` call for every job asked about: the ones Slurm still lists."""
    if not job_ids:
        return {}
    out = run("squeue", "--noheader", "--states=all", "--format=%i|%T|%r|%N", f"--jobs={','.join(job_ids)}")
    return parse_queue(out)


def parse_queue(out: str) -> dict[str, JobState]:
    found: dict[str, JobState] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or not parts[0]:
            continue
        job_id, state, reason, node = parts
        reason = "" if reason in ("None", "(null)") else reason
        found[job_id] = JobState(job_id, state.split()[0], reason, node if node != "(null)" else "")
    return found


def controller_up() -> str | None:
    """None when slurmctld answers; else why not, in one line."""
    try:
        out = run("scontrol", "ping", timeout=10.0)
    except SlurmError as exc:
        return str(exc)
    return None if " is UP" in out else f"slurmctld is not up: {' '.join(out.split())}"


def node_cpus(partition: str = "") -> int | None:
    """CPUs of the smallest node in the partition (the default one when none is named): a share of
    them is a request any of its nodes can meet. None when sinfo lists no node."""
    out = run("sinfo", "--noheader", "--Node", "--format=%c", *([f"--partition={partition}"] if partition else []))
    counts = [int(word) for word in out.split() if word.isdigit()]
    return min(counts) if counts else None


def jobs_named(name: str) -> list[str]:
    """The ids of jobs with this name that Slurm still lists (a submission whose answer was lost)."""
    out = run("squeue", "--noheader", "--states=all", "--format=%i", f"--name={name}")
    return [line.strip() for line in out.splitlines() if line.strip()]


def cancel(job_id: str, signal_name: str | None = None) -> bool:
    """`scancel` (with `--signal NAME --full`: the batch shell and every step get it). With a signal,
    False when the job already ended or Slurm forgot it; a plain cancel of such a job is silent
    (scancel exits 0), so it answers True."""
    args = ["scancel", job_id] if signal_name is None else ["scancel", "--full", f"--signal={signal_name}", job_id]
    try:
        run(*args)
    except SlurmError as exc:
        if "Invalid job id" in str(exc) or "already completing or completed" in str(exc):
            return False
        raise
    return True


_FIELD = re.compile(r"(\w+)=(\S*)")


def show_job(job_id: str) -> dict[str, str] | None:
    """`scontrol show job ID` as a dict of its KEY=VALUE fields, or None once Slurm has forgotten it."""
    try:
        out = run("scontrol", "show", "job", job_id)
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return None
        raise
    return dict(_FIELD.findall(out))


def ended_exit(fields: dict[str, str]) -> dict:
    """An exit record for a job that ended without the shim's: from Slurm's state and ExitCode."""
    state = fields.get("JobState", "UNKNOWN")
    code, _, sig = fields.get("ExitCode", "0:0").partition(":")
    why = ENDED_WITHOUT_RECORD.get(state, state.lower())
    return {
        "exit_code": int(code) if code.isdigit() and not int(sig or 0) else None,
        "signal": int(sig) if sig.isdigit() and int(sig) else None,
        "error": f"Slurm job {fields.get('JobId')} ended {state}: {why}; the shim wrote no exit record",
        "slurm_state": state,
    }


def abnormal(fields: dict[str, str]) -> bool:
    """Did Slurm itself end the job (its node, its time limit, a preemption), whatever the shim wrote?"""
    return fields.get("JobState", "") in ENDED_BY_SLURM


def site_options(cfg: Config) -> list[str]:
    """What every job of the run asks of the site: partition, account, QOS, then AURA_SLURM_ARGS (last,
    so they can override)."""
    out = []
    for key, flag in (
        ("AURA_SLURM_PARTITION", "partition"),
        ("AURA_SLURM_ACCOUNT", "account"),
        ("AURA_SLURM_QOS", "qos"),
    ):
        if cfg.text(key):
            out.append(f"--{flag}={cfg.text(key)}")
    return out + shlex.split(cfg.text("AURA_SLURM_ARGS"))


def duration(seconds: float) -> str:
    """Slurm's `--time` format: days-hours:minutes:seconds, rounded up to the minute."""
    minutes = max(1, int(-(-seconds // 60)))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00"


def client_env() -> dict[str, str]:
    """The environment Slurm's commands get (SLURM_CONF among it)."""
    return dict(os.environ)
