"""`aura up` with AURA_EXECUTOR=slurm: Slurm's commands are there, and a short probe job on a node can
write into the data folder (the shim there writes each worker's start report and exit record into
it, so it must be on a filesystem the nodes share)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from .runtime import slurm
from .runtime.config import Config
from .runtime.fsutil import atomic_write_text


class ProbeError(Exception):
    """Slurm cannot run Aura's workers here; one line that says why and what to change."""


def check_slurm(cfg: Config, data: Path, warn: Callable[[str], None]) -> str | None:
    """None when the run does not use Slurm; else the line `aura up` prints. ProbeError when it cannot
    work: a client command missing, sbatch refusing, or a node that cannot see the data folder."""
    if cfg.text("AURA_EXECUTOR") != "slurm":
        return None
    for command in ("sbatch", "squeue", "scancel", "scontrol"):
        if slurm.binary(command) is None:
            raise ProbeError(f"AURA_EXECUTOR=slurm but `{command}` is not installed (install Slurm's client commands)")
    token = secrets.token_hex(4)
    probe_dir = data / "run"
    probe_dir.mkdir(parents=True, exist_ok=True)
    mark = probe_dir / f"slurm-probe-{token}"
    script = probe_dir / f"slurm-probe-{token}.sh"
    atomic_write_text(script, f"#!/bin/sh\necho ok > '{mark}'\n", mode=0o700)
    try:
        job = slurm.submit(script, [f"--job-name=aura-probe-{token}", *probe_options(cfg)], slurm.client_env())
    except slurm.SlurmError as exc:
        raise ProbeError(f"AURA_EXECUTOR=slurm but a probe job was refused: {exc}") from None
    try:
        return _wait(job, mark, data, warn, cfg.number("AURA_SLURM_PROBE_SECONDS"))
    finally:
        script.unlink(missing_ok=True)
        mark.unlink(missing_ok=True)


def probe_options(cfg: Config) -> list[str]:
    """The probe asks for what every worker's job asks for (partition, account, QOS, AURA_SLURM_ARGS),
    so a setting Slurm refuses is refused at start, not by every spawn of the run."""
    return ["--output=/dev/null", "--time=1", "--no-requeue", *slurm.site_options(cfg)]


def _wait(job: str, mark: Path, data: Path, warn: Callable[[str], None], wait_s: float) -> str:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if mark.exists():
            return f"Slurm: a probe job (job {job}) wrote into {data}: workers run as Slurm jobs"
        state = slurm.queue([job]).get(job)
        if state is None or not (state.pending or state.running):
            time.sleep(1.0)  # the file may land just after the job leaves the queue
            if mark.exists():
                continue
            raise ProbeError(
                f"a Slurm node cannot write into the data folder {data} (probe job {job} ended without "
                "writing there): put the data folder on a filesystem the nodes share (--data-dir)"
            )
        time.sleep(0.5)
    slurm.cancel(job)
    warn(f"the Slurm probe job {job} is still queued after {wait_s:g}s; the data folder {data} was not checked")
    return f"Slurm: workers run as Slurm jobs (the data folder {data} could not be checked yet)"
